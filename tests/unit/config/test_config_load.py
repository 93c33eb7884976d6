"""Loading valid configs: defaults, typed values, inheritance, and the round trip.

The defaults are written out here from docs/configuration.md so that a changed
default is a failing test.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest

from bgp.settings import AddPathMode
from bgp.wire.constants import Family, Origin
from fib.model import Encap
from fib.reconciler import FibConfig
from podbgp.cmd_check import format_toml
from podbgp.config import (
    Community,
    Config,
    ConfigError,
    DatastoreKind,
    FIBConfig,
    LargeCommunity,
    PolicyAction,
    diff_configs,
    load_config,
    load_config_text,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
CONTRACT = Path(__file__).parent / "data" / "contract.toml"
MINIMAL = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'

# Every default, in the TOML shape `podbgp check` prints for MINIMAL.
DEFAULTS = {
    "node": {"name": "n1", "asn": 64512, "router_id": "10.0.0.1", "address": "10.0.0.1/24"},
    "bgp": {
        "enabled": True,
        "listen": ["0.0.0.0", "::"],
        "port": 179,
        "hold_time": 90,
        "keepalive": 30,
        "connect_retry": 5,
        "connect_retry_max": 120,
        "mesh": True,
        "mesh_password": "",
        "route_reflector_cluster_id": "",
        "route_reflector_group_label": "",
        "route_reflector_cluster_id_label": "",
        "graceful_restart": True,
        "restart_time": 120,
        "long_lived_stale_time": 0,
        "add_path": "off",
        "max_paths": 8,
        "always_compare_med": False,
        "honor_graceful_shutdown": True,
        "max_prefixes_restart": 60,
        "deferral_time": 360,
        "bfd": False,
        "bfd_interval_ms": 300,
        "bfd_multiplier": 3,
        "peer": [],
        "originate": [],
        "listen_range": [],
        "prefix_advertisement": [],
    },
    "policy": [],
    "datastore": {
        "kind": "sqlite",
        "path": "/var/lib/podbgp/podbgp.db",
        "endpoints": ["http://127.0.0.1:2379"],
        "create": False,
        "cluster_id_file": "",
    },
    "ipam": {
        "strict_affinity": False,
        "max_blocks_per_node": 20,
        "node_lease_ttl": 15,
        "node_gone_grace": 60,
        "node_gone_after": 86400,
        "node_forget_after": 2592000,
        "leak_grace": 300,
        "leak_check_interval": 30,
        "pool": [],
        "reservation": [],
    },
    "fib": {
        "enabled": True,
        "table": 254,
        "protocol": 80,
        "resync_interval": 90,
        "nexthops": True,
        "pod_mtu": 0,
        "ipip_mtu": 0,
        "vxlan_mtu": 0,
    },
    "api": {"socket": "/run/podbgp/podbgp.sock", "metrics": "127.0.0.1:9469"},
    "bmp": {"station": [], "sys_name": "", "sys_descr": ""},
    "mrt": {
        "directory": "/var/lib/podbgp/mrt",
        "table_dump_interval": 0,
        "file_pattern": "rib.%Y%m%d.%H%M%S.mrt",
        "keep": 24,
        "update_dump_interval": 0,
        "update_file_pattern": "updates.%Y%m%d.%H%M%S.mrt",
    },
    "service": [],
}

PEER_DEFAULTS = {
    "address": "10.0.0.254",
    "asn": 65000,
    "local_address": "",
    "port": 179,
    "passive": False,
    "password": "",
    "ttl_security": 0,
    "multihop": 1,
    "route_reflector_client": False,
    "keep_original_next_hop": False,
    "families": ["ipv4", "ipv6"],
    "import": "all",
    "export": "local",
    "max_prefixes": 0,
    "shutdown_message": "",
    "hold_time": 90,
    "keepalive": 30,
    "connect_retry_max": 120,
    "graceful_restart": True,
    "long_lived_stale_time": 0,
    "add_path": "off",
    "add_path_send_max": 0,
    "soft_reconfiguration": False,
    "enforce_first_as": True,
    "local_asn": 0,
    "allow_own_as": 0,
    "node_selector": "all()",
    "bfd": False,
    "bfd_interval_ms": 300,
    "bfd_multiplier": 3,
    "extended_nexthop": False,
}


def test_defaults_of_a_minimal_config() -> None:
    assert load_config_text(MINIMAL).to_dict() == DEFAULTS


def test_peer_defaults() -> None:
    cfg = load_config_text(MINIMAL + '[[bgp.peer]]\naddress = "10.0.0.254"\nasn = 65000\n')
    assert cfg.to_dict()["bgp"]["peer"] == [PEER_DEFAULTS]


def test_pool_defaults_per_family() -> None:
    cfg = load_config_text(
        MINIMAL
        + '[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
        + '[[ipam.pool]]\ncidr = "fd00:244::/48"\n'
        + '[[ipam.pool]]\ncidr = "10.250.0.0/28"\n'
    )
    v4, v6, small = cfg.ipam.pools
    assert (v4.block_size, v6.block_size) == (26, 122)
    # A pool smaller than a default block is one block.
    assert small.block_size == 28
    assert v4.ipip_mode is Encap.NEVER and v4.vxlan_mode is Encap.NEVER
    assert (v4.nat_outgoing, v4.disabled, v4.disable_bgp_export) == (False, False, False)
    assert v4.node_selector == "all()"


def test_typed_values() -> None:
    cfg = load_config(CONTRACT)
    assert cfg.node.router_id == ipaddress.IPv4Address("10.0.0.1")
    assert cfg.node.address == ipaddress.IPv4Interface("10.0.0.1/24")
    assert cfg.node.address.network == ipaddress.IPv4Network("10.0.0.0/24")
    assert cfg.node.address6 == ipaddress.IPv6Interface("fd00::1/64")
    assert cfg.bgp.listen == (ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv6Address("::"))
    (peer,) = cfg.bgp.peers
    assert peer.address == ipaddress.IPv4Address("10.0.0.254")
    assert peer.families == (Family.IPV4_UNICAST, Family.IPV6_UNICAST)
    assert (peer.import_policy, peer.export_policy) == ("all", "local")
    assert peer.local_address is None
    (orig,) = cfg.bgp.originate
    assert orig.prefix == ipaddress.IPv4Network("10.96.0.0/12")
    assert orig.communities == (Community(64512, 300),)
    assert orig.next_hop == "self"
    (rng,) = cfg.bgp.listen_ranges
    assert rng.prefix == ipaddress.IPv4Network("10.0.0.0/24") and rng.passive
    policy = cfg.policy("tor-out")
    (rule,) = policy.rules
    assert rule.match.prefix == ipaddress.IPv4Network("10.244.0.0/16")
    assert (rule.match.ge, rule.match.le) == (26, 32)
    assert rule.match.community == Community(64512, 100)
    assert rule.action is PolicyAction.ACCEPT
    assert rule.set.local_pref == 200 and rule.set.med == 10
    assert rule.set.community_add == (Community(64512, 1),)
    assert rule.set.as_path_prepend == 2 and rule.set.next_hop == "self"
    assert policy.default_action is PolicyAction.REJECT
    assert cfg.datastore.kind is DatastoreKind.SQLITE
    assert cfg.api.metrics == ("127.0.0.1", 9469)
    with pytest.raises(KeyError):
        cfg.policy("missing")


def test_dataclasses_are_frozen_slotted_and_hashable() -> None:
    cfg = load_config(CONTRACT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bgp.port = 1  # type: ignore[misc]
    assert not hasattr(cfg.bgp.peers[0], "__dict__")
    assert isinstance(cfg.bgp.peers, tuple)
    assert len({cfg.bgp.peers[0], cfg.bgp.peers[0]}) == 1


def test_router_id_defaults_to_node_address() -> None:
    cfg = load_config_text('[node]\nname = "n"\nasn = 1\naddress = "192.0.2.7/24"\n')
    assert cfg.node.router_id == ipaddress.IPv4Address("192.0.2.7")


def test_router_id_alone_is_enough_without_bgp_mesh() -> None:
    cfg = load_config_text(
        '[node]\nname = "rs"\nasn = 1\nrouter_id = "192.0.2.1"\n[bgp]\nmesh = false\n'
    )
    assert cfg.node.address is None and cfg.node.router_id == ipaddress.IPv4Address("192.0.2.1")


def test_keepalive_defaults_to_a_third_of_hold_time() -> None:
    cfg = load_config_text(MINIMAL + "[bgp]\nhold_time = 9\n")
    assert (cfg.bgp.hold_time, cfg.bgp.keepalive) == (9, 3)
    cfg = load_config_text(MINIMAL + "[bgp]\nhold_time = 0\n")
    assert (cfg.bgp.hold_time, cfg.bgp.keepalive) == (0, 0)


def test_hold_time_zero_allows_any_keepalive() -> None:
    cfg = load_config_text(MINIMAL + "[bgp]\nhold_time = 0\nkeepalive = 30\n")
    assert cfg.bgp.hold_time == 0


def test_peers_inherit_from_bgp_and_override() -> None:
    text = MINIMAL + (
        '[bgp]\nhold_time = 30\ngraceful_restart = false\nadd_path = "receive"\n'
        '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 65000\n'
        '[[bgp.peer]]\naddress = "10.0.0.3"\nasn = 65000\nhold_time = 6\n'
        'graceful_restart = true\nadd_path = "both"\nadd_path_send_max = 4\n'
        '[[bgp.peer]]\naddress = "10.0.0.4"\nasn = 65000\nkeepalive = 20\n'
    )
    inherited, overridden, keepalive_only = load_config_text(text).bgp.peers
    assert (inherited.hold_time, inherited.keepalive) == (30, 10)
    assert inherited.graceful_restart is False and inherited.add_path is AddPathMode.RECEIVE
    assert (overridden.hold_time, overridden.keepalive) == (6, 2)
    assert overridden.graceful_restart is True and overridden.add_path is AddPathMode.BOTH
    assert overridden.add_path_send_max == 4
    assert (keepalive_only.hold_time, keepalive_only.keepalive) == (30, 20)


def test_connect_retry_max_is_global_and_per_peer() -> None:
    text = MINIMAL + (
        "[bgp]\nconnect_retry_max = 30\n"
        '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 65000\n'
        '[[bgp.peer]]\naddress = "10.0.0.3"\nasn = 65000\nconnect_retry_max = 8\n'
    )
    cfg = load_config_text(text)
    assert cfg.bgp.connect_retry_max == 30
    assert [p.connect_retry_max for p in cfg.bgp.peers] == [30, 8]


def test_bgp_disabled_leaves_the_mesh() -> None:
    cfg = load_config_text(MINIMAL + "[bgp]\nenabled = false\n")
    assert cfg.bgp.enabled is False and cfg.bgp.mesh is False


def test_cluster_id_forms() -> None:
    for text, expected in (("1.2.3.4", "1.2.3.4"), ("42", "0.0.0.42"), ("", None)):
        cfg = load_config_text(MINIMAL + f'[bgp]\nroute_reflector_cluster_id = "{text}"\n')
        want = ipaddress.IPv4Address(expected) if expected else None
        assert cfg.bgp.route_reflector_cluster_id == want
        assert cfg.bgp.is_route_reflector is (want is not None)


def test_route_reflector_clients() -> None:
    client = '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 64512\nroute_reflector_client = true\n'
    cfg = load_config_text(MINIMAL + '[bgp]\nroute_reflector_cluster_id = "1.1.1.1"\n' + client)
    assert cfg.bgp.peers[0].route_reflector_client and cfg.bgp.is_route_reflector
    # Without a cluster ID the node reflects for its client and stays in the mesh.
    cfg = load_config_text(MINIMAL + client)
    assert cfg.bgp.peers[0].route_reflector_client and cfg.bgp.mesh
    assert not cfg.bgp.is_route_reflector


def test_policy_match_and_set_forms() -> None:
    cfg = load_config_text(
        MINIMAL
        + '[[policy]]\nname = "p"\ndefault_action = "accept"\n[[policy.rule]]\n'
        + 'match = { large_community = "64512:1:2", as_path = "^65000 ", family = "ipv6", '
        + 'neighbor = "10.0.0.0/24", origin = "igp", community = "No-Export" }\n'
        + 'set = { next_hop = "fd00::9", community_remove = ["blackhole"], '
        + 'large_community_add = ["1:2:3"], local_pref = 0 }\n'
    )
    rule = cfg.policy("p").rules[0]
    assert rule.match.large_community == LargeCommunity(64512, 1, 2)
    assert rule.match.as_path == re.compile("^65000 ")
    assert rule.match.family is Family.IPV6_UNICAST and rule.match.origin is Origin.IGP
    assert rule.match.neighbor == ipaddress.IPv4Network("10.0.0.0/24")
    # RFC 1997 NO_EXPORT and RFC 7999 BLACKHOLE by name.
    assert rule.match.community is not None and rule.match.community.packed == 0xFFFFFF01
    assert rule.set.community_remove == (Community(0xFFFF, 0x029A),)
    assert rule.set.next_hop == ipaddress.IPv6Address("fd00::9")
    assert rule.set.local_pref == 0
    assert str(LargeCommunity(1, 2, 3)) == "1:2:3" and str(Community(1, 2)) == "1:2"


def test_valid_boundaries() -> None:
    cfg = load_config_text(
        '[node]\nname = "n"\nasn = 4294967295\naddress = "10.0.0.1/24"\n'
        + "[bgp]\nhold_time = 3\nkeepalive = 1\nport = 65535\n"
        + '[[bgp.peer]]\naddress = "fe80::1%eth0"\nasn = 1\n'
        + f'password = "{"p" * 80}"\nttl_security = 254\nfamilies = ["ipv6"]\n'
        + f'shutdown_message = "{"m" * 255}"\n'
        + '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 65000\nmultihop = 255\n'
        + "[fib]\ntable = 4294967295\nprotocol = 255\n"
        + '[api]\nmetrics = "[::1]:0"\n'
    )
    assert cfg.node.asn == 4294967295
    assert cfg.bgp.peers[0].address == ipaddress.IPv6Address("fe80::1%eth0")
    assert cfg.api.metrics == ("::1", 0)


def test_fib_nexthops_maps_to_the_reconciler() -> None:
    """`[fib] nexthops`: kernel nexthop objects (default) or inline hops, read by the
    daemon into `fib.reconciler.FibConfig(nexthops=...)`; listed by `podbgp check`."""
    base = '[node]\nname = "n"\nasn = 64512\naddress = "10.0.0.1/24"\n'
    assert load_config_text(base).fib.nexthops is True
    off = load_config_text(base + "[fib]\nnexthops = false\n")
    assert off.fib.nexthops is False
    assert off.to_dict()["fib"]["nexthops"] is False
    assert load_config_text(format_toml(off.to_dict())) == off
    assert off.diff(load_config_text(base)).changed_keys == ("fib.nexthops",)
    # The daemon's mapping (podbgp/daemon.py `_start_fib`), same field name and type.
    assert FibConfig().nexthops is FIBConfig().nexthops is True
    assert {f.name for f in dataclasses.fields(FibConfig)} <= {
        f.name for f in dataclasses.fields(FIBConfig)
    }


def test_round_trip_of_the_contract_example() -> None:
    cfg = load_config(CONTRACT)
    assert load_config_text(format_toml(cfg.to_dict())) == cfg
    assert Config.from_text(format_toml(cfg.to_dict())) == cfg


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate_and_round_trip(path: Path) -> None:
    cfg = Config.from_file(path)
    text = format_toml(cfg.to_dict())
    assert load_config_text(text) == cfg


def test_there_is_an_example_per_topology() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "mesh-node.toml",
        "route-reflector.toml",
        "tor-peered-node.toml",
        "vxlan-no-bgp.toml",
        "route-server.toml",
    } <= names
    by_name = {p.name: load_config(p) for p in EXAMPLES}
    assert by_name["mesh-node.toml"].bgp.mesh
    assert by_name["route-reflector.toml"].bgp.is_route_reflector
    tor = by_name["tor-peered-node.toml"]
    assert not tor.bgp.mesh and tor.bgp.peers[0].asn != tor.node.asn
    vxlan = by_name["vxlan-no-bgp.toml"]
    assert not vxlan.bgp.enabled and vxlan.ipam.pools[0].vxlan_mode is Encap.ALWAYS
    rs = by_name["route-server.toml"]
    assert not rs.fib.enabled and not rs.ipam.pools and rs.bgp.listen_ranges


def test_secrets_are_redacted_on_request() -> None:
    cfg = load_config_text(
        MINIMAL + '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 65000\npassword = "s3cret"\n'
    )
    assert cfg.to_dict()["bgp"]["peer"][0]["password"] == "s3cret"
    assert cfg.to_dict(reveal_secrets=False)["bgp"]["peer"][0]["password"] == "<redacted>"
    assert "s3cret" not in cfg.to_json(reveal_secrets=False)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    (message,) = info.value.errors
    assert message.startswith(f"{tmp_path / 'missing.toml'}: cannot read")


def test_bfd_keys_inherit_from_bgp_and_peers_override() -> None:
    text = MINIMAL + (
        "[bgp]\nbfd = true\nbfd_interval_ms = 100\n"
        '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 65002\n'
        '[[bgp.peer]]\naddress = "10.0.0.3"\nasn = 65003\nbfd = false\nbfd_multiplier = 5\n'
        '[[bgp.listen_range]]\nprefix = "10.9.0.0/16"\nasn = 65009\n'
    )
    b = load_config_text(text).bgp
    assert (b.bfd, b.bfd_interval_ms, b.bfd_multiplier) == (True, 100, 3)
    first, second = b.peers
    assert (first.bfd, first.bfd_interval_ms, first.bfd_multiplier) == (True, 100, 3)
    assert (second.bfd, second.bfd_interval_ms, second.bfd_multiplier) == (False, 100, 5)
    assert b.listen_ranges[0].bfd and b.listen_ranges[0].bfd_interval_ms == 100


def test_bfd_change_reloads_without_a_session_reset() -> None:
    """BFD runs beside the session: changing it resets no BGP session, and is applied
    live (not listed among the keys that wait for a restart)."""
    base = MINIMAL + '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 65002\n'
    old = load_config_text(base)
    new = load_config_text(base.replace("asn = 65002\n", "asn = 65002\nbfd = true\n"))
    diff = diff_configs(old, new)
    assert diff.peers_reset == () and diff.changed_keys == ()
    glob = load_config_text(MINIMAL + "[bgp]\nbfd = true\nbfd_interval_ms = 100\n")
    assert diff_configs(load_config_text(MINIMAL), glob).changed_keys == ()


def test_service_ranges() -> None:
    cfg = load_config_text(
        MINIMAL
        + '[[service]]\nname = "cluster-ips"\ncidr = "10.96.0.0/12"\ncommunities = ["64512:300"]\n'
        + '[[service]]\ncidr = "fd00:96::/108"\n'
    )
    assert [str(s.cidr) for s in cfg.services] == ["10.96.0.0/12", "fd00:96::/108"]
    assert cfg.to_dict()["service"][0] == {
        "cidr": "10.96.0.0/12", "name": "cluster-ips", "communities": ["64512:300"],
    }  # fmt: skip


def test_service_range_errors_name_the_key() -> None:
    text = (
        MINIMAL
        + '[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
        + '[[service]]\ncidr = "10.244.8.0/24"\n'
        + '[[service]]\ncidr = "10.96.0.0/12"\ncommunities = ["x"]\n'
        + '[[service]]\nname = "no-cidr"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config_text(text)
    joined = "\n".join(e.value.errors)
    assert "service[0].cidr: 10.244.8.0/24 overlaps pool 10.244.0.0/16" in joined
    assert "service[1].communities" in joined
    assert "service[2].cidr: is required" in joined


def test_prefix_advertisements() -> None:
    cfg = load_config_text(
        MINIMAL
        + '[[bgp.prefix_advertisement]]\ncidr = "10.244.0.0/16"\ncommunities = ["64512:100"]\n'
        + '[[bgp.prefix_advertisement]]\ncidr = "10.96.0.0/12"\nlarge_communities = ["64512:1:2"]\n'
    )
    a, _b = cfg.bgp.prefix_advertisements
    assert (str(a.cidr), [str(c) for c in a.communities]) == ("10.244.0.0/16", ["64512:100"])
    assert cfg.to_dict()["bgp"]["prefix_advertisement"][1]["large_communities"] == ["64512:1:2"]
    with pytest.raises(ConfigError) as e:
        load_config_text(MINIMAL + '[[bgp.prefix_advertisement]]\ncidr = "10.244.0.0/16"\n')
    assert "bgp.prefix_advertisement[0].communities: give communities" in e.value.errors[0]


def test_a_node_label_gives_the_reflector_cluster_id() -> None:
    labelled = (
        '[node]\nname = "a1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        'labels = { rack = "a", "rr-cluster" = "10.99.1.250" }\n'
        '[bgp]\nroute_reflector_cluster_id_label = "rr-cluster"\n'
    )
    cfg = load_config_text(labelled)
    assert str(cfg.bgp.route_reflector_cluster_id) == "10.99.1.250" and cfg.bgp.is_route_reflector
    from podbgp import wiring  # the registry tells the other nodes (podbgp.topology)

    assert wiring.registry_record(cfg).route_reflector_cluster_id == "10.99.1.250"
    # A node without the label is a client; the file's own ID wins over the label.
    plain = labelled.replace(', "rr-cluster" = "10.99.1.250"', "")
    assert load_config_text(plain).bgp.route_reflector_cluster_id is None
    own = labelled + 'route_reflector_cluster_id = "1.1.1.1"\n'
    assert str(load_config_text(own).bgp.route_reflector_cluster_id) == "1.1.1.1"
    with pytest.raises(ConfigError) as e:
        load_config_text(labelled.replace("10.99.1.250", "rack-a"))
    assert e.value.errors[0].startswith('node.labels.rr-cluster: "rack-a" is not a cluster ID')
