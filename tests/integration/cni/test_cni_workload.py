"""Addresses chosen per workload, through the real plugin in real namespaces over a real
SQLite store: pools per namespace, pools named by the pod or the network config,
reservations, and tunnel-only pools that never serve pods."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from test_cni_plugin import Cluster, addr_of, path

from ipam import Ipam, IpamConfig
from ipam.store.sqlite import SqliteStore
from podbgp.cni_net import host_ifname
from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = [pytest.mark.root]

DEFAULT = "10.244.0.0/16"
LEGACY = "10.250.0.0/24"
POOLS = [
    {"cidr": DEFAULT},
    {"cidr": LEGACY, "namespace_selector": 'projectcalico.org/name == "legacy"'},
]


def args(namespace: str, pod: str, extra: str = "") -> str:
    return f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod}{extra}"


def attrs_of(cluster: Cluster, address: str) -> dict[str, str]:
    async def go() -> dict[str, str]:
        store = SqliteStore(cluster.db)
        try:
            info = await Ipam(store, IpamConfig()).show(ipaddress.ip_address(address))
            assert info.allocation is not None
            return dict(info.allocation.attrs)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture
def cluster(netns: NetnsGroup, tmp_path: Path) -> Cluster:
    return Cluster(netns, tmp_path, pools=POOLS)


def in_pool(address: str, pool: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(pool)


def test_pods_in_namespace_legacy_get_the_legacy_pool_others_the_default(
    cluster: Cluster,
) -> None:
    legacy = [cluster.add(cluster.pod(f"l{i}"), f"l{i}", args=args("legacy", f"old-{i}"))
              for i in range(2)]  # fmt: skip
    web = cluster.add(cluster.pod("w"), "w", args=args("web", "web-0"))
    bare = cluster.add(cluster.pod("b"), "b", args="IgnoreUnknown=1")  # no namespace at all
    assert all(in_pool(addr_of(r, 4), LEGACY) for r in legacy)
    assert in_pool(addr_of(web, 4), DEFAULT) and in_pool(addr_of(bare, 4), DEFAULT)
    # The namespace and pod name are recorded with the address (and the pod's network
    # namespace, which the node's leak check watches: ipam.leaks).
    recorded = attrs_of(cluster, addr_of(legacy[1], 4))
    assert recorded.pop("netns").endswith("l1") and recorded.pop("netns_id")
    assert recorded == {"namespace": "legacy", "pod": "old-1", "node": "node-a"}
    # The node now holds a block of each pool.
    held = {ipaddress.ip_network(r["block"]) for h in cluster.held().values()
            for r in h["addrs"].values()}  # fmt: skip
    assert {any(b.subnet_of(ipaddress.ip_network(p)) for b in held) for p in (DEFAULT, LEGACY)} \
        == {True}  # fmt: skip


def test_pools_named_in_cni_args_or_runtime_config_are_honoured(cluster: Cluster) -> None:
    named = cluster.add(cluster.pod("a"), "a", args=args("legacy", "a", f";IPV4_POOLS={DEFAULT}"))
    assert in_pool(addr_of(named, 4), DEFAULT)
    conf = {**cluster.conf, "runtimeConfig": {"ipv4_pools": [DEFAULT]}}
    runtime = cluster.add(cluster.pod("b"), "b", conf=conf, args=args("legacy", "b"))
    assert in_pool(addr_of(runtime, 4), DEFAULT)
    # CNI_ARGS win over the config's list.
    conf = {**cluster.conf, "ipam": {"type": "podbgp", "ipv4_pools": [DEFAULT]}}
    both = cluster.add(cluster.pod("c"), "c", conf=conf,
                       args=args("legacy", "c", f";IPV4_POOLS={LEGACY}"))  # fmt: skip
    assert in_pool(addr_of(both, 4), LEGACY)


@pytest.mark.parametrize(
    ("extra", "conf", "message"),
    [
        (f";IPV4_POOLS={LEGACY}", {},
         'IPAM: pool 10.250.0.0/24 does not select namespace web (namespace_selector '
         'projectcalico.org/name == "legacy")'),
        (";IPV4_POOLS=10.7.0.0/24", {},
         "IPAM: pool 10.7.0.0/24 does not exist (pools: 10.244.0.0/16, 10.250.0.0/24)"),
        (";IPV4_POOLS=fd00::/64", {}, "CNI_ARGS IPV4_POOLS: fd00::/64 is not an IPv4 pool"),
        ("", {"runtimeConfig": {"ipv4_pools": ["nope"]}},
         "runtimeConfig.ipv4_pools: 'nope' is not a pool CIDR"),
    ],
)  # fmt: skip
def test_a_named_pool_that_cannot_serve_is_refused_and_nothing_is_left(
    cluster: Cluster, extra: str, conf: dict[str, Any], message: str
) -> None:
    pod = cluster.pod("p")
    status, out = cluster.call("ADD", "p", path(pod), conf={**cluster.conf, **conf},
                               args=args("web", "p", extra))  # fmt: skip
    assert status != 0
    assert out["msg"] == message
    assert cluster.held() == {}
    assert host_ifname("p") not in cluster.node.ip("link")


def test_reservations_and_tunnel_pools_from_the_daemon_config(
    netns: NetnsGroup, tmp_path: Path
) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[node]\nname = "node-a"\nasn = 64512\naddress = "10.99.0.1/24"\n'
        f'[datastore]\npath = "{tmp_path / "podbgp.db"}"\n'
        f'cluster_id_file = "{tmp_path / "cluster-id"}"\n'
        '[[ipam.pool]]\ncidr = "10.99.128.0/28"\nblock_size = 28\nallowed_uses = ["tunnel"]\n'
        '[[ipam.pool]]\ncidr = "10.244.0.0/29"\nblock_size = 29\nallowed_uses = ["workload"]\n'
        '[[ipam.reservation]]\nname = "gateways"\ncidrs = ["10.244.0.0/30", "10.244.0.6"]\n'
    )
    cluster = Cluster(netns, tmp_path, podbgp_config=str(toml))
    for key in ("pools", "datastore", "node_name", "cluster_id_file"):
        del cluster.conf[key]
    pods = [cluster.pod(f"p{i}") for i in range(3)]
    got = [addr_of(cluster.add(p, f"p{i}", args=args("web", f"p{i}")), 4)
           for i, p in enumerate(pods)]  # fmt: skip
    # Of the workload pool's 8 addresses, 5 are reserved: the three left, then exhausted.
    assert sorted(got) == ["10.244.0.4", "10.244.0.5", "10.244.0.7"]
    status, out = cluster.call("ADD", "p3", path(cluster.pod("p3")), args=args("web", "p3"))
    assert status != 0 and "IPAM: " in out["msg"] and "10.244.0.0/29" in out["msg"]
    assert "10.99.128.0/28" not in out["msg"]  # the tunnel pool was never a candidate
    # An explicit IP= of a reserved address names the reservation.
    assert cluster.call("DEL", "p0", path(pods[0]))[0] == 0
    status, out = cluster.call("ADD", "p4", path(cluster.pod("p4")),
                               args=args("web", "p4", ";IP=10.244.0.6"))  # fmt: skip
    assert status != 0
    assert out["msg"] == "IPAM: 10.244.0.6 is reserved: 10.244.0.6/32 (reservation gateways)"


def _pod_mtu(pod: Netns) -> int:
    return int(json.loads(pod.ip("-j", "link", "show", "eth0"))[0]["mtu"])


@pytest.mark.parametrize(
    ("underlay_mtu", "fib", "conf_mtu", "want"),
    [
        (9000, "", None, 8950),  # the uplink's MTU less VXLAN's 50
        (1400, "", None, 1350),
        (9000, "[fib]\npod_mtu = 1400\n", None, 1400),  # the daemon's key wins
        (9000, "[fib]\npod_mtu = 1400\n", 1300, 1300),  # and the network config's over it
    ],
)
def test_pod_mtu_is_derived_from_the_underlay_interface(
    netns: NetnsGroup, tmp_path: Path, underlay_mtu: int, fib: str, conf_mtu: int | None, want: int
) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[node]\nname = "node-a"\nasn = 64512\naddress = "auto"\n'
        f'address_detection = "cidr=10.99.0.0/24"\n'
        f'[datastore]\npath = "{tmp_path / "podbgp.db"}"\n'
        f'cluster_id_file = "{tmp_path / "cluster-id"}"\n'
        '[[ipam.pool]]\ncidr = "10.244.0.0/24"\nblock_size = 28\nvxlan_mode = "Always"\n' + fib
    )
    cluster = Cluster(netns, tmp_path, podbgp_config=str(toml))
    for key in ("pools", "datastore", "node_name", "cluster_id_file"):
        del cluster.conf[key]
    if conf_mtu is not None:
        cluster.conf["mtu"] = conf_mtu
    cluster.node.ip("link", "set", "eth0", "mtu", str(underlay_mtu))
    pod = cluster.pod("p")
    cluster.add(pod, "p", args=args("web", "p"))
    assert _pod_mtu(pod) == want
    assert f"mtu {want} " in cluster.node.ip("link", "show", host_ifname("p"))
