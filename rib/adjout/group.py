"""What every update group does whatever its mode: dirty prefixes, the queue of
encoded blobs, members joining and leaving, trimming what all have read.

A group notes the Loc-RIB changes of each batch (``mark``) as dirty prefixes
(prefix -> its entry after the batch), and encodes up to ``chunk`` of them per
``build`` into one blob appended to ``queue``; members read the queue at their
own pace (``rib.adjout.member``). How a chunk becomes bytes, what the members
were told, and how a joining or switching member catches up depend on the
mode: ``rib.adjout.plain`` (no table of its own) and ``rib.adjout.tabled``
(ADD-PATH, prefix-dependent export).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from bgp.wire import CodecContext, Family, PathAttributes
from rib.adjout.encode import Encoder
from rib.batch import Batch, Changed, Entry
from rib.export import Exporter
from rib.path import Source

if TYPE_CHECKING:
    from rib.adjout.member import Member

__all__ = ["CHUNK", "Queued", "Told", "Unsure", "UpdateGroup"]

CHUNK = 8192  # dirty prefixes turned into UPDATEs per build step
# A queued item: one blob for every member, or (blob, {source: its variant}) where a
# member whose routes are in the blob reads its own variant (split horizon).
Queued = bytes | tuple[bytes, dict[Source, bytes]]


class Told:
    """What members of a group were told, per prefix (live, or a copy for a switch)."""

    add_path = False  # values are ``Sent`` tuples of (path id, attrs) (RFC 7911)

    def get(self, key: bytes, source: Source | None) -> Any:
        """What a member with ``source`` has for ``key``: outbound attributes (ADD-PATH:
        a ``Sent`` tuple), or None."""
        raise NotImplementedError

    def keys(self) -> Iterable[bytes]:
        """Every prefix this may hold a value for."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Unsure:
    """What a member has for a prefix when it is one of ``values`` and nobody knows
    which (``rib.adjout.member``: a switch before the last one finished). A switch
    re-sends such a prefix as if the member had never been told it, withdrawing
    every path id any of the values holds (ADD-PATH)."""

    values: tuple[Any, ...]

    @staticmethod
    def of(*values: Any) -> Unsure:
        """``values`` in one ``Unsure`` (the values of an ``Unsure`` among them too)."""
        flat: list[Any] = []
        for v in values:
            flat += v.values if isinstance(v, Unsure) else (v,)
        return Unsure(tuple(flat))


class UpdateGroup:
    """One family's outbound state shared by peers with the same export behaviour
    (the mode-independent part; see the module docstring)."""

    def __init__(
        self,
        key: tuple[Any, ...],
        family: Family,
        exporter: Exporter,
        *,
        as4: bool = True,
        max_len: int = 4096,
        add_path: int = 0,
        blocked: Callable[[], bool] = lambda: False,
        loc: dict[bytes, Entry] | None = None,
    ) -> None:
        self.key = key
        self.family = family
        self.exporter = exporter
        ap = add_path != 0
        self.encoder = Encoder(
            family,
            CodecContext(
                as4=as4,
                extended_message=max_len > 4096,
                add_path_send_ipv4=ap and family is Family.IPV4_UNICAST,
                add_path_send_ipv6=ap and family is Family.IPV6_UNICAST,
            ),
        )
        self._encode = self.encoder.encode
        self.add_path = add_path  # 0 off, N best N, -1 all
        self.blocked = blocked  # true while best-path selection is deferred (RFC 4724 §4.1)
        self.chunk = CHUNK
        self.members: list[Member] = []
        # Prefix -> its Loc-RIB entry as of the last Rib.flush (None: no route).
        self.dirty: dict[bytes, Entry | None] = {}
        self.queue: list[Queued] = []
        self.base = 0  # absolute index of queue[0]
        self.loc: dict[bytes, Entry] = loc if loc is not None else {}
        self._start()

    def _start(self) -> None:
        """Set up what the mode keeps besides the dirty prefixes and the queue."""

    # ---------------------------------------------------------------- per mode

    def told(self) -> Told:
        """A live view of what the group's members were told."""
        raise NotImplementedError

    def snapshot(self) -> Told:
        """A copy of what the group's members were told (for a member switching away)."""
        raise NotImplementedError

    def advertised_to(self, source: Source | None) -> int:
        """Prefixes a member with ``source`` is told of."""
        raise NotImplementedError

    def catch_keys(self) -> list[bytes]:
        """Every prefix the members may have been told of (a joining member's catch-up)."""
        raise NotImplementedError

    def encode_catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        """UPDATEs announcing what the group has sent for ``keys`` (a joining member)."""
        raise NotImplementedError

    def _encode_chunk(self, keys: list[bytes], entries: list[Entry | None]) -> Queued:
        """Encode what changed for ``keys`` (taken from ``dirty`` with their ``entries``)."""
        raise NotImplementedError

    def told_for_switch(self, member: Member) -> Told:
        """What ``member``, switching to another group, was told: the live view when it
        is the only member (nothing changes it any more once it leaves), else a copy."""
        return self.told() if self.members == [member] else self.snapshot()

    # ---------------------------------------------------------------- dirty prefixes

    def mark(self, batch: Batch, own: bool) -> None:
        """Note a batch of Loc-RIB changes (``Rib.flush``). ``own``: the batch's dicts
        may be kept (nobody else reads them)."""
        if isinstance(batch, Changed):
            self._note(batch, own)
        else:
            self._note(batch.as_changes(), True)

    def _note(self, batch: Changed, own: bool) -> None:
        """Make ``batch`` dirty entries (prefix -> new entry)."""
        if not self.dirty:
            self.dirty = batch.changed if own else dict(batch.changed)
        else:
            self.dirty.update(batch.changed)

    def reset_dirty(self, keys: Iterable[bytes]) -> None:
        """Mark ``keys`` dirty with no entry noted (end of selection deferral)."""
        self.dirty = dict.fromkeys(keys)

    # ---------------------------------------------------------------- building

    @property
    def end(self) -> int:
        """Absolute index one past the last queued blob."""
        return self.base + len(self.queue)

    def build(self) -> bool:
        """Encode up to ``chunk`` dirty prefixes into one queued blob; False if none were dirty."""
        dirty = self.dirty
        if not dirty or self.blocked():
            return False
        if len(dirty) <= self.chunk:
            self.dirty = {}
            keys = list(dirty)
            entries = list(dirty.values())
        else:
            keys = list(islice(dirty, self.chunk))
            entries = list(map(dirty.pop, keys))
        blob = self._encode_chunk(keys, entries)
        if blob:
            self.queue.append(blob)
        return True

    def prime(self) -> None:
        """Bring what was sent up to date with every dirty prefix without encoding anything.

        Used for a group created for a member that switches export policy: the
        switch then sends only the difference (see ``Member.switch``).
        """
        self.encoder.mute = True
        try:
            while self.build():
                pass
        finally:
            self.encoder.mute = False

    def encode_switch(
        self,
        keys: list[bytes],
        before: Told,
        source: Source | None,
        unknown: set[bytes],
        full: bool,
    ) -> bytes:
        """UPDATEs taking a member from what ``before`` told it to what this group tells
        (one path per prefix; ADD-PATH groups compare path by path).

        ``unknown`` keys (the member had not caught up on them), keys ``before``
        is ``Unsure`` of, and ``full`` (a ROUTE-REFRESH is being answered) are
        announced even when unchanged, and withdrawn when not sent.
        """
        now = self.told()
        full = full or before.add_path  # ADD-PATH is settled in OPEN; be safe
        withdrawn: list[bytes] = []
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for key in keys:
            want = now.get(key, source)
            have = before.get(key, source)
            fresh = full or key in unknown or isinstance(have, Unsure)
            if want is None:
                if have is not None or fresh:
                    withdrawn.append(key)
            elif fresh or not (have is want or have == want):
                lst = groups.get(id(want))
                if lst is None:
                    groups[id(want)] = [key]
                    attrs_of[id(want)] = want
                else:
                    lst.append(key)
        return self._encode(withdrawn, groups, attrs_of)

    # ---------------------------------------------------------------- members

    def join(self, member: Member) -> None:
        """Add a member; it catches up with what was sent before following the queue."""
        member.group = self
        member.pos = self.end
        member.start_catch_up(self.catch_keys())
        self.members.append(member)

    def leave(self, member: Member) -> None:
        """Remove a member (its session went down)."""
        if member in self.members:
            self.members.remove(member)
        self.trim()

    def trim(self) -> None:
        """Drop queued blobs every member has read."""
        if not self.members:
            self.base = self.end
            self.queue.clear()
            return
        low = min(m.pos for m in self.members)
        drop = low - self.base
        if drop > 0:
            del self.queue[:drop]
            self.base = low
