"""The reconciler: keeps the kernel's owned routes equal to the planned ones.

State (after Calico felix's route table): the inputs, the desired routes they
plan to, what we believe the kernel holds (`installed`: routes of our
`rtm_protocol` in our table) and the foreign routes of that table. `set_*` and
`del_*` only touch desired state and mark keys dirty; `apply()` turns dirty
keys into one batch of replaces and deletes. Nothing is written for a key
whose kernel route already matches, so a resync of a correct table costs one
dump and no writes. Desired and installed routes are `fib.table.RouteTable`s
keyed by destinations (`fib.model.Dest`: a length octet and the address; for
IPv4 the RIB's own key bytes, passed through by `podbgp.fibfeed`, hash cached),
their values shapes interned in one pool: a route costs a dict entry per table,
and a route installed as planned shares the planned shape object. `Prefix`
stays the readable type at the edges (local pods, own blocks, `set_routes`,
`route_state`), converted to its `Dest` once there.

When the kernel and our belief disagree, the kernel wins and the key is
re-examined: a full resync (dump) runs at start, after any failed netlink
exchange or lost event, and every `resync_interval`; between resyncs, route
events repair drift (a route deleted or changed by someone else) at once.

Ownership: a route is ours if it carries our protocol in our table. A foreign
route on a key we want is a conflict: it is reported, never overwritten, and
our route goes in once it is gone.

Restart safety (graceful restart, RFC 4724 §4.2's "retain routes, then delete
stale ones"): stopping leaves every route in the kernel. At start, owned
routes found in the kernel are adopted; those not (yet) desired are stale and
kept until the daemon calls `sweep_stale()` after BGP End-of-RIB. A wanted
route that differs is replaced in place (create-or-replace is atomic in the
kernel), so no prefix is ever missing during a restart.

Nexthop objects (`fib.nexthops`): unless turned off, each planned route that
can use one is bound to a kernel nexthop object before it is written, ECMP
sets to group objects, and a hop change shared by every route of an object
becomes one object replace. Each write pass runs: create/replace objects,
write routes, delete objects nothing uses any more. Objects are dumped with
every resync and adopted at start-up like routes. Someone deleting one of our
objects (the kernel silently drops the IPv4 routes that used it) triggers a
resync; so does a link event on a device our objects sit on (on carrier loss
the kernel silently flushes the routes through such objects, and sometimes
the objects too, without a route or nexthop event). If the kernel refuses objects altogether (older than
5.3: EOPNOTSUPP, or EINVAL on the very first batch), every route falls back
to inline hops; a single refused object only sends its own routes back to
inline hops until the next resync.

Size (over ~600 lines, one concern): ``Reconciler`` is felix's route table
for this daemon — the one holder of desired, installed and foreign state for
routes and nexthop objects — and every path into it (``set_*``/``del_*``,
``apply``, resync, events, ``sweep_stale``) reads and writes that same state
under the same dirty-key rules. Planning (``fib.plan``), nexthop objects
(``fib.nexthops``) and the kernel I/O (``fib.netlink``) are already elsewhere.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import is_, itemgetter, not_
from typing import Any, cast

from fib import plan
from fib.kernel import (
    DELETE,
    REPLACE,
    Event,
    Kernel,
    KernelError,
    LinkEvent,
    NexthopEvent,
    NexthopOp,
    Overrun,
    RouteBatch,
    RouteEvent,
    RouteFailure,
    RouteOp,
    Unsupported,
)
from fib.model import (
    DEST4_MAX,
    IPIP_DEVICE,
    VXLAN_DEVICE,
    Dest,
    Encap,
    FibInputs,
    KernelRoute,
    NodeInfo,
    Prefix,
    Reach,
    RemoteRoute,
    RouteKey,
    Vtep,
    dest_text,
    key_dest,
    key_order,
    route_key,
)
from fib.nexthops import NexthopTable, owned_id
from fib.steps import Begin, Call, Finish, Step, run
from fib.table import DirtyKeys, RouteTable, Shape, ShapePool, route_of
from fib.wire import same_route

log = logging.getLogger("podbgp.fib")
_DEST_ORDER = itemgetter(slice(1, None), 0)  # `fib.model.key_order` of a plain dest, in C
WRITE_CHUNK = 16384  # routes per netlink write step (the loop gets a turn in between)
DEBUG_WRITES = 16  # writes of a batch up to this size are logged one by one at debug level
# ops of one write, their keys and the shapes they write (None: a delete)
Written = tuple[list[RouteOp], list[RouteKey], list[Shape | None]]
_UNPLANNED: Any = object()


@dataclass(frozen=True, slots=True)
class FibConfig:
    """`[fib]` in CONFIG.md."""

    table: int = 254
    protocol: int = 80
    resync_interval: float = 90.0
    nexthops: bool = True  # use kernel nexthop objects (RTA_NH_ID) where the kernel has them


@dataclass(slots=True)
class Counters:
    """Monotonic counters for `podbgp show fib` and metrics."""

    resyncs: int = 0
    dumps: int = 0
    route_writes: int = 0
    write_batches: int = 0
    write_failures: int = 0
    netlink_errors: int = 0
    drift_repaired: int = 0  # writes that undid someone else's change
    drift_events: int = 0  # kernel events that showed such a change
    stale_adopted: int = 0
    stale_swept: int = 0
    event_overruns: int = 0
    nexthop_writes: int = 0
    nexthop_repoints: int = 0  # objects replaced in place, re-pointing all their routes at once
    nexthop_drift_repaired: int = 0  # objects put back after someone removed or changed them


def _debug_writes(what: str, ops: list[RouteOp] | list[NexthopOp] | RouteBatch) -> None:
    """At debug level, each write of a small batch (a restart's, a few events'), so a
    timeline shows which pass wrote what; large batches only by their size."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    if len(ops) > DEBUG_WRITES:
        log.debug("fib: writing %d %s", len(ops), what)
        return
    if isinstance(ops, RouteBatch):
        ops = ops.ops()
    text = ", ".join(f"{'delete' if op == DELETE else 'replace'} {x.describe()}" for op, x in ops)
    log.debug("fib: writing %s: %s", what, text)


def key_of(prefix: Prefix) -> RouteKey:
    """The key of the route planned for `prefix`: its destination (`fib.model.route_key`)."""
    return prefix.dest


@dataclass(slots=True)
class _Tunnels:
    """Device state: what is needed and what went wrong creating it."""

    vxlan_ok: bool = False
    ipip_ok: bool = False
    ipip_unsupported: str = ""
    dirty: bool = True


@dataclass(frozen=True, slots=True)
class _Out:
    """A route write sent to the kernel and not yet recorded (`Reconciler._begin`)."""

    ticket: Any  # for `fib.steps.Finish`
    ops: list[RouteOp] | RouteBatch
    keys: Sequence[RouteKey] | None  # the ops' keys and shapes, when the caller has them
    shapes: Sequence[Shape | None] | None
    drift: int  # how many of the chunk's keys were dirty because the kernel changed


class Reconciler:
    """Desired vs. installed routes, applied in netlink batches (see the module docstring)."""

    def __init__(
        self, kernel: Kernel, config: FibConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.kernel = kernel
        self.config = config or FibConfig()
        self.clock = clock
        self.inputs = FibInputs()
        # desired and installed share one pool of route shapes (`fib.table`)
        self.pool = ShapePool()
        self.desired = RouteTable(self.pool)
        self.installed = RouteTable(self.pool)
        self.foreign: dict[RouteKey, KernelRoute] = {}
        self.stale: set[RouteKey] = set()
        self.failed: dict[RouteKey, int] = {}
        self.unroutable: set[Dest] = set()
        # Owned routes someone else deleted or changed, and when: the last drift per key
        # (``route_state``; ``podbgp explain`` names a hand-deleted route it put back).
        self.drifted: dict[RouteKey, tuple[float, str]] = {}
        self.dirty = DirtyKeys()
        self._unwritten = 0  # keys the running pass took and has not handed to the kernel yet
        self.kernel_dirty: set[RouteKey] = set()  # dirty because the kernel changed under us
        self.need_resync = True
        self.applying = False  # an `apply_steps` pass is under way
        self.started = False
        self.converged = False
        self.next_resync = 0.0
        self.counters = Counters()
        self.tunnels = _Tunnels()
        self._believed: RouteTable | None = None
        self.encapsulated: set[Dest] = set()  # remote destinations whose pool encapsulates
        self.nh = NexthopTable(self.config.protocol, enabled=self.config.nexthops)

    # -- inputs (desired state only; no I/O) ------------------------------------------------
    def set_node(self, node: NodeInfo) -> None:
        self.inputs.node = node
        self._replan(self._all_dests())
        self.tunnels.dirty = True

    def set_route(self, route: RemoteRoute) -> None:
        self.set_routes((route,))

    def set_routes(self, routes: Iterable[RemoteRoute]) -> None:
        dests = []
        for route in routes:
            dest = route.prefix.dest
            self._remember(dest, route.reach)
            dests.append(dest)
        self._replan(dests)

    def update_remote(self, changes: Mapping[Dest, Reach | None]) -> None:
        """A batch of remote routes set (a `Reach`) or removed (None), planned in bulk.

        The outcome is that of `set_routes` and `del_route` prefix by prefix (a
        property test holds the two paths equal); the work is one plan per
        distinct (reach, family) and a few set operations per batch. Callers
        should intern `Reach` values: equal ones are planned once either way,
        shared ones are also stored once."""
        remote = self.inputs.remote
        nones = list(map(is_, changes.values(), repeat(None)))  # in C: no Reach.__eq__
        sets: Mapping[Dest, Reach]
        removed: list[Dest] = []
        if True not in nones:  # only routes set (a table being learned): no copy
            sets = cast("Mapping[Dest, Reach]", changes)
        elif False not in nones:  # only removals (a withdrawal)
            sets = {}
            removed = list(changes)
        else:
            sets = {p: r for p, r in changes.items() if r is not None}
            removed = [p for p, r in changes.items() if r is None]
        if removed:
            removed = list(compress(removed, map(remote.pop, removed, repeat(None))))
            if self.encapsulated:
                self.encapsulated.difference_update(removed)
        # distinct reaches by identity (interned by the caller; no dataclass hash per route)
        distinct = dict(zip(map(id, sets.values()), sets.values(), strict=True))
        if any(r.ipip is not Encap.NEVER or r.vxlan is not Encap.NEVER for r in distinct.values()):
            for dest, reach in sets.items():
                self._remember(dest, reach)
        else:  # all plain: one update in C
            remote.update(sets)
            if self.encapsulated:
                self.encapsulated.difference_update(sets)
        self._replan_bulk(sets, removed, distinct)

    def _remember(self, dest: Dest, reach: Reach) -> None:
        self.inputs.remote[dest] = reach
        if reach.ipip is Encap.NEVER and reach.vxlan is Encap.NEVER:
            self.encapsulated.discard(dest)
        else:
            self.encapsulated.add(dest)
            if self._device_missing_for(reach):
                self.tunnels.dirty = True

    def _device_missing_for(self, reach: Reach) -> bool:
        """Whether an encapsulated route needs a tunnel device not made yet. Only that
        calls for a tunnel sync: the VXLAN neighbour and FDB entries follow the VTEPs
        alone (`set_vtep`/`del_vtep` mark them), so a new block of a known node — the
        common event in a cluster — must not cost a neighbour and FDB dump."""
        tunnels = self.tunnels
        if reach.vxlan is not Encap.NEVER and not tunnels.vxlan_ok:
            return True
        return reach.ipip is not Encap.NEVER and not (tunnels.ipip_ok or tunnels.ipip_unsupported)

    def del_route(self, prefix: Prefix) -> None:
        dest = prefix.dest
        if self.inputs.remote.pop(dest, None) is not None:
            self.encapsulated.discard(dest)
            self._replan((dest,))

    def set_vtep(self, vtep: Vtep) -> None:
        """A remote VTEP, found under each next hop it stands for (`Vtep.keys`)."""
        for key in vtep.keys:
            self.inputs.vteps[key] = vtep
            self._replan_via(key)
        self.tunnels.dirty = True

    def del_vtep(self, node_address: bytes) -> None:
        vtep = self.inputs.vteps.get(node_address)
        if vtep is None:
            return
        for key in {node_address, *vtep.keys}:
            if self.inputs.vteps.get(key) == vtep:
                del self.inputs.vteps[key]
                self._replan_via(key)
        self.tunnels.dirty = True

    def set_local_pod(self, prefix: Prefix, veth: str) -> None:
        self.inputs.local_pods[prefix] = veth
        self._replan((prefix.dest,))

    def del_local_pod(self, prefix: Prefix) -> None:
        if self.inputs.local_pods.pop(prefix, None) is not None:
            self._replan((prefix.dest,))

    def set_own_block(self, prefix: Prefix) -> None:
        self.inputs.own_blocks.add(prefix)
        self._replan((prefix.dest,))

    def del_own_block(self, prefix: Prefix) -> None:
        if prefix in self.inputs.own_blocks:
            self.inputs.own_blocks.discard(prefix)
            self._replan((prefix.dest,))

    def _local_dests(self) -> set[Dest]:
        """The destinations of the local pods and own blocks (a few hundred at most)."""
        i = self.inputs
        return {p.dest for p in i.local_pods} | {p.dest for p in i.own_blocks}

    def _all_dests(self) -> set[Dest]:
        return set(self.inputs.remote) | self._local_dests()

    def _replan_via(self, node_address: bytes) -> None:
        via = {r for r in set(self.inputs.remote.values()) if node_address in r.next_hops}
        if via:
            self._replan_bulk({p: r for p, r in self.inputs.remote.items() if r in via}, [])

    def _replan(self, dests: Iterable[Dest]) -> None:
        """Plan each destination by the readable rules (`plan.plan_route_for`)."""
        cfg = self.config
        for key in dests:
            prefix = Prefix.of_dest(key)
            try:
                route = plan.plan_route_for(prefix, self.inputs, cfg.protocol, cfg.table)
            except plan.PlanError as exc:
                log.warning("fib: %s", exc)
                route = None
            wanted = key in self.inputs.remote or prefix in self.inputs.own_blocks
            if route is None and (wanted or prefix in self.inputs.local_pods):
                self.unroutable.add(key)
            else:
                self.unroutable.discard(key)
            if route is None:
                self.nh.withdrawn(key, self.desired.shapes.pop(key, None))
            else:
                self.nh.replanned(key, self.desired.shapes.get(key))
                self.desired[key] = route
                self.stale.discard(key)
            self.failed.pop(key, None)
            self.dirty.add(key)

    def _replan_bulk(
        self, sets: Mapping[Dest, Reach], removed: list[Dest],
        reaches: dict[int, Reach] | None = None,
    ) -> None:  # fmt: skip
        """`_replan` for a batch of remote destinations set (with their reach) or removed:
        one `plan.plan_shape` per distinct reach and family; those that are also local
        pods or own blocks, or whose plan fails, go through `_replan`. `reaches`, if the
        caller has them: the distinct reaches of `sets` by identity."""
        i = self.inputs
        if i.local_pods or i.own_blocks:
            special = self._local_dests() & (sets.keys() | set(removed))
            if special:
                self._replan(special)
                sets = {p: r for p, r in sets.items() if p not in special}
                removed = [p for p in removed if p not in special]
                reaches = None
        new, unroutable, failed = self._plan_shapes(sets, reaches)
        self._record_plans(new, [*removed, *unroutable], (sets, removed), unroutable)
        if failed:
            self._replan(failed)  # logs each one with its prefix

    def _plan_shapes(
        self, sets: Mapping[Dest, Reach], reaches: dict[int, Reach] | None = None
    ) -> tuple[dict[RouteKey, Shape], list[Dest], list[Dest]]:
        """The interned shape of each destination's route (the destination is its key,
        `key_of`), those with no usable hop and those whose plan failed. A batch of one
        family whose every reach plans (the RIB's batches) maps in C."""
        node = self.inputs.node
        if node is None:
            return {}, list(sets), []
        sizes = set(map(len, sets))  # a dest's size says its family (`fib.model.Dest`)
        if sizes and (max(sizes) <= DEST4_MAX or min(sizes) > DEST4_MAX):
            ipv6 = min(sizes) > DEST4_MAX
            if reaches is None:
                reaches = dict(zip(map(id, sets.values()), sets.values(), strict=True))
            by_reach = {k: self._plan_one(r, ipv6) for k, r in reaches.items()}
            if _UNPLANNED not in by_reach.values() and None not in by_reach.values():
                shape_of = cast("Callable[[int], Shape]", by_reach.__getitem__)
                return dict(zip(sets, map(shape_of, map(id, sets.values())), strict=True)), [], []
        return self._plan_each(sets)

    def _plan_one(self, reach: Reach, ipv6: bool) -> Shape | None:
        """The interned shape planned for `reach` in one family; None when it has no usable
        hop, `_UNPLANNED` when planning fails."""
        cfg, i = self.config, self.inputs
        assert i.node is not None
        try:
            planned = plan.plan_shape(reach, ipv6, i.node, i.vteps, cfg.protocol, cfg.table)
        except plan.PlanError:
            return cast("Shape | None", _UNPLANNED)
        return None if planned is None else self.pool.intern((*planned, 0))

    def _plan_each(
        self, sets: Mapping[Dest, Reach]
    ) -> tuple[dict[RouteKey, Shape], list[Dest], list[Dest]]:
        """`_plan_shapes` one by one, memoised by the reach's identity and family."""
        memo: tuple[dict[int, Shape | None], dict[int, Shape | None]] = ({}, {})
        new: dict[RouteKey, Shape] = {}
        unroutable: list[Dest] = []
        failed: list[Dest] = []
        for prefix, reach in sets.items():
            ipv6 = len(prefix) > DEST4_MAX
            shapes = memo[ipv6]
            shape = shapes.get(id(reach), _UNPLANNED)
            if shape is _UNPLANNED:
                shape = shapes[id(reach)] = self._plan_one(reach, ipv6)
            if shape is _UNPLANNED:
                failed.append(prefix)
            elif shape is None:
                unroutable.append(prefix)
            else:
                new[prefix] = shape
        return new, unroutable, failed

    def _record_plans(
        self, new: dict[RouteKey, Shape], gone: list[RouteKey],
        changed: tuple[Iterable[Dest], Iterable[Dest]], unroutable: list[Dest],
    ) -> None:  # fmt: skip
        """Desired state after a bulk plan: what `_replan` does per prefix, per set."""
        desired = self.desired.shapes
        # one pass in C puts every new key in and hands back the shape each known key had;
        # those re-planned may move away from the object they named (none on a first install)
        planned = list(new.values())
        befores = list(map(desired.setdefault, new, planned))
        if befores != planned:
            replanned = {k: b for k, b, p in zip(new, befores, planned, strict=True) if b is not p}
            self.nh.replanned_many(replanned, replanned)
            desired.update({k: new[k] for k in replanned})
        if gone:
            self.nh.withdrawn_many(gone, list(map(desired.pop, gone, repeat(None))))
        if self.stale:
            self.stale.difference_update(new)
        if self.failed:
            for key in (*new, *gone):
                self.failed.pop(key, None)
        if self.unroutable:
            for prefixes in changed:
                self.unroutable.difference_update(prefixes)
        self.unroutable.update(unroutable)
        self.dirty.update(new)
        self.dirty.update(gone)

    # -- kernel I/O ------------------------------------------------------------------------
    def backlog(self) -> int:
        """About how many routes wait to be written: the running pass's keys not yet
        sent to the kernel and every key marked since (repeats counted)."""
        return self._unwritten + self.dirty.marks()

    def pending(self) -> bool:
        """Is there work for `apply()`?"""
        return bool(self.dirty or self.need_resync or self.tunnels.dirty or self.nh.dirty)

    def apply(self) -> None:
        """Write what is dirty (or run a full resync if one is due); never raises KernelError.

        Runs `apply_steps()` with each kernel call made here. While `FibService` has
        a pass of its own under way (its kernel calls on a worker thread), this
        does nothing: the dirty keys wait for the service's next pass."""
        if not self.applying:
            run(self.apply_steps())

    def apply_steps(self) -> Generator[Step, Any, None]:
        """`apply()` as a generator of `fib.steps` (each kernel call, for the caller to
        make where it wants). Everything else runs between the yields, on the
        caller's thread. Route writes go in chunks of `WRITE_CHUNK`, each chunk
        planned while the one before it is in the kernel."""
        self.applying = True
        try:
            if self.need_resync or self.clock() >= self.next_resync:
                yield from self._resync()
            else:
                if self.tunnels.dirty:
                    self._sync_tunnels()
                yield from self._write_dirty()
        except KernelError as exc:
            self.counters.netlink_errors += 1
            self.need_resync = True
            log.warning("fib: netlink error, full resync next: %s", exc)
        finally:
            self.applying = False

    def resync(self) -> None:
        """Force a full resync now."""
        self.need_resync = True
        self.apply()

    def _resync(self) -> Generator[Step, Any, None]:
        self.counters.resyncs += 1
        self.need_resync = False
        self.next_resync = self.clock() + self.config.resync_interval
        self.kernel.read_events()  # the dump below supersedes anything queued
        self._sync_tunnels()
        believed = dict(self.nh.installed)
        yield from self._load_nexthops()
        self._load_dump((yield Call(self.kernel.dump_routes, (self.config.table,))))
        self.started = True
        self.failed.clear()  # retry refused routes: what they needed may exist now
        if self.nh.refused:  # retry refused objects too: bind every route afresh
            self.nh.refused.clear()
            self.dirty.update(self.desired)
        self.nh.bind(self.dirty, self.desired)
        self.counters.nexthop_repoints = self.nh.repoints
        self.dirty.clear()  # the full pass below covers every key
        self.kernel_dirty.clear()
        nh_ops = self.nh.create_ops(full=True)
        self.counters.nexthop_drift_repaired += sum(
            1 for _, o in nh_ops if believed.get(o.id) == self.nh.objects.get(o.id)
        )
        yield from self._write_nexthops(nh_ops)
        ops, repairs = self._full_pass()
        out: _Out | None = None  # chunks overlap as in `_write_dirty`
        for start in range(0, len(ops), WRITE_CHUNK):
            began = yield from self._begin(ops[start : start + WRITE_CHUNK])
            if out is not None:
                yield from self._finish(out)
            out = began
        if out is not None:
            yield from self._finish(out)
        self.counters.drift_repaired += repairs
        yield from self._collect_nexthops()

    def _load_nexthops(self) -> Generator[Step, Any, None]:
        if not self.nh.enabled:
            return
        try:
            dumped = yield Call(self.kernel.dump_nexthops, ())
        except Unsupported as exc:
            self._nexthops_off(str(exc))
            return
        self.nh.load(dumped, adopt=not self.started)

    def _nexthops_off(self, reason: str) -> None:
        """The kernel has no nexthop objects: every route goes back to inline hops."""
        log.warning("fib: nexthop objects off, routes carry their hops: %s", reason)
        self.dirty.update(self.nh.disable(reason, self.desired))

    def _write_nexthops(self, ops: list[NexthopOp]) -> Generator[Step, Any, None]:
        """Create or replace objects before the routes that name them."""
        if not ops:
            return
        self.counters.nexthop_writes += len(ops)
        _debug_writes("nexthop objects", ops)
        failures = yield Call(self.kernel.write_nexthops, (ops,))
        for f in failures:
            log.warning("fib: nexthop %s: %s", f.obj.describe(), os.strerror(f.errno))
        if failures and not self.nh.confirmed:
            codes = {f.errno for f in failures}
            if errno.EOPNOTSUPP in codes or (len(failures) == len(ops) and codes == {errno.EINVAL}):
                self._nexthops_off(f"kernel refused the first nexthop objects: "
                                   f"{os.strerror(failures[0].errno)}")  # fmt: skip
                return
        bad = self.nh.created(ops, failures)
        if bad:
            self.dirty.update(self.nh.release(bad, self.desired))

    def _collect_nexthops(self) -> Generator[Step, Any, None]:
        """Delete objects no route wants once no installed route or live group names them."""
        if not self.nh.gc_due:
            return
        idle = self.nh.idle()
        if not idle:  # every object still has routes bound to it: no scan of the table
            self.nh.gc_due = False
            return
        referenced = {s[6] for s in self.installed.shapes.values() if s[6] in idle}
        referenced.update(r.nh_id for r in self.foreign.values() if r.nh_id in idle)
        ops = self.nh.delete_ops(referenced)
        if not ops:
            return
        self.counters.nexthop_writes += len(ops)
        _debug_writes("nexthop objects", ops)
        failures = yield Call(self.kernel.write_nexthops, (ops,))
        self.nh.deleted(ops, failures)

    def _load_dump(self, routes: list[KernelRoute]) -> None:
        """Split a dump into owned and foreign routes; adopt unwanted owned ones as stale."""
        self.counters.dumps += 1
        proto = self.config.protocol
        owned = RouteTable(self.pool, [r for r in routes if r.protocol == proto])
        foreign = {route_key(r): r for r in routes if r.protocol != proto}
        if not self.converged:  # owned routes we do not want (yet): keep until sweep_stale()
            desired = self.desired
            new_stale = [k for k in owned if k not in desired and k not in self.stale]
            if not self.started:
                self.counters.stale_adopted += len(new_stale)
            self.stale.update(new_stale)
        self._believed = self.installed if self.started else None
        self.installed = owned
        self.foreign = foreign

    def _full_pass(self) -> tuple[list[RouteOp], int]:
        """Every key at once, in one loop: a table that is already right costs no writes.
        A wrong route we believed right was changed behind our back: that is drift."""
        ops: list[RouteOp] = []
        repairs = 0
        installed, foreign = self.installed.shapes, self.foreign
        believed = self._believed if self._believed is not None else ()
        desired = self.desired.shapes
        for key, want in desired.items():
            have = installed.get(key)
            if have is want or have == want or key in foreign:
                continue
            route = route_of(key, want)
            if have is None or not same_route(route, route_of(key, have)):
                ops.append((REPLACE, route))
                repairs += key in believed
        for key, have in installed.items():
            if key not in desired and (self.converged or key not in self.stale):
                ops.append((DELETE, route_of(key, have)))
        self._believed = None
        return ops, repairs

    def _op_for(self, key: RouteKey) -> RouteOp | None:
        """The write one dirty key needs, if any (the readable rule `_ops_for` follows)."""
        want = self.desired.get(key)
        have = self.installed.get(key)
        if want is not None:
            if key in self.foreign or key in self.failed:
                return None  # never overwrite a foreign route; failed keys wait for a resync
            if have is None or not same_route(want, have):
                return (REPLACE, want)
            return None
        if have is not None and not (key in self.stale and not self.converged):
            return (DELETE, have)
        return None

    def _ops_for(
        self, keys: list[RouteKey], wants: list[Shape | None] | None = None
    ) -> Written | RouteBatch:
        """`_op_for` over a chunk of keys, with the two common cases decided inline: a
        new route for a free key, and a route to delete that is neither stale nor
        foreign. Anything else asks `_op_for`. Returns the ops, their keys (the key
        objects of `desired`, so `installed` shares them instead of a copy each) and
        the shapes written (`desired`'s interned ones; None for a delete); or, for a
        chunk `_ops_whole` decides, the same as one `RouteBatch`. `wants`, when given,
        are the keys' desired shapes (read by the binding just before)."""
        whole = self._ops_whole(keys, wants)
        if whole is not None:
            return whole
        desired, installed, foreign, failed = (
            self.desired.shapes,
            self.installed.shapes,
            self.foreign,
            self.failed,
        )
        keep_stale = self.stale if not self.converged else ()
        ops: list[RouteOp] = []
        op_keys: list[RouteKey] = []
        op_shapes: list[Shape | None] = []
        for key in keys:
            want = desired.get(key)
            have = installed.get(key)
            if want is not None and have is None and key not in foreign and key not in failed:
                ops.append((REPLACE, route_of(key, want)))
            elif want is None and have is not None and key not in keep_stale:
                ops.append((DELETE, route_of(key, have)))
                want = None
            elif want is not None or have is not None:
                op = self._op_for(key)
                if op is None:
                    continue
                ops.append(op)
                want = None if op[0] == DELETE else want
            else:
                continue
            op_keys.append(key)
            op_shapes.append(want)
        return ops, op_keys, op_shapes

    def _ops_whole(
        self, keys: list[RouteKey], wants: list[Shape | None] | None = None
    ) -> RouteBatch | None:
        """`_ops_for` for a chunk that is all one common case, decided by set operations
        in C: every key new (a first install: wanted, nothing installed, none foreign
        or failed) or every key going (a withdrawal: installed, not wanted, nothing
        stale to keep, none foreign or failed). The chunk's keys with the shapes to
        write (desired's) or to delete (installed's), no route or op per key; None for
        any other chunk."""
        desired, installed = self.desired.shapes, self.installed.shapes
        # the table's foreign routes (connected, kernel, others') are rarely on our keys
        if not self.foreign.keys().isdisjoint(keys) or not self.failed.keys().isdisjoint(keys):
            return None
        if installed.keys().isdisjoint(keys):
            if wants is None:
                wants = list(map(desired.get, keys))
            if None in wants:
                return None
            return RouteBatch(REPLACE, keys, cast("list[Shape]", wants))
        if wants is not None:
            unwanted = wants.count(None) == len(wants)
        else:
            unwanted = desired.keys().isdisjoint(keys)
        if unwanted and (self.converged or self.stale.isdisjoint(keys)):
            haves = list(map(installed.get, keys))
            if None in haves:
                return None
            return RouteBatch(DELETE, keys, cast("list[Shape]", haves))
        return None

    def _write_dirty(self) -> Generator[Step, Any, None]:
        """Dirty keys in chunks: bind them to nexthop objects, create the objects they
        need, write their routes. A chunk's routes go to the kernel as the next chunk
        is planned (`fib.steps.Begin`): the two overlap, and each chunk's outcome is
        recorded before the chunk after it is sent. Keys that turn dirty meanwhile
        wait for the next pass; if a write fails, the keys not yet written (those of
        the write in flight included) go back to dirty."""
        keys = self.dirty.take()
        kernel_dirty = self.kernel_dirty
        self.kernel_dirty = set()
        done = 0  # keys[:done] are written and recorded
        out: _Out | None = None  # the chunk whose routes are in the kernel now
        try:
            yield from self._write_nexthops(self.nh.create_ops())
            for start in range(0, len(keys), WRITE_CHUNK):
                end = start + WRITE_CHUNK
                self._unwritten = len(keys) - start
                chunk = list(dict.fromkeys(keys[start:end]))  # a key marked twice: once
                wants = self.nh.bind(chunk, self.desired)
                self.counters.nexthop_repoints = self.nh.repoints
                nh_ops = self.nh.create_ops()
                if nh_ops:  # desired may change while they are written: read it again
                    wants = None
                    yield from self._write_nexthops(nh_ops)
                written = self._ops_for(chunk, wants)
                began = None
                if isinstance(written, RouteBatch):
                    drift = sum(1 for k in chunk if k in kernel_dirty) if kernel_dirty else 0
                    began = yield from self._begin_batch(written, drift)
                elif written[0]:
                    drift = sum(1 for k in chunk if k in kernel_dirty)
                    began = yield from self._begin(*written, drift)
                if out is not None:
                    yield from self._finish(out)
                out = began
                done = start if began is not None else end
            if out is not None:
                yield from self._finish(out)
            done = len(keys)
        finally:
            self._unwritten = 0
            if done < len(keys):
                self.dirty.update(keys[done:])
        yield from self._collect_nexthops()

    def _begin(
        self, ops: list[RouteOp], keys: list[RouteKey] | None = None,
        shapes: list[Shape | None] | None = None, drift: int = 0,
    ) -> Generator[Step, Any, _Out]:  # fmt: skip
        """Send `ops` to the kernel without waiting; `_finish` records the outcome."""
        self.counters.write_batches += 1
        self.counters.route_writes += len(ops)
        _debug_writes("routes", ops)
        ticket = yield Begin(self.kernel.write_routes, (ops,))
        return _Out(ticket, ops, keys, shapes, drift)

    def _begin_batch(self, batch: RouteBatch, drift: int) -> Generator[Step, Any, _Out]:
        """`_begin` for a whole-chunk batch (`_ops_whole`): the kernel's writer encodes
        it from the keys and shapes; routes are built only for keys it refuses."""
        self.counters.write_batches += 1
        self.counters.route_writes += len(batch)
        _debug_writes("routes", batch)
        ticket = yield Begin(self.kernel.write_route_batch, (batch,))
        shapes = batch.shapes if batch.op == REPLACE else [None] * len(batch)
        return _Out(ticket, batch, batch.keys, shapes, drift)

    def _finish(self, out: _Out) -> Generator[Step, Any, None]:
        """A begun write's outcome: installed follows what took effect."""
        ops = out.ops
        try:
            failures = yield Finish(out.ticket)
        except KernelError:
            if isinstance(ops, RouteBatch):
                self.dirty.update(ops.keys)
            else:
                self.dirty.update(route_key(r) for _, r in ops)
            raise
        self.counters.drift_repaired += out.drift
        if failures:
            self._record_failures(ops.ops() if isinstance(ops, RouteBatch) else ops, failures)
            return
        keys, shapes = out.keys, out.shapes
        if keys is None or shapes is None:  # (a batch always has them)
            assert not isinstance(ops, RouteBatch)
            keys = [route_key(r) for _, r in ops]
            shapes = [None if op == DELETE else self.pool.intern(r[2:])
                      for op, r in ops]  # fmt: skip
        self._record_writes(keys, shapes)

    def _record_writes(
        self, keys: Sequence[RouteKey], shapes: Sequence[Shape | None] | Sequence[Shape]
    ) -> None:
        """Every op of a batch took effect: installed follows (the shapes written, shared
        with `desired`)."""
        nh, installed, stale = self.nh, self.installed.shapes, self.stale
        if None not in shapes:
            # only replaces: one pass in C puts every new key in and hands back the shape
            # each known key had (a first install: every key new, nothing more to do)
            wrote = cast("list[Shape]", shapes if isinstance(shapes, list) else list(shapes))
            had = list(map(installed.setdefault, keys, wrote))
            if had != wrote:
                for key, put, old in zip(keys, wrote, had, strict=True):
                    if old is not put:
                        installed[key] = put
                        if old[6] and old[6] != put[6]:
                            nh.gc_due = True  # the object it named may be unused now
            return
        if shapes and shapes[0] is None and shapes.count(None) == len(shapes):
            # only deletes (a withdrawal): pops in C; an object may be unused now
            befores = list(map(installed.pop, keys, repeat(None)))
            if any(map(itemgetter(6), filter(None, befores))):
                nh.gc_due = True
            if stale:
                for key in stale.intersection(keys):
                    self._swept(key)
            return
        for key, shape in zip(keys, shapes, strict=True):
            if shape is None:  # a delete
                before = installed.pop(key, None)
                if before is not None and before[6]:
                    nh.gc_due = True  # the object it named may be unused now
                if stale and key in stale:
                    self._swept(key)
                continue
            before = installed.setdefault(key, shape)  # one look-up for a new key
            if before is not shape:
                installed[key] = shape
                if before[6] and before[6] != shape[6]:
                    nh.gc_due = True

    def _swept(self, key: RouteKey) -> None:
        self.stale.discard(key)
        if self.converged:
            self.counters.stale_swept += 1

    def _record_failures(self, ops: list[RouteOp], failures: list[RouteFailure]) -> None:
        failed = {route_key(f.route): f for f in failures}
        installed = self.installed
        for op, route in ops:
            key = route_key(route)
            before = installed.get(key)
            if (
                before is not None
                and before.nh_id
                and (op == DELETE or before.nh_id != route.nh_id)
            ):
                self.nh.gc_due = True
            f = failed.get(key)
            if op == DELETE:
                if f is None or f.errno == errno.ESRCH:
                    installed.pop(key, None)  # ESRCH: already gone, which is what we wanted
                    if key in self.stale:
                        self._swept(key)
                    continue
            elif f is None:
                installed[key] = route
                continue
            self.failed[key] = f.errno
            self.counters.write_failures += 1
            log.warning("fib: %s %s: %s", "delete" if op == DELETE else "replace",
                        route.describe(), os.strerror(f.errno))  # fmt: skip

    # -- devices, neighbours, FDB ------------------------------------------------------------
    def _sync_tunnels(self) -> None:
        self.tunnels.dirty = False
        node = self.inputs.node
        if node is None:
            return
        remote = self.inputs.remote
        encap = [remote[p] for p in self.encapsulated]
        needs_vxlan = bool(self.inputs.vteps) or any(r.vxlan is not Encap.NEVER for r in encap)
        needs_ipip = any(r.ipip is not Encap.NEVER for r in encap)
        mtu = self.kernel.link_mtu(node.underlay)
        if mtu is None:
            log.warning("fib: underlay device %s not found", node.underlay)
            return
        if needs_vxlan:
            self.kernel.ensure_vxlan(plan.plan_vxlan_device(node, mtu))
            self.tunnels.vxlan_ok = True
            neighbours, fdb = plan.plan_vxlan_entries(self.inputs)
            self._sync_set(self.kernel.dump_neighbours(VXLAN_DEVICE), neighbours,
                           self.kernel.write_neighbours)  # fmt: skip
            self._sync_set(self.kernel.dump_fdb(VXLAN_DEVICE), fdb, self.kernel.write_fdb)
        if needs_ipip and not self.tunnels.ipip_unsupported:
            try:
                self.kernel.ensure_ipip(plan.plan_ipip_device(node, mtu))
                self.tunnels.ipip_ok = True
            except Unsupported as exc:
                self.tunnels.ipip_unsupported = str(exc)
                log.error("fib: %s", exc)

    @staticmethod
    def _sync_set(
        have: set[Any], want: set[Any], write: Callable[[list[Any], list[Any]], None]
    ) -> None:
        add, remove = sorted(want - have, key=repr), sorted(have - want, key=repr)
        if add or remove:
            write(add, remove)

    # -- kernel events ---------------------------------------------------------------------
    def handle_events(self, events: list[Event] | None = None) -> None:
        """Fold kernel events into our view and mark affected keys dirty."""
        for event in self.kernel.read_events() if events is None else events:
            if isinstance(event, RouteEvent):
                self._route_event(event)
            elif isinstance(event, LinkEvent):
                self._link_event(event)
            elif isinstance(event, NexthopEvent):
                self._nexthop_event(event)
            elif isinstance(event, Overrun):
                self.counters.event_overruns += 1
                self.need_resync = True

    def _nexthop_event(self, event: NexthopEvent) -> None:
        obj = event.obj
        if not self.started or not self.nh.enabled or not owned_id(obj.id):
            return
        if obj.protocol != self.config.protocol:
            if not event.deleted:
                self.nh.foreign_ids.add(obj.id)
            return
        if event.deleted:
            if obj.id in self.nh.installed:  # not the echo of our own delete
                self.counters.drift_events += 1
                self.need_resync = True  # the kernel dropped its IPv4 routes without a word
            return
        if self.nh.installed.get(obj.id) == obj.spec:
            return  # the echo of our own write
        self.nh.installed[obj.id] = obj.spec
        if obj.id in self.nh.objects:
            self.counters.drift_events += 1
            self.nh.dirty.add(obj.id)
        else:
            self.nh.gc_due = True

    def _route_event(self, event: RouteEvent) -> None:
        route = event.route
        if route.table != self.config.table or not self.started:
            return
        key = route.key
        if route.protocol != self.config.protocol:
            if event.deleted:
                self.foreign.pop(key, None)
            else:
                self.foreign[key] = route
                self.installed.pop(key, None)  # a replace by someone else took the slot
        elif event.deleted:
            if self.installed.pop(key, None) is None:
                return  # the echo of our own delete
        else:
            self.installed[key] = route
        if self._op_for(key) is None:
            return  # the echo of our own write, or nothing we would change
        if key in self.desired:
            self.counters.drift_events += 1
            self.drifted[key] = (time.time(), "deleted" if event.deleted else "changed")
            self.kernel_dirty.add(key)
        self.dirty.add(key)

    def _link_event(self, event: LinkEvent) -> None:
        if event.name in (VXLAN_DEVICE, IPIP_DEVICE) or (
            self.inputs.node is not None and event.name == self.inputs.node.underlay
        ):
            self.tunnels.dirty = True
        if self.nh.enabled and event.name in self.nh.devices():
            self.need_resync = True  # carrier loss flushes routes through objects, silently
        if self.failed:  # a device a route needs may exist now
            self.dirty.update(self.failed)
            self.failed.clear()
        if event.deleted:
            self.need_resync = True  # the kernel dropped every route through that device

    # -- restart safety --------------------------------------------------------------------
    def sweep_stale(self) -> int:
        """Convergence is done (BGP End-of-RIB): remove owned routes nobody wants any more."""
        self.converged = True
        count = len(self.stale)
        self.dirty.update(self.stale)
        self.apply()
        self.stale.clear()
        return count

    # -- introspection ---------------------------------------------------------------------
    def snapshot(self, limit: int | None = 1000) -> dict[str, Any]:
        """Desired vs. installed with drift counters: the data behind `podbgp show fib`
        and the FIB metrics (`limit=0`: counts only; None: every route).

        It runs on the event loop between BGP reads, so a table of a million routes
        must not cost a Python pass per route: `in_sync` counts the routes installed
        as planned in C, and only the first `limit` keys are sorted into rows."""
        rows: list[dict[str, Any]] = []
        desired = self.desired.shapes
        only_installed = self.only_installed()  # stale or extra: few
        keys: Iterable[RouteKey]
        # ordered by address, then length and metric (`key_order`), in C for plain dests
        metric_keys = any(type(k) is not bytes for k in only_installed)  # desired's never
        order: Callable[[Any], Any] = key_order if metric_keys else _DEST_ORDER
        if limit is None:
            keys = sorted(chain(desired, only_installed), key=order)
        else:
            keys = (
                heapq.nsmallest(limit, chain(desired, only_installed), key=order) if limit else ()
            )
        for key in keys:
            want, have = self.desired.get(key), self.installed.get(key)
            rows.append({
                "prefix": dest_text(key_dest(key)),
                "desired": want.describe() if want else None,
                "installed": have.describe() if have else None,
                "state": self._state(key, want, have),
            })  # fmt: skip
        return {
            "table": self.config.table,
            "protocol": self.config.protocol,
            "converged": self.converged,
            "desired": len(self.desired),
            "installed": len(self.installed),
            "in_sync": self._in_sync(),
            "stale": len(self.stale),
            "conflicts": len(self.foreign.keys() & self.desired.shapes.keys()),
            "failed": len(self.failed),
            "unroutable": sorted(map(str, map(Prefix.of_dest, self.unroutable))),
            "tunnels": {
                "vxlan": self.tunnels.vxlan_ok,
                "ipip": self.tunnels.ipip_ok,
                "ipip_unsupported": self.tunnels.ipip_unsupported,
            },
            "nexthops": {
                "enabled": self.nh.enabled,
                "unsupported": self.nh.unsupported,
                "objects": len(self.nh.objects),
                "installed": len(self.nh.installed),
                "refused": len(self.nh.refused),
                "rows": self.nh.rows(limit),
            },
            "counters": {name: getattr(self.counters, name) for name in Counters.__slots__},
            "routes": rows,
        }

    def route_state(self, prefix: Prefix) -> dict[str, Any]:
        """One prefix's planned and installed route and how they compare (``podbgp explain``)."""
        key = key_of(prefix)
        want, have = self.desired.get(key), self.installed.get(key)
        foreign = self.foreign.get(key)
        return {
            "desired": want.describe() if want else None,
            "installed": have.describe() if have else None,
            "foreign": foreign.describe() if foreign else None,
            "state": "absent" if want is None and have is None else self._state(key, want, have),
            "unroutable": key in self.unroutable,
            "last_drift": (
                None
                if key not in self.drifted
                else {"at": self.drifted[key][0], "what": self.drifted[key][1]}
            ),
        }

    def only_installed(self) -> set[RouteKey]:
        """Installed routes no longer desired (stale or extra): usually none, found
        without building a set of every installed key when there are none."""
        installed, desired = self.installed.shapes.keys(), self.desired.shapes.keys()
        if installed <= desired:
            return set()
        return installed - desired

    def _suspects(self) -> set[RouteKey]:
        """The desired keys that may not be "ok": the route installed is not the planned
        shape itself (found in C), or the key is foreign or failed. Every other desired
        key is installed as planned."""
        desired, installed = self.desired.shapes, self.installed.shapes
        planned = map(is_, map(installed.get, desired), desired.values())
        suspects = set(compress(desired, map(not_, planned)))
        suspects.update((self.foreign.keys() | self.failed.keys()) & desired.keys())
        return suspects

    def _in_sync(self) -> int:
        """How many routes are installed as planned (`_state` "ok"), with only the
        suspects (`_suspects`) looked at one by one."""
        suspects = self._suspects()
        get = self.installed.get
        ok = sum(1 for k in suspects if self._state(k, self.desired[k], get(k)) == "ok")
        return len(self.desired.shapes) - len(suspects) + ok

    def route_states(self, keys: Iterable[RouteKey] = ()) -> dict[RouteKey, str]:
        """The state (`snapshot`'s) of every route that is not "ok", and of each of
        `keys` whatever it is (`podbgp audit`): no Python pass over a table of routes
        installed as planned."""
        only_installed = self.only_installed()
        out: dict[RouteKey, str] = {}
        for key in chain(self._suspects(), only_installed):
            state = self._state(key, self.desired.get(key), self.installed.get(key))
            if state != "ok":
                out[key] = state
        for key in keys:
            if key not in out and (key in self.desired.shapes or key in self.installed.shapes):
                out[key] = self._state(key, self.desired.get(key), self.installed.get(key))
        return out

    def _state(self, key: RouteKey, want: KernelRoute | None, have: KernelRoute | None) -> str:
        if want is None:
            return "stale" if key in self.stale else "extra"
        if key in self.foreign:
            return "conflict"
        if key in self.failed:
            return f"failed: {os.strerror(self.failed[key])}"
        if have is None:
            return "missing"
        return "ok" if same_route(want, have) else "differs"


__all__ = ["Counters", "FibConfig", "Reconciler"]
