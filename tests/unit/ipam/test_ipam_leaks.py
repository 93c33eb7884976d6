"""`ipam.leaks`: a pod is gone when its namespace is; its address goes after the grace."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

from ipam import Ipam, IpamConfig, Pool
from ipam.leaks import NETNS, NETNS_ID, LeakTracker, Pod, netns_alive, netns_id, reclaim_leaks
from ipam.store.base import Store
from podbgp.lab.netns import IP, NetnsGroup

POOL = IpamConfig(pools=(Pool.parse({"cidr": "10.8.0.0/24", "block_size": 28}),))


def pod(i: int, seq: int = 1) -> Pod:
    return Pod(ipaddress.ip_address(f"10.8.0.{i}"), f"h{i}", seq, f"/run/netns/p{i}", "")


def test_tracker_releases_only_what_was_gone_for_the_whole_grace() -> None:
    t = LeakTracker(grace=10)
    gone = {pod(1), pod(2)}
    pods = [pod(1), pod(2), pod(3)]
    assert t.observe(pods, lambda p: p not in gone, now=100) == []  # first seen gone
    assert t.observe(pods, lambda p: p not in gone, now=109.9) == []
    gone.discard(pod(2))  # back (the runtime re-created it): starts over
    assert t.observe(pods, lambda p: p not in gone, now=110) == [pod(1)]
    gone.add(pod(2))
    assert t.observe(pods, lambda p: p not in gone, now=115) == [pod(1)]
    assert t.observe(pods, lambda p: p not in gone, now=125) == [pod(1), pod(2)]
    # The same address under a new sequence number is another allocation: no history.
    assert t.observe([pod(1, seq=2)], lambda p: False, now=126) == []


def test_netns_alive_follows_the_file_and_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    path.write_text("")
    ident = netns_id(str(path))
    assert netns_alive(str(path), ident) and netns_alive(str(path), "")
    other = tmp_path / "other"
    other.write_text("")  # made while the first exists: another inode
    os.rename(other, path)  # the path reused for another namespace
    assert not netns_alive(str(path), ident)
    path.unlink()
    assert not netns_alive(str(path), ident)


def test_a_real_namespace_deleted_is_gone(netns: NetnsGroup) -> None:
    ns = netns.add("pod")
    path = f"/run/netns/{ns.name}"
    ident = netns_id(path)
    assert netns_alive(path, ident)
    subprocess.run([IP, "netns", "delete", ns.name], check=True)
    del netns.namespaces["pod"]
    assert not netns_alive(path, ident)


async def test_reclaim_releases_this_nodes_leaked_pods_only(store: Store, tmp_path: Path) -> None:
    ipam = Ipam(store, POOL)
    paths = {}
    for name in ("live", "leaked", "other-node"):
        paths[name] = tmp_path / name
        paths[name].write_text("")
    attrs = {n: {NETNS: str(p), NETNS_ID: netns_id(str(p))} for n, p in paths.items()}
    live = await ipam.allocate("n1", "live", attrs=attrs["live"])
    await ipam.allocate("n1", "leaked", attrs=attrs["leaked"])
    await ipam.allocate("n2", "other", attrs=attrs["other-node"])
    await ipam.allocate("n1", "vxlan-n1")  # no namespace recorded: never a leak
    paths["leaked"].unlink()
    paths["other-node"].unlink()  # n2's to reclaim, not n1's
    tracker = LeakTracker(grace=5)
    assert await reclaim_leaks(ipam, "n1", tracker, netns_alive, now=1000) == []
    freed = await reclaim_leaks(ipam, "n1", tracker, netns_alive, now=1005)
    assert [h for _, h in freed] == ["leaked"]
    held = {al.handle for b in await ipam.blocks() for _, al in b.held()}
    assert held == {"live", "other", "vxlan-n1"}
    assert (await ipam.handles())["live"]["addrs"][str(live.address)]["seq"] == live.seq
    assert await ipam.check() == []
