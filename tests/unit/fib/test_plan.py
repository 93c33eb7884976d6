"""Planning tables: every encapsulation x mode x same/other subnet x ECMP case."""

from __future__ import annotations

import dataclasses

import pytest

from fib import plan
from fib.model import (
    RT_SCOPE_LINK,
    RTN_BLACKHOLE,
    RTN_UNICAST,
    Encap,
    FdbEntry,
    FibInputs,
    Neighbour,
    Nexthop,
    NodeInfo,
    Prefix,
    Reach,
    RemoteRoute,
    Vtep,
    pack_addr,
    vtep_mac,
)

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0")
SAME = pack_addr("10.0.0.2")  # in 10.0.0.0/24
OTHER = pack_addr("10.0.1.2")  # another subnet
VTEPS = {
    SAME: Vtep(SAME, pack_addr("10.244.1.0"), vtep_mac("node-b")),
    OTHER: Vtep(OTHER, pack_addr("10.244.2.0"), vtep_mac("node-c")),
}
BLOCK = Prefix.parse("10.244.3.0/26")

PLAIN_SAME = Nexthop(SAME, "eth0")
PLAIN_OTHER = Nexthop(OTHER, "")
IPIP_SAME = Nexthop(SAME, "tunl0", True)
IPIP_OTHER = Nexthop(OTHER, "tunl0", True)
VX_SAME = Nexthop(pack_addr("10.244.1.0"), "vxlan.podbgp", True)
VX_OTHER = Nexthop(pack_addr("10.244.2.0"), "vxlan.podbgp", True)

N, A, C = Encap.NEVER, Encap.ALWAYS, Encap.CROSS_SUBNET

# (ipip_mode, vxlan_mode, next hops, expected kernel next hops)
CASES = [
    (N, N, [SAME], [PLAIN_SAME]),
    (N, N, [OTHER], [PLAIN_OTHER]),
    (A, N, [SAME], [IPIP_SAME]),
    (A, N, [OTHER], [IPIP_OTHER]),
    (C, N, [SAME], [PLAIN_SAME]),
    (C, N, [OTHER], [IPIP_OTHER]),
    (N, A, [SAME], [VX_SAME]),
    (N, A, [OTHER], [VX_OTHER]),
    (N, C, [SAME], [PLAIN_SAME]),
    (N, C, [OTHER], [VX_OTHER]),
    # ECMP: one multipath route, hops planned one by one
    (N, N, [SAME, OTHER], [PLAIN_SAME, PLAIN_OTHER]),
    (A, N, [SAME, OTHER], [IPIP_SAME, IPIP_OTHER]),
    (C, N, [SAME, OTHER], [PLAIN_SAME, IPIP_OTHER]),
    (N, A, [SAME, OTHER], [VX_SAME, VX_OTHER]),
    (N, C, [SAME, OTHER], [PLAIN_SAME, VX_OTHER]),
]


@pytest.mark.parametrize(("ipip", "vxlan", "hops", "expected"), CASES)
def test_remote_route_table(
    ipip: Encap, vxlan: Encap, hops: list[bytes], expected: list[Nexthop]
) -> None:
    route = RemoteRoute(BLOCK, tuple(hops), ipip, vxlan)
    planned = plan.plan_remote(route, NODE, VTEPS, 80, 254)
    assert planned is not None
    assert planned.kind == RTN_UNICAST
    assert planned.protocol == 80 and planned.table == 254
    assert (planned.dst, planned.dst_len) == (BLOCK.addr, 26)
    assert planned.nexthops == tuple(sorted(expected))


@pytest.mark.parametrize("mode", [A, C])
def test_vxlan_hop_without_known_vtep_is_left_out(mode: Encap) -> None:
    route = RemoteRoute(BLOCK, (OTHER,), vxlan=mode)
    assert plan.plan_remote(route, NODE, {}, 80, 254) is None
    ecmp = RemoteRoute(BLOCK, (SAME, OTHER), vxlan=mode)
    planned = plan.plan_remote(ecmp, NODE, {SAME: VTEPS[SAME]}, 80, 254)
    assert planned is not None
    assert planned.nexthops == ((VX_SAME,) if mode is A else (PLAIN_SAME,))


def test_both_encapsulations_is_an_error() -> None:
    with pytest.raises(plan.PlanError):
        plan.plan_remote(RemoteRoute(BLOCK, (SAME,), A, A), NODE, VTEPS, 80, 254)


def test_next_hop_self_is_skipped() -> None:
    assert plan.plan_remote(RemoteRoute(BLOCK, (NODE.address,)), NODE, {}, 80, 254) is None
    two = plan.plan_remote(RemoteRoute(BLOCK, (NODE.address, SAME)), NODE, {}, 80, 254)
    assert two is not None and two.nexthops == (PLAIN_SAME,)


def test_duplicate_hops_collapse() -> None:
    planned = plan.plan_remote(RemoteRoute(BLOCK, (SAME, SAME)), NODE, {}, 80, 254)
    assert planned is not None and planned.nexthops == (PLAIN_SAME,)


def test_blackhole_and_local_pod() -> None:
    bh = plan.plan_blackhole(BLOCK, 80, 254)
    assert bh.kind == RTN_BLACKHOLE and bh.nexthops == ()
    pod = plan.plan_local(Prefix.parse("10.244.3.5/32"), "cali123", 80, 254)
    assert pod.scope == RT_SCOPE_LINK and pod.nexthops == (Nexthop(b"", "cali123"),)


def test_ipv6_routes_get_the_kernel_default_metric() -> None:
    six = NodeInfo.parse("node-a", "fd00::1/64")
    route = RemoteRoute(Prefix.parse("fd10::/122"), (pack_addr("fd00::2"),))
    planned = plan.plan_remote(route, six, {}, 80, 254)
    assert planned is not None and planned.priority == 1024
    assert planned.nexthops == (Nexthop(pack_addr("fd00::2"), "eth0"),)


def test_precedence_local_pod_over_block_over_remote() -> None:
    pod = Prefix.parse("10.244.3.5/32")
    inputs = FibInputs(NODE, {pod.dest: Reach((SAME,)), BLOCK.dest: Reach((SAME,))})
    assert plan.plan_route_for(pod, inputs, 80, 254) == plan.plan_remote(
        RemoteRoute(pod, (SAME,)), NODE, {}, 80, 254
    )
    inputs.own_blocks.add(BLOCK)
    assert plan.plan_route_for(BLOCK, inputs, 80, 254) == plan.plan_blackhole(BLOCK, 80, 254)
    inputs.local_pods[pod] = "cali1"
    assert plan.plan_route_for(pod, inputs, 80, 254) == plan.plan_local(pod, "cali1", 80, 254)


def test_plan_all_neighbours_fdb_and_devices() -> None:
    inputs = FibInputs(
        NODE,
        {BLOCK.dest: Reach((OTHER,), vxlan=C)},
        dict(VTEPS) | {NODE.address: Vtep(NODE.address, NODE.vtep_address, vtep_mac("node-a"))},
        own_blocks={Prefix.parse("10.244.0.0/26")},
    )
    p = plan.plan_all(inputs, 80, 254)
    assert p.needs_vxlan and not p.needs_ipip
    assert len(p.routes) == 2
    assert p.neighbours == {
        Neighbour("vxlan.podbgp", pack_addr("10.244.1.0"), vtep_mac("node-b")),
        Neighbour("vxlan.podbgp", pack_addr("10.244.2.0"), vtep_mac("node-c")),
    }
    assert FdbEntry("vxlan.podbgp", vtep_mac("node-c"), OTHER) in p.fdb and len(p.fdb) == 2
    vx = plan.plan_vxlan_device(NODE, 1500)
    assert (vx.mtu, vx.vni, vx.port, vx.mac) == (1450, 4096, 4789, vtep_mac("node-a"))
    assert plan.plan_ipip_device(NODE, 9000).mtu == 8980


def test_vtep_mac_is_stable_unicast_and_local() -> None:
    mac = vtep_mac("node-a")
    assert mac == vtep_mac("node-a") != vtep_mac("node-b")
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01


@pytest.mark.parametrize(
    ("cidr", "other", "same"),
    [("10.0.0.1/24", "10.0.0.254", True), ("10.0.0.1/24", "10.0.1.1", False),
     ("10.0.0.1/16", "10.0.200.1", True), ("fd00::1/64", "fd00::9", True),
     ("fd00::1/64", "fd01::9", False), ("10.0.0.1/24", "fd00::1", False)],
)  # fmt: skip
def test_same_subnet(cidr: str, other: str, same: bool) -> None:
    assert NodeInfo.parse("n", cidr).same_subnet(pack_addr(other)) is same


def test_link_local_hop_is_via_its_own_link_and_never_encapsulated() -> None:
    """A next hop from an unnumbered session: fe80::2 plus its interface (split_hop);
    `via inet6 fe80::2 dev eth1` for an IPv4 prefix whatever the pool's modes."""
    hop = pack_addr("fe80::2") + b"eth1"
    route = RemoteRoute(Prefix.parse("10.244.1.0/26"), (hop,), Encap.ALWAYS)
    planned = plan.plan_remote(route, NODE, {}, 80, 254)
    assert planned is not None and planned.nexthops == (Nexthop(pack_addr("fe80::2"), "eth1"),)
    assert planned.describe() == "10.244.1.0/26 via inet6 fe80::2 dev eth1 proto 80"
    six = RemoteRoute(Prefix.parse("fd00:244::/122"), (hop,), vxlan=Encap.CROSS_SUBNET)
    planned6 = plan.plan_remote(six, NODE, {}, 80, 254)
    assert planned6 is not None and planned6.nexthops == (Nexthop(pack_addr("fe80::2"), "eth1"),)


def test_global_ipv6_hop_of_an_ipv4_prefix_is_plain_via_inet6() -> None:
    route = RemoteRoute(Prefix.parse("10.244.1.0/26"), (pack_addr("2001:db8::2"),), Encap.ALWAYS)
    planned = plan.plan_remote(route, NODE, {}, 80, 254)
    assert planned is not None and planned.nexthops == (Nexthop(pack_addr("2001:db8::2"), ""),)


# -- IPv6 through the tunnel ---------------------------------------------------------------
DUAL = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0", cidr6="fd00::1/64")
SAME6, OTHER6 = pack_addr("fd00::2"), pack_addr("fd01::3")
BLOCK6 = Prefix.parse("fd00:10:244::40/122")


def test_eui64_link_local_is_what_the_kernel_derives_from_a_mac() -> None:
    import ipaddress

    from fib.model import eui64_link_local

    # RFC 4291 Appendix A: 34-56-78-9A-BC-DE → fe80::3656:78ff:fe9a:bcde (bit 0x02 flipped).
    got = ipaddress.IPv6Address(eui64_link_local("34:56:78:9a:bc:de"))
    assert str(got) == "fe80::3656:78ff:fe9a:bcde"
    vtep = Vtep(OTHER, pack_addr("10.244.2.0"), "02:00:00:00:00:01")
    assert str(ipaddress.IPv6Address(vtep.link_local)) == "fe80::ff:fe00:1"


def test_dual_stack_node_tests_ipv6_hops_against_its_ipv6_subnet() -> None:
    assert DUAL.same_subnet(SAME6) and not DUAL.same_subnet(OTHER6)
    assert DUAL.same_subnet(SAME) and not DUAL.same_subnet(OTHER)
    assert DUAL.is_own(pack_addr("fd00::1")) and DUAL.is_own(DUAL.address)
    # Before, every IPv6 hop was "another subnet" for a node known by its IPv4 address,
    # so CrossSubnet tunnelled IPv6 pods even between neighbours.
    route = RemoteRoute(BLOCK6, (SAME6,), vxlan=C)
    assert plan.plan_hop(route, DUAL, SAME6, {}) == Nexthop(SAME6, "eth0")


@pytest.mark.parametrize("mode", [A, C])
def test_ipv6_pods_through_vxlan_go_via_the_remote_devices_link_local(mode: Encap) -> None:
    """Over an IPv4 underlay (dual stack) or an IPv6 one: the IPv6 route's next hop is the
    remote VTEP's link-local address on vxlan.podbgp, found by its IPv6 next hop."""
    vtep = Vtep(OTHER, pack_addr("10.244.2.0"), vtep_mac("node-c"), node_address6=OTHER6)
    vteps = {k: vtep for k in vtep.keys}
    assert vtep.keys == (OTHER, OTHER6)
    route = RemoteRoute(BLOCK6, (OTHER6,), vxlan=mode)
    got = plan.plan_remote(route, DUAL, vteps, 80, 254)
    assert got is not None and got.nexthops == (Nexthop(vtep.link_local, "vxlan.podbgp"),)
    inputs = FibInputs(DUAL, {BLOCK6.dest: Reach((OTHER6,), vxlan=mode)}, vteps)
    p = plan.plan_all(inputs, 80, 254)
    assert p.neighbours == {
        Neighbour("vxlan.podbgp", pack_addr("10.244.2.0"), vtep.mac),
        Neighbour("vxlan.podbgp", vtep.link_local, vtep.mac),
    }
    assert p.fdb == {FdbEntry("vxlan.podbgp", vtep.mac, OTHER)}  # the IPv4 underlay


def test_ipv6_only_vtep_has_no_ipv4_address_and_an_ipv6_underlay() -> None:
    node = NodeInfo.parse("node-a", "fd00::1/64", "eth0")
    vtep = Vtep(OTHER6, b"", vtep_mac("node-c"))
    route = RemoteRoute(BLOCK6, (OTHER6,), vxlan=A)
    got = plan.plan_remote(route, node, {OTHER6: vtep}, 80, 254)
    assert got is not None and got.nexthops == (Nexthop(vtep.link_local, "vxlan.podbgp"),)
    p = plan.plan_all(
        FibInputs(node, {BLOCK6.dest: Reach((OTHER6,), vxlan=A)}, {OTHER6: vtep}), 80, 254
    )
    assert p.neighbours == {Neighbour("vxlan.podbgp", vtep.link_local, vtep.mac)}
    assert p.fdb == {FdbEntry("vxlan.podbgp", vtep.mac, OTHER6)}
    # RFC 7348 over IPv6: 40 bytes of outer header instead of 20.
    assert plan.plan_vxlan_device(node, 1500).mtu == 1430
    # An IPv4 route cannot use a VTEP without an IPv4 address.
    v4 = RemoteRoute(BLOCK, (OTHER,), vxlan=A)
    assert (
        plan.plan_remote(v4, NODE, {OTHER: Vtep(OTHER, b"", "02:00:00:00:00:01")}, 80, 254) is None
    )


def test_configured_tunnel_mtus_win_and_an_ipv6_underlay_costs_vxlan_70() -> None:
    """[fib] ipip_mtu / vxlan_mtu (carried in NodeInfo) replace the derived MTUs; VXLAN over
    an IPv6 underlay adds a 40-byte outer header instead of 20 (RFC 8200 §3)."""
    fixed = dataclasses.replace(NODE, ipip_mtu=1300, vxlan_mtu=1250)
    assert plan.plan_vxlan_device(fixed, 9000).mtu == 1250
    assert plan.plan_ipip_device(fixed, 9000).mtu == 1300
    v6 = NodeInfo.parse("node-6", "fd00::1/64", "eth0")
    assert plan.plan_vxlan_device(v6, 9000).mtu == 8930
