"""A member of an update group: one peer's read position, catch-up and switch.

Every member reads the same blob objects from its group's queue at its own
pace (``pull``, called when its session's socket is below the high-water
mark), so a change is encoded once however many peers receive it, and a slow
socket simply pulls later (back-pressure), as BIRD does. When the queue is
read to the end the member asks the group to build the next chunk.

A member joining a group that already advertised routes first catches up
with what the group has sent and then follows the queue from the position it
joined at; since every queued change is newer than that position, the peer
ends with exactly the group's state. After the initial routes (and when the
group has nothing left dirty) it gets End-of-RIB (RFC 4724 §2). A
ROUTE-REFRESH (RFC 2918) restarts the catch-up, wrapped in BoRR/EoRR when the
peer does enhanced route refresh (RFC 7313 §4).

Export policy change (``switch``): the member leaves its group and joins the
group of its new policy at that group's end. Its pending blobs from the old
group go first (so the peer reaches the old group's state), then, per
prefix, the difference between what the old group told it (a snapshot) and
what the new group tells: withdrawals for what is no longer allowed,
announcements for what is new or changed; unchanged routes are not re-sent.

A switch before the previous one finished: the previous switch's catch-up
has not reached some prefixes yet, so for those the peer still has what the
group before told it — unless one of the old group's pending blobs, which go
out first, changed the prefix. Which blobs touch which prefix is not known
(they are bytes), so where the two differ the peer has one or the other
(``Unsure``), and the switch re-sends the prefix as if it had never been
told it. Which prefixes a switch has reached is its own record
(``_Switch.pending``), not the member's catch-up list: a ROUTE-REFRESH during
a switch restarts that list with every prefix, including those the switch
already sent (for which the peer has the group's routes, not the group
before's).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from bgp.wire import CodecContext, Family, RouteRefresh, encode_end_of_rib, encode_message
from rib.adjout.group import Queued, Told, Unsure, UpdateGroup
from rib.path import Source

__all__ = ["Member"]


class Member:
    """One peer's read position in one update group, plus its private messages."""

    def __init__(
        self,
        peer_key: str,
        family: Family,
        *,
        send_eor: bool = True,
        source: Source | None = None,
    ) -> None:
        self.peer_key = peer_key
        self.family = family
        self.source = source  # the peer's own routes are not sent back to it
        self.group: UpdateGroup | None = None
        self.pos = 0
        self.private: deque[bytes] = deque()
        self._catch: list[bytes] = []
        self._catch_i = 0
        self._switch: _Switch | None = None
        self._after_catch_up: bytes = b""
        self.eor_pending = send_eor
        self.idle = True

    def start_catch_up(self, keys: list[bytes], enhanced_refresh: bool = False) -> None:
        """Send what was sent for ``keys`` first (join, or a ROUTE-REFRESH request)."""
        if enhanced_refresh:
            self.private.append(_refresh(self.family, 1))  # BoRR, RFC 7313 §4
            self._after_catch_up = _refresh(self.family, 2)  # EoRR
        if self._switch is not None and self.catching_up:
            # A refresh during a policy switch: finish the switch, re-sending everything
            # (withdrawals of what the old policy allowed must not be lost). The switch
            # keeps its own record of the prefixes it has not sent yet.
            self._switch.full = True
            keys = list(set(keys).union(self._catch[self._catch_i :]))
        else:
            self._switch = None
        self._catch = keys
        self._catch_i = 0

    def switch(self, new: UpdateGroup, before: Told) -> None:
        """Move to ``new`` (export policy changed); ``before`` is what the old group told.

        The old group's blobs this member has not read yet go out first, so the
        peer ends at ``before`` (where a previous switch had not finished, at
        ``before`` or where it was: ``_Unfinished``); the catch-up then sends
        the difference.
        """
        old = self.group
        assert old is not None
        unread = False  # blobs of the old group go out before the difference
        for item in old.queue[self.pos - old.base :]:
            blob = self._variant(item)
            if blob:
                self.private.append(blob)
                unread = True
        pending = self._catch[self._catch_i :]
        full = bool(self._after_catch_up)  # answering a ROUTE-REFRESH: resend all (RFC 7313 §4)
        unknown = set(pending)
        prior = self._switch
        if prior is not None:
            full = full or prior.full
            unknown &= prior.unknown
            if prior.pending:
                # Switched again before the last switch reached these keys: the peer
                # has what the group before that one told it of them, or what the
                # unread blobs above tell. (Not every key of the catch-up list: after
                # a ROUTE-REFRESH it holds keys the last switch already sent.)
                before = _Unfinished(before, prior.before, prior.pending, unread)
        old.leave(self)
        keys = list(set(before.keys()).union(new.catch_keys(), pending))
        self.group = new
        self.pos = new.end
        new.members.append(self)
        self._switch = _Switch(new, before, self.source, unknown, full, set(keys))
        self._catch = keys
        self._catch_i = 0

    def _variant(self, item: Queued) -> bytes:
        """This member's variant of a queued item (split horizon)."""
        if isinstance(item, tuple):
            everyone, variants = item
            return variants.get(self.source, everyone) if self.source is not None else everyone
        return item

    @property
    def catching_up(self) -> bool:
        return self._catch_i < len(self._catch)

    def pull(self, max_bytes: int) -> list[bytes]:
        """Blobs to write, about ``max_bytes`` in total (at least one if anything is pending)."""
        g = self.group
        assert g is not None
        out: list[bytes] = []
        size = 0
        while size < max_bytes:
            blob = self._next(g)
            if blob is None:
                break
            if blob:
                out.append(blob)
                size += len(blob)
        self.idle = not out
        return out

    def _next(self, g: UpdateGroup) -> bytes | None:
        """The next blob for this member, b"" when progress was made without output, None when done."""
        if self.private:
            return self.private.popleft()
        if g.blocked():
            return None
        if self.catching_up:
            i = self._catch_i
            self._catch_i = i + g.chunk
            keys = self._catch[i : i + g.chunk]
            sw = self._switch
            blob = sw(keys) if sw is not None else g.encode_catch_up(keys, self.source)
            if not self.catching_up:
                self._catch = []
                self._catch_i = 0
                self._switch = None
                if self._after_catch_up:
                    self.private.append(self._after_catch_up)
                    self._after_catch_up = b""
            return blob
        if self.pos < g.end:
            item = g.queue[self.pos - g.base]
            self.pos += 1
            if self.pos - g.base > 64:
                g.trim()
            return self._variant(item)
        if g.build():
            return b""
        if self.eor_pending:
            self.eor_pending = False
            return encode_end_of_rib(self.family)
        return None


class _Unfinished(Told):
    """What a member was told when it switches groups again before its previous
    switch sent ``pending`` keys: what the group it leaves told it (``now``), its
    unread blobs included; for a pending key, what the group before told it
    (``earlier``) — unless ``unread`` blobs of the group it leaves went out
    first: one may have changed the key, so where the two differ the member has
    one or the other (``Unsure``; see the module docstring)."""

    __slots__ = ("add_path", "earlier", "now", "pending", "unread")

    def __init__(self, now: Told, earlier: Told, pending: set[bytes], unread: bool) -> None:
        self.now = now
        self.earlier = earlier
        self.pending = pending
        self.unread = unread
        self.add_path = now.add_path

    def get(self, key: bytes, source: Source | None) -> Any:
        if key not in self.pending:
            return self.now.get(key, source)
        earlier = self.earlier.get(key, source)
        if not self.unread:
            return earlier
        now = self.now.get(key, source)
        if earlier is now or earlier == now:
            return now
        return Unsure.of(now, earlier)

    def keys(self) -> list[bytes]:
        return list(set(self.now.keys()).union(self.earlier.keys()))


class _Switch:
    """The catch-up of a member that switched groups (see ``UpdateGroup.encode_switch``);
    ``pending``: the keys it has not sent yet (the peer still has ``before`` there)."""

    __slots__ = ("before", "full", "group", "pending", "source", "unknown")

    def __init__(
        self,
        group: UpdateGroup,
        before: Told,
        source: Source | None,
        unknown: set[bytes],
        full: bool,
        pending: set[bytes],
    ) -> None:
        self.group = group
        self.before = before
        self.source = source
        self.unknown = unknown
        self.full = full
        self.pending = pending

    def __call__(self, keys: list[bytes]) -> bytes:
        self.pending.difference_update(keys)
        return self.group.encode_switch(keys, self.before, self.source, self.unknown, self.full)


def _refresh(family: Family, subtype: int) -> bytes:
    """A ROUTE-REFRESH message with an RFC 7313 subtype (1 BoRR, 2 EoRR)."""
    return encode_message(RouteRefresh(family.afi, family.safi, subtype), CodecContext())
