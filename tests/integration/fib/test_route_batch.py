"""`RouteBatch` writes on a real kernel, in a network namespace: a batch larger than one
`sendmsg`, encoded from keys and shapes, lands in the table, and each refused route is
matched back to its own key by sequence number, in whichever chunk it went."""

from __future__ import annotations

import errno

import pytest

from fib.kernel import DELETE, REPLACE, RouteBatch, RouteFailure
from fib.model import RTN_UNICAST, Nexthop, NexthopObject, NexthopSpec, dest_of, pack_addr
from fib.netlink import SEND_CHUNK, NetlinkKernel
from fib.table import Shape, route_of
from podbgp.lab.netns import Netns

pytestmark = pytest.mark.root

B, C = pack_addr("10.0.0.2"), pack_addr("10.0.0.3")
OBJECT = NexthopObject(4_000_011, NexthopSpec(Nexthop(B, "eth0")), 80)
VIA_OBJECT: Shape = (RTN_UNICAST, (), 0, 80, 254, 0, OBJECT.id)
VIA_C: Shape = (RTN_UNICAST, (Nexthop(C, ""),), 0, 80, 254, 0, 0)
MISSING: Shape = (RTN_UNICAST, (), 0, 80, 254, 0, 4_000_099)  # no such object: EINVAL
N = 3 * SEND_CHUNK // 52 + 100  # three sendmsg calls and a bit (52 bytes a message)


def test_a_batch_lands_and_refusals_map_to_their_keys(
    node: Netns, kernels: list[NetlinkKernel]
) -> None:
    kernel = NetlinkKernel(node.name, watch=False)
    kernels.append(kernel)
    assert kernel.write_nexthops([(REPLACE, OBJECT)]) == []
    keys = [dest_of(bytes([10, 100 + (i >> 16), (i >> 8) & 255, i & 255]), 32) for i in range(N)]
    shapes = [VIA_OBJECT if i % 3 else VIA_C for i in range(N)]
    bad = N // 2  # in the second chunk
    shapes[bad] = MISSING
    failures = kernel.write_route_batch(RouteBatch(REPLACE, keys, shapes))
    assert failures == [RouteFailure(REPLACE, route_of(keys[bad], MISSING), errno.EINVAL)]
    table = {r.key: r for r in kernel.dump_routes(254) if r.protocol == 80}
    assert set(table) == set(keys) - {keys[bad]}
    for key, shape in zip(keys, shapes, strict=True):
        if shape is VIA_OBJECT:
            assert table[key].nh_id == OBJECT.id and table[key].nexthops[0].gateway == B
        elif shape is VIA_C:
            assert table[key].nh_id == 0 and table[key].nexthops == (Nexthop(C, "eth0"),)
    # deleted by the shapes the table holds; the refused key was never there: ESRCH
    gone = [*table, keys[bad]]
    shapes = [table[k][2:] for k in table] + [VIA_C]
    failures = kernel.write_route_batch(RouteBatch(DELETE, gone, shapes))
    assert failures == [RouteFailure(DELETE, route_of(keys[bad], VIA_C), errno.ESRCH)]
    assert [r for r in kernel.dump_routes(254) if r.protocol == 80] == []
