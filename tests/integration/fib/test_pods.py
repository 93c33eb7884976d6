"""Pods on two nodes, routes from the FIB only: ping across, plain and over VXLAN.

Plumbing follows RECIPES.md §11 (a CNI-style veth per pod with proxy ARP for
169.254.1.1); every pod-network route on the nodes comes from a Reconciler.
Two layouts: both nodes on one subnet, or on two subnets joined by a router
namespace that knows nothing about pod addresses, so a ping that gets through
there must have been encapsulated.
"""

from __future__ import annotations

import pytest
from fib_nodes import reconciler, routes

from fib.model import Encap, NodeInfo, Prefix, RemoteRoute, Vtep, pack_addr, vtep_mac
from fib.netlink import NetlinkKernel
from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = [pytest.mark.root, pytest.mark.e2e]

BLOCKS = {"a": Prefix.parse("10.244.0.0/26"), "b": Prefix.parse("10.244.0.64/26")}
PODS = {"a": "10.244.0.5", "b": "10.244.0.69"}
VTEP_ADDR = {"a": "10.244.0.0", "b": "10.244.0.64"}


def underlay(netns: NetnsGroup, two_subnets: bool) -> dict[str, str]:
    """Node namespaces a and b; returns their underlay addresses (with prefix length)."""
    a, b = netns.add("a"), netns.add("b")
    if not two_subnets:
        netns.veth(a, "eth0", b, "eth0")
        addrs = {"a": "10.0.0.1/24", "b": "10.0.0.2/24"}
    else:
        r = netns.add("r")
        netns.veth(a, "eth0", r, "ra")
        netns.veth(b, "eth0", r, "rb")
        r.ip("addr", "add", "10.0.1.254/24", "dev", "ra")
        r.ip("addr", "add", "10.0.2.254/24", "dev", "rb")
        r.sysctl("net.ipv4.ip_forward=1")
        addrs = {"a": "10.0.1.1/24", "b": "10.0.2.1/24"}
    for name, ns in (("a", a), ("b", b)):
        ns.ip("addr", "add", addrs[name], "dev", "eth0")
        if two_subnets:
            gw = "10.0.1.254" if name == "a" else "10.0.2.254"
            ns.ip("route", "add", "default", "via", gw)
    return addrs


def pod(netns: NetnsGroup, node: Netns, name: str, ip: str, hif: str) -> Netns:
    """RECIPES.md §11, minus the pod's /32 route on the node: the FIB installs that."""
    p = netns.add(name)
    netns.veth(p, "eth0", node, hif)
    node.ip("link", "set", hif, "address", "ee:ee:ee:ee:ee:ee")
    node.sysctl(f"net.ipv4.conf.{hif}.proxy_arp=1", f"net.ipv4.neigh.{hif}.proxy_delay=0",
                "net.ipv4.ip_forward=1")  # fmt: skip
    node.ip("route", "replace", "169.254.1.1/32", "dev", "eth0", "scope", "link")
    p.ip("addr", "add", f"{ip}/32", "dev", "eth0")
    p.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    p.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    return p


@pytest.mark.parametrize(
    ("two_subnets", "vxlan", "encapsulated"),
    [
        (False, Encap.NEVER, False),
        (False, Encap.CROSS_SUBNET, False),
        (False, Encap.ALWAYS, True),
        (True, Encap.ALWAYS, True),
        (True, Encap.CROSS_SUBNET, True),
    ],
    ids=["one-subnet-plain", "one-subnet-crosssubnet", "one-subnet-vxlan-always",
         "two-subnets-vxlan-always", "two-subnets-vxlan-crosssubnet"],
)  # fmt: skip
def test_pod_to_pod_ping(
    netns: NetnsGroup, kernels: list[NetlinkKernel], two_subnets: bool, vxlan: Encap,
    encapsulated: bool,
) -> None:  # fmt: skip
    addrs = underlay(netns, two_subnets)
    pods = {n: pod(netns, netns[n], f"p{n}", PODS[n], f"cali{n}") for n in ("a", "b")}
    node_ip = {n: pack_addr(addrs[n].split("/")[0]) for n in ("a", "b")}
    recs = {}
    for me, peer in (("a", "b"), ("b", "a")):
        rec = reconciler(netns[me], kernels)
        rec.set_node(NodeInfo.parse(f"node-{me}", addrs[me], "eth0", vtep=VTEP_ADDR[me]))
        rec.set_own_block(BLOCKS[me])
        rec.set_local_pod(Prefix.parse(f"{PODS[me]}/32"), f"cali{me}")
        if vxlan is not Encap.NEVER:
            rec.set_vtep(Vtep(node_ip[peer], pack_addr(VTEP_ADDR[peer]), vtep_mac(f"node-{peer}")))
        rec.set_route(RemoteRoute(BLOCKS[peer], (node_ip[peer],), vxlan=vxlan))
        rec.apply()
        recs[me] = rec
    via = routes(netns["a"], "10.244.0.64/26")
    if encapsulated:
        assert via == ["10.244.0.64/26 via 10.244.0.64 dev vxlan.podbgp proto 80 onlink"]
    else:
        assert via == ["10.244.0.64/26 via 10.0.0.2 dev eth0 proto 80"]
    out = pods["a"].run("ping", "-c", "3", "-i", "0.2", "-W", "2", PODS["b"], check=False)
    assert " 0% packet loss" in out, out
    for rec in recs.values():
        assert rec.snapshot()["in_sync"] == 3
