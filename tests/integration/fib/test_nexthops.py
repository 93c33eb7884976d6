"""Kernel nexthop objects on a real kernel, in a network namespace: ECMP groups, shared
hops re-pointed by one replace, drift, carrier loss, restart adoption, foreign objects."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from fib_nodes import nexthops, raw_routes, reconciler, routes

from fib.model import Encap, NodeInfo, Prefix, RemoteRoute, Vtep, pack_addr, vtep_mac
from fib.netlink import NetlinkKernel
from fib.nexthops import NH_ID_BASE
from fib.service import FibService
from podbgp.lab.netns import Netns

pytestmark = pytest.mark.root

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0")
B, C = pack_addr("10.0.0.2"), pack_addr("10.0.0.3")
VTEP_C = Vtep(C, pack_addr("10.244.3.0"), vtep_mac("node-c"))
P1, P2, P3 = (Prefix.parse(f"10.244.{i}.0/26") for i in (1, 2, 3))
ID_B, ID_C, ID_GROUP = NH_ID_BASE, NH_ID_BASE + 1, NH_ID_BASE + 2


def through(ns: Netns, nh_id: int) -> int:
    """How many podbgp routes name object `nh_id` (`ip route` has no nhid filter)."""
    return sum(f" nhid {nh_id}" in line for line in raw_routes(ns, "proto", "80"))


def count(ns: Netns) -> int:
    """podbgp's routes (a multipath route's `nexthop` lines not counted)."""
    return sum(not line.startswith("nexthop") for line in routes(ns, "proto", "80"))


def pods(n: int) -> list[Prefix]:
    return [Prefix(bytes([10, 245, i >> 8, i & 255]), 32) for i in range(n)]


def test_ecmp_route_points_to_a_group_object(node: Netns, kernels: list[NetlinkKernel]) -> None:
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (B,)))
    rec.set_route(RemoteRoute(P2, (B, C)))
    rec.apply()
    assert nexthops(node, "proto", "80") == [
        f"id {ID_B} via 10.0.0.2 dev eth0 scope link proto 80",
        f"id {ID_C} via 10.0.0.3 dev eth0 scope link proto 80",
        f"id {ID_GROUP} group {ID_B}/{ID_C} proto 80",
    ]
    assert raw_routes(node, "proto", "80") == [
        f"10.244.1.0/26 nhid {ID_B} via 10.0.0.2 dev eth0",
        f"10.244.2.0/26 nhid {ID_GROUP}",
        "nexthop via 10.0.0.2 dev eth0 weight 1",
        "nexthop via 10.0.0.3 dev eth0 weight 1",
    ]
    writes = rec.counters.route_writes, rec.counters.nexthop_writes
    rec.resync()  # read back: routes and objects match, nothing to write
    assert (rec.counters.route_writes, rec.counters.nexthop_writes) == writes
    snap = rec.snapshot()
    assert snap["in_sync"] == 2 and snap["nexthops"]["installed"] == 3
    rec.del_route(P2)
    rec.apply()
    assert nexthops(node, "proto", "80") == [f"id {ID_B} via 10.0.0.2 dev eth0 scope link proto 80"]
    assert routes(node, "proto", "80") == ["10.244.1.0/26 via 10.0.0.2 dev eth0"]


def test_one_nexthop_replace_repoints_every_route_to_vxlan(
    node: Netns, kernels: list[NetlinkKernel]
) -> None:
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_vtep(VTEP_C)
    wanted = pods(2000)
    rec.set_routes(RemoteRoute(p, (C,)) for p in wanted)
    rec.apply()
    assert through(node, ID_B) == 2000
    route_writes = rec.counters.route_writes
    rec.set_routes(RemoteRoute(p, (C,), vxlan=Encap.ALWAYS) for p in wanted)
    rec.apply()
    assert rec.counters.route_writes == route_writes  # no route written
    assert rec.counters.nexthop_repoints == 1
    assert nexthops(node, "id", str(ID_B)) == [
        f"id {ID_B} via 10.244.3.0 dev vxlan.podbgp scope link proto 80 onlink"]  # fmt: skip
    shown = routes(node, "proto", "80")
    assert len(shown) == 2000
    host = [str(p).removesuffix("/32") for p in wanted]  # `ip route` drops a host route's /32
    assert set(shown) == {f"{h} via 10.244.3.0 dev vxlan.podbgp onlink" for h in host}


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_deleted_nexthop_object_is_repaired(
    node: Netns, kernels: list[NetlinkKernel]
) -> None:
    rec = reconciler(node, kernels, resync_interval=3600)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (B,)))
    rec.set_route(RemoteRoute(P2, (B, C)))
    service = FibService(rec)
    task = asyncio.create_task(service.run())
    want = ["10.244.1.0/26 via 10.0.0.2 dev eth0", "10.244.2.0/26",
            "nexthop via 10.0.0.2 dev eth0 weight 1", "nexthop via 10.0.0.3 dev eth0 weight 1"]  # fmt: skip
    try:
        await _until(lambda: routes(node, "proto", "80") == want)
        node.ip("nexthop", "del", "id", str(ID_B))  # takes P1 with it and shrinks the group
        await _until(lambda: routes(node, "proto", "80") == want)
        assert len(nexthops(node, "proto", "80")) == 3
        assert rec.counters.drift_events >= 1 and rec.counters.nexthop_drift_repaired >= 1
    finally:
        service.stop()
        await task


async def test_carrier_loss_flush_is_repaired_when_the_carrier_returns(
    node: Netns, kernels: list[NetlinkKernel], netns: object
) -> None:
    rec = reconciler(node, kernels, resync_interval=3600)
    rec.set_node(NODE)
    rec.set_routes(RemoteRoute(p, (B,)) for p in pods(50))
    service = FibService(rec)
    task = asyncio.create_task(service.run())
    peer = Netns(node.name[:-1] + "b")  # the fixture's namespace `b`, the other veth end
    try:
        await _until(lambda: len(routes(node, "proto", "80")) == 50)
        # carrier loss on a's eth0: the kernel flushes the routes through objects on it
        # (the carrier change reaches netlink through linkwatch, up to a second later)
        peer.ip("link", "set", "eth0", "down")
        await _until(lambda: rec.counters.resyncs >= 2)
        await _until(lambda: len(routes(node, "proto", "80")) == 50)  # back, if inline meanwhile
        peer.ip("link", "set", "eth0", "up")
        # back through one object (a new id if the kernel refused it while the carrier was
        # down and the routes fell back to inline hops meanwhile)
        await _until(lambda: len(nexthops(node, "proto", "80")) == 1
                     and sum(" nhid " in r for r in raw_routes(node, "proto", "80")) == 50)  # fmt: skip
    finally:
        service.stop()
        await task


def test_foreign_nexthop_objects_untouched(node: Netns, kernels: list[NetlinkKernel]) -> None:
    node.ip("nexthop", "add", "id", str(ID_B), "via", "10.0.0.3", "dev", "eth0", "proto", "static")
    node.ip("nexthop", "add", "id", "7", "via", "10.0.0.2", "dev", "eth0", "proto", "80")
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (B,)))
    rec.apply()
    rec.sweep_stale()
    rec.resync()
    assert nexthops(node, "id", str(ID_B)) == [
        f"id {ID_B} via 10.0.0.3 dev eth0 scope link proto static"]  # fmt: skip
    assert nexthops(node, "id", "7") == ["id 7 via 10.0.0.2 dev eth0 scope link proto 80"]
    assert raw_routes(node, "proto", "80") == [f"10.244.1.0/26 nhid {ID_C} via 10.0.0.2 dev eth0"]


def test_restart_adopts_objects_no_route_missing(node: Netns, kernels: list[NetlinkKernel]) -> None:
    wanted = pods(3000)
    leftovers = [Prefix(bytes([10, 246, 0, i]), 32) for i in range(50)]
    old = reconciler(node, kernels)
    old.set_node(NODE)
    old.set_routes(RemoteRoute(p, (B, C) if i % 3 == 0 else (B,)) for i, p in enumerate(wanted))
    old.set_routes(RemoteRoute(p, (C,)) for p in leftovers)
    old.apply()
    before = raw_routes(node, "proto", "80")
    objects_before = nexthops(node, "proto", "80")
    samples: list[int] = []
    stop = threading.Event()
    wanted_dsts = {p.addr for p in wanted}

    def poll() -> None:  # reads the table as fast as it can while the daemon restarts
        watcher = NetlinkKernel(node.name, watch=False)
        try:
            while not stop.is_set():
                have = {r.dst for r in watcher.dump_routes(254) if r.protocol == 80}
                samples.append(len(wanted_dsts - have))
        finally:
            watcher.close()

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.05)
        old.kernel.close()  # the old daemon stops (or dies): routes and objects stay
        kernels.remove(old.kernel)  # type: ignore[arg-type]
        new = reconciler(node, kernels)
        new.set_node(NODE)
        new.apply()  # adopts routes and objects, writes nothing
        assert new.counters.stale_adopted == 3050 and new.counters.nexthop_writes == 0
        new.set_routes(RemoteRoute(p, (B, C) if i % 3 == 0 else (B,)) for i, p in enumerate(wanted))
        new.apply()
        assert new.counters.route_writes == 0 and new.counters.nexthop_writes == 0
        assert raw_routes(node, "proto", "80") == before  # same objects, same ids
        assert new.sweep_stale() == 50
        time.sleep(0.05)
    finally:
        stop.set()
        poller.join()
    assert len(samples) > 3 and max(samples) == 0  # never a wanted route missing
    assert count(node) == 3000
    # C's own object went after the leftover routes; the group still holds C
    assert nexthops(node, "proto", "80") == objects_before
