"""Devices, neighbours, the FDB and the underlay reads over `fib.rtnl`, on a real kernel,
checked against what `ip` and `bridge` show (pyroute2 did this before; the daemon no
longer loads it)."""

from __future__ import annotations

import pytest

from fib import netlink
from fib.model import FdbEntry, Neighbour, VxlanSpec, pack_addr
from fib.netlink import NetlinkKernel
from fib.netns import in_netns
from podbgp.lab.netns import Netns

pytestmark = pytest.mark.root
MAC_A, MAC_B = "0e:00:00:00:00:0a", "0e:00:00:00:00:0b"


def _spec(vni: int = 4096, mtu: int = 1450) -> VxlanSpec:
    return VxlanSpec(pack_addr("10.0.0.1"), "eth0", "66:00:00:00:00:01", mtu,
                     pack_addr("10.244.0.0"), vni=vni)  # fmt: skip


def test_vxlan_created_then_left_alone_then_recreated(
    node: Netns, kernels: list[NetlinkKernel]
) -> None:
    k = NetlinkKernel(node.name)
    kernels.append(k)
    assert k.ensure_vxlan(_spec())
    shown = node.ip("-d", "link", "show", "vxlan.podbgp")
    for part in ("vxlan id 4096", "local 10.0.0.1", "dev eth0", "dstport 4789", "nolearning",
                 "mtu 1450", "66:00:00:00:00:01", "UP"):  # fmt: skip
        assert part in shown, (part, shown)
    assert "10.244.0.0/32" in node.addresses("vxlan.podbgp")
    assert not k.ensure_vxlan(_spec())  # already right: nothing written
    index = k.links.index["vxlan.podbgp"]
    node.ip("link", "set", "vxlan.podbgp", "down")
    assert k.ensure_vxlan(_spec(mtu=1400))  # MTU and state repaired in place
    assert k.links.index["vxlan.podbgp"] == index
    shown = node.ip("link", "show", "vxlan.podbgp")
    assert "mtu 1400" in shown and "UP" in shown
    assert k.ensure_vxlan(_spec(vni=4097))  # a VNI is fixed at creation: a new device
    assert "vxlan id 4097" in node.ip("-d", "link", "show", "vxlan.podbgp")


def test_neighbours_and_fdb_written_dumped_and_removed(
    node: Netns, kernels: list[NetlinkKernel]
) -> None:
    k = NetlinkKernel(node.name)
    kernels.append(k)
    k.ensure_vxlan(_spec())
    dev = "vxlan.podbgp"
    n1, n2 = (
        Neighbour(dev, pack_addr("10.244.1.0"), MAC_A),
        Neighbour(dev, pack_addr("10.244.2.0"), MAC_B),
    )
    f1, f2 = (
        FdbEntry(dev, MAC_A, pack_addr("10.0.0.2")),
        FdbEntry(dev, MAC_B, pack_addr("10.0.0.3")),
    )
    k.write_neighbours([n1, n2], [])
    k.write_fdb([f1, f2], [])
    node.ip("neigh", "add", "10.0.0.9", "lladdr", MAC_B, "dev", "eth0", "nud", "permanent")
    assert k.dump_neighbours(dev) == {n1, n2}  # eth0's entry is not vxlan.podbgp's
    assert k.dump_fdb(dev) == {f1, f2}
    neigh = node.ip("neigh", "show", "dev", dev)
    assert f"10.244.1.0 lladdr {MAC_A} PERMANENT" in neigh
    assert f"{MAC_B} dst 10.0.0.3 self permanent" in node.run("bridge", "fdb", "show", "dev", dev)
    k.write_neighbours([], [n1])
    k.write_fdb([], [f1])
    assert k.dump_neighbours(dev) == {n2}
    assert k.dump_fdb(dev) == {f2}
    assert "10.244.1.0" not in node.ip("neigh", "show", "dev", dev)
    assert k.dump_neighbours("no-such-dev") == set() and k.dump_fdb("no-such-dev") == set()


def test_refused_request_is_a_kernel_error_naming_it(
    node: Netns, kernels: list[NetlinkKernel]
) -> None:
    k = NetlinkKernel(node.name)
    kernels.append(k)
    k.ensure_vxlan(_spec())
    gone = Neighbour("vxlan.podbgp", pack_addr("10.244.7.0"), MAC_A)
    with pytest.raises(netlink.KernelError, match=r"neigh del 10\.244\.7\.0 on vxlan\.podbgp"):
        k.write_neighbours([], [gone])


def test_underlay_reads_match_ip(node: Netns) -> None:
    node.ip("addr", "add", "fd00::1/64", "dev", "eth0", "nodad")
    found = in_netns(node.name, netlink.link_addresses)
    mine = {(a.ifname, a.address, a.up) for a in found}
    assert ("eth0", "10.0.0.1/24", True) in mine
    assert ("eth0", "fd00::1/64", True) in mine
    assert ("lo", "127.0.0.1/8", False) in mine or ("lo", "127.0.0.1/8", True) in mine
    assert [a.ifindex for a in found] == sorted(a.ifindex for a in found)
    assert in_netns(node.name, lambda: netlink.route_source("10.0.0.2")) == ("10.0.0.1", "eth0")
    assert in_netns(node.name, lambda: netlink.route_source("192.0.2.1")) is None
