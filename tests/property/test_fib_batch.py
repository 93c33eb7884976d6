"""Property: a `RouteBatch` (keys and shapes, what the reconciler writes for a whole
chunk) is written exactly as the `RouteOp`s it stands for (`RouteBatch.ops()`): the
batch encoder builds byte for byte the messages of encoding each op (`fib.wire`), and
the fake kernel ends in the same table with the same failures and events."""

from __future__ import annotations

import copy
import errno
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fib import wire
from fib.fake import FakeKernel
from fib.kernel import DELETE, REPLACE, RouteBatch
from fib.model import (
    DEST4_MAX,
    RTN_BLACKHOLE,
    RTN_UNICAST,
    KernelRoute,
    Nexthop,
    NexthopObject,
    NexthopSpec,
    RouteKey,
    pack_addr,
    route_key,
)
from fib.table import Shape

IFINDEX = {"eth0": 2, "tunl0": 5, "vxlan.podbgp": 7}  # "gone" is a device nobody has
GATEWAYS = [b"", pack_addr("10.0.0.2"), pack_addr("10.0.0.3"), pack_addr("fd00::2"),
            pack_addr("fe80::1")]  # fmt: skip
OBJECTS = {11: NexthopObject(11, NexthopSpec(Nexthop(GATEWAYS[1], "eth0")), 80),
           12: NexthopObject(12, NexthopSpec(Nexthop(GATEWAYS[2], "eth0")), 80)}  # fmt: skip

hop = st.builds(
    Nexthop,
    st.sampled_from(GATEWAYS),
    st.sampled_from(["", "", "eth0", "tunl0", "gone"]),
    st.booleans(),
    st.sampled_from([1, 1, 2, 7]),
)
shape: st.SearchStrategy[Shape] = st.tuples(
    st.sampled_from([RTN_UNICAST, RTN_UNICAST, RTN_BLACKHOLE]),
    st.lists(hop, max_size=3).map(tuple),
    st.sampled_from([0, 0, 253]),  # scope
    st.sampled_from([80, 80, 2]),  # protocol
    st.sampled_from([254, 254, 100, 1000]),  # table (> 255: RTA_TABLE only)
    st.sampled_from([0, 0, 1024, 7]),  # metric
    st.sampled_from([0, 0, 11, 12, 13]),  # nexthop object (13 does not exist)
)


@st.composite
def batch(draw: st.DrawFn) -> RouteBatch:
    """Keys of one family (now and then both, or a default route) with shapes drawn
    from a few, so that shapes repeat as they do in a real chunk."""
    widths = draw(st.sampled_from([[4], [4], [16], [4, 16]]))
    shapes = draw(st.lists(shape, min_size=1, max_size=3))
    keys: dict[RouteKey, Shape] = {}
    for _ in range(draw(st.integers(0, 12))):
        width = draw(st.sampled_from(widths))
        length = draw(st.integers(0 if draw(st.booleans()) else 1, width * 8))
        value = draw(st.integers(0, (1 << length) - 1)) << (width * 8 - length)
        addr = value.to_bytes(width, "big")
        s = draw(st.sampled_from(shapes))
        # a key with a metric other than the family's default has three parts (`route_key`)
        keys[route_key(KernelRoute(addr, length, *s))] = s
    return RouteBatch(draw(st.sampled_from([REPLACE, DELETE])), list(keys), list(keys.values()))


def _bulk(b: RouteBatch) -> bool:
    """Does the batch take the bulk encoding (one family, no default route, every device
    known), not the op-by-op fallback?"""
    devices = {h.dev for s in b.shapes if not s[6] for h in s[1]}  # an object holds its hops
    dests = [k for k in b.keys if isinstance(k, bytes)]  # keys with a metric: (dest, metric)
    return (len(dests) == len(b.keys) and len({len(d) <= DEST4_MAX for d in dests}) == 1
            and all(d[0] for d in dests) and (b.op == DELETE or "gone" not in devices))  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(batch(), st.integers(1, 0xFFFF0000 - 4096))
def test_batch_encodes_as_its_ops(b: RouteBatch, base: int) -> None:
    each = wire.encode_ops(b.ops(), wire.encode_route, base, IFINDEX)
    fallbacks: list[int] = []

    def spy(*args: Any) -> tuple[list[bytes], list[tuple[int, int]]]:
        fallbacks.append(1)
        return each_ops(*args)

    each_ops, wire.encode_ops = wire.encode_ops, spy  # type: ignore[assignment]
    try:
        assert wire.encode_route_batch(b, base, IFINDEX) == each
    finally:
        wire.encode_ops = each_ops
    assert bool(fallbacks) != _bulk(b)


def _kernel(before: list[KernelRoute], refuse: dict[RouteKey, int]) -> FakeKernel:
    kernel = FakeKernel(links={"lo": 65536, "eth0": 1500, "tunl0": 1480})
    kernel.nexthops = dict(OBJECTS)
    for route in before:
        kernel.external_replace(route)
    kernel.refuse = dict(refuse)
    kernel.read_events()
    return kernel


@settings(max_examples=300, deadline=None)
@given(batch(), st.data())
def test_fake_kernel_writes_a_batch_as_its_ops(b: RouteBatch, data: st.DataObject) -> None:
    ops = b.ops()
    # the table before: some of the batch's routes already there, some of another protocol
    before = [r._replace(protocol=data.draw(st.sampled_from([80, 2])))
              for _op, r in ops if data.draw(st.booleans())]  # fmt: skip
    keys = [route_key(r) for _op, r in ops]
    refuse = {k: errno.EPERM for k in keys if data.draw(st.integers(0, 9)) == 0}
    one, other = _kernel(before, refuse), _kernel(before, refuse)
    assert one.write_routes(ops) == other.write_route_batch(copy.copy(b))
    assert one.tables == other.tables
    assert one.events == other.events
    assert (one.route_writes, one.write_calls) == (other.route_writes, other.write_calls)
