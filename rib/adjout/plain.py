"""The plain update group: no ADD-PATH, an export policy that does not look at
prefixes, and no Adj-RIB-Out table of its own.

What was sent. The attributes sent for a prefix are a function of its
Loc-RIB entry (best path → ``Exporter.out``), so the group keeps no table:
what it has sent is the Loc-RIB as of its last build, that is the Loc-RIB
itself for prefixes that are not dirty, and for dirty ones the entry the RIB
noted before their first change (``prev``; none: nothing was sent). A full
table then costs one dict, not two, and a withdrawal one lookup. This needs
every Loc-RIB change to reach the groups (``Rib.flush``) before anyone pulls,
which the RIB guarantees.

Split horizon: a route is never sent back to the peer it was learned from
(an eBGP peer would drop it by AS-path loop, RFC 4271 §9.1.2; an RR client by
ORIGINATOR_ID, RFC 4456 §8). The group still encodes once: UPDATEs for routes
whose source is a member are encoded apart, so a queued item is either one
``bytes`` for everybody or ``(bytes, {source: bytes})`` where the source
member reads its own variant — the others' routes, plus a withdrawal where its
own route replaced one it had been sent. ``by_source`` counts the advertised
prefixes per source, so what a member is told is known without a scan.

Fast paths. A batch that only announced new prefixes (``Announced``) or only
withdrew (``Withdrawn``, ``rib.batch``) is kept as it came while nothing else
is dirty, and the next build encodes it without a per-prefix dict when it can;
anything unusual (an ineligible path, withdrawn routes of several sources)
steps aside to the general comparison of a chunk of dirty prefixes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import compress, groupby, repeat
from operator import attrgetter, is_not
from typing import TYPE_CHECKING

from bgp.wire import PathAttributes
from rib.adjout.group import Queued, Told, UpdateGroup
from rib.batch import Announced, Batch, Changed, Entry, Withdrawn, best_of
from rib.export import Exporter
from rib.path import Path, Source

if TYPE_CHECKING:
    from rib.adjout.member import Member

__all__ = ["PlainGroup"]

_source_of = attrgetter("source")
_best = best_of


class PathsTold(Told):
    """What a plain group told: the path sent per prefix (``lookup``), exported for
    everyone but its source (split horizon)."""

    __slots__ = ("_keys", "exporter", "lookup")

    def __init__(
        self,
        lookup: Callable[[bytes], Path | None],
        keys: Callable[[], Iterable[bytes]],
        exporter: Exporter,
    ) -> None:
        self.lookup = lookup
        self._keys = keys
        self.exporter = exporter

    def get(self, key: bytes, source: Source | None) -> PathAttributes | None:
        path = self.lookup(key)
        if path is None or path.source is source:
            return None  # split horizon: never sent to its source
        return self.exporter.out(path)

    def keys(self) -> Iterable[bytes]:
        return self._keys()


class PlainGroup(UpdateGroup):
    """A table-less group with split horizon (see module docstring)."""

    # The Loc-RIB entry as of the last build of each dirty prefix that had one
    # (a subset of ``dirty``'s keys).
    prev: dict[bytes, Entry]
    # A batch of the RIB's kept as it came until the next build, while nothing else
    # is dirty (``rib.batch``).
    _pending: Announced | Withdrawn | None
    # How many advertised prefixes each source's paths fill.
    by_source: dict[Source, int]

    def _start(self) -> None:
        self.prev = {}
        self._pending = None
        self.by_source = {}

    def told(self) -> Told:
        return PathsTold(self._told_path, self.catch_keys, self.exporter)

    def snapshot(self) -> Told:
        if not self.by_source:  # nothing was sent
            return PathsTold(lambda key: None, list, self.exporter)
        self._realize()
        view = _Sent(self, dict(self.loc), dict(self.dirty), dict(self.prev))
        return PathsTold(view.path, view.keys, self.exporter)

    def told_for_switch(self, member: Member) -> Told:
        # The sent state follows the live Loc-RIB: always a copy.
        return self.snapshot()

    def advertised_to(self, source: Source | None) -> int:
        """Prefixes a member with ``source`` is told of, less its own routes."""
        n = sum(self.by_source.values())
        if source is not None:
            n -= self.by_source.get(source, 0)
        return n

    def catch_keys(self) -> list[bytes]:
        if not self.by_source:
            return []  # nothing was sent
        self._realize()
        if self.prev:
            return list(self.loc.keys() | self.prev.keys())
        return list(self.loc)

    def mark(self, batch: Batch, own: bool) -> None:
        """Note a batch (``Rib.flush``). An ``Announced`` batch that fits one build
        step, or a ``Withdrawn`` one that fits four, is kept as it came while
        nothing else is dirty; anything else becomes ordinary dirty entries, so
        changes still coalesce until a member pulls."""
        if isinstance(batch, Changed):
            self._note(batch, own)
        elif isinstance(batch, Withdrawn):
            self._keep_or_note(batch, len(batch.keys) <= 4 * self.chunk)
        else:
            self._keep_or_note(batch, len(batch) <= self.chunk)

    def _note(self, batch: Changed, own: bool) -> None:
        """Make ``batch`` dirty entries, and note the entry before the batch of those
        that had one (a prefix already dirty keeps the entry of the last build)."""
        changed, olds = batch.changed, batch.old
        if self._pending is not None:
            self._realize()
        dirty = self.dirty
        if not dirty:
            self.dirty = changed if own else dict(changed)
            self.prev = olds if own else dict(olds)
            return
        if olds:
            prev = self.prev
            for k, o in olds.items():
                if k not in dirty:
                    prev[k] = o
        dirty.update(changed)

    def reset_dirty(self, keys: Iterable[bytes]) -> None:
        self._pending = None  # (none while deferred: the RIB keeps no batch then)
        self.dirty = dict.fromkeys(keys)
        self.prev = {}

    def build(self) -> bool:
        if self._pending is not None and not self.blocked() and self._build_pending():
            return True
        return super().build()

    def _encode_chunk(self, keys: list[bytes], entries: list[Entry | None]) -> Queued:
        prev = self.prev
        olds: list[Path | None] | None = None
        if prev:
            olds_e = list(map(prev.pop, keys, repeat(None)))
            sent = {e: self._sent(e) for e in set(olds_e)}
            olds = list(map(sent.__getitem__, olds_e))
            if olds.count(None) == len(olds):
                olds = None
        if entries.count(None) == len(entries):
            return self._gone(keys, olds) if olds is not None else b""
        return self._diff_plain(keys, entries, olds)

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

    def _keep_or_note(self, batch: Announced | Withdrawn, small: bool) -> None:
        """Keep ``batch`` as it came when nothing else waits and it is ``small``;
        otherwise make it (and any kept batch) ordinary dirty entries."""
        if small and not self.dirty and self._pending is None:
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
        """Entries leave what was sent: withdrawn, or replaced (a replacement that export
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

    def catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        """UPDATEs announcing what the group has sent for ``keys`` (a joining member),
        less the routes learned from ``source`` (the member itself): split horizon."""
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        told = self._told_path
        out_of = self.exporter.out
        for key in keys:
            path = told(key)
            if path is None or path.source is source:
                continue
            out = out_of(path)
            if out is None:
                continue
            lst = groups.get(id(out))
            if lst is None:
                groups[id(out)] = [key]
                attrs_of[id(out)] = out
            else:
                lst.append(key)
        return self._encode([], groups, attrs_of)


class _Sent:
    """A frozen copy of what a plain group had sent (``UpdateGroup.snapshot``)."""

    __slots__ = ("dirty", "group", "loc", "prev")

    def __init__(
        self,
        group: PlainGroup,
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
