"""Config → IPAM, registry and FIB values; structured logs."""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path

import pytest

from fib.model import Encap, pack_addr
from podbgp import logs, wiring
from podbgp.config import load_config_text

CONFIG = """
[node]
name = "node-a"
asn = 64512
address = "10.0.0.1/24"

[datastore]
path = "/tmp/x.db"

[[ipam.pool]]
cidr = "10.244.0.0/16"
vxlan_mode = "CrossSubnet"

[[ipam.pool]]
cidr = "10.245.0.0/16"
ipip_mode = "Always"
disable_bgp_export = true
"""


def test_pools_and_registry() -> None:
    cfg = load_config_text(CONFIG)
    icfg = wiring.ipam_config(cfg)
    assert [(str(p.cidr), p.block_size, p.vxlan_mode) for p in icfg.pools] == [
        ("10.244.0.0/16", 26, "CrossSubnet"),
        ("10.245.0.0/16", 26, "Never"),
    ]
    assert icfg.pools[1].disable_bgp_export
    assert wiring.datastore_url(cfg) == "sqlite:/tmp/x.db"
    assert wiring.uses_vxlan(cfg)
    rec = wiring.registry_record(cfg, "10.244.3.0")
    assert (rec.name, rec.asn, rec.address, rec.vtep_address) == (
        "node-a",
        64512,
        "10.0.0.1/24",
        "10.244.3.0",
    )
    assert rec.vtep_mac and rec.vtep_mac == wiring.registry_record(cfg, "x").vtep_mac


@pytest.mark.parametrize(
    ("prefix", "ipip", "vxlan"),
    [
        ("10.244.1.0/26", Encap.NEVER, Encap.CROSS_SUBNET),
        ("10.244.1.7/32", Encap.NEVER, Encap.CROSS_SUBNET),  # borrowed address
        ("10.245.0.64/26", Encap.ALWAYS, Encap.NEVER),
        ("192.168.5.0/24", Encap.NEVER, Encap.NEVER),  # outside every pool: plain route
    ],
)
def test_remote_route_takes_the_pools_encapsulation(prefix: str, ipip: Encap, vxlan: Encap) -> None:
    cfg = load_config_text(CONFIG)
    route = wiring.remote_route(cfg, ipaddress.ip_network(prefix), ["10.0.0.3", "10.0.0.2"])
    assert (route.ipip, route.vxlan) == (ipip, vxlan)
    assert route.next_hops == (pack_addr("10.0.0.2"), pack_addr("10.0.0.3"))
    assert str(route.prefix) == prefix


def test_log_levels_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert logs.parse_levels("warning,fib=debug") == {
        "podbgp": logging.WARNING,
        "podbgp.fib": logging.DEBUG,
    }
    with pytest.raises(ValueError, match="not one of"):
        logs.parse_levels("nope=debug")
    with pytest.raises(ValueError, match="not a log level"):
        logs.parse_levels("loud")
    logs.setup("json", "info,fib=debug")
    logging.getLogger("podbgp.fib").debug("installed %d", 3, extra={"routes": 3})
    logging.getLogger("podbgp.bgp").debug("hidden")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert (rec["level"], rec["part"], rec["msg"], rec["routes"]) == (
        "debug",
        "fib",
        "installed 3",
        3,
    )
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("podbgp.fib").setLevel(logging.NOTSET)
    logging.getLogger("fib").setLevel(logging.NOTSET)


def test_a_part_level_reaches_the_loggers_of_its_package(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--log-level bgp=debug` reaches bgp.speaker and bgp.session, which log under their
    package's name, not under podbgp.bgp; other parts stay at the default level."""
    try:
        logs.setup("text", "info,bgp=debug,fib=debug")
        logging.getLogger("bgp.speaker").debug("speaker detail")
        logging.getLogger("bgp.session").debug("session detail")
        logging.getLogger("fib.anything").debug("fib detail")
        logging.getLogger("podbgp.bgp").debug("node detail")
        logging.getLogger("rib.core").debug("hidden")
        logging.getLogger("podbgp.daemon").debug("hidden too")
        err = capsys.readouterr().err
        for text in ("speaker detail", "session detail", "fib detail", "node detail"):
            assert text in err, err
        assert "hidden" not in err, err
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)
        for name in ("podbgp.bgp", "podbgp.fib", "bgp", "fib"):
            logging.getLogger(name).setLevel(logging.NOTSET)


LABELLED = """
[node]
name = "rack1-a"
asn = 64512
address = "10.0.0.1/24"
labels = { rack = "r1", "topology.example.com/zone" = "z1" }

[datastore]
path = "{db}"

[[ipam.pool]]
cidr = "10.250.0.0/24"
node_selector = 'rack == "r2"'

[[ipam.pool]]
cidr = "10.251.0.0/24"
node_selector = 'rack == "r1" && has(topology.example.com/zone)'
"""


async def test_node_labels_reach_the_registry_and_select_pools(tmp_path: Path) -> None:
    from ipam import Ipam, NodeRegistry
    from ipam.store import OpenMode, open_store

    cfg = load_config_text(LABELLED.replace("{db}", str(tmp_path / "ipam.db")))
    assert cfg.node.labels == (("rack", "r1"), ("topology.example.com/zone", "z1"))
    store = open_store(wiring.datastore_url(cfg), OpenMode.CREATE)
    try:
        await NodeRegistry(store).register(wiring.registry_record(cfg))
        got = await Ipam(store, wiring.ipam_config(cfg)).allocate(cfg.node.name, "pod-1")
    finally:
        await store.close()
    assert got.address in ipaddress.ip_network("10.251.0.0/24")


def test_route_server_peer_skips_the_first_as_check() -> None:
    from podbgp.wiring import peer_settings

    cfg = load_config_text(
        '[node]\nname = "n"\nasn = 64512\naddress = "10.0.0.1/24"\n[bgp]\nmesh = false\n'
        '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 64600\nenforce_first_as = false\n'
        '[[bgp.peer]]\naddress = "10.0.0.8"\nasn = 64601\n'
    )
    rs, plain = (peer_settings(cfg, p, str(p.address)) for p in cfg.bgp.peers)
    assert (rs.enforce_first_as, plain.enforce_first_as) == (False, True)


def test_long_lived_stale_time_reaches_the_sessions_inherited_or_per_peer() -> None:
    from podbgp.wiring import peer_settings

    cfg = load_config_text(
        '[node]\nname = "n"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        "[bgp]\nmesh = false\nlong_lived_stale_time = 3600\n"
        '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 64600\n'
        '[[bgp.peer]]\naddress = "10.0.0.8"\nasn = 64601\nlong_lived_stale_time = 0\n'
    )
    inherited, off = (peer_settings(cfg, p, str(p.address)) for p in cfg.bgp.peers)
    assert (inherited.long_lived_stale_time, off.long_lived_stale_time) == (3600, 0)


POLICIES = """
[node]
name = "n"
asn = 64512
address = "10.0.0.1/24"

[[policy]]
name = "every-key"
default_action = "accept"
[[policy.rule]]
match = { prefix = "10.244.0.0/16", ge = 26, le = 32, community = "64512:100", large_community = "64512:1:2", as_path = "^64600( |$)", family = "ipv4", neighbor = "10.0.0.0/24", origin = "egp" }
action = "accept"
set = { local_pref = 200, med = 7, community_add = ["64512:1", "no-export"], community_remove = ["64512:100"], large_community_add = ["1:2:3"], large_community_remove = ["64512:1:2"], as_path_prepend = 2, next_hop = "10.0.0.7" }
[[policy.rule]]
match = { prefix = "fd00::/48", ge = 64, family = "ipv6", origin = "incomplete" }
action = "reject"
[[policy.rule]]
match = { prefix = "10.245.0.0/16", le = 24 }
set = { next_hop = "self" }
[[policy.rule]]
match = { neighbor = "fd00::1" }
set = { next_hop = "keep" }

[[policy]]
name = "empty"
"""


def test_rib_policy_is_the_policy_the_toml_describes() -> None:
    """The typed mapping builds exactly what rib.policy builds from the TOML table itself,
    for every condition and change a rule can have (no text in between)."""
    import tomllib

    from podbgp.wiring import rib_policy
    from rib.policy import Policy

    cfg = load_config_text(POLICIES)
    raw = tomllib.loads(POLICIES)["policy"]
    for table in raw:
        table.setdefault("default_action", "reject")
        assert rib_policy(cfg.policy(table["name"])) == Policy.from_data(table), table["name"]


def test_rib_policy_evaluates_the_config() -> None:
    from bgp.wire.attributes import PathAttributes
    from bgp.wire.constants import Family
    from podbgp.wiring import rib_policy
    from rib.policy import parse_community

    cfg = load_config_text(POLICIES)
    p = rib_policy(cfg.policy("every-key"))
    attrs = PathAttributes(
        origin=1,
        as_path=((2, (64600,)),),
        communities=(parse_community("64512:100"),),
        large_communities=((64512, 1, 2),),
    )
    key = bytes([26, 10, 244, 1, 0])
    v = p.evaluate(Family.IPV4_UNICAST, key, attrs, peer=ipaddress.ip_address("10.0.0.9"),
                   local_as=64512)  # fmt: skip
    assert v is not None
    assert (v.attrs.local_pref, v.attrs.med, v.next_hop) == (
        200,
        7,
        ipaddress.ip_address("10.0.0.7"),
    )
    assert parse_community("64512:100") not in v.attrs.communities
    assert parse_community("no-export") in v.attrs.communities
    assert v.attrs.large_communities == ((1, 2, 3),)
    # The same route from a peer outside match.neighbor falls through to default_action.
    other = p.evaluate(Family.IPV4_UNICAST, key, attrs, peer=ipaddress.ip_address("10.9.0.9"))
    assert other is not None and other.attrs is attrs
    assert rib_policy(cfg.policy("empty")).evaluate(Family.IPV4_UNICAST, key, attrs) is None


WIRED = """
[node]
name = "n"
asn = 64512
address = "10.0.0.1/24"
address6 = "fd00::1/64"
[bgp]
hold_time = 30
add_path = "both"
route_reflector_cluster_id = "1.2.3.4"
deferral_time = 100
[[bgp.peer]]
address = "10.0.0.9"
asn = 64600
families = ["ipv6"]
add_path = "send"
add_path_send_max = 0
import = "none"
max_prefixes = 5
[[bgp.peer]]
address = "10.0.0.8"
asn = 64512
add_path = "receive"
route_reflector_client = true
[[bgp.listen_range]]
prefix = "10.1.0.0/16"
asn = 64700
"""


def test_wiring_maps_bgp_and_rib_settings() -> None:
    from bgp.settings import AddPathMode
    from bgp.wire.constants import Family
    from podbgp.topology import MeshPeer
    from podbgp.wiring import (
        mesh_options,
        peer_policy,
        peer_settings,
        rib_policies,
        rib_settings,
        speaker_settings,
    )

    cfg = load_config_text(WIRED)
    rs = rib_settings(cfg, restarting=True)
    assert (rs.local_as, str(rs.cluster_id), rs.deferral_time, rs.restarting) == (
        64512, "1.2.3.4", 100.0, True,
    )  # fmt: skip
    assert rs.local_addresses == {ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("fd00::1")}
    policies = rib_policies(cfg)
    assert set(policies) == {"all", "none", "local"}
    ebgp, client = cfg.bgp.peers
    pp = peer_policy("10.0.0.9", ebgp, policies)
    # add_path_send_max = 0 with "send" means every path (-1); receive is not asked for.
    assert (pp.add_path_send, pp.add_path_receive, pp.max_prefixes) == (-1, False, 5)
    assert pp.import_policy is policies["none"] and pp.families == (Family.IPV6_UNICAST,)
    cp = peer_policy("10.0.0.8", client, policies)
    assert (cp.add_path_send, cp.add_path_receive, cp.route_reflector_client) == (0, True, True)
    ps = peer_settings(cfg, ebgp, "10.0.0.9", restarting=True)
    assert (ps.add_path, ps.families, ps.hold_time, ps.keepalive, ps.restarting) == (
        AddPathMode.SEND, (Family.IPV6_UNICAST,), 30, 10, True,
    )  # fmt: skip
    sp = speaker_settings(cfg)
    assert [(r.prefix, r.template.asn) for r in sp.listen_ranges] == [("10.1.0.0/16", 64700)]
    mesh = mesh_options(
        cfg, MeshPeer("m", "10.0.0.5", 64512, passive=True, route_reflector_client=False)
    )
    assert (mesh.hold_time, mesh.add_path, mesh.import_policy, mesh.passive) == (
        30, AddPathMode.BOTH, "all", True,
    )  # fmt: skip
    assert mesh.families == (Family.IPV4_UNICAST, Family.IPV6_UNICAST)


IPV6_ONLY = """
[node]
name = "n6"
asn = 64512
router_id = "10.0.0.6"
address6 = "fd00::6/64"
[[ipam.pool]]
cidr = "fd00:10:244::/56"
"""


def test_an_ipv6_only_node_meshes_over_ipv6_with_ipv6_unicast_only() -> None:
    """Before, the mesh was always built from IPv4 addresses (an IPv6-only node had no
    peers), mesh sessions asked for IPv4 unicast without an IPv4 next hop to give, and the
    FIB had no node (no remote route was ever planned)."""
    from bgp.wire.constants import Family
    from podbgp.node import fib_node
    from podbgp.topology import MeshPeer
    from podbgp.wiring import mesh_family, mesh_options

    cfg = load_config_text(IPV6_ONLY)
    assert mesh_family(cfg) == 6
    assert mesh_family(load_config_text(WIRED)) == 4  # dual stack: over IPv4
    opts = mesh_options(cfg, MeshPeer("m", "fd00::7", 64512, False, False))
    assert opts.families == (Family.IPV6_UNICAST,)
    node = fib_node(cfg)
    assert node is not None
    assert (node.address, node.prefixlen) == (ipaddress.ip_address("fd00::6").packed, 64)
    assert node.same_subnet(ipaddress.ip_address("fd00::9").packed)


def test_vteps_from_the_registry_stand_for_each_next_hop_of_a_node() -> None:
    """A dual-stack node's VTEP is found by its IPv4 and its IPv6 address (the next hops of
    its two blocks); an IPv6-only node's has an IPv6 underlay and no VTEP address."""
    import ipam
    from fib.model import pack_addr, vtep_mac
    from podbgp.node import vteps

    dual = ipam.Node(name="d", asn=1, address="10.0.0.2/24", address6="fd00::2/64",
                     vtep_mac=vtep_mac("d"), vtep_address="10.244.1.0")  # fmt: skip
    six = ipam.Node(name="s", asn=1, address6="fd00::3/64", vtep_mac=vtep_mac("s"))
    plain = ipam.Node(name="p", asn=1, address="10.0.0.4/24")  # no VXLAN: no VTEP
    got = vteps([dual, six, plain], "me")
    assert set(got) == {pack_addr("10.0.0.2"), pack_addr("fd00::2"), pack_addr("fd00::3")}
    d = got[pack_addr("fd00::2")]
    assert d is got[pack_addr("10.0.0.2")] and d.node_address == pack_addr("10.0.0.2")
    assert d.vtep_address == pack_addr("10.244.1.0") and d.node_address6 == pack_addr("fd00::2")
    s = got[pack_addr("fd00::3")]
    assert (s.node_address, s.vtep_address, s.node_address6) == (pack_addr("fd00::3"), b"", b"")


def test_an_ipv6_only_vxlan_node_needs_no_ipv4_vtep_address() -> None:
    """Before, the daemon asked IPAM for an IPv4 tunnel address and an IPv6-only VXLAN node
    stopped with "no enabled IPv4 pool selects node"; its registry record still carries
    its VTEP MAC, so the others can reach it."""
    from podbgp.wiring import registry_record, uses_vxlan, uses_vxlan4

    cfg = load_config_text(IPV6_ONLY.replace('cidr = "fd00:10:244::/56"',
                                             'cidr = "fd00:10:244::/56"\nvxlan_mode = "Always"'))  # fmt: skip
    assert uses_vxlan(cfg) and not uses_vxlan4(cfg)
    record = registry_record(cfg)
    assert record.vtep_mac and not record.vtep_address


def test_every_logger_of_the_daemon_has_a_part_to_set_its_level() -> None:
    """Each `podbgp.<part>` logger in the code can be set with `--log-level part=...`."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    named = set()
    for path in [*root.glob("podbgp/*.py"), *root.glob("bfd/*.py")]:
        named |= set(re.findall(r'getLogger\("(?:podbgp\.)?([a-z]+)', path.read_text()))
    assert named - {"podbgp"} <= set(logs.PARTS), named - set(logs.PARTS)
    assert logs.loggers_of("podbgp.bfd") == ("podbgp.bfd", "bfd")


def test_wiring_maps_fib_settings() -> None:
    from podbgp import wiring

    cfg = load_config_text(
        CONFIG + "[fib]\ntable = 100\nprotocol = 81\nresync_interval = 0\nnexthops = false\n"
    )
    fc = wiring.fib_settings(cfg)
    assert (fc.table, fc.protocol, fc.resync_interval, fc.nexthops) == (100, 81, 0.0, False)
