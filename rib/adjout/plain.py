"""The plain update group: no ADD-PATH, an export policy that does not look at
prefixes, and no Adj-RIB-Out table of its own.

What was sent. The attributes sent for a prefix are a function of its
Loc-RIB entry (best path → ``Exporter.out``), so the group keeps no table:
what it has sent is the Loc-RIB as of its last build, that is the Loc-RIB
itself for prefixes that are not dirty, and for dirty ones the entry the RIB
noted before their first change (``last_built``; none: nothing was sent). A full
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
    last_built: dict[bytes, Entry]
    # A batch of the RIB's kept as it came until the next build, while nothing else
    # is dirty (``rib.batch``).
    _kept: Announced | Withdrawn | None
    # How many advertised prefixes each source's paths fill.
    by_source: dict[Source, int]

    def _start(self) -> None:
        self.last_built = {}
        self._kept = None
        self.by_source = {}

    def told(self) -> Told:
        return PathsTold(self._path_told, self.catch_keys, self.exporter)

    def snapshot(self) -> Told:
        if not self.by_source:  # nothing was sent
            return PathsTold(lambda key: None, list, self.exporter)
        self._kept_to_dirty()
        view = _SentSnapshot(self, dict(self.loc), dict(self.dirty), dict(self.last_built))
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
        self._kept_to_dirty()
        if self.last_built:
            return list(self.loc.keys() | self.last_built.keys())
        return list(self.loc)

    def mark(self, batch: Batch, own: bool) -> None:
        """Note a batch (``Rib.flush``). An ``Announced`` batch that fits one build
        step, or a ``Withdrawn`` one that fits four, is kept as it came while
        nothing else is dirty; anything else becomes ordinary dirty entries, so
        changes still coalesce until a member pulls. A ``Withdrawn`` batch for a
        group that has sent nothing and has nothing waiting is dropped: there is
        nothing to withdraw (a peer with export "none" whose own routes go)."""
        if isinstance(batch, Changed):
            self._note(batch, own)
        elif isinstance(batch, Withdrawn):
            if not self.by_source and not self.dirty and self._kept is None:
                return  # nothing was sent and nothing waits: nothing to withdraw
            self._keep_or_note(batch, len(batch.keys) <= 4 * self.chunk)
        else:
            self._keep_or_note(batch, len(batch) <= self.chunk)

    def _note(self, batch: Changed, own: bool) -> None:
        """Make ``batch`` dirty entries, and note the entry before the batch of those
        that had one (a prefix already dirty keeps the entry of the last build)."""
        changed, olds = batch.changed, batch.old
        if self._kept is not None:
            self._kept_to_dirty()
        dirty = self.dirty
        if not dirty:
            self.dirty = changed if own else dict(changed)
            self.last_built = olds if own else dict(olds)
            return
        if olds:
            last_built = self.last_built
            for k, o in olds.items():
                if k not in dirty:
                    last_built[k] = o
        dirty.update(changed)

    def reset_dirty(self, keys: Iterable[bytes]) -> None:
        self._kept = None  # (none while deferred: the RIB keeps no batch then)
        self.dirty = dict.fromkeys(keys)
        self.last_built = {}

    def build(self) -> bool:
        if self._kept is not None and not self.blocked() and self._build_kept_batch():
            return True
        return super().build()

    def _encode_chunk(self, keys: list[bytes], entries: list[Entry | None]) -> Queued:
        last_built = self.last_built
        olds: list[Path | None] | None = None
        if last_built:
            olds_e = list(map(last_built.pop, keys, repeat(None)))
            sent = {e: self._path_sent(e) for e in set(olds_e)}
            olds = list(map(sent.__getitem__, olds_e))
            if olds.count(None) == len(olds):
                olds = None
        if entries.count(None) == len(entries):
            return self._encode_withdrawals(keys, olds) if olds is not None else b""
        return self._encode_changes(keys, entries, olds)

    def _entry_at_last_build(self, key: bytes) -> Entry | None:
        """Plain groups: the Loc-RIB entry of ``key`` as of the last build."""
        if self._kept is not None:
            self._kept_to_dirty()
        if key in self.dirty:
            return self.last_built.get(key)
        return self.loc.get(key)

    def _path_sent(self, e: Entry | None) -> Path | None:
        """The path a Loc-RIB entry made the group send (export allowing), or None."""
        best = best_of(e)
        if best is None or self.exporter.out(best) is None:
            return None
        return best

    def _path_told(self, key: bytes) -> Path | None:
        """Plain groups: the path sent for ``key`` (before split horizon), or None."""
        return self._path_sent(self._entry_at_last_build(key))

    def _keep_or_note(self, batch: Announced | Withdrawn, small: bool) -> None:
        """Keep ``batch`` as it came when nothing else waits and it is ``small``;
        otherwise make it (and any kept batch) ordinary dirty entries."""
        if small and not self.dirty and self._kept is None:
            self._kept = batch
            return
        self._kept_to_dirty()
        self._note(batch.as_changes(), True)

    def _kept_to_dirty(self) -> None:
        """Turn a batch kept as it came (``_kept``) into dirty entries."""
        p = self._kept
        if p is not None:
            self._kept = None
            self._note(p.as_changes(), True)

    def _build_kept_batch(self) -> bool:
        """Encode the batch kept as it came; False (it becomes dirty entries) when it
        cannot go the short way."""
        p = self._kept
        assert p is not None
        if isinstance(p, Announced):
            blob = self._encode_new_prefixes(p.runs)
        else:
            blob = self._encode_withdrawn_from_one_source(p.keys, p.distinct)
        if blob is None:
            self._kept_to_dirty()
            return False
        self._kept = None
        if blob:
            self.queue.append(blob)
        return True

    def _encode_new_prefixes(self, runs: list[tuple[Path, list[bytes]]]) -> Queued | None:
        """``_encode_changes`` for new prefixes in runs of one path each; None if a path
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
        return self._encode_by_best_path(by_path, True, [], [], [], [], None)

    def _encode_withdrawn_from_one_source(
        self, keys: list[bytes], distinct: set[Path]
    ) -> Queued | None:
        """``_encode_withdrawals`` for distinct prefixes that each had one path alone
        (one of ``distinct``) and have none now, when every one of those was sent and
        came from the one source whose routes the group sends; None when that does not
        hold (the caller takes the general way). Work per distinct path, none per prefix."""
        counts = self.by_source
        if len(counts) != 1:
            return None
        (source,) = counts
        verdict = self.exporter.cache.get  # every path sent has its verdict cached there
        for p in distinct:
            if not p.eligible or p.source is not source or verdict(p) is None:
                return None  # (also a verdict evicted from the cache: the general way)
        left = counts[source] - len(keys)
        if left:
            counts[source] = left
        else:
            del counts[source]
        if any(m.source is source for m in self.members):
            return self._encode_split_horizon({source}, source, keys, [], {}, {}, {}, {})
        return self._encode(keys, {}, {})

    def _encode_withdrawals(self, keys: list[bytes], olds: list[Path | None]) -> Queued:
        """``_encode_changes`` for a chunk whose prefixes all lost their route."""
        # A prefix never sent (or not allowed by export) has nothing to withdraw.
        sent_paths = [o for o in olds if o is not None]
        if len(sent_paths) < len(keys):
            keys = list(compress(keys, map(is_not, olds, repeat(None))))
        if not keys:
            return b""
        sole = next(iter(self.by_source)) if len(self.by_source) == 1 else None
        self._count_no_longer_sent(sole, sent_paths, [])
        srcs = {m.source for m in self.members if m.source is not None}
        if not srcs:
            return self._encode(keys, {}, {})
        return self._encode_split_horizon(srcs, sole, keys, sent_paths, {}, {}, {}, {})

    def _encode_changes(
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
        by_path = _by_single_path(keys, entries) if olds is None else None
        fresh = by_path is not None
        if by_path is None:
            if olds is None:
                olds = [None] * len(keys)
            by_path = {}
            for key, e, old in zip(keys, entries, olds, strict=True):
                best = best_of(e)
                if best is old:
                    continue
                if best is None:
                    if old is not None:  # (always: ``best is old`` otherwise)
                        withdrawn.append(key)
                        wd_old.append(old)
                    continue
                if old is not None:
                    replaced.append((key, old, best))
                lst = by_path.get(best)
                if lst is None:
                    by_path[best] = [key]
                else:
                    lst.append(key)
        return self._encode_by_best_path(by_path, fresh, withdrawn, wd_old, replaced, keys, olds)

    def _encode_by_best_path(
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
        sole = next(iter(self.by_source)) if len(self.by_source) == 1 else None
        if wd_old or replaced:
            self._count_no_longer_sent(sole, wd_old, replaced)
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
                if olds is not None:  # export refuses the new best: withdraw what was sent
                    if old_of is None:
                        old_of = dict(zip(keys, olds, strict=True))
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
        taken_back = self._replaced_by_own_routes(srcs, replaced)
        return self._encode_split_horizon(
            srcs, sole, withdrawn, wd_old, groups, attrs_of, own, taken_back
        )

    def _count_no_longer_sent(
        self, sole: Source | None, wd_old: list[Path], replaced: list[tuple[bytes, Path, Path]]
    ) -> None:
        """Entries leave what was sent: withdrawn, or replaced (a replacement that export
        then rejects appends its old path to ``wd_old`` later: not counted twice)."""
        counts = self.by_source
        if sole is not None:
            gone = {sole: len(wd_old) + len(replaced)}
        else:
            gone = Counter(map(_source_of, wd_old))
            gone.update(old.source for _, old, _ in replaced)
        for src, n in gone.items():
            left = counts[src] - n
            if left:
                counts[src] = left
            else:
                del counts[src]

    def _replaced_by_own_routes(
        self, srcs: set[Source], replaced: list[tuple[bytes, Path, Path]]
    ) -> dict[Source, list[bytes]]:
        """Prefixes where a member's own route replaced another peer's that it was sent:
        that one must be withdrawn from it (and only from it)."""
        taken_back: dict[Source, list[bytes]] = {}
        out_of = self.exporter.out
        for key, old, new in replaced:
            src = new.source
            if src in srcs and old.source is not src and out_of(new) is not None:
                taken_back.setdefault(src, []).append(key)
        return taken_back

    def _encode_split_horizon(
        self,
        srcs: set[Source],
        sole: Source | None,
        withdrawn: list[bytes],
        wd_old: list[Path],
        groups: dict[int, list[bytes]],
        attrs_of: dict[int, PathAttributes],
        own: dict[Source, dict[int, list[bytes]]],
        taken_back: dict[Source, list[bytes]],
    ) -> Queued:
        """Encode with split horizon: one blob for all, a variant for each source member.

        ``sole``: every withdrawn path came from this source (no per-prefix split)."""
        common: list[bytes] = []
        own_wd: dict[Source, list[bytes]] = {}
        if sole is not None:
            if sole in srcs:
                if withdrawn:
                    own_wd[sole] = withdrawn  # never sent to its source
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
        if not parts and not taken_back:
            return base
        full = base + b"".join(parts.values())
        alts: dict[Source, bytes] = {}
        for s in parts.keys() | taken_back.keys():
            alt = [base, *(p for t, p in parts.items() if t is not s)]
            if s in taken_back:
                alt.append(self._encode(taken_back[s], {}, attrs_of))
            alts[s] = b"".join(alt)
        return (full, alts)

    def encode_catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        """UPDATEs announcing what the group has sent for ``keys`` (a joining member),
        less the routes learned from ``source`` (the member itself): split horizon."""
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        told = self._path_told
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


class _SentSnapshot:
    """A frozen copy of what a plain group had sent (``UpdateGroup.snapshot``)."""

    __slots__ = ("dirty", "group", "last_built", "loc")

    def __init__(
        self,
        group: PlainGroup,
        loc: dict[bytes, Entry],
        dirty: dict[bytes, Entry | None],
        last_built: dict[bytes, Entry],
    ) -> None:
        self.group = group
        self.loc = loc
        self.dirty = dirty
        self.last_built = last_built

    def path(self, key: bytes) -> Path | None:
        e = self.last_built.get(key) if key in self.dirty else self.loc.get(key)
        return self.group._path_sent(e)

    def keys(self) -> list[bytes]:
        return list(self.loc.keys() | self.last_built.keys()) if self.last_built else list(self.loc)


def _by_single_path(
    keys: list[bytes], entries: list[Entry | None]
) -> dict[Path, list[bytes]] | None:
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
