"""Property: the reconciler's bulk path (`update_remote`, planned once per distinct reach)
leaves exactly the state of the readable path (`set_routes` / `del_route`, planned prefix
by prefix), and both leave the same kernel table behind (fib.fake)."""

from __future__ import annotations

import copy
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fib.fake import FakeKernel
from fib.kernel import DELETE, REPLACE, RouteBatch
from fib.model import (
    RTN_UNICAST,
    Encap,
    KernelRoute,
    Nexthop,
    NodeInfo,
    Prefix,
    Reach,
    RemoteRoute,
    RouteKey,
    Vtep,
    pack_addr,
)
from fib.nexthops import route_hops
from fib.reconciler import FibConfig, Reconciler
from fib.wire import same_route

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0")
HOPS = [pack_addr(a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.0.2", "fd00::2")]
VTEPS = {HOPS[1]: Vtep(HOPS[1], pack_addr("10.244.1.0"), "02:00:00:00:00:01")}
PREFIXES = [Prefix(bytes([10, 244, i, 0]), 24) for i in range(12)] + [
    Prefix(pack_addr(f"fd10:{i}::"), 64) for i in range(4)
]
reach = st.builds(
    Reach,
    st.lists(st.sampled_from(HOPS), min_size=1, max_size=3, unique=True).map(tuple),
    st.sampled_from(Encap),
    st.sampled_from([Encap.NEVER, Encap.NEVER, Encap.ALWAYS, Encap.CROSS_SUBNET]),
)
batch = st.dictionaries(st.sampled_from(PREFIXES), st.none() | reach, max_size=10)
extras = st.tuples(
    st.sets(st.sampled_from(PREFIXES[:6]), max_size=3),  # own blocks
    st.sets(st.sampled_from(PREFIXES[:6]), max_size=3),  # local pods
    st.booleans(),  # VTEP known
    st.sets(st.sampled_from(PREFIXES), max_size=4),  # owned routes a previous run left
    st.booleans(),  # nexthop objects
)


def _start(own: set[Prefix], pods: set[Prefix], vtep: bool, left: set[Prefix],
           nexthops: bool) -> Reconciler:  # fmt: skip
    kernel = FakeKernel(links={"lo": 65536, "eth0": 1500, "cali1": 1500})
    for p in left:
        hop = (Nexthop(pack_addr("10.0.0.3"), "eth0"),) if len(p.addr) == 4 else ()
        kernel.external_replace(KernelRoute(p.addr, p.length, RTN_UNICAST, hop, 0, 80, 254,
                                            0 if len(p.addr) == 4 else 1024))  # fmt: skip
    # someone else's routes: one on a key of ours (a conflict), one beside ours
    for p in (PREFIXES[11], Prefix(pack_addr("10.0.0.0"), 24)):
        kernel.external_replace(KernelRoute(p.addr, p.length, RTN_UNICAST,
                                            (Nexthop(b"", "eth0"),), 253, 2, 254))  # fmt: skip
    kernel.read_events()
    rec = Reconciler(kernel, FibConfig(nexthops=nexthops), clock=lambda: 0.0)
    rec.set_node(NODE)
    rec.resync()
    if vtep:
        rec.set_vtep(VTEPS[HOPS[1]])
    for p in own:
        rec.set_own_block(p)
    for p in pods:
        rec.set_local_pod(p, "cali1")
    return rec


def _readable(rec: Reconciler, changes: dict[Prefix, Reach | None]) -> None:
    routes = []
    for prefix, r in changes.items():
        if r is None:
            rec.del_route(prefix)
        else:
            routes.append(RemoteRoute.of(prefix, r))
    rec.set_routes(routes)


def _routes(routes: dict[RouteKey, KernelRoute]) -> dict[RouteKey, tuple[KernelRoute, bool]]:
    """Routes with their nexthop object's id as a flag: the two paths bind keys in another
    order, so objects get other ids (a route still carries its hops next to the id), and a
    group's hops come back from the kernel in the order of its members' ids."""
    return {k: (r._replace(nh_id=0, nexthops=tuple(sorted(r.nexthops))), bool(r.nh_id))
            for k, r in routes.items()}  # fmt: skip


def _state(rec: Reconciler) -> tuple[object, ...]:
    return (_routes(rec.desired), rec.inputs.remote, rec.unroutable, rec.encapsulated,
            rec.stale, rec.failed, rec.tunnels.dirty)  # fmt: skip


def _kernel(rec: Reconciler) -> dict[RouteKey, tuple[KernelRoute, bool]]:
    return _routes(rec.kernel.table(254))  # type: ignore[attr-defined]


def _snapshot(rec: Reconciler) -> dict[str, object]:
    snap = rec.snapshot(limit=None)
    snap["nexthops"].pop("rows")
    for row in snap["routes"]:
        for side in ("desired", "installed"):
            row[side] = row[side] and re.sub(r" nhid \d+", "", row[side])
    return snap


def _bindings_hold(rec: Reconciler, applied: bool) -> None:
    """A route's object is the one its desired shape names (or, re-planned and not yet
    bound, the one `was` remembers); `direct` counts exactly those routes, and after a
    pass every bound route's hops are its object's."""
    nh, shapes = rec.nh, rec.desired.shapes
    bound = {k: s[6] for k, s in shapes.items() if s[6] and k not in nh.was}
    bound.update(nh.was)
    assert Counter(bound.values()) == Counter(nh.direct)
    if applied:
        assert not nh.was
        for key, shape in shapes.items():
            if shape[6]:
                assert route_hops(rec.desired[key]) == nh._hopset(shape[6])


def _ops_as_readable(rec: Reconciler) -> None:
    """`_ops_for` (whole chunks decided by set operations, as one `RouteBatch`; the
    common cases inline) writes what `_op_for` says key by key: for the dirty keys, and
    for the new-only and gone-only chunks that take its fastest paths."""
    keys = list(rec.dirty)
    new = [k for k in keys if k not in rec.installed]
    gone = [k for k in keys if k not in rec.desired]
    for chunk, handed in [(c, w) for c in (keys, new, gone) for w in (False, True)]:
        # handed: the chunk's desired shapes handed in, as the binding returns them
        wants = list(map(rec.desired.shapes.get, chunk)) if handed else None
        written = rec._ops_for(chunk, wants)
        if isinstance(written, RouteBatch):  # a whole chunk: the ops it stands for
            ops, op_keys = written.ops(), list(written.keys)
            shapes = list(written.shapes) if written.op == REPLACE else [None] * len(written)
        else:
            ops, op_keys, shapes = written
        want = [(k, op) for k in chunk if (op := rec._op_for(k)) is not None]
        assert ops == [op for _k, op in want]
        assert op_keys == [k for k, _op in want]
        assert shapes == [None if op[0] == DELETE else rec.desired.shapes[k] for k, op in want]


def _bind_as_readable(rec: Reconciler) -> None:
    """`NexthopTable.bind` (whole chunks in C) binds as `bind_each` does route by route:
    the dirty keys, and the new-only and gone-only chunks that take its fast paths."""
    keys = list(rec.dirty)
    new = [k for k in keys if k in rec.desired and k not in rec.nh.was]
    gone = [k for k in keys if k not in rec.desired]
    for chunk in (keys, new, gone):
        fast_nh, fast_desired = copy.deepcopy((rec.nh, rec.desired))
        slow_nh, slow_desired = copy.deepcopy((rec.nh, rec.desired))
        wants = fast_nh.bind(chunk, fast_desired)
        slow_nh.bind_each(chunk, slow_desired)
        assert fast_desired.shapes == slow_desired.shapes
        # what it returns (if anything) is the chunk's desired shapes after binding
        assert wants is None or wants == list(map(slow_desired.shapes.get, chunk))
        assert (fast_nh.objects, fast_nh.direct, fast_nh.was, fast_nh.dirty, fast_nh.gc_due) == (
            slow_nh.objects,
            slow_nh.direct,
            slow_nh.was,
            slow_nh.dirty,
            slow_nh.gc_due,
        )


@settings(max_examples=200, deadline=None)
@given(extras, st.lists(st.tuples(batch, st.booleans()), min_size=1, max_size=6))
def test_bulk_plans_as_the_readable_path(
    setup: tuple[set[Prefix], set[Prefix], bool, set[Prefix], bool],
    batches: list[tuple[dict[Prefix, Reach | None], bool]],
) -> None:
    fast, slow = _start(*setup), _start(*setup)
    for changes, apply in batches:
        fast.update_remote({p.dest: r for p, r in changes.items()})
        _readable(slow, changes)
        # keys that did not change are marked dirty only by the readable path; harmless
        assert fast.dirty <= slow.dirty
        assert _state(fast) == _state(slow)
        _bindings_hold(fast, False)
        _ops_as_readable(fast)
        _bind_as_readable(fast)
        if apply:
            fast.apply()
            slow.apply()
            _bindings_hold(fast, True)
            _bindings_hold(slow, True)
            assert _routes(fast.installed) == _routes(slow.installed)
            assert _kernel(fast) == _kernel(slow)
            # what the reconciler believes installed is what the kernel holds of ours
            table = fast.kernel.table(254)  # type: ignore[attr-defined]
            table = {k: r for k, r in table.items() if r.protocol == 80}
            assert set(fast.installed) == set(table)
            assert all(same_route(r, table[k]) for k, r in fast.installed.items())
    fast.sweep_stale()
    slow.sweep_stale()
    assert _kernel(fast) == _kernel(slow)
    assert _snapshot(fast) == _snapshot(slow)
