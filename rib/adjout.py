"""Adj-RIB-Out per update group: dirty prefixes in, encoded UPDATEs out when pulled.

Peers whose outbound attributes are computed the same way (same family,
export policy, peer kind, next-hop handling, AS width, ADD-PATH mode, message
size) form one ``UpdateGroup`` (DESIGN.md performance rule 4). The RIB only
records, at the end of each batch, the changed prefixes with their new Loc-RIB
entries (None: gone) in the group's ``dirty`` dict. Nothing is encoded until a
member's session asks for bytes (``Member.pull``, called when its socket is
below the high-water mark): then up to ``CHUNK`` dirty prefixes are compared
with what was last sent, grouped by outbound attribute set, and encoded into
one ``bytes`` blob appended to the group's queue. Every member reads the same
blob objects from the queue at its own pace, so a change is encoded once
however many peers receive it, several changes to one prefix before a pull
coalesce into one, and a slow socket simply pulls later (back-pressure) — the
same scheme BIRD uses.

What was sent. In a plain group (no ADD-PATH, an export policy that does not
look at prefixes) the attributes sent for a prefix are a function of its
Loc-RIB entry (best path → ``Exporter.out``), so the group keeps no table of
its own: what it has sent is the Loc-RIB as of its last build, that is the
Loc-RIB itself for prefixes that are not dirty, and for dirty ones the entry
the RIB noted before their first change (``prev``; none: nothing was sent).
A full table then costs one dict, not two, and a withdrawal one lookup. This
needs every Loc-RIB change to reach the groups (``Rib.flush``) before anyone
pulls, which the RIB guarantees. ADD-PATH groups (per prefix, a tuple of
``(tx_id, attrs)`` for the paths sent: the best N, or all) and
prefix-dependent groups (the attributes sent) keep a real ``adj_out`` dict.

A member joining a group that already advertised routes first catches up
with what the group has sent and then follows the queue from the position it
joined at; since every queued change is newer than that position, the peer
ends with exactly the group's state. After the initial routes (and when the
group has nothing left dirty) it gets End-of-RIB (RFC 4724 §2). A
ROUTE-REFRESH (RFC 2918) restarts the catch-up, wrapped in BoRR/EoRR when the
peer does enhanced route refresh (RFC 7313 §4).

Split horizon: a route is never sent back to the peer it was learned from
(an eBGP peer would drop it by AS-path loop, RFC 4271 §9.1.2; an RR client by
ORIGINATOR_ID, RFC 4456 §8). The group still encodes once: UPDATEs for routes
whose source is a member are encoded apart, so a queued item is either one
``bytes`` for everybody or ``(bytes, {source: bytes})`` where the source
member reads its own variant — the others' routes, plus a withdrawal where its
own route replaced one it had been sent. Only plain groups do this.

Export policy change (``Member.switch``): the member leaves its group and joins
the group of its new policy at that group's end. Its pending blobs from the
old group go first (so the peer reaches the old group's state), then, per
prefix, the difference between what the old group told it (a snapshot) and
what the new group tells: withdrawals for what is no longer allowed,
announcements for what is new or changed; unchanged routes are not re-sent.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from itertools import compress, groupby, islice, repeat
from operator import attrgetter, is_not
from typing import Any

from bgp.wire import (
    CodecContext,
    Family,
    PathAttributes,
    RouteRefresh,
    announce_head,
    encode_announce,
    encode_end_of_rib,
    encode_message,
    encode_withdraw,
    update_header,
)
from rib.batch import Announced, Batch, Changed, Entry, Withdrawn
from rib.export import Exporter
from rib.path import Path, Source

__all__ = ["CHUNK", "Member", "Told", "UpdateGroup"]

_MISS: Any = object()
CHUNK = 8192  # dirty prefixes turned into UPDATEs per build step
Sent = tuple[tuple[int, PathAttributes], ...]
Queued = bytes | tuple[bytes, dict[Source, bytes]]
_source_of = attrgetter("source")


class Told:
    """What members of a group were told, per prefix (live, or a snapshot for a switch).

    ``lookup(key)`` gives the Adj-RIB-Out value (the path sent, the attributes
    or the ``Sent`` tuple, see ``UpdateGroup``), ``keys()`` every prefix it may
    hold a value for.
    """

    __slots__ = ("add_path", "exporter", "keys", "lookup", "split")

    def __init__(
        self,
        lookup: Callable[[bytes], Any],
        keys: Callable[[], Iterable[bytes]],
        exporter: Exporter,
        add_path: int,
        split: bool,
    ) -> None:
        self.lookup = lookup
        self.keys = keys
        self.exporter = exporter
        self.add_path = add_path
        self.split = split

    def get(self, key: bytes, source: Source | None) -> Any:
        """Outbound attributes (ADD-PATH: ``Sent`` tuple) a member with ``source`` has, or None."""
        v = self.lookup(key)
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
        loc: dict[bytes, Entry] | None = None,
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
        self.queue: list[Queued] = []
        self.base = 0  # absolute index of queue[0]
        # Plain groups (no ADD-PATH, no prefix-dependent export) keep no Adj-RIB-Out
        # table: what they sent is a function of the Loc-RIB (see module docstring),
        # and split horizon works on the paths.
        self.split = not ap and not exporter.per_prefix
        self.loc: dict[bytes, Entry] = loc if loc is not None else {}
        # Plain groups: the Loc-RIB entry as of the last build of each dirty prefix
        # that had one (a subset of ``dirty``'s keys).
        self.prev: dict[bytes, Entry] = {}
        # Plain groups: a batch of the RIB's kept as it came until the next build,
        # while nothing else is dirty (``rib.batch``).
        self._pending: Announced | Withdrawn | None = None
        # ADD-PATH and prefix-dependent groups: prefix -> what was sent.
        self.adj_out: dict[bytes, Any] = {}
        # Plain groups: how many advertised prefixes each source's paths fill, so what a
        # member was told (all of them without its own routes) is known without a scan.
        self.by_source: dict[Source, int] = {}
        self._mute = False  # prime(): bring the sent state up to date without encoding
        # id(outbound attrs) -> (attrs, announce_head): the part of an UPDATE before the
        # NLRI, encoded once per attribute set (the attrs are kept, so ids stay unique).
        self._heads: dict[int, tuple[PathAttributes, tuple[bytes, int] | None]] = {}

    def told(self) -> Told:
        """A live view of what the group's members were told."""
        if self.split:
            return Told(self._told_path, self.catch_keys, self.exporter, 0, True)
        return Told(self.adj_out.get, self.adj_out.keys, self.exporter, self.add_path, False)

    def snapshot(self) -> Told:
        """A copy of what the group's members were told (for a member switching away)."""
        if self.split:
            if not self.by_source:  # nothing was sent
                nothing: dict[bytes, Any] = {}
                return Told(nothing.get, list, self.exporter, 0, True)
            self._realize()
            view = _Sent(self, dict(self.loc), dict(self.dirty), dict(self.prev))
            return Told(view.path, view.keys, self.exporter, 0, True)
        adj = dict(self.adj_out)
        return Told(adj.get, adj.keys, self.exporter, self.add_path, False)

    def advertised_to(self, source: Source | None) -> int:
        """Prefixes a member with ``source`` is told of, less its own routes (split
        horizon). ADD-PATH and prefix-dependent groups send every entry."""
        if not self.split:
            return len(self.adj_out)
        n = sum(self.by_source.values())
        if source is not None:
            n -= self.by_source.get(source, 0)
        return n

    def mark(self, batch: Batch, own: bool) -> None:
        """Note a batch of Loc-RIB changes (``Rib.flush``). ``own``: the batch's dicts
        may be kept (nobody else reads them).

        A plain group keeps an ``Announced`` batch that fits one build step, or a
        ``Withdrawn`` one that fits four, as it came while nothing else is dirty:
        the next build encodes it without a per-prefix dict (``_build_pending``).
        Anything else becomes ordinary dirty entries, so changes still coalesce
        until a member pulls.
        """
        if isinstance(batch, Changed):
            self._note(batch, own)
        elif isinstance(batch, Withdrawn):
            self._keep_or_note(batch, len(batch.keys) <= 4 * CHUNK)
        else:
            self._keep_or_note(batch, len(batch) <= CHUNK)

    def _note(self, batch: Changed, own: bool) -> None:
        """Make ``batch`` dirty entries: prefix -> new entry, and (plain groups) the
        entry before the batch for those that had one."""
        changed, olds = batch.changed, batch.old
        if self._pending is not None:
            self._realize()
        dirty = self.dirty
        if not dirty:
            self.dirty = changed if own else dict(changed)
            if self.split:
                self.prev = olds if own else dict(olds)
            return
        if self.split and olds:
            # A prefix already dirty keeps the entry of the last build (or none).
            prev = self.prev
            for k, o in olds.items():
                if k not in dirty:
                    prev[k] = o
        dirty.update(changed)

    def reset_dirty(self, keys: Iterable[bytes]) -> None:
        """Mark ``keys`` dirty with no entry noted (end of selection deferral)."""
        self._pending = None  # (none while deferred: the RIB keeps no batch then)
        self.dirty = dict.fromkeys(keys)
        self.prev = {}

    def catch_keys(self) -> list[bytes]:
        """Every prefix the members may have been told of (a joining member's catch-up)."""
        if not self.split:
            return list(self.adj_out)
        if not self.by_source:
            return []  # nothing was sent
        self._realize()
        if self.prev:
            return list(self.loc.keys() | self.prev.keys())
        return list(self.loc)

    def _state(self, key: bytes) -> Entry | None:
        """Plain groups: the Loc-RIB entry of ``key`` as of the last build."""
        if self._pending is not None:
            self._realize()
        if key in self.dirty:
            return self.prev.get(key)
        return self.loc.get(key)

    def _sent(self, e: Entry | None) -> Path | None:
        """The path a Loc-RIB entry made the group send (export allowing), or None."""
        best = _best(e)
        if best is None or self.exporter.out(best) is None:
            return None
        return best

    def _told_path(self, key: bytes) -> Path | None:
        """Plain groups: the path sent for ``key`` (before split horizon), or None."""
        return self._sent(self._state(key))

    @property
    def end(self) -> int:
        """Absolute index one past the last queued blob."""
        return self.base + len(self.queue)

    # ---------------------------------------------------------------- building

    def build(self) -> bool:
        """Encode up to ``CHUNK`` dirty prefixes into one queued blob; False if none were dirty."""
        if self._pending is not None and not self.blocked() and self._build_pending():
            return True
        dirty = self.dirty
        if not dirty or self.blocked():
            return False
        prev = self.prev
        olds_e: list[Entry | None] | None = None
        if len(dirty) <= CHUNK:
            self.dirty = {}
            keys = list(dirty)
            entries = list(dirty.values())
            if prev:
                self.prev = {}
                olds_e = list(map(prev.get, keys))
        else:
            keys = list(islice(dirty, CHUNK))
            entries = list(map(dirty.pop, keys))
            if prev:
                olds_e = list(map(prev.pop, keys, repeat(None)))
        if self.add_path:
            blob: Queued = self._diff_add_path(keys, entries)
        elif not self.split:
            blob = self._diff(keys, entries)
        else:
            olds: list[Path | None] | None = None
            if olds_e is not None:
                sent = {e: self._sent(e) for e in set(olds_e)}
                olds = list(map(sent.__getitem__, olds_e))
                if olds.count(None) == len(olds):
                    olds = None
            if entries.count(None) == len(entries):
                blob = self._gone(keys, olds) if olds is not None else b""
            else:
                blob = self._diff_plain(keys, entries, olds)
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

    def _diff(self, keys: list[bytes], entries: list[Entry | None]) -> bytes:
        """Prefix-dependent export: compare with ``adj_out`` (attributes) per prefix."""
        adj = self.adj_out
        withdrawn: list[bytes] = []
        by_path: dict[Path, list[bytes]] = {}
        for key, e in zip(keys, entries, strict=True):
            best = _best(e)
            if best is None:
                if adj.pop(key, None) is not None:
                    withdrawn.append(key)
                continue
            lst = by_path.get(best)
            if lst is None:
                by_path[best] = [key]
            else:
                lst.append(key)
        return self._encode_per_prefix(withdrawn, by_path)

    def _gone(self, keys: list[bytes], olds: list[Path | None]) -> Queued:
        """``_diff_plain`` for a chunk whose prefixes all lost their route."""
        if None in olds:  # never sent (or not allowed by export): nothing to withdraw
            sent = list(map(is_not, olds, repeat(None)))
            keys = list(compress(keys, sent))
            olds = list(compress(olds, sent))
        if not keys:
            return b""
        sent_paths: list[Path] = olds  # type: ignore[assignment]
        only = next(iter(self.by_source)) if len(self.by_source) == 1 else None
        self._uncount(only, sent_paths, [])
        srcs = {m.source for m in self.members if m.source is not None}
        if not srcs:
            return self._encode(keys, {}, {})
        return self._split(srcs, only, keys, sent_paths, {}, {}, {}, {})

    def _keep_or_note(self, batch: Announced | Withdrawn, small: bool) -> None:
        """Keep ``batch`` as it came when nothing else waits and it is ``small``;
        otherwise make it (and any kept batch) ordinary dirty entries."""
        if self.split and small and not self.dirty and self._pending is None:
            self._pending = batch
            return
        self._realize()
        self._note(batch.as_changes(), True)

    def _realize(self) -> None:
        """Turn a batch kept as it came (``_pending``) into dirty entries."""
        p = self._pending
        if p is not None:
            self._pending = None
            self._note(p.as_changes(), True)

    def _build_pending(self) -> bool:
        """Encode the batch kept as it came; False (it becomes dirty entries) when it
        cannot go the short way."""
        p = self._pending
        assert p is not None
        if isinstance(p, Announced):
            blob = self._emit_runs(p.runs)
        else:
            blob = self._gone_from(p.keys, p.distinct)
        if blob is None:
            self._realize()
            return False
        self._pending = None
        if blob:
            self.queue.append(blob)
        return True

    def _emit_runs(self, runs: list[tuple[Path, list[bytes]]]) -> Queued | None:
        """``_diff_plain`` for new prefixes in runs of one path each; None if a path
        is not eligible (the general way sorts that out)."""
        by_path: dict[Path, list[bytes]] = {}
        for path, keys in runs:
            if not path.eligible:
                return None
            lst = by_path.get(path)
            if lst is None:
                by_path[path] = keys[:]  # the lists are shared with other groups
            else:
                lst += keys
        return self._emit(by_path, True, [], [], [], [], None)

    def _gone_from(self, keys: list[bytes], distinct: set[Entry]) -> Queued | None:
        """``_gone`` for distinct prefixes that all had a route (one of ``distinct``)
        and have none now, when every one of them was sent and came from one source;
        None when that does not hold (the caller takes the general way)."""
        counts = self.by_source
        if len(counts) != 1:
            return None
        only = next(iter(counts))
        sent = self._sent
        out = self.exporter.cache.get  # the verdict of every path sent is cached there
        path_cls = Path
        for e in distinct:
            if e.__class__ is path_cls:  # inline ``_sent`` for a plain path
                if not e.eligible or e.source is not only or out(e) is None:
                    return None
                continue
            p = sent(e)
            if p is None or p.source is not only:
                return None
        left = counts[only] - len(keys)
        if left:
            counts[only] = left
        else:
            del counts[only]
        if any(m.source is only for m in self.members):
            return self._split({only}, only, keys, [], {}, {}, {}, {})
        return self._encode(keys, {}, {})

    def _diff_plain(
        self, keys: list[bytes], entries: list[Entry | None], olds: list[Path | None] | None
    ) -> Queued:
        """Encode what changed between the paths sent for ``keys`` (``olds``; None: none
        was) and the best paths of their Loc-RIB ``entries``.

        The per-prefix work is identity comparisons; outbound attributes are
        computed per distinct path. A chunk of new prefixes with one eligible
        path each (a table being learned) is grouped by path run by run, with
        no Python work per prefix. Everything done per source (advertised
        counts, split horizon) is done per distinct path or, when only one
        source's routes were sent, per chunk.
        """
        withdrawn: list[bytes] = []
        wd_old: list[Path] = []  # what each withdrawal withdraws (split horizon)
        replaced: list[tuple[bytes, Path, Path]] = []  # (key, path sent, new best)
        by_path = _fresh_runs(keys, entries) if olds is None else None
        fresh = by_path is not None
        if by_path is None:
            if olds is None:
                olds = [None] * len(keys)
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
        return self._emit(by_path, fresh, withdrawn, wd_old, replaced, keys, olds)

    def _emit(
        self,
        by_path: dict[Path, list[bytes]],
        fresh: bool,
        withdrawn: list[bytes],
        wd_old: list[Path],
        replaced: list[tuple[bytes, Path, Path]],
        keys: list[bytes],
        olds: list[Path | None] | None,
    ) -> Queued:
        """Encode ``by_path`` (prefixes by their new best path; ``fresh``: none of them
        was sent before) and the withdrawals found so far, counting what is sent."""
        # Every path no longer sent came from this source when only its were.
        only = next(iter(self.by_source)) if len(self.by_source) == 1 else None
        if wd_old or replaced:
            self._uncount(only, wd_old, replaced)
        srcs = {m.source for m in self.members if m.source is not None}
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        own: dict[Source, dict[int, list[bytes]]] = {}  # skipped by their source
        counts = self.by_source
        out_of = self.exporter.out
        old_of: dict[bytes, Path | None] | None = None
        for path, ks in by_path.items():
            out = out_of(path)
            if out is None:
                if not fresh:  # export refuses the new best: withdraw what was sent
                    if old_of is None:
                        old_of = dict(zip(keys, olds, strict=True))  # type: ignore[arg-type]
                    for k in ks:
                        o = old_of[k]
                        if o is not None:
                            withdrawn.append(k)
                            wd_old.append(o)
                continue
            target = groups
            src = path.source
            if src in srcs:
                target = own.setdefault(src, {})
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
        heads = self._heads
        for ident, nlri in groups.items():
            attrs = attrs_of[ident]
            h = heads.get(ident)
            if h is None or h[0] is not attrs:
                h = heads[ident] = (attrs, announce_head(attrs, fam, ctx))
            head = h[1]
            if head is not None:
                blob = b"".join(nlri)
                if 0 < len(blob) <= head[1]:  # one message: header, shared head, NLRI
                    msgs += (update_header(len(head[0]) + len(blob)), head[0], blob)
                    continue
            msgs += encode_announce(attrs, fam, nlri, ctx)
        return b"".join(msgs)

    def catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        """UPDATEs announcing what the group has sent for ``keys`` (a joining member).

        Routes learned from ``source`` (the member itself) are skipped: split horizon.
        """
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        adj_get: Callable[[bytes], Any] = self._told_path if self.split else self.adj_out.get
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
        """Send what was sent for ``keys`` first (join, or a ROUTE-REFRESH request)."""
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
        unknown = set(pending)
        prior = self._switch
        if prior is not None:
            full = full or prior.full
            if pending:
                # Switched again before the last switch reached these keys: the peer
                # still has what the group before that one told it of them.
                before = _Unfinished(before, prior.before, set(pending))
                unknown &= prior.unknown
        old.leave(self)
        keys = list(set(before.keys()).union(new.catch_keys(), pending))
        self.group = new
        self.pos = new.end
        new.members.append(self)
        self._switch = _Switch(new, before, self.source, unknown, full)
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


class _Sent:
    """A frozen copy of what a plain group had sent (``UpdateGroup.snapshot``)."""

    __slots__ = ("dirty", "group", "loc", "prev")

    def __init__(
        self,
        group: UpdateGroup,
        loc: dict[bytes, Entry],
        dirty: dict[bytes, Entry | None],
        prev: dict[bytes, Entry],
    ) -> None:
        self.group = group
        self.loc = loc
        self.dirty = dirty
        self.prev = prev

    def path(self, key: bytes) -> Path | None:
        e = self.prev.get(key) if key in self.dirty else self.loc.get(key)
        return self.group._sent(e)

    def keys(self) -> list[bytes]:
        return list(self.loc.keys() | self.prev.keys()) if self.prev else list(self.loc)


class _Unfinished(Told):
    """What a member was told when it switches groups again before its previous
    switch sent ``pending`` keys: for those, what the group before told it
    (``earlier``); for the rest, what the group it leaves told it (``now``)."""

    __slots__ = ("earlier", "now", "pending")

    def __init__(self, now: Told, earlier: Told, pending: set[bytes]) -> None:
        super().__init__(now.lookup, self._all_keys, now.exporter, now.add_path, now.split)
        self.now = now
        self.earlier = earlier
        self.pending = pending

    def get(self, key: bytes, source: Source | None) -> Any:
        told = self.earlier if key in self.pending else self.now
        return told.get(key, source)

    def _all_keys(self) -> list[bytes]:
        return list(set(self.now.keys()).union(self.earlier.keys()))


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


def _best(e: Entry | None) -> Path | None:
    """The best eligible path of a Loc-RIB entry, or None."""
    if e is None:
        return None
    if e.__class__ is Path:
        return e if e.eligible else None
    return e.best  # type: ignore[union-attr]


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
