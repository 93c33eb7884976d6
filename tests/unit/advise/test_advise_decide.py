"""`podbgp advise`: the decision table, the config snippets, cloud detection, route picking."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from podbgp.advise_probes import (
    _default_route,
    _global_addresses,
    detect_cloud,
    pick_address,
    read_dmi,
)
from podbgp.cmd_advise import (
    CLOUD_NOTES,
    OPTIONS,
    Facts,
    decide,
    snippet,
    split_others,
)
from podbgp.config import load_config_text

A = ipaddress.IPv4Address
I4 = ipaddress.IPv4Interface
HERE = I4("10.0.1.5/24")
SAME = (A("10.0.1.6"), A("10.0.1.7"))
ELSEWHERE = (A("10.0.1.6"), A("10.0.2.8"))
GW = A("10.0.1.254")


def facts(**kw: Any) -> Facts:
    base: dict[str, Any] = {"address": HERE, "gateway": GW, "ipip": True, "vxlan": True}
    base.update(kw)
    return Facts(**base)


# (description, facts, expected option) -- the module docstring's order, row by row.
TABLE = [
    ("one subnet, no BGP gateway", facts(others=SAME, gateway_bgp=False), "mesh"),
    ("one subnet, gateway not probed", facts(others=SAME), "mesh"),
    ("no other nodes known", facts(), "mesh"),
    ("gateway speaks BGP", facts(others=SAME, gateway_bgp=True), "peered"),
    ("gateway BGP beats subnets", facts(others=ELSEWHERE, gateway_bgp=True), "peered"),
    ("across subnets, ipip works", facts(others=ELSEWHERE), "ipip-crosssubnet"),
    ("across subnets, no ipip", facts(others=ELSEWHERE, ipip=False), "vxlan-crosssubnet"),
    ("across subnets, ipip unknown", facts(others=ELSEWHERE, ipip=None), "vxlan-crosssubnet"),
    ("across subnets, nothing", facts(others=ELSEWHERE, ipip=False, vxlan=False), "vxlan-crosssubnet"),
    ("aws", facts(others=SAME, cloud="aws"), "vxlan"),
    ("azure", facts(others=ELSEWHERE, cloud="azure"), "vxlan"),
    ("gcp", facts(others=SAME, cloud="gcp", gateway_bgp=True), "vxlan"),
    ("on-prem filtering underlay", facts(others=SAME, underlay_filters=True), "vxlan"),
    ("filters beat a BGP gateway", facts(gateway_bgp=True, underlay_filters=True), "vxlan"),
    ("aws, src/dst check off, one subnet", facts(others=SAME, cloud="aws", underlay_filters=False), "mesh"),
    ("aws, src/dst check off, across", facts(others=ELSEWHERE, cloud="aws", underlay_filters=False), "ipip-crosssubnet"),
    ("azure UDRs across subnets: no ipip", facts(others=ELSEWHERE, cloud="azure", underlay_filters=False), "vxlan-crosssubnet"),
    ("address unknown, others known", facts(address=None, others=SAME, ipip=False), "vxlan-crosssubnet"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "f", "option"), TABLE, ids=[t[0] for t in TABLE])
def test_decision_table(what: str, f: Facts, option: str) -> None:
    advice = decide(f)
    assert advice.option == option, what
    assert len(advice.why) == 2 and all(advice.why)
    assert advice.facts == f


def test_every_option_is_reachable_from_the_table() -> None:
    assert {row[2] for row in TABLE} == set(OPTIONS)


def test_why_names_the_evidence() -> None:
    assert "10.0.1.254" in decide(facts(gateway_bgp=True)).why[0]
    cross = decide(facts(others=ELSEWHERE))
    assert "1 of 2" in cross.why[0] and "10.0.2.8" in cross.why[0] and "10.0.1.0/24" in cross.why[0]
    assert "Azure" in decide(facts(cloud="azure")).why[0]
    assert "No other nodes are known" in decide(facts()).why[0]


def test_notes_say_what_is_missing() -> None:
    assert any("vxlan" in n for n in decide(facts(cloud="aws", vxlan=False)).notes)
    assert any("--address" in n for n in decide(facts(address=None, others=SAME)).notes)
    assert any(
        "modules" in n for n in decide(facts(others=ELSEWHERE, ipip=False, vxlan=False)).notes
    )
    assert decide(facts(others=SAME)).notes == ()


def test_split_others() -> None:
    assert split_others(facts(others=ELSEWHERE)) == ([A("10.0.1.6")], [A("10.0.2.8")])
    assert split_others(facts(address=None, others=SAME)) == ([], list(SAME))


@pytest.mark.parametrize("cloud", ["aws", "azure", "gcp"])
def test_cloud_note_explains_native_routing_and_what_podbgp_adds(cloud: str) -> None:
    note = decide(facts(cloud=cloud)).cloud_note
    assert note == CLOUD_NOTES[cloud]
    native = {"aws": "VPC CNI", "azure": "Azure CNI", "gcp": "VPC-native"}[cloud]
    assert native in note[0]
    assert "podbgp" in note[1]
    assert decide(facts()).cloud_note == ()


def test_aws_note_mentions_the_source_destination_check() -> None:
    assert "source/destination check" in " ".join(CLOUD_NOTES["aws"])
    assert "IP-in-IP" in " ".join(CLOUD_NOTES["azure"])


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize(
    "datastore",
    ["", "sqlite:/var/lib/podbgp/p.db", "etcd:http://10.0.0.9:2379,http://10.0.0.10:2379"],
)
def test_every_snippet_is_a_valid_config(option: str, datastore: str) -> None:
    text = snippet(option, facts(others=SAME, datastore=datastore, node_name="n1"))
    config = load_config_text(text)
    assert config.node.name == "n1"
    pool = config.ipam.pools[0]
    expect = {
        "peered": ("never", "never"),
        "mesh": ("never", "never"),
        "ipip-crosssubnet": ("crosssubnet", "never"),
        "vxlan-crosssubnet": ("never", "crosssubnet"),
        "vxlan": ("never", "always"),
    }[option]
    assert (pool.ipip_mode.value.lower(), pool.vxlan_mode.value.lower()) == expect
    assert pool.nat_outgoing == (option != "peered")


def test_peered_snippet_peers_with_the_gateway() -> None:
    config = load_config_text(snippet("peered", facts(gateway=A("10.0.1.1"))))
    assert not config.bgp.mesh
    assert [str(p.address) for p in config.bgp.peers] == ["10.0.1.1"]


def test_mesh_and_vxlan_snippets() -> None:
    assert load_config_text(snippet("mesh", facts())).bgp.mesh
    assert not load_config_text(snippet("vxlan", facts())).bgp.enabled


def test_snippet_carries_the_node_address_and_pool() -> None:
    text = snippet("mesh", facts(pool="10.77.0.0/16"))
    assert 'address = "10.0.1.5/24"' in text
    assert 'cidr = "10.77.0.0/16"' in text


def test_to_json_shape() -> None:
    out = decide(facts(others=ELSEWHERE, cloud="gcp")).to_json()
    assert set(out) == {"option", "title", "family", "why", "notes", "cloud", "cloud_note",
                        "config", "facts"}  # fmt: skip
    assert out["family"] == "ipv4" and out["facts"]["address6"] is None
    assert out["facts"]["address"] == "10.0.1.5/24"
    assert out["facts"]["others"] == ["10.0.1.6", "10.0.2.8"]
    assert out["cloud"] == "gcp"


DMI = [
    ({"sys_vendor": "Amazon EC2", "product_name": "m5.large", "bios_vendor": "Amazon EC2"}, "aws"),
    ({"sys_vendor": "Xen", "product_name": "HVM domU", "bios_vendor": "Amazon"}, "aws"),
    ({"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine",
      "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77"}, "azure"),
    ({"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine",
      "chassis_asset_tag": "None"}, None),  # plain Hyper-V
    ({"sys_vendor": "Google", "product_name": "Google Compute Engine", "bios_vendor": "Google"}, "gcp"),
    ({"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}, None),
    ({}, None),
]  # fmt: skip


@pytest.mark.parametrize(("dmi", "cloud"), DMI)
def test_detect_cloud(dmi: dict[str, str], cloud: str | None) -> None:
    assert detect_cloud(dmi) == cloud


def test_read_dmi_reads_what_exists(tmp_path: Path) -> None:
    (tmp_path / "sys_vendor").write_text("Google\n")
    (tmp_path / "product_name").write_text("Google Compute Engine\n")
    assert read_dmi(str(tmp_path)) == {
        "sys_vendor": "Google",
        "product_name": "Google Compute Engine",
    }
    assert detect_cloud(read_dmi(str(tmp_path))) == "gcp"
    assert read_dmi(str(tmp_path / "missing")) == {}


def route(gw: str | None, dev: str | None, metric: int = 0, **extra: Any) -> dict[str, Any]:
    """A default route as ``ip -j -4 route show table main`` prints it."""
    r: dict[str, Any] = {"dst": "default", "flags": []}
    if gw:
        r["gateway"] = gw
    if dev:
        r["dev"] = dev
    if metric:
        r["metric"] = metric
    r.update(extra)
    return r


def test_default_route_lowest_metric_wins() -> None:
    routes = [
        {"dst": "10.0.0.0/24", "dev": "eth1", "scope": "link"},
        route("10.0.0.1", "eth1", 200),
        route("10.0.1.1", "eth2", 100),
    ]
    assert _default_route(routes) == (A("10.0.1.1"), "eth2")


def test_default_route_ignores_other_tables_and_blackholes() -> None:
    routes = [route("10.9.9.9", "eth5", table="100"), route(None, None, type="blackhole")]
    assert _default_route(routes) == (None, None)


def test_default_route_multipath_takes_the_first_hop() -> None:
    hops = [{"gateway": "10.0.0.1", "dev": "eth4"}, {"gateway": "10.0.0.2", "dev": "eth5"}]
    assert _default_route([route(None, None, nexthops=hops)]) == (A("10.0.0.1"), "eth4")


def test_global_addresses_from_ip_json() -> None:
    links = [
        {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
        {
            "ifname": "eth0",
            "addr_info": [{"local": "10.0.1.5", "prefixlen": 24, "scope": "global"}],
        },
    ]
    assert _global_addresses(links) == [("eth0", I4("10.0.1.5/24"))]


def test_pick_address_prefers_the_gateways_subnet_on_the_default_interface() -> None:
    addrs = [("a", I4("192.168.9.1/24")), ("b", I4("172.16.0.5/16")), ("b", I4("10.0.1.5/24"))]
    assert pick_address(addrs, A("10.0.1.254"), "b") == I4("10.0.1.5/24")
    assert pick_address(addrs, A("10.9.0.1"), "b") == I4("172.16.0.5/16")
    assert pick_address(addrs, None, None) == I4("192.168.9.1/24")
    assert pick_address([], None, None) is None


def test_advise_recommends_among_the_one_list_of_options_with_its_titles() -> None:
    from podbgp.cmd_advise import TITLES
    from podbgp.lab.labplan import OPTIONS as ALL

    assert set(OPTIONS) <= set(ALL)
    assert {name: ALL[name].title for name in OPTIONS} == TITLES


# -- IPv6 and dual stack -------------------------------------------------------------------
I6 = ipaddress.IPv6Interface
A6 = ipaddress.IPv6Address
HERE6 = I6("fd00:1::5/64")


def test_both_underlay_addresses_make_the_advice_dual_stack() -> None:
    advice = decide(facts(others=SAME, address6=HERE6))
    assert (advice.option, advice.family, advice.notes) == ("mesh", "dual", ())
    config = load_config_text(advice.snippet)
    assert str(config.node.address) == "10.0.1.5/24" and str(config.node.address6) == str(HERE6)
    assert [(str(p.cidr), p.block_size) for p in config.ipam.pools] == [
        ("10.244.0.0/16", 26), ("fd00:10:244::/56", 122)]  # fmt: skip


def test_asking_for_dual_stack_without_an_ipv6_underlay_is_ipv4_with_the_reason() -> None:
    advice = decide(facts(others=SAME, family="dual"))
    assert advice.family == "ipv4"
    assert any("node.address6" in n and "RFC 2545" in n and "IPv4-only" in n
               for n in advice.notes), advice.notes  # fmt: skip
    assert "address6" not in advice.snippet
    assert decide(facts(address6=HERE6, family="ipv4")).family == "ipv4"


def test_dual_stack_across_subnets_takes_vxlan_because_ipip_is_ipv4_only() -> None:
    advice = decide(facts(others=ELSEWHERE, address6=HERE6))
    assert (advice.option, advice.family) == ("vxlan-crosssubnet", "dual")
    assert "RFC 2003" in advice.why[1]
    pools = load_config_text(advice.snippet).ipam.pools
    assert {p.vxlan_mode.value for p in pools} == {"CrossSubnet"}
    assert decide(facts(others=ELSEWHERE)).option == "ipip-crosssubnet"  # IPv4 as before


def test_an_ipv6_only_node_is_judged_by_its_ipv6_subnet_and_peers() -> None:
    near, far = A6("fd00:1::6"), A6("fd00:2::7")
    one = decide(facts(address=None, gateway=None, address6=HERE6, others6=(near,)))
    assert (one.option, one.family) == ("mesh", "ipv6")
    config = load_config_text(one.snippet)
    assert config.node.address is None and str(config.node.address6) == str(HERE6)
    assert config.node.router_id is not None  # set: there is no IPv4 address to take it from
    assert [(str(p.cidr), p.block_size) for p in config.ipam.pools] == [("fd00:10:244::/56", 122)]
    two = decide(facts(address=None, gateway=None, address6=HERE6, others6=(near, far)))
    assert two.option == "vxlan-crosssubnet" and "fd00:2::7" in two.why[0]
    assert "fd00:1::/64" in two.why[0]


def test_peered_snippets_per_family() -> None:
    dual = load_config_text(snippet("peered", facts(address6=HERE6), "dual"))
    [peer] = dual.bgp.peers
    assert str(peer.address) == "10.0.1.254"  # one IPv4 session carries both families
    assert {f.name for f in peer.families} == {"IPV4_UNICAST", "IPV6_UNICAST"}
    six = load_config_text(snippet("peered", facts(address6=HERE6, gateway6=A6("fd00:1::fe")),
                                   "ipv6"))  # fmt: skip
    [peer] = six.bgp.peers
    assert str(peer.address) == "fd00:1::fe" and [f.name for f in peer.families] == ["IPV6_UNICAST"]


def test_global_ipv6_addresses_leave_out_temporary_and_deprecated_ones() -> None:
    links = [{"ifname": "eth0", "addr_info": [
        {"family": "inet6", "local": "fd00:1::5", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fd00:1::99", "prefixlen": 64, "scope": "global",
         "temporary": True},
        {"family": "inet6", "local": "fd00:1::98", "prefixlen": 64, "scope": "global",
         "deprecated": True},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
    ]}]  # fmt: skip
    assert _global_addresses(links, "inet6") == [("eth0", HERE6)]
    assert _global_addresses(links) == []
