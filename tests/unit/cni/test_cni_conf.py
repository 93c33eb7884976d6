"""The plugin's network configuration: keys, defaults, the daemon's TOML, errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from podbgp.cni_conf import DEFAULT_DATASTORE, parse_netconf, pool_table
from podbgp.cni_proto import CniError, ErrorCode


def conf(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "podbgp-cni",
        "node_name": "node-a",
        "datastore": "sqlite:/tmp/x.db",
        "pools": ["10.244.0.0/16"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def err(raw: object) -> CniError:
    with pytest.raises(CniError) as e:
        parse_netconf(raw)
    return e.value


def test_minimal_config() -> None:
    c = parse_netconf(conf())
    assert c.cni_version == "1.0.0"
    assert c.name == "k8s-pod-network"
    assert c.node_name == "node-a"
    assert c.datastore == "sqlite:/tmp/x.db"
    assert [str(p.cidr) for p in c.ipam.pools] == ["10.244.0.0/16"]
    assert c.ipam.pools[0].block_size == 26
    assert c.versions == (4,)
    assert c.mtu == 1500
    assert c.route_protocol == 81
    assert c.prev_result is None


def test_defaults_for_datastore_and_node() -> None:
    c = parse_netconf(conf(datastore=None, node_name=None))
    assert c.datastore == DEFAULT_DATASTORE
    assert c.node_name  # the host name


def test_dual_stack_pools_and_block_sizes() -> None:
    c = parse_netconf(
        conf(
            pools=["10.244.0.0/16/28", "fd00:244::/56", {"cidr": "10.250.0.0/16", "disabled": True}]
        )
    )
    assert [(str(p.cidr), p.block_size) for p in c.ipam.pools] == [
        ("10.244.0.0/16", 28),
        ("fd00:244::/56", 122),
        ("10.250.0.0/16", 26),
    ]
    assert c.versions == (4, 6)


def test_pool_entry_forms() -> None:
    assert pool_table("10.0.0.0/8", "p") == {"cidr": "10.0.0.0/8"}
    assert pool_table("10.0.0.0/8/24", "p") == {"cidr": "10.0.0.0/8", "block_size": 24}
    assert pool_table({"cidr": "10.0.0.0/8", "vxlan_mode": "Always"}, "p")["vxlan_mode"] == "Always"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"name": None}, "name"),
        ({"type": None}, "type"),
        ({"name": ""}, "name"),
        ({"pools": "10.0.0.0/8"}, "pools"),
        ({"pools": []}, "pools"),
        ({"pools": ["10.244.0.0/16/xx"]}, "pools[0]"),
        ({"pools": [42]}, "pools[0]"),
        ({"pools": ["not-a-cidr"]}, "ipam.pool[0].cidr"),
        ({"pools": ["10.244.0.0/16/8"]}, "ipam.pool[0].block_size"),
        ({"pools": [{"cidr": "10.0.0.0/8", "colour": "red"}]}, "ipam.pool[0].colour"),
        ({"pools": ["10.0.0.0/8", "10.1.0.0/16"]}, "overlaps"),
        ({"pools": [{"cidr": "10.0.0.0/8", "disabled": True}]}, "no enabled pool"),
        ({"mtu": 100}, "mtu"),
        ({"mtu": "1500"}, "mtu"),
        ({"mtu": 1200, "pools": ["fd00::/48"]}, "mtu"),
        ({"route_protocol": 80}, "route_protocol"),
        ({"route_protocol": 0}, "route_protocol"),
        ({"node_name": ""}, "node_name"),
        ({"datastore": 5}, "datastore"),
        ({"dns": []}, "dns"),
        ({"prevResult": "x"}, "prevResult"),
        ({"ipam": "podbgp"}, "ipam"),
        ({"podbgp_config": "/nonexistent/node.toml"}, "podbgp_config"),
    ],
)
def test_invalid_config_is_code_7_naming_the_key(changes: dict[str, Any], key: str) -> None:
    e = err(conf(**changes))
    assert e.code == ErrorCode.INVALID_CONFIG
    assert key in e.msg


def test_foreign_ipam_plugin_is_unsupported_field_code_2() -> None:
    e = err(conf(ipam={"type": "host-local", "subnet": "10.1.0.0/16"}))
    assert e.code == ErrorCode.UNSUPPORTED_FIELD
    assert "ipam.type" in e.msg and "host-local" in e.msg


def test_own_ipam_key_is_accepted() -> None:
    assert parse_netconf(conf(ipam={"type": "podbgp"})).name == "k8s-pod-network"


def test_unsupported_version_is_code_1() -> None:
    assert err(conf(cniVersion="0.2.0")).code == ErrorCode.INCOMPATIBLE_VERSION


def test_not_an_object_is_code_6() -> None:
    assert err(["cniVersion"]).code == ErrorCode.DECODE_FAILURE


@pytest.mark.parametrize(
    ("pool", "mtu"),
    [
        ({"cidr": "10.0.0.0/8"}, 1500),
        ({"cidr": "10.0.0.0/8", "ipip_mode": "CrossSubnet"}, 1480),
        ({"cidr": "10.0.0.0/8", "vxlan_mode": "Always"}, 1450),
    ],
)
def test_mtu_default_leaves_room_for_encapsulation(pool: dict[str, Any], mtu: int) -> None:
    assert parse_netconf(conf(pools=[pool])).mtu == mtu


def test_explicit_mtu_wins() -> None:
    assert (
        parse_netconf(conf(pools=[{"cidr": "10.0.0.0/8", "vxlan_mode": "Always"}], mtu=9000)).mtu
        == 9000
    )


def test_daemon_config_supplies_node_datastore_pools(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        """
[node]
name = "node-b"
asn = 64512
address = "10.0.0.2/24"

[datastore]
kind = "etcd"
endpoints = ["http://10.0.0.9:2379", "http://10.0.0.10:2379"]

[ipam]
max_blocks_per_node = 3

[[ipam.pool]]
cidr = "10.244.0.0/16"
block_size = 27
vxlan_mode = "CrossSubnet"

[fib]
protocol = 90
"""
    )
    raw = {"cniVersion": "1.0.0", "name": "n", "type": "podbgp-cni", "podbgp_config": str(toml)}
    c = parse_netconf(raw)
    assert c.node_name == "node-b"
    assert c.datastore == "etcd:http://10.0.0.9:2379,http://10.0.0.10:2379"
    assert c.ipam.max_blocks_per_node == 3
    assert c.ipam.pools[0].cidr == ipaddress.ip_network("10.244.0.0/16")
    assert c.ipam.pools[0].block_size == 27
    assert c.mtu == 1450
    # the daemon uses 90, so 80 is free for pod routes; 90 is not
    assert parse_netconf({**raw, "route_protocol": 80}).route_protocol == 80
    assert err({**raw, "route_protocol": 90}).code == ErrorCode.INVALID_CONFIG
    # keys in the CNI config win over the daemon's
    c2 = parse_netconf(
        {**raw, "node_name": "x", "datastore": "sqlite:/y", "pools": ["10.9.0.0/16"]}
    )
    assert (c2.node_name, c2.datastore, str(c2.ipam.pools[0].cidr)) == (
        "x",
        "sqlite:/y",
        "10.9.0.0/16",
    )


def test_daemon_config_sqlite_datastore(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        '[datastore]\npath = "/srv/p.db"\n[[ipam.pool]]\ncidr = "10.1.0.0/16"\n'
    )
    c = parse_netconf({"cniVersion": "1.0.0", "name": "n", "type": "t", "podbgp_config": str(toml)})
    assert c.datastore == "sqlite:/srv/p.db"


def test_broken_daemon_toml_is_code_7(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("[node\nname=")
    e = err({"cniVersion": "1.0.0", "name": "n", "type": "t", "podbgp_config": str(toml)})
    assert e.code == ErrorCode.INVALID_CONFIG
    assert "podbgp_config" in e.msg


def test_daemon_config_the_daemon_would_refuse_is_code_7_naming_the_key(tmp_path: Path) -> None:
    """The operator trial's silent fork: `pth` was ignored and a default store used."""
    toml = tmp_path / "node.toml"
    toml.write_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        '[datastore]\npth = "/srv/p.db"\n[[ipam.pool]]\ncidr = "10.1.0.0/16"\n'
    )
    e = err({"cniVersion": "1.0.0", "name": "n", "type": "t", "podbgp_config": str(toml)})
    assert e.code == ErrorCode.INVALID_CONFIG
    assert f"podbgp_config: {toml}: datastore.pth: unknown key (did you mean path?)" in e.msg


def test_daemon_config_gives_the_node_s_cluster_id_file(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        '[[ipam.pool]]\ncidr = "10.1.0.0/30"\n'
        f'[api]\nsocket = "{tmp_path}/run/podbgp.sock"\n'
    )
    c = parse_netconf({"cniVersion": "1.0.0", "name": "n", "type": "t", "podbgp_config": str(toml)})
    assert c.cluster_id_file == f"{tmp_path}/run/cluster-id"
    assert c.ipam.pools[0].block_size == 30  # the daemon's default: the pool's own length
