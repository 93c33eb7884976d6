"""Adj-RIB-Out per update group: dirty prefixes in, encoded UPDATEs out when pulled.

Peers whose outbound attributes are computed the same way (same family,
export policy, peer kind, next-hop handling, AS width, ADD-PATH mode, message
size) form one ``UpdateGroup`` (DESIGN.md performance rule 4). The RIB only
records, at the end of each batch, the changed prefixes with their new Loc-RIB
entries (None: gone) in the group's ``dirty`` dict. Nothing is encoded until a
member's session asks for bytes (``Member.pull``, called when its socket is
below the high-water mark): then up to ``CHUNK`` dirty prefixes are compared
with what was last sent (``adj_out``), grouped by outbound attribute set, and
encoded into one ``bytes`` blob appended to the group's queue. A chunk that
only withdraws is handled without a Python loop over its prefixes. Every member reads the same blob objects from the queue at its
own pace, so a change is encoded once however many peers receive it, several
changes to one prefix before a pull coalesce into one, and a slow socket
simply pulls later (back-pressure) — the same scheme BIRD uses.

A member joining a group that already advertised routes first catches up
from ``adj_out`` (the current state) and then follows the queue from the
position it joined at; since every queued change is newer than that position,
the peer ends with exactly ``adj_out``. After the initial routes (and when the
group has nothing left dirty) it gets End-of-RIB (RFC 4724 §2). A ROUTE-REFRESH
(RFC 2918) restarts the catch-up, wrapped in BoRR/EoRR when the peer does
enhanced route refresh (RFC 7313 §4).

With ADD-PATH send (RFC 7911) ``adj_out`` holds, per prefix, a tuple of
``(tx_id, attrs)`` for the paths sent (the best N, or all).

Split horizon: a route is never sent back to the peer it was learned from
(an eBGP peer would drop it by AS-path loop, RFC 4271 §9.1.2; an RR client by
ORIGINATOR_ID, RFC 4456 §8). The group still encodes once: UPDATEs for routes
whose source is a member are encoded apart, so a queued item is either one
``bytes`` for everybody or ``(bytes, {source: bytes})`` where the source
member reads its own variant — the others' routes, plus a withdrawal where its
own route replaced one it had been sent. Only plain groups do this (not
ADD-PATH or prefix-dependent export policies, whose ``adj_out`` holds
attributes rather than paths).

Export policy change (``Member.switch``): the member leaves its group and joins
the group of its new policy at that group's end. Its pending blobs from the
old group go first (so the peer reaches the old group's state), then, per
prefix, the difference between what the old group told it (a snapshot) and
what the new group tells: withdrawals for what is no longer allowed,
announcements for what is new or changed; unchanged routes are not re-sent.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from itertools import compress, groupby, islice, repeat
from operator import attrgetter, is_not
from typing import Any

from bgp.wire import (
    CodecContext,
    Family,
    PathAttributes,
    RouteRefresh,
    encode_announce,
    encode_end_of_rib,
    encode_message,
    encode_withdraw,
)
from rib.bestpath import Ranked
from rib.export import Exporter
from rib.path import Path, Source

__all__ = ["CHUNK", "Member", "Told", "UpdateGroup"]

_MISS: Any = object()
CHUNK = 8192  # dirty prefixes turned into UPDATEs per build step
Entry = Path | Ranked
Sent = tuple[tuple[int, PathAttributes], ...]
Queued = bytes | tuple[bytes, dict[Source, bytes]]
_source_of = attrgetter("source")


class Told:
    """What members of a group were told, per prefix (live, or a snapshot for a switch)."""

    __slots__ = ("add_path", "adj_out", "exporter", "split")

    def __init__(
        self, adj_out: dict[bytes, Any], exporter: Exporter, add_path: int, split: bool
    ) -> None:
        self.adj_out = adj_out
        self.exporter = exporter
        self.add_path = add_path
        self.split = split

    def get(self, key: bytes, source: Source | None) -> Any:
        """Outbound attributes (ADD-PATH: ``Sent`` tuple) a member with ``source`` has, or None."""
        v = self.adj_out.get(key)
        if v is None or self.add_path:
            return v
        if v.__class__ is Path:
            if self.split and v.source is source:
                return None  # split horizon: never sent to its source
            return self.exporter.out(v)
        return v  # prefix-dependent export: adj_out holds the attributes


class UpdateGroup:
    """One family's outbound state shared by peers with the same export behaviour."""

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
    ) -> None:
        self.key = key
        self.family = family
        self.exporter = exporter
        big = max_len > 4096
        ap = add_path != 0
        self.ctx = CodecContext(
            as4=as4,
            extended_message=big,
            add_path_send_ipv4=ap and family is Family.IPV4_UNICAST,
            add_path_send_ipv6=ap and family is Family.IPV6_UNICAST,
        )
        self.add_path = add_path  # 0 off, N best N, -1 all
        self.blocked = blocked  # true while best-path selection is deferred (RFC 4724 §4.1)
        self.members: list[Member] = []
        # Prefix -> its Loc-RIB entry as of the last Rib.flush (None: no route).
        self.dirty: dict[bytes, Entry | None] = {}
        self.adj_out: dict[bytes, Any] = {}
        self.queue: list[Queued] = []
        self.base = 0  # absolute index of queue[0]
        # Split horizon needs adj_out to hold paths (see module docstring).
        self.split = not ap and not exporter.per_prefix
        # Split groups: how many adj_out entries each source's paths fill, so what a
        # member was told (adj_out without its own routes) is known without a scan.
        self.by_source: dict[Source, int] = {}
        self._mute = False  # prime(): update adj_out without encoding

    def told(self) -> Told:
        """A live view of ``adj_out``."""
        return Told(self.adj_out, self.exporter, self.add_path, self.split)

    def snapshot(self) -> Told:
        """A copy of the current ``adj_out`` (for a member switching away)."""
        return Told(dict(self.adj_out), self.exporter, self.add_path, self.split)

    def advertised_to(self, source: Source | None) -> int:
        """Prefixes a member with ``source`` is told of: ``adj_out`` less its own routes
        (split horizon). ADD-PATH and prefix-dependent groups send every entry."""
        n = len(self.adj_out)
        if self.split and source is not None:
            n -= self.by_source.get(source, 0)
        return n

    @property
    def end(self) -> int:
        """Absolute index one past the last queued blob."""
        return self.base + len(self.queue)

    # ---------------------------------------------------------------- building

    def build(self) -> bool:
        """Encode up to ``CHUNK`` dirty prefixes into one queued blob; False if none were dirty."""
        dirty = self.dirty
        if not dirty or self.blocked():
            return False
        if len(dirty) <= CHUNK:
            self.dirty = {}
            keys = list(dirty)
            entries = list(dirty.values())
        else:
            keys = list(islice(dirty, CHUNK))
            entries = list(map(dirty.pop, keys))
        if self.add_path:
            blob: Queued = self._diff_add_path(keys, entries)
        elif entries.count(None) == len(entries):
            blob = self._diff_gone(keys)
        else:
            blob = self._diff(keys, entries)
        if blob:
            self.queue.append(blob)
        return True

    def prime(self) -> None:
        """Bring ``adj_out`` up to date with every dirty prefix without encoding anything.

        Used for a group created for a member that switches export policy: the
        switch then sends only the difference (see ``Member.switch``).
        """
        self._mute = True
        try:
            while self.build():
                pass
        finally:
            self._mute = False

    def _diff_gone(self, keys: list[bytes]) -> Queued:
        """``_diff`` for a chunk whose prefixes all lost their route: bulk pops."""
        olds = list(map(self.adj_out.pop, keys, repeat(None)))
        if None in olds:  # never sent (or not allowed by export): nothing to withdraw
            sent = list(map(is_not, olds, repeat(None)))
            keys = list(compress(keys, sent))
            olds = list(compress(olds, sent))
        if not keys:
            return b""
        if self.exporter.per_prefix:  # adj_out holds attributes, no split horizon
            return self._encode(keys, {}, {})
        only = next(iter(self.by_source)) if len(self.by_source) == 1 else None
        self._uncount(only, olds, [])
        srcs = {m.source for m in self.members if m.source is not None}
        if not srcs:
            return self._encode(keys, {}, {})
        return self._split(srcs, only, keys, olds, {}, {}, {}, {})

    def _diff(self, keys: list[bytes], entries: list[Entry | None]) -> Queued:
        """Compare the Loc-RIB ``entries`` of ``keys`` with ``adj_out`` and encode the differences.

        ``adj_out`` holds the best *path* last sent, so the per-prefix work is
        identity comparisons; outbound attributes are computed per distinct path.
        ``adj_out`` is read once per prefix, in C. A chunk of new prefixes with one
        eligible path each (a table being learned) is grouped by path run by run,
        with no Python work per prefix. Everything done per source (advertised
        counts, split horizon) is done per distinct path or, when ``adj_out``
        holds one source's routes only, per chunk.
        """
        adj = self.adj_out
        olds = list(map(adj.get, keys))
        withdrawn: list[bytes] = []
        wd_old: list[Path] = []  # what each withdrawal withdraws (split horizon)
        replaced: list[tuple[bytes, Path, Path]] = []  # (key, adj_out path, new best)
        by_path = _fresh_runs(keys, entries) if olds.count(None) == len(olds) else None
        fresh = by_path is not None
        if by_path is None:
            by_path = {}
            by_get = by_path.get
            wd_app = withdrawn.append
            old_app = wd_old.append
            rep_app = replaced.append
            path_cls = Path
            for key, e, old in zip(keys, entries, olds, strict=True):
                if e is None:
                    best = None
                elif e.__class__ is path_cls:
                    best = e if e.eligible else None
                else:
                    best = e.best  # type: ignore[union-attr]
                if best is old:
                    continue
                if best is None:
                    del adj[key]
                    wd_app(key)
                    old_app(old)  # type: ignore[arg-type]
                    continue
                if old is not None:
                    rep_app((key, old, best))
                lst = by_get(best)
                if lst is None:
                    by_path[best] = [key]
                else:
                    lst.append(key)
        if self.exporter.per_prefix:
            return self._encode_per_prefix(withdrawn, by_path)
        if fresh:  # each entry is its prefix's best path, new to adj_out: one bulk update
            adj.update(zip(keys, entries, strict=True))
        # Every path leaving adj_out came from this source when it holds only one's.
        only = next(iter(self.by_source)) if len(self.by_source) == 1 else None
        if wd_old or replaced:
            self._uncount(only, wd_old, replaced)
        srcs = {m.source for m in self.members if m.source is not None}
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        own: dict[Source, dict[int, list[bytes]]] = {}  # skipped by their source
        counts = self.by_source
        out_of = self.exporter.out
        for path, ks in by_path.items():
            out = out_of(path)
            if out is None:
                if fresh:  # never sent: nothing to withdraw
                    deque(map(adj.pop, ks), maxlen=0)
                else:
                    self._reject(ks, withdrawn, wd_old)
                continue
            target = groups
            src = path.source
            if src in srcs:
                target = own.setdefault(src, {})
            if not fresh:
                adj.update(dict.fromkeys(ks, path))
            counts[src] = counts.get(src, 0) + len(ks)
            lst = target.get(id(out))
            if lst is None:
                target[id(out)] = ks
                attrs_of[id(out)] = out
            else:
                lst += ks
        if not srcs:
            return self._encode(withdrawn, groups, attrs_of)
        back = self._taken_back(srcs, replaced)
        return self._split(srcs, only, withdrawn, wd_old, groups, attrs_of, own, back)

    def _uncount(
        self, only: Source | None, wd_old: list[Path], replaced: list[tuple[bytes, Path, Path]]
    ) -> None:
        """Entries leave ``adj_out``: withdrawn, or replaced (a replacement that export
        then rejects appends its old path to ``wd_old`` later: not counted twice)."""
        counts = self.by_source
        if only is not None:
            gone = {only: len(wd_old) + len(replaced)}
        else:
            gone = Counter(map(_source_of, wd_old))
            gone.update(old.source for _, old, _ in replaced)
        for src, n in gone.items():
            left = counts[src] - n
            if left:
                counts[src] = left
            else:
                del counts[src]

    def _taken_back(
        self, srcs: set[Source], replaced: list[tuple[bytes, Path, Path]]
    ) -> dict[Source, list[bytes]]:
        """Prefixes where a member's own route replaced another peer's that it was sent:
        that one must be withdrawn from it (and only from it)."""
        back: dict[Source, list[bytes]] = {}
        out_of = self.exporter.out
        for key, old, new in replaced:
            src = new.source
            if src in srcs and old.source is not src and out_of(new) is not None:
                back.setdefault(src, []).append(key)
        return back

    def _split(
        self,
        srcs: set[Source],
        only: Source | None,
        withdrawn: list[bytes],
        wd_old: list[Path],
        groups: dict[int, list[bytes]],
        attrs_of: dict[int, PathAttributes],
        own: dict[Source, dict[int, list[bytes]]],
        back: dict[Source, list[bytes]],
    ) -> Queued:
        """Encode with split horizon: one blob for all, a variant for each source member.

        ``only``: every withdrawn path came from this source (no per-prefix split)."""
        common: list[bytes] = []
        own_wd: dict[Source, list[bytes]] = {}
        if only is not None:
            if only in srcs:
                if withdrawn:
                    own_wd[only] = withdrawn  # never sent to its source
            else:
                common = withdrawn
        else:
            for k, o in zip(withdrawn, wd_old, strict=True):
                if o.source in srcs:
                    own_wd.setdefault(o.source, []).append(k)
                else:
                    common.append(k)
        base = self._encode(common, groups, attrs_of)
        parts = {
            s: self._encode(own_wd.get(s, []), own.get(s, {}), attrs_of)
            for s in own.keys() | own_wd.keys()
        }
        if not parts and not back:
            return base
        full = base + b"".join(parts.values())
        alts: dict[Source, bytes] = {}
        for s in parts.keys() | back.keys():
            alt = [base, *(p for t, p in parts.items() if t is not s)]
            if s in back:
                alt.append(self._encode(back[s], {}, attrs_of))
            alts[s] = b"".join(alt)
        return (full, alts)

    def _reject(self, keys: list[bytes], withdrawn: list[bytes], wd_old: list[Path]) -> None:
        """Export refused the best path: withdraw what was sent for ``keys``."""
        adj = self.adj_out
        for k in keys:
            old = adj.pop(k, None)
            if old is not None:
                withdrawn.append(k)
                wd_old.append(old)

    def _encode_per_prefix(self, withdrawn: list[bytes], by_path: dict[Path, list[bytes]]) -> bytes:
        """Slow path for export policies that match prefixes: attributes per prefix.

        ``adj_out`` then holds the outbound attributes themselves.
        """
        adj = self.adj_out
        out_of = self.exporter.out
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for path, ks in by_path.items():
            for k in ks:
                out = out_of(path, k)
                old = adj.get(k)
                if out is old:
                    continue
                if out is None:
                    del adj[k]
                    withdrawn.append(k)
                    continue
                adj[k] = out
                groups.setdefault(id(out), []).append(k)
                attrs_of[id(out)] = out
        return self._encode(withdrawn, groups, attrs_of)

    def _wanted(self, key: bytes, e: Entry | None) -> Sent:
        """``(tx_id, attrs)`` of the paths to send for one prefix (ADD-PATH)."""
        if e is None:
            return ()
        paths = (e,) if e.__class__ is Path else e.paths  # type: ignore[union-attr]
        limit = self.add_path if self.add_path > 0 else len(paths)
        out: list[tuple[int, PathAttributes]] = []
        per_prefix = self.exporter.per_prefix
        for p in paths:
            if len(out) >= limit or not p.eligible:
                break
            a = self.exporter.out(p, key) if per_prefix else self.exporter.out(p)
            if a is not None:
                out.append((p.slot.tx_id, a))
        return tuple(out)

    def _diff_add_path(self, keys: list[bytes], entries: list[Entry | None]) -> bytes:
        """As ``_diff``, with several paths per prefix (RFC 7911 §3)."""
        adj = self.adj_out
        withdrawn: list[bytes] = []
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for key, e in zip(keys, entries, strict=True):
            want = self._wanted(key, e)
            old: Sent = adj.get(key, ())
            if want == old:
                continue
            new_ids = {t for t, _ in want}
            withdrawn += [t.to_bytes(4, "big") + key for t, _ in old if t not in new_ids]
            before = dict(old)
            for t, a in want:
                if before.get(t) is not a:
                    groups.setdefault(id(a), []).append(t.to_bytes(4, "big") + key)
                    attrs_of[id(a)] = a
            if want:
                adj[key] = want
            else:
                del adj[key]
        return self._encode(withdrawn, groups, attrs_of)

    def _encode(
        self,
        withdrawn: list[bytes],
        groups: dict[int, list[bytes]],
        attrs_of: dict[int, PathAttributes],
    ) -> bytes:
        if self._mute:
            return b""
        fam, ctx = self.family, self.ctx
        msgs: list[bytes] = encode_withdraw(fam, withdrawn, ctx) if withdrawn else []
        for ident, nlri in groups.items():
            msgs += encode_announce(attrs_of[ident], fam, nlri, ctx)
        return b"".join(msgs)

    def catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        """UPDATEs announcing the current ``adj_out`` state of ``keys`` (a joining member).

        Routes learned from ``source`` (the member itself) are skipped: split horizon.
        """
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        adj_get = self.adj_out.get
        for key in keys:
            v = adj_get(key)
            if v is None:
                continue
            if self.add_path:
                for t, a in v:
                    groups.setdefault(id(a), []).append(t.to_bytes(4, "big") + key)
                    attrs_of[id(a)] = a
                continue
            if v.__class__ is Path:
                if self.split and v.source is source:
                    continue
                out = self.exporter.out(v)
                if out is None:
                    continue
            else:
                out = v
            lst = groups.get(id(out))
            if lst is None:
                groups[id(out)] = [key]
                attrs_of[id(out)] = out
            else:
                lst.append(key)
        return self._encode([], groups, attrs_of)

    def switch_diff(
        self,
        keys: list[bytes],
        before: Told,
        source: Source | None,
        unknown: set[bytes],
        full: bool,
    ) -> bytes:
        """UPDATEs taking a member from what ``before`` told it to what this group tells.

        ``unknown`` keys (the member had not caught up on them) and ``full``
        (a ROUTE-REFRESH is being answered) are announced even when unchanged.
        """
        now = self.told()
        ap = bool(self.add_path)
        if ap != bool(before.add_path):
            full = True  # ADD-PATH on/off is negotiated in OPEN; be safe
        withdrawn: list[bytes] = []
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for key in keys:
            want = now.get(key, source)
            have = before.get(key, source)
            fresh = full or key in unknown
            if ap:
                self._switch_add_path(key, want, have, fresh, withdrawn, groups, attrs_of)
                continue
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

    @staticmethod
    def _switch_add_path(
        key: bytes,
        want: Sent | None,
        have: Any,
        fresh: bool,
        withdrawn: list[bytes],
        groups: dict[int, list[bytes]],
        attrs_of: dict[int, PathAttributes],
    ) -> None:
        had = dict(have) if isinstance(have, tuple) else {}
        wants = dict(want or ())
        withdrawn += [t.to_bytes(4, "big") + key for t in had if t not in wants]
        for t, a in wants.items():
            if fresh or had.get(t) != a:
                groups.setdefault(id(a), []).append(t.to_bytes(4, "big") + key)
                attrs_of[id(a)] = a

    # ---------------------------------------------------------------- members

    def join(self, member: Member) -> None:
        """Add a member; it catches up from ``adj_out`` before following the queue."""
        member.group = self
        member.pos = self.end
        member.start_catch_up(list(self.adj_out))
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
        self._after_catch: bytes = b""
        self.eor_pending = send_eor
        self.idle = True

    def start_catch_up(self, keys: list[bytes], enhanced_refresh: bool = False) -> None:
        """Send ``keys`` from ``adj_out`` first (join, or a ROUTE-REFRESH request)."""
        if enhanced_refresh:
            self.private.append(_refresh(self.family, 1))  # BoRR, RFC 7313 §4
            self._after_catch = _refresh(self.family, 2)  # EoRR
        if self._switch is not None and self.catching_up:
            # A refresh during a policy switch: finish the switch, re-sending everything
            # (withdrawals of what the old policy allowed must not be lost).
            self._switch.full = True
            keys = list(set(keys).union(self._catch[self._catch_i :]))
        else:
            self._switch = None
        self._catch = keys
        self._catch_i = 0

    def switch(self, new: UpdateGroup, before: Told) -> None:
        """Move to ``new`` (export policy changed); ``before`` is what the old group told.

        The old group's blobs this member has not read yet go out first, so the
        peer ends at ``before``; the catch-up then sends the difference.
        """
        old = self.group
        assert old is not None
        for item in old.queue[self.pos - old.base :]:
            blob = self._pick(item)
            if blob:
                self.private.append(blob)
        pending = self._catch[self._catch_i :]
        full = bool(self._after_catch)  # answering a ROUTE-REFRESH: resend all (RFC 7313 §4)
        if self._switch is not None:
            full = full or self._switch.full
        old.leave(self)
        keys = list(before.adj_out.keys() | new.adj_out.keys() | set(pending))
        self.group = new
        self.pos = new.end
        new.members.append(self)
        self._switch = _Switch(new, before, self.source, set(pending), full)
        self._catch = keys
        self._catch_i = 0

    def _pick(self, item: Queued) -> bytes:
        """This member's variant of a queued item (split horizon)."""
        if item.__class__ is tuple:
            return item[1].get(self.source, item[0])  # type: ignore[arg-type]
        return item  # type: ignore[return-value]

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
            self._catch_i = i + CHUNK
            keys = self._catch[i : i + CHUNK]
            sw = self._switch
            blob = sw(keys) if sw is not None else g.catch_up(keys, self.source)
            if not self.catching_up:
                self._catch = []
                self._catch_i = 0
                self._switch = None
                if self._after_catch:
                    self.private.append(self._after_catch)
                    self._after_catch = b""
            return blob
        if self.pos < g.end:
            item = g.queue[self.pos - g.base]
            self.pos += 1
            if self.pos - g.base > 64:
                g.trim()
            if item.__class__ is tuple:
                return item[1].get(self.source, item[0])  # type: ignore[arg-type]
            return item  # type: ignore[return-value]
        if g.build():
            return b""
        if self.eor_pending:
            self.eor_pending = False
            return encode_end_of_rib(self.family)
        return None


class _Switch:
    """The catch-up of a member that switched groups (see ``UpdateGroup.switch_diff``)."""

    __slots__ = ("before", "full", "group", "source", "unknown")

    def __init__(
        self,
        group: UpdateGroup,
        before: Told,
        source: Source | None,
        unknown: set[bytes],
        full: bool,
    ) -> None:
        self.group = group
        self.before = before
        self.source = source
        self.unknown = unknown
        self.full = full

    def __call__(self, keys: list[bytes]) -> bytes:
        return self.group.switch_diff(keys, self.before, self.source, self.unknown, self.full)


def _fresh_runs(keys: list[bytes], entries: list[Entry | None]) -> dict[Path, list[bytes]] | None:
    """``keys`` grouped by entry if every entry is one eligible ``Path``, else None.

    The RIB notes an UPDATE's prefixes together with their shared path, so the
    entries come in runs: the work is per run (``groupby`` and list slices, in C).
    """
    by_path: dict[Path, list[bytes]] = {}
    i = 0
    for e, run in groupby(entries):
        if e.__class__ is not Path or not e.eligible:
            return None
        j = i + len(list(run))
        lst = by_path.get(e)
        if lst is None:
            by_path[e] = keys[i:j]
        else:
            lst += keys[i:j]
        i = j
    return by_path


def _refresh(family: Family, subtype: int) -> bytes:
    """A ROUTE-REFRESH message with an RFC 7313 subtype (1 BoRR, 2 EoRR)."""
    return encode_message(RouteRefresh(family.afi, family.safi, subtype), CodecContext())
