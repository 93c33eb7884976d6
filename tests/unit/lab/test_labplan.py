"""The lab's plan and the node configs it renders, checked by podbgp's own config loader."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from fib.model import Encap
from podbgp.cli import build_parser
from podbgp.config import load_config_text
from podbgp.lab.labplan import (
    CLUSTER_ASN,
    OPTIONS,
    POOL,
    POOL6,
    SUBNETS,
    SUBNETS6,
    TOR_ASN,
    PlanError,
    plan_lab,
    render_node_config,
    tor_address,
    tor_address6,
)


def configs(option: str, nodes: int = 3, **kw: object):  # type: ignore[no-untyped-def]
    plan = plan_lab(option, nodes, 2, prefix="t-", state_dir="/tmp/labplan-test", **kw)  # type: ignore[arg-type]
    return plan, [load_config_text(render_node_config(plan, n)) for n in plan.nodes]


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("nodes", [2, 3, 7])
def test_every_option_renders_valid_configs(option: str, nodes: int) -> None:
    _, cfgs = configs(option, nodes)
    assert [c.node.name for c in cfgs] == [f"n{i}" for i in range(1, nodes + 1)]
    addresses = [str(c.node.address.ip) for c in cfgs]  # type: ignore[union-attr]
    assert len(set(addresses)) == nodes
    for c in cfgs:
        assert str(c.datastore.kind) == "sqlite"
        assert Path(c.datastore.path) == Path("/tmp/labplan-test/podbgp.db")
        assert c.api.socket == f"/tmp/labplan-test/{c.node.name}.sock"
        assert c.api.metrics is None
        assert c.fib.enabled
        [pool] = c.ipam.pools
        assert str(pool.cidr) == POOL and pool.block_size == 26
        assert not pool.nat_outgoing


def test_mesh_nodes_share_one_as_and_timers_are_small() -> None:
    _, cfgs = configs("mesh")
    for c in cfgs:
        assert c.node.asn == CLUSTER_ASN
        assert c.bgp.mesh and c.bgp.enabled
        assert (c.bgp.hold_time, c.bgp.keepalive, c.bgp.connect_retry) == (9, 3, 1)
        assert not c.bgp.peers and not c.bgp.route_reflector_cluster_id
        [pool] = c.ipam.pools
        assert pool.ipip_mode is Encap.NEVER and pool.vxlan_mode is Encap.NEVER


def test_rr_only_the_first_node_reflects() -> None:
    _, cfgs = configs("rr")
    ids = [c.bgp.route_reflector_cluster_id for c in cfgs]
    assert str(ids[0]) == "10.99.1.1"
    assert all(not i for i in ids[1:])
    assert all(c.bgp.mesh for c in cfgs[1:])


def test_peered_nodes_have_own_as_and_peer_with_the_tor() -> None:
    _, cfgs = configs("peered")
    assert [c.node.asn for c in cfgs] == [TOR_ASN + 1, TOR_ASN + 2, TOR_ASN + 3]
    for c in cfgs:
        assert not c.bgp.mesh
        [peer] = c.bgp.peers
        assert str(peer.address) == tor_address(0)
        assert peer.asn == TOR_ASN
        assert peer.export_policy == "local"
        assert peer.hold_time == 9


@pytest.mark.parametrize(
    ("option", "attr", "mode"),
    [
        ("vxlan", "vxlan_mode", Encap.ALWAYS),
        ("vxlan-crosssubnet", "vxlan_mode", Encap.CROSS_SUBNET),
        ("ipip", "ipip_mode", Encap.ALWAYS),
        ("ipip-crosssubnet", "ipip_mode", Encap.CROSS_SUBNET),
    ],
)
def test_encapsulated_pools(option: str, attr: str, mode: Encap) -> None:
    _, cfgs = configs(option)
    for c in cfgs:
        assert getattr(c.ipam.pools[0], attr) is mode


def test_vxlan_always_runs_without_bgp() -> None:
    _, cfgs = configs("vxlan")
    assert all(not c.bgp.enabled for c in cfgs)


@pytest.mark.parametrize("option", ["vxlan-crosssubnet", "ipip-crosssubnet"])
def test_crosssubnet_splits_nodes_over_two_subnets(option: str) -> None:
    plan, cfgs = configs(option, 5)
    nets = [ipaddress.ip_interface(str(c.node.address)).network for c in cfgs]
    assert [str(n) for n in nets] == [SUBNETS[0]] * 3 + [SUBNETS[1]] * 2
    assert plan.subnets == SUBNETS
    assert [n.gateway for n in plan.nodes] == [tor_address(0)] * 3 + [tor_address(1)] * 2


def test_single_subnet_options_use_one_subnet() -> None:
    plan = plan_lab("mesh", 4)
    assert plan.subnets == SUBNETS[:1]
    assert {n.subnet for n in plan.nodes} == {0}


def test_nat_outgoing_reaches_the_pool() -> None:
    _, cfgs = configs("mesh", nat_outgoing=True)
    assert all(c.ipam.pools[0].nat_outgoing for c in cfgs)


def test_pods_and_namespaces_carry_the_prefix() -> None:
    plan = plan_lab("mesh", 2, 3, prefix="abc-")
    assert [p.name for p in plan.pods] == ["n1-p1", "n1-p2", "n1-p3", "n2-p1", "n2-p2", "n2-p3"]
    assert plan.ns("n1-p2") == "abc-n1-p2"
    assert len({p.container_id for p in plan.pods}) == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"option": "bogus"}, "unknown option"),
        ({"nodes": 0}, "--nodes"),
        ({"nodes": 51}, "--nodes"),
        ({"pods_per_node": 0}, "--pods-per-node"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "a/b"}, "prefix"),
        ({"option": "vxlan-crosssubnet", "nodes": 1}, "at least 2 nodes"),
        ({"family": "ipv5"}, "unknown family 'ipv5'; choose one of ipv4, ipv6, dual"),
        ({"option": "ipip", "family": "dual"}, "option ipip carries IPv4 only"),
        ({"option": "ipip-crosssubnet", "family": "ipv6"}, "choose vxlan or vxlan-crosssub"),
    ],
)
def test_plan_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_lab(**kwargs)  # type: ignore[arg-type]


def test_cli_parses_lab_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["lab", "up", "--option", "rr", "--nodes", "4", "--pods-per-node",
                              "1", "--state-dir", "/tmp/x", "--prefix", "p-"])  # fmt: skip
    assert (args.option, args.nodes, args.pods_per_node, args.prefix) == ("rr", 4, 1, "p-")
    assert callable(args.func) and args.family == "ipv4"
    assert parser.parse_args(["lab", "up", "--family", "dual"]).family == "dual"
    for cmd in ("down", "status"):
        assert callable(parser.parse_args(["lab", cmd]).func)
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "up", "--option", "nope"])


V6_OPTIONS = [o for o, opt in OPTIONS.items() if opt.encap != "ipip"]


@pytest.mark.parametrize("option", V6_OPTIONS)
def test_dual_nodes_have_both_underlays_and_both_pools(option: str) -> None:
    plan, cfgs = configs(option, family="dual")
    assert plan.versions == (4, 6)
    for n, c in zip(plan.nodes, cfgs, strict=True):
        net6 = ipaddress.ip_network(SUBNETS6[n.subnet])
        assert c.node.address6 is not None and c.node.address6.network == net6
        assert c.node.address is not None and str(c.node.router_id) == str(c.node.address.ip)
        assert [str(p.cidr) for p in c.ipam.pools] == [POOL, POOL6]
        assert [p.block_size for p in c.ipam.pools] == [26, 122]
        # Both pools are encapsulated alike (or not at all).
        assert len({(p.ipip_mode, p.vxlan_mode) for p in c.ipam.pools}) == 1
        if c.bgp.enabled:
            assert {str(a) for a in c.bgp.listen} == {n.ip, n.ip6}


def test_dual_tor_session_runs_over_ipv4_and_carries_both_families() -> None:
    from bgp.wire.constants import Family

    _, cfgs = configs("peered", family="dual")
    for c in cfgs:
        [peer] = c.bgp.peers
        assert str(peer.address) == tor_address(0)
        assert set(peer.families) == {Family.IPV4_UNICAST, Family.IPV6_UNICAST}


@pytest.mark.parametrize("option", V6_OPTIONS)
def test_ipv6_only_nodes_have_no_ipv4(option: str) -> None:
    plan, cfgs = configs(option, family="ipv6")
    assert plan.versions == (6,)
    ids = set()
    for n, c in zip(plan.nodes, cfgs, strict=True):
        assert c.node.address is None and c.node.address6 is not None
        assert str(c.node.address6) == n.address6 and n.session_ip == n.ip6
        ids.add(c.node.router_id)  # set explicitly: there is no IPv4 address to take it from
        [pool] = c.ipam.pools
        assert (str(pool.cidr), pool.block_size) == (POOL6, 122)
        if c.bgp.enabled:
            assert [str(a) for a in c.bgp.listen] == [n.ip6]
        for peer in c.bgp.peers:  # the ToR, over IPv6
            assert str(peer.address) == tor_address6(n.subnet)
    assert len(ids) == len(plan.nodes)
    if plan.option.bgp == "rr":
        assert str(cfgs[0].bgp.route_reflector_cluster_id) == plan.nodes[0].router_id


def test_the_ipv4_lab_renders_as_before() -> None:
    """--family ipv4 (the default) has no IPv6 at all."""
    plan, cfgs = configs("mesh")
    assert plan.family == "ipv4" and plan.versions == (4,) and plan.subnets6 == ()
    for c in cfgs:
        assert c.node.address6 is None and [str(p.cidr) for p in c.ipam.pools] == [POOL]
