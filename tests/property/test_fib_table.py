"""Property: `fib.table.RouteTable` (routes stored as interned shapes) behaves exactly as
the plain `dict[RouteKey, KernelRoute]` it replaced, whatever the sequence of writes,
and equal shapes are stored once, shared between tables of one pool; `DirtyKeys` is a
set that remembers the order its keys were marked in (a log underneath)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fib.model import RTN_BLACKHOLE, RTN_UNICAST, KernelRoute, Nexthop, RouteKey, route_key
from fib.table import POOL_LIMIT, DirtyKeys, RouteTable, ShapePool, route_of

ADDRS = [bytes([10, 244, i, 0]) for i in range(6)] + [
    bytes([0xFD] + [0] * 14 + [i]) for i in range(2)
]
HOPS = [Nexthop(bytes([10, 0, 0, i]), d) for i in (2, 3) for d in ("", "eth0")]

route = st.builds(
    lambda addr, length, kind, hops, nh: KernelRoute(
        addr, length, kind, tuple(hops) if kind == RTN_UNICAST else (), 0, 80, 254,
        0 if len(addr) == 4 else 1024, nh),
    st.sampled_from(ADDRS), st.sampled_from([24, 26]), st.sampled_from([RTN_UNICAST, RTN_BLACKHOLE]),
    st.lists(st.sampled_from(HOPS), min_size=1, max_size=2, unique=True), st.sampled_from([0, 0x50000001]),
)  # fmt: skip
op = st.one_of(st.tuples(st.just("set"), route), st.tuples(st.just("del"), route))


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=30))
def test_route_table_is_the_dict_it_replaced(ops: list[tuple[str, KernelRoute]]) -> None:
    pool = ShapePool()
    table, other, model = RouteTable(pool), RouteTable(pool), {}
    for what, r in ops:
        key: RouteKey = route_key(r)
        if what == "set":
            table[key] = r
            other[key] = KernelRoute(*r)  # an equal route built apart
            model[key] = r
        else:
            assert table.pop(key, None) == model.pop(key, None)
            other.pop(key, None)
        assert table.get(key) == model.get(key)
        assert (key in table) == (key in model)
    assert dict(table) == model
    assert len(table) == len(model) and set(table) == set(model)
    for key in model:  # equal routes share one shape object across the pool's tables
        assert table.shapes[key] is other.shapes[key]
        assert route_of(key, table.shapes[key]) == model[key]
    assert RouteTable(pool, model.values()) == table


def test_a_full_pool_starts_afresh_and_stays_correct() -> None:
    pool = ShapePool()
    table = RouteTable(pool)
    routes = [KernelRoute(bytes(4), 32, RTN_UNICAST, (Nexthop(i.to_bytes(4, "big"), ""),),
                          0, 80, 254, 0) for i in range(POOL_LIMIT + 10)]  # fmt: skip
    for i, r in enumerate(routes):
        table[(i.to_bytes(4, "big"), 32, 0)] = r._replace(dst=i.to_bytes(4, "big"))
    assert len(pool) <= POOL_LIMIT
    assert all(table[(i.to_bytes(4, "big"), 32, 0)].nexthops == r.nexthops
               for i, r in enumerate(routes))  # fmt: skip


keys = st.lists(st.sampled_from([bytes([24, 10, 244, i]) for i in range(8)]), max_size=12)
dirty_op = st.one_of(
    st.tuples(st.just("add"), keys), st.tuples(st.just("update"), keys),
    st.tuples(st.just("discard"), keys), st.tuples(st.just("take"), keys),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(dirty_op, max_size=20))
def test_dirty_keys_are_a_set_in_marking_order(ops: list[tuple[str, list[bytes]]]) -> None:
    """`DirtyKeys` reads as the `set` of the keys marked since they were last taken or
    discarded, in the order they were first marked; `take` hands over every mark in
    order (a key marked twice twice), so that a pass that drops repeats sees that set."""
    dirty, model, order, log = DirtyKeys(), set(), [], []
    for what, ks in ops:
        if what == "add":
            for k in ks:
                dirty.add(k)
        elif what == "update":
            dirty.update(ks)
        elif what == "discard":
            for k in ks:
                dirty.discard(k)
                model.discard(k)
            order = [k for k in order if k in model]
            log = [k for k in log if k in model]
            continue
        else:
            taken = dirty.take()
            assert taken == log and list(dict.fromkeys(taken)) == order
            model, order, log = set(), [], []
            continue
        log += ks
        for k in ks:
            if k not in model:
                model.add(k)
                order.append(k)
        assert dirty == model and len(dirty) == len(model) and list(dirty) == order
    assert set(dirty) == model and all(k in dirty for k in model) and bool(dirty) == bool(model)
