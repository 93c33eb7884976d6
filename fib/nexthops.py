"""Kernel nexthop objects for planned routes: which object each route names (pure, no I/O).

The planner keeps planning routes with their hops inline. This layer, owned
by the reconciler, binds every eligible route (unicast, every hop with a
gateway and a device, as the kernel requires of a nexthop object) to an
object: one single object per distinct hop, and one group object per
distinct ECMP set, whose members are single objects with their weights. A
route then carries `nh_id` (RTA_NH_ID) instead of its hops. Blackholes, local
pod routes and `via NODE` without a device stay plain routes.

Ownership: objects podbgp makes have ids in [NH_ID_BASE, NH_ID_LAST] *and*
podbgp's protocol in `nh_protocol`; anything else is foreign, never written,
and its ids are never allocated.

Re-pointing: when a batch of changes moves every route that uses a single
object from hop `g` to hop `c` (a node's encapsulation, device or VTEP
changed), and no object holds `c` yet, the object itself is replaced with `c`:
one RTM_NEWNEXTHOP instead of one route write per route; groups holding it
follow on their own. Likewise a group whose every route moves to the same new
membership is replaced in place. Anything else (a partial move, or a target
that already has an object) re-binds the moved routes to other objects.

Write order, so the kernel never sees a reference to a missing object and
never drops a route we want: create/replace singles, then groups, then
routes; delete objects only once no installed route (ours or foreign) and no
live group names them, groups before their members. Deleting an object that
a route still uses would take the route with it.

After a restart, objects found in the kernel are adopted by content, so routes
that did not change keep their object and need no write.

Size (over ~600 lines, one concern): binding, re-pointing, write order and
collection are the bookkeeping of one table; the bulk paths sit beside the
readable per-route ones they are held equal to (tests/property/test_fib_bulk.py).
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import cast

from fib.kernel import DELETE, REPLACE, NexthopFailure, NexthopOp
from fib.model import (
    RT_SCOPE_UNIVERSE,
    RTN_UNICAST,
    KernelRoute,
    Nexthop,
    NexthopObject,
    NexthopSpec,
    RouteKey,
)
from fib.table import RouteTable, Shape, route_of

NH_ID_BASE = 0x50000000
NH_ID_LAST = 0x5FFFFFFF

HopSet = frozenset[Nexthop]


def with_nh(route: KernelRoute, nh: int) -> KernelRoute:
    """`route._replace(nh_id=nh)` without NamedTuple's Python-level `_make` (half a million
    routes go through here when a node's encapsulation changes)."""
    return _new(KernelRoute, (*route[:8], nh))


_new = tuple.__new__


def owned_id(nh_id: int) -> bool:
    return NH_ID_BASE <= nh_id <= NH_ID_LAST


def route_hops(route: KernelRoute | None) -> HopSet | None:
    """The hop set a route would need an object for; None if it stays a plain route.

    A single hop is normalised to weight 1 (weights only mean something in a group)."""
    if route is None or route.kind != RTN_UNICAST or route.scope != RT_SCOPE_UNIVERSE:
        return None
    hops = route.nexthops
    if not hops:
        return None
    for hop in hops:
        if not hop.gateway or not hop.dev:
            return None
    if len(hops) == 1:
        hop = hops[0]
        return frozenset((hop if hop.weight == 1 else hop._replace(weight=1),))
    return frozenset(hops)


@dataclass(slots=True)
class NexthopTable:
    """Desired objects, the routes bound to them, and the owned objects the kernel holds."""

    protocol: int
    enabled: bool = True
    unsupported: str = ""  # why objects are off (kernel refused them), if they are
    objects: dict[int, NexthopSpec] = field(default_factory=dict)  # desired
    by_spec: dict[NexthopSpec, int] = field(default_factory=dict)
    installed: dict[int, NexthopSpec] = field(default_factory=dict)  # owned, in the kernel
    foreign_ids: set[int] = field(default_factory=set)  # ids in our range that others hold
    was: dict[RouteKey, int] = field(default_factory=dict)  # re-planned route → its object
    direct: dict[int, int] = field(default_factory=dict)  # object → routes bound to it
    refused: dict[NexthopSpec, int] = field(default_factory=dict)  # spec → errno
    dirty: set[int] = field(default_factory=set)  # objects to create or replace
    gc_due: bool = False
    confirmed: bool = False  # the kernel accepted at least one object
    next_id: int = NH_ID_BASE
    repoints: int = 0  # objects replaced in place, re-pointing their routes
    _hopsets: dict[int, HopSet] = field(default_factory=dict)

    # -- binding ---------------------------------------------------------------------------
    # A route's object is the one its desired shape names (`fib.table`): a route carries
    # its binding in the shape it shares with every route planned alike, so no table per
    # route is needed. Re-planning gives a route a fresh shape that names no object;
    # until `bind` decides whether it keeps its object (the hops are still the object's),
    # moves it (`_move_singles`, `_move_groups`) or trades it for another, `was` holds the
    # object it named. `direct` counts the routes bound to each object, those in `was`
    # included; a withdrawn route stops counting at once (`withdrawn`).
    def bound_to(self, key: RouteKey, shape: Shape | None) -> int | None:
        """The object route `key` (of desired `shape`) is bound to, if any."""
        old = self.was.get(key)
        if old is not None:
            return old
        return shape[6] or None if shape is not None else None

    def replanned(self, key: RouteKey, before: Shape | None) -> None:
        """Route `key`'s desired shape is about to be re-planned or removed: remember the
        object its shape `before` named until `bind` has seen it."""
        if before is not None and before[6] and self.enabled:
            self.was.setdefault(key, before[6])

    def withdrawn(self, key: RouteKey, before: Shape | None) -> None:
        """Route `key` (desired shape `before`) is no longer wanted: it stops counting as
        bound now, not when its delete is written. Its installed route may name the object
        until then, and `_collect_nexthops` never deletes an object an installed route
        names: no `was` entry per route of a withdrawn table has to wait for the write."""
        if self.enabled:
            old = self.was.pop(key, None) if self.was else None
            if old is None and before is not None:
                old = before[6]
            if old:
                self._unbind(old)

    def withdrawn_many(self, keys: list[RouteKey], befores: list[Shape | None]) -> None:
        """`withdrawn` for each of `keys` with its shape before (one count per object)."""
        if not self.enabled:
            return
        if self.was and not self.was.keys().isdisjoint(keys):
            for key, before in zip(keys, befores, strict=True):
                self.withdrawn(key, before)
            return
        counts = Counter(map(itemgetter(6), filter(None, befores)))
        counts.pop(0, None)
        for nh, count in counts.items():
            self._unbind(nh, count)

    def replanned_many(self, keys: Iterable[RouteKey], shapes: Mapping[RouteKey, Shape]) -> None:
        """`replanned` for each of `keys` with its current shape in `shapes` (if any)."""
        if not self.enabled:
            return
        was = self.was
        for key in keys:
            before = shapes.get(key)
            if before is not None and before[6]:
                was.setdefault(key, before[6])

    def bind(self, keys: Iterable[RouteKey], desired: RouteTable) -> list[Shape | None] | None:
        """Give each route in `keys` its object (or none), rewriting `desired` in place.
        Returns the keys' desired shapes after binding, in order, when the chunk went
        the whole-chunk way (the caller need not read them again); else None."""
        if not self.enabled:
            return None
        keys = keys if isinstance(keys, list) else list(keys)
        wants = self._bind_whole(keys, desired)
        if wants is None:
            self.bind_each(keys, desired)
        return wants

    def _bind_whole(self, keys: list[RouteKey], desired: RouteTable) -> list[Shape | None] | None:
        """`bind_each` for a chunk that is all one common case, in C (`map`, `Counter`):
        every route new with no object yet (a first install), or every route withdrawn
        (a withdrawal); the keys' shapes after it. None, having changed nothing, for
        any other chunk."""
        shapes, was = desired.shapes, self.was
        now: list[Shape | None] = list(map(shapes.get, keys))
        if None not in now:
            if was and not was.keys().isdisjoint(keys):
                return None
            distinct = dict(zip(map(id, now), cast("list[Shape]", now), strict=True))
            if any(s[6] for s in distinct.values()):
                return None  # some are bound already: `bind_each` skips them one by one
            named: dict[int, Shape] = {}
            counts: Counter[int] = Counter()
            # routes per shape (a table learned behind one hop set: one shape, no count)
            uses = {next(iter(distinct)): len(now)} if len(distinct) == 1 else Counter(map(id, now))
            for ident, shape in distinct.items():
                wanted = route_hops(route_of(keys[0], shape))
                nh = self._id_for(wanted) if wanted is not None else None
                named[ident] = desired.pool.intern((*shape[:6], nh or 0))
                if nh is not None:
                    counts[nh] += uses[ident]
            bound = list(map(named.__getitem__, map(id, now)))
            shapes.update(zip(keys, bound, strict=True))
        elif now.count(None) == len(now):  # all withdrawn: release what they were bound to
            if was:
                counts = Counter(map(was.pop, keys, repeat(0)))
                del counts[0]
                for nh, count in counts.items():
                    self._unbind(nh, count)
            return now
        else:
            return None
        direct = self.direct
        for nh, count in counts.items():
            direct[nh] = direct.get(nh, 0) + count
        return cast("list[Shape | None]", bound)

    def bind_each(self, keys: Iterable[RouteKey], desired: RouteTable) -> None:
        """`bind`, route by route: the readable rules (and the path for mixed chunks)."""
        if not self.enabled:
            return
        movers: list[tuple[RouteKey, int | None, HopSet | None]] = []
        was, shapes, intern = self.was, desired.shapes, desired.pool.intern
        # by a shape's identity (routes planned alike share one interned shape): the
        # object a route of that shape gets and its shape naming it (`fresh`), its hop set
        # (`hopsets`), routes bound by this call (`counts`)
        fresh: dict[int, tuple[Shape, int | None, Shape]] = {}
        hopsets: dict[int, tuple[Shape, HopSet | None]] = {}
        counts: dict[int, int] = {}
        for key in keys:
            shape = shapes.get(key)
            old = was.pop(key, None) if was else None
            if old is None:
                if shape is None or shape[6]:
                    continue  # no route, or bound since its last plan: nothing to do
                # a route with no object yet: bind it straight away (the common case at
                # start-up: a look-up by its shape and a dict write)
                hit = fresh.get(id(shape))
                if hit is None or hit[0] is not shape:
                    wanted = route_hops(route_of(key, shape))
                    nh = self._id_for(wanted) if wanted is not None else None
                    hit = fresh[id(shape)] = (shape, nh, intern((*shape[:6], nh or 0)))
                if hit[1] is not None:
                    shapes[key] = hit[2]
                    counts[hit[1]] = counts.get(hit[1], 0) + 1
                continue
            if shape is None:  # withdrawn: nothing to move, only its object to release
                self._unbind(old)
                continue
            seen = hopsets.get(id(shape))
            if seen is None or seen[0] is not shape:
                seen = hopsets[id(shape)] = (shape, route_hops(route_of(key, shape)))
            new = seen[1]
            if new is not None and self._hopset(old) == new:
                shapes[key] = intern((*shape[:6], old))  # re-planned alike: keeps its object
                continue
            movers.append((key, old, new))
        direct = self.direct
        for nh, count in counts.items():
            direct[nh] = direct.get(nh, 0) + count
        if movers:
            self._move_singles(movers)
            self._move_groups(movers)
            for key, old, new in movers:
                self._rebind(key, old, new, desired)

    def _rebind(
        self, key: RouteKey, old: int | None, new: HopSet | None,
        desired: MutableMapping[RouteKey, KernelRoute],
    ) -> None:  # fmt: skip
        route = desired.get(key)
        if old is not None:
            if new is not None and self._hopset(old) == new:  # its object moved with it
                if route is not None and route.nh_id != old:
                    desired[key] = with_nh(route, old)
                return
            self._unbind(old)
        nh = self._id_for(new) if new is not None else None
        if route is None:
            return
        if nh is None:
            if route.nh_id:
                desired[key] = with_nh(route, 0)
            return
        self.direct[nh] = self.direct.get(nh, 0) + 1
        desired[key] = with_nh(route, nh)

    def _unbind(self, old: int, routes: int = 1) -> None:
        """One route (or `routes`) no longer counts as bound to object `old`."""
        left = self.direct[old] - routes
        if left:
            self.direct[old] = left
        else:
            del self.direct[old]
            self.gc_due = True

    def _bound_keys(self, desired: RouteTable) -> dict[RouteKey, int]:
        """Every bound route and its object (a scan: only when objects fail or go away)."""
        found = {key: shape[6] for key, shape in desired.shapes.items() if shape[6]}
        found.update(self.was)
        return found

    def unbind_all(self, desired: RouteTable) -> list[RouteKey]:
        """Every route back to plain hops (objects turned off); returns the keys changed."""
        keys = list(self._bound_keys(desired))
        for key in keys:
            route = desired.get(key)
            if route is not None and route.nh_id:
                desired[key] = with_nh(route, 0)
        self.was.clear()
        self.direct.clear()
        self.gc_due = True
        return keys

    def disable(self, reason: str, desired: RouteTable) -> list[RouteKey]:
        """The kernel has no objects: forget them all, every route back to plain hops;
        returns the keys of the routes that changed."""
        keys = self.unbind_all(desired)
        self.enabled = False
        self.unsupported = reason
        self.objects.clear()
        self.by_spec.clear()
        self.dirty.clear()
        self._hopsets.clear()
        return keys

    def release(self, bad: set[int], desired: RouteTable) -> list[RouteKey]:
        """Routes bound to refused objects go back to plain hops; returns their keys."""
        keys = [k for k, nh in self._bound_keys(desired).items() if nh in bad]
        for key in keys:
            nh = self.was.pop(key, None)
            route = desired.get(key)
            self._unbind(nh if nh is not None else route.nh_id)  # type: ignore[union-attr]
            if route is not None and route.nh_id:
                desired[key] = with_nh(route, 0)
        return keys

    def _hopset(self, nh: int) -> HopSet:
        cached = self._hopsets.get(nh)
        if cached is not None:
            return cached
        spec = self.objects.get(nh)
        if spec is None:
            hops: HopSet = frozenset()
        elif spec.hop is not None:
            hops = frozenset((spec.hop,))
        else:
            members = (self.objects.get(m) for m, _w in spec.group)
            hops = frozenset(
                s.hop._replace(weight=w)
                for s, (_m, w) in zip(members, spec.group, strict=True)
                if s is not None and s.hop is not None
            )
        self._hopsets[nh] = hops
        return hops

    def _id_for(self, hops: HopSet) -> int | None:
        """The object for a hop set, allocated (and marked for creation) if new."""
        if len(hops) == 1:
            return self._object_id(NexthopSpec(next(iter(hops))))
        members = []
        for hop in sorted(hops):  # members get ids in hop order, whatever the hash seed
            member = self._object_id(NexthopSpec(hop._replace(weight=1)))
            if member is None:
                return None
            members.append((member, hop.weight))
        return self._object_id(NexthopSpec(None, tuple(sorted(members))))

    def _object_id(self, spec: NexthopSpec) -> int | None:
        if spec in self.refused:
            return None
        nh = self.by_spec.get(spec)
        if nh is None:
            nh = self._allocate()
            self._set(nh, spec)
        return nh

    def _allocate(self) -> int:
        nh = self.next_id
        taken = self.objects.keys() | self.installed.keys() | self.foreign_ids
        while nh in taken:
            nh = nh + 1 if nh < NH_ID_LAST else NH_ID_BASE
        # never reuse an id soon: a late echo of its deletion would look like drift
        self.next_id = nh + 1 if nh < NH_ID_LAST else NH_ID_BASE
        return nh

    def _set(self, nh: int, spec: NexthopSpec) -> None:
        old = self.objects.get(nh)
        if old is not None and self.by_spec.get(old) == nh:
            del self.by_spec[old]
        self.objects[nh] = spec
        self.by_spec.setdefault(spec, nh)
        self.dirty.add(nh)
        self._hopsets.clear()  # a single's hops show in every group holding it

    # -- re-pointing in place --------------------------------------------------------------
    def _move_singles(self, movers: list[tuple[RouteKey, int | None, HopSet | None]]) -> None:
        """Replace a single object's hop when every route through it trades that hop
        for the same new one (and no object has the new hop yet)."""
        targets: dict[int, set[Nexthop]] = {}
        counts: dict[int, int] = {}
        for _key, old, new in movers:
            if old is None or new is None:
                continue
            spec = self.objects.get(old)
            if spec is not None and spec.hop is not None and len(new) == 1:
                holder, (c,) = old, new  # the common case, without set arithmetic
            else:
                before = self._hopset(old)
                gone, came = before - new, new - before
                if len(gone) != 1 or len(came) != 1:
                    continue
                (g,), (c,) = gone, came
                if g.weight != c.weight:
                    continue  # a weight change is the group's business
                found = self._holder(old, g)
                if found is None:
                    continue
                holder, c = found, c._replace(weight=1)
            hops = targets.get(holder)
            if hops is None:
                targets[holder] = {c}
            else:
                hops.add(c)
            counts[holder] = counts.get(holder, 0) + 1
        claimed: dict[Nexthop, int] = {}
        for hops in targets.values():
            if len(hops) == 1:
                (c,) = hops
                claimed[c] = claimed.get(c, 0) + 1
        for holder, hops in targets.items():
            if len(hops) != 1:
                continue
            (c,) = hops
            spec = NexthopSpec(c)
            if claimed[c] != 1 or spec in self.by_spec or spec in self.refused:
                continue
            if counts[holder] == self._occurrences(holder):
                self._set(holder, spec)
                self.repoints += 1

    def _holder(self, nh: int, hop: Nexthop) -> int | None:
        """The single object that carries `hop` in object `nh` (itself, or a group member)."""
        spec = self.objects.get(nh)
        if spec is None:
            return None
        if spec.hop is not None:
            return nh
        plain = hop._replace(weight=1)
        for member, _w in spec.group:
            ms = self.objects.get(member)
            if ms is not None and ms.hop == plain:
                return member
        return None

    def _occurrences(self, single: int) -> int:
        """Routes that use `single`, directly or through a group."""
        count = self.direct.get(single, 0)
        for nh, spec in self.objects.items():
            if spec.hop is None and any(m == single for m, _w in spec.group):
                count += self.direct.get(nh, 0)
        return count

    def _move_groups(self, movers: list[tuple[RouteKey, int | None, HopSet | None]]) -> None:
        """Replace a group's membership when every route through it moves to the same new
        ECMP set (and no group has that set yet)."""
        targets: dict[int, set[NexthopSpec]] = {}
        counts: dict[int, int] = {}
        for _key, old, new in movers:
            if old is None or new is None or len(new) < 2:
                continue
            spec = self.objects.get(old)
            if spec is None or spec.hop is not None or self._hopset(old) == new:
                continue
            members = []
            for hop in sorted(new):
                member = self._object_id(NexthopSpec(hop._replace(weight=1)))
                if member is None:
                    break
                members.append((member, hop.weight))
            else:
                targets.setdefault(old, set()).add(NexthopSpec(None, tuple(sorted(members))))
                counts[old] = counts.get(old, 0) + 1
        for group, specs in targets.items():
            if len(specs) != 1:
                continue
            (spec,) = specs
            if spec in self.by_spec or spec in self.refused:
                continue
            if counts[group] == self.direct.get(group, 0):
                self._set(group, spec)
                self.repoints += 1

    # -- kernel state ----------------------------------------------------------------------
    def load(self, dumped: Iterable[NexthopObject], adopt: bool) -> None:
        """A dump: owned objects are what the kernel has; at start-up they are adopted."""
        installed: dict[int, NexthopSpec] = {}
        foreign: set[int] = set()
        for obj in dumped:
            if not owned_id(obj.id):
                continue
            if obj.protocol == self.protocol:
                installed[obj.id] = obj.spec
            else:
                foreign.add(obj.id)
        self.installed = installed
        self.foreign_ids = foreign
        self.gc_due = True
        if adopt:
            for nh, spec in sorted(installed.items()):
                if nh not in self.objects and spec not in self.by_spec:
                    self.objects[nh] = spec
                    self.by_spec[spec] = nh
            self._hopsets.clear()

    def create_ops(self, full: bool = False) -> list[NexthopOp]:
        """Creates and replaces for objects the kernel lacks or has wrong: singles first."""
        ids = self.objects.keys() if full else self.dirty
        ops = [(REPLACE, NexthopObject(nh, self.objects[nh], self.protocol))
               for nh in ids if nh in self.objects and self.installed.get(nh) != self.objects[nh]]  # fmt: skip
        self.dirty.clear()
        ops.sort(key=lambda op: (op[1].spec.hop is None, op[1].id))
        return ops

    def created(self, ops: list[NexthopOp], failures: list[NexthopFailure]) -> set[int]:
        """Record a create batch; return the ids whose routes must go back to plain hops."""
        failed = {f.obj.id: f.errno for f in failures}
        bad: set[int] = set()
        for _op, obj in ops:
            err = failed.get(obj.id)
            if err is None:
                self.installed[obj.id] = obj.spec
                self.confirmed = True
                continue
            self.refused[obj.spec] = err
            bad.add(obj.id)
        if bad:  # groups holding a refused member cannot be used either
            bad |= {nh for nh, s in self.objects.items() if any(m in bad for m, _w in s.group)}
            for nh in bad:
                spec = self.objects.pop(nh, None)
                if spec is not None and self.by_spec.get(spec) == nh:
                    del self.by_spec[spec]
            self._hopsets.clear()
            self.gc_due = True
        return bad

    def idle(self) -> set[int]:
        """Objects (desired or in the kernel) no desired route is bound to: the only ones
        `delete_ops` may delete, once no installed route names them either."""
        return {nh for nh in self.objects.keys() | self.installed.keys() if not self.direct.get(nh)}

    def delete_ops(self, referenced: set[int]) -> list[NexthopOp]:
        """Objects no route wants and no route or live group names: groups, then singles."""
        self.gc_due = False
        unused = {nh for nh in self.objects.keys() | self.installed.keys()
                  if not self.direct.get(nh) and nh not in referenced}  # fmt: skip
        if not unused:
            return []
        live_members: set[int] = set()
        for table in (self.objects, self.installed):
            for nh, spec in table.items():
                if nh not in unused or spec.hop is not None:
                    live_members.update(m for m, _w in spec.group)
        groups = [nh for nh in unused if self._is_group(nh)]
        singles = [nh for nh in unused if not self._is_group(nh) and nh not in live_members]
        ops: list[NexthopOp] = []
        for nh in sorted(groups) + sorted(singles):
            spec = self.objects.get(nh) or self.installed[nh]
            if nh in self.installed:
                ops.append((DELETE, NexthopObject(nh, spec, self.protocol)))
            else:
                self._forget(nh)  # never made it to the kernel
        return ops

    def _is_group(self, nh: int) -> bool:
        spec = self.objects.get(nh) or self.installed.get(nh)
        return spec is not None and spec.hop is None

    def deleted(self, ops: list[NexthopOp], failures: list[NexthopFailure]) -> None:
        failed = {f.obj.id for f in failures if f.errno != errno.ENOENT}  # ENOENT: gone already
        for _op, obj in ops:
            if obj.id not in failed:
                self.installed.pop(obj.id, None)
                self._forget(obj.id)

    def _forget(self, nh: int) -> None:
        spec = self.objects.pop(nh, None)
        if spec is not None and self.by_spec.get(spec) == nh:
            del self.by_spec[spec]
        self._hopsets.pop(nh, None)

    def devices(self) -> set[str]:
        """Devices the objects sit on (the kernel flushes routes through objects, and
        sometimes the objects, when one goes down or loses its carrier)."""
        specs = [*self.objects.values(), *self.refused]  # refused: retry once it is back
        return {s.hop.dev for s in specs if s.hop is not None}

    def rows(self, limit: int | None) -> list[str]:
        items = sorted(self.objects.items())[:limit]
        return [NexthopObject(nh, spec, self.protocol).describe() for nh, spec in items]

    def users(self) -> Mapping[int, int]:
        return self.direct


__all__ = ["NH_ID_BASE", "NH_ID_LAST", "NexthopTable", "owned_id", "route_hops"]
