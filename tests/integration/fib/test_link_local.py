"""Routes through a link-local next hop on an unnumbered link, on a real kernel.

A next hop learned over an unnumbered BGP session is the neighbour's link-local
address plus the link it is on (``fib.model.split_hop``). IPv4 routes take it
as ``via inet6 fe80::… dev IF`` (RTA_VIA, RFC 8950 next hops in the kernel),
IPv6 routes as ``via fe80::… dev IF``; two links with the same neighbour
address are two next hops. Inline hops and kernel nexthop objects both; a
resync reads the routes back as written (no writes).
"""

from __future__ import annotations

import re

import pytest
from fib_nodes import reconciler, routes

from fib.model import NodeInfo, Prefix, RemoteRoute, pack_addr
from fib.netlink import NetlinkKernel
from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = pytest.mark.root

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0")
P4 = Prefix.parse("10.244.1.0/26")
P4B = Prefix.parse("10.244.2.0/26")
P6 = Prefix.parse("fd00:244:1::/122")


def scoped(addr: str, dev: str) -> bytes:
    return pack_addr(addr) + dev.encode()


@pytest.fixture
def links(netns: NetnsGroup) -> Netns:
    """Namespace `a` with two unnumbered links (eth1, eth2) to `b`: link-local only."""
    a, b = netns.add("a"), netns.add("b")
    netns.veth(a, "eth1", b, "eth1")
    netns.veth(a, "eth2", b, "eth2")
    return a


@pytest.mark.parametrize("objects", [False, True], ids=["inline", "nexthop-objects"])
def test_ipv4_and_ipv6_routes_via_link_local_next_hops(
    links: Netns, kernels: list[NetlinkKernel], objects: bool
) -> None:
    rec = reconciler(links, kernels, nexthops=objects)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P4, (scoped("fe80::2", "eth1"),)))
    rec.set_route(RemoteRoute(P4B, (scoped("fe80::2", "eth1"), scoped("fe80::2", "eth2"))))
    rec.set_route(RemoteRoute(P6, (scoped("fe80::2", "eth2"),)))
    rec.apply()
    # sorted: a group object lists its members in id order, not by device
    assert sorted(routes(links, "proto", "80")) == [
        "10.244.1.0/26 via inet6 fe80::2 dev eth1",
        "10.244.2.0/26",
        "nexthop via inet6 fe80::2 dev eth1 weight 1",
        "nexthop via inet6 fe80::2 dev eth2 weight 1",
    ]
    six = re.sub(r" nhid \d+", "", links.ip("-6", "route", "show", "proto", "80")).split()
    assert six[:5] == ["fd00:244:1::/122", "via", "fe80::2", "dev", "eth2"]
    writes = rec.counters.route_writes
    rec.resync()
    assert rec.counters.route_writes == writes  # read back as written
    assert rec.snapshot()["in_sync"] == 3
