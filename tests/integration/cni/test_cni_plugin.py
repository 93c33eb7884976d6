"""podbgp-cni conformance in real namespaces, called exactly as a container runtime calls it.

A node namespace with eth0 (to a peer namespace, so the link is up) and the
route to 169.254.1.1 through eth0 that proxy ARP needs (RECIPES.md §11
pitfall); pods are namespaces the test makes; the plugin runs inside the node
namespace with the CNI_* environment and the config on stdin; IPAM is a real
SQLite file.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ipam import Ipam, IpamConfig
from ipam.identity import init_cluster
from ipam.store import OpenMode, open_store
from ipam.store.sqlite import SqliteStore
from podbgp.cni_net import host_ifname
from podbgp.lab.netns import IP, Netns, NetnsGroup

pytestmark = [pytest.mark.root]

PLUGIN = str(Path(sys.executable).parent / "podbgp-cni")
NODE4, NODE6 = "10.99.0.1", "fd99::1"


def init_store(db: Path) -> str:
    """`podbgp datastore init`: the store exists only once an operator created it."""

    async def go() -> str:
        store = open_store(f"sqlite:{db}", OpenMode.CREATE)
        try:
            return (await init_cluster(store)).cluster_id
        finally:
            await store.close()

    return asyncio.run(go())


class Cluster:
    """One node, its pods, and the plugin's config."""

    def __init__(self, netns: NetnsGroup, tmp: Path, **conf: Any) -> None:
        self.netns = netns
        self.db = tmp / "podbgp.db"
        self.cluster_id = init_store(self.db)
        self.node = netns.add("node")
        peer = netns.add("peer")
        netns.veth(self.node, "eth0", peer, "eth0")
        self.node.ip("addr", "add", f"{NODE4}/24", "dev", "eth0")
        self.node.ip("addr", "add", f"{NODE6}/64", "dev", "eth0", "nodad")
        self.node.ip("route", "add", "169.254.1.1/32", "dev", "eth0", "scope", "link")
        # IPv6 forwarding between interfaces is the node's setting (cni_net docstring)
        self.node.sysctl("net.ipv6.conf.all.forwarding=1")
        self.conf: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "podbgp-cni",
            "node_name": "node-a",
            "datastore": f"sqlite:{self.db}",
            "pools": ["10.244.0.0/16", "fd00:244::/56"],
            "log_file": str(tmp / "cni.log"),
            "cluster_id_file": str(tmp / "cluster-id"),
        }
        self.conf.update(conf)

    def pod(self, name: str) -> Netns:
        return self.netns.add(name)

    def call(
        self,
        command: str,
        cid: str,
        netns: str | None,
        conf: dict[str, Any] | None = None,
        ifname: str = "eth0",
        stdin: bytes | None = None,
        args: str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
    ) -> tuple[int, dict[str, Any]]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(Path(PLUGIN).parent),
            "CNI_ARGS": args,
        }
        if netns is not None:
            env["CNI_NETNS"] = netns
        data = stdin if stdin is not None else json.dumps(conf or self.conf).encode()
        proc = subprocess.run(
            [IP, "netns", "exec", self.node.name, PLUGIN],
            input=data,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, out

    def add(self, pod: Netns, cid: str, **kw: Any) -> dict[str, Any]:
        status, out = self.call("ADD", cid, path(pod), **kw)
        assert status == 0, out
        return out

    def release(self, handle: str) -> None:
        async def go() -> None:
            store = SqliteStore(self.db)
            try:
                await Ipam(store, IpamConfig()).release_handle(handle)
            finally:
                await store.close()

        asyncio.run(go())

    def held(self) -> dict[str, dict[str, Any]]:
        async def go() -> dict[str, dict[str, Any]]:
            store = SqliteStore(self.db)
            try:
                return await Ipam(store, IpamConfig()).handles()
            finally:
                await store.close()

        return asyncio.run(go())


def path(ns: Netns) -> str:
    return f"/var/run/netns/{ns.name}"


def addr_of(result: dict[str, Any], version: int) -> str:
    for ip in result["ips"]:
        a = ipaddress.ip_interface(ip["address"])
        if a.version == version:
            return str(a.ip)
    raise AssertionError(f"no IPv{version} address in {result}")


def ping(ns: Netns, dst: str) -> bool:
    proc = subprocess.run(
        [IP, "netns", "exec", ns.name, "ping", "-c1", "-W2", dst],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return proc.returncode == 0


@pytest.fixture
def cluster(netns: NetnsGroup, tmp_path: Path) -> Cluster:
    return Cluster(netns, tmp_path)


def test_add_result_and_kernel_state(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    out = cluster.add(pod, "c1")
    hif = host_ifname("c1")
    assert out["cniVersion"] == "1.0.0"
    assert out["interfaces"][0] == {"name": hif, "mac": "ee:ee:ee:ee:ee:ee"}
    assert out["interfaces"][1]["name"] == "eth0"
    assert out["interfaces"][1]["sandbox"] == path(pod)
    pod_mac = pod.ip("-j", "link", "show", "eth0")
    assert json.loads(pod_mac)[0]["address"] == out["interfaces"][1]["mac"]
    assert [ip["gateway"] for ip in out["ips"]] == ["169.254.1.1", "fe80::ecee:eeff:feee:eeee"]
    assert all(ip["interface"] == 1 for ip in out["ips"])
    assert ipaddress.ip_interface(out["ips"][0]["address"]).network.prefixlen == 32
    assert ipaddress.ip_interface(out["ips"][1]["address"]).network.prefixlen == 128
    assert out["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
        {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"},
    ]
    assert out["dns"] == {}
    v4, v6 = addr_of(out, 4), addr_of(out, 6)
    # node side: proxy ARP, no delay, forwarding, and the routes with protocol 81
    sysctl = cluster.node.run(
        "sysctl", "-n", f"net.ipv4.conf.{hif}.proxy_arp", f"net.ipv4.neigh.{hif}.proxy_delay",
        f"net.ipv4.conf.{hif}.forwarding", f"net.ipv6.conf.{hif}.forwarding",
    ).split()  # fmt: skip
    assert sysctl == ["1", "0", "1", "1"]
    assert f"{v4} proto 81 scope link" in cluster.node.ip("route", "show", "dev", hif)
    assert f"{v6} proto 81" in cluster.node.ip("-6", "route", "show", "dev", hif)
    # pod side: the /32 and /128, default routes via the link-local gateways
    assert f"inet {v4}/32" in pod.addresses("eth0")
    assert f"inet6 {v6}/128" in pod.addresses("eth0")
    assert "default via 169.254.1.1 dev eth0" in pod.ip("route")
    assert "default via fe80::ecee:eeff:feee:eeee dev eth0" in pod.ip("-6", "route")
    # IPAM: the handle is the container ID, with the pod's attributes
    held = cluster.held()
    assert set(held["c1"]["addrs"]) == {v4, v6}


def test_pods_reach_the_node_and_each_other(cluster: Cluster) -> None:
    p1, p2 = cluster.pod("p1"), cluster.pod("p2")
    r1, r2 = cluster.add(p1, "c1"), cluster.add(p2, "c2")
    assert addr_of(r1, 4) != addr_of(r2, 4)
    assert ping(p1, NODE4)
    assert ping(p1, NODE6)
    assert ping(p1, addr_of(r2, 4))
    assert ping(p2, addr_of(r1, 4))
    assert ping(p1, addr_of(r2, 6))
    assert ping(p2, addr_of(r1, 6))


def test_netns_given_as_proc_pid_path(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    sleeper = pod.popen(["sleep", "60"])
    status, out = cluster.call("ADD", "c1", f"/proc/{sleeper.pid}/ns/net")
    assert status == 0, out
    assert out["interfaces"][1]["sandbox"] == f"/proc/{sleeper.pid}/ns/net"
    assert ping(pod, NODE4)


def test_check_passes_then_fails_when_the_address_goes(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    result = cluster.add(pod, "c1")
    conf = {**cluster.conf, "prevResult": result}
    assert cluster.call("CHECK", "c1", path(pod), conf=conf) == (0, {})
    # without prevResult, CHECK checks what IPAM holds for the container
    assert cluster.call("CHECK", "c1", path(pod))[0] == 0
    v4 = addr_of(result, 4)
    pod.ip("addr", "del", f"{v4}/32", "dev", "eth0")
    status, out = cluster.call("CHECK", "c1", path(pod), conf=conf)
    assert status != 0
    assert out["code"] == 999
    assert v4 in out["msg"]


def test_check_fails_without_the_default_route_or_host_route(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    result = cluster.add(pod, "c1")
    conf = {**cluster.conf, "prevResult": result}
    pod.ip("route", "del", "default")
    status, out = cluster.call("CHECK", "c1", path(pod), conf=conf)
    assert status != 0 and "default route via 169.254.1.1" in out["msg"]
    pod.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    cluster.node.ip("route", "del", f"{addr_of(result, 4)}/32")
    status, out = cluster.call("CHECK", "c1", path(pod), conf=conf)
    assert status != 0 and "node route" in out["msg"]


def test_check_fails_when_ipam_lost_the_address(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    result = cluster.add(pod, "c1")
    conf = {**cluster.conf, "prevResult": result}
    assert cluster.call("CHECK", "c1", path(pod), conf=conf)[0] == 0
    cluster.release("c1")  # behind the plugin's back: the veth stays
    assert host_ifname("c1") in cluster.node.ip("link")
    status, out = cluster.call("CHECK", "c1", path(pod), conf=conf)
    assert status != 0
    assert "IPAM does not hold" in out["msg"]


def test_del_undoes_everything_and_is_idempotent(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    result = cluster.add(pod, "c1")
    hif = host_ifname("c1")
    v4 = addr_of(result, 4)
    assert cluster.call("DEL", "c1", path(pod)) == (0, {})
    assert hif not in cluster.node.ip("link")
    assert "eth0" not in pod.ip("link")
    assert v4 not in cluster.node.ip("route")
    assert "c1" not in cluster.held()
    assert cluster.call("DEL", "c1", path(pod)) == (0, {})  # second DEL
    assert cluster.call("DEL", "never-added", path(pod)) == (0, {})  # unknown container
    assert cluster.call("DEL", "c1", None) == (0, {})  # no CNI_NETNS at all


def test_del_after_the_namespace_is_gone_still_releases(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    cluster.add(pod, "c1")
    gone = path(pod)
    cluster.netns.namespaces.pop("p1")
    subprocess.run([IP, "netns", "del", pod.name], check=True)
    assert cluster.call("DEL", "c1", gone) == (0, {})
    assert "c1" not in cluster.held()
    assert host_ifname("c1") not in cluster.node.ip("link")


def test_after_del_a_new_pod_gets_an_address_and_works(cluster: Cluster) -> None:
    p1 = cluster.pod("p1")
    first = addr_of(cluster.add(p1, "c1"), 4)
    assert cluster.call("DEL", "c1", path(p1))[0] == 0
    p2 = cluster.pod("p2")
    again = addr_of(cluster.add(p2, "c2"), 4)
    assert ipaddress.ip_address(again) in ipaddress.ip_network("10.244.0.0/16")
    assert set(cluster.held()) == {"c2"}
    assert ping(p2, NODE4)
    assert first not in {a for h in cluster.held().values() for a in h["addrs"]} - {again}


def test_repeated_add_keeps_the_address_and_one_veth(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    first = cluster.add(pod, "c1")
    pod.ip("link", "del", "eth0")  # a runtime retrying after a half-done ADD
    second = cluster.add(pod, "c1")
    assert first["ips"] == second["ips"]
    assert cluster.node.ip("-o", "link").count("cali") == 1
    assert ping(pod, NODE4)


def test_failed_add_leaves_nothing_behind(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    pod.ip("link", "add", "eth0", "type", "veth", "peer", "name", "x0")  # the name ADD needs
    status, out = cluster.call("ADD", "c1", path(pod))
    assert status != 0
    assert out["code"] == 999
    assert "cali" not in cluster.node.ip("link")
    assert cluster.held() == {}


def test_static_address_from_cni_args(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    out = cluster.add(pod, "c1", args="IgnoreUnknown=1;IP=10.244.7.7")
    assert addr_of(out, 4) == "10.244.7.7"
    assert ping(pod, NODE4)


def test_ipv4_only_from_the_daemon_config(cluster: Cluster, tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[node]\nname = "node-a"\nasn = 64512\naddress = "{NODE4}/24"\n'
        f'[datastore]\nkind = "sqlite"\npath = "{cluster.db}"\n'
        '[[ipam.pool]]\ncidr = "10.244.0.0/16"\nvxlan_mode = "CrossSubnet"\n'
        f'[api]\nsocket = "{tmp_path}/node.sock"\n'
    )
    conf = {"cniVersion": "0.4.0", "name": "lab", "type": "podbgp-cni", "podbgp_config": str(toml)}
    pod = cluster.pod("p1")
    out = cluster.add(pod, "c1", conf=conf)
    assert [ip["version"] for ip in out["ips"]] == ["4"]
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert "mtu 1450" in pod.ip("link", "show", "eth0")
    assert "mtu 1450" in cluster.node.ip("link", "show", host_ifname("c1"))
    assert ping(pod, NODE4)


def test_error_codes(cluster: Cluster) -> None:
    pod = cluster.pod("p1")
    status, out = cluster.call("ADD", "c1", path(pod), conf={**cluster.conf, "pools": ["x"]})
    assert (status != 0, out["code"]) == (True, 7)
    status, out = cluster.call("ADD", "c1", None)
    assert (status != 0, out["code"]) == (True, 4) and "CNI_NETNS" in out["msg"]
    status, out = cluster.call("ADD", "c1", path(pod), conf={**cluster.conf, "cniVersion": "9.0.0"})
    assert (status != 0, out["code"]) == (True, 1)
    status, out = cluster.call("ADD", "c1", path(pod), stdin=b"not json")
    assert (status != 0, out["code"]) == (True, 6)
    status, out = cluster.call("ADD", "c1", "/var/run/netns/no-such-pod-netns")
    assert (status != 0, out["code"]) == (True, 3)
    assert cluster.held() == {}
