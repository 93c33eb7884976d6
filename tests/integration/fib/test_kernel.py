"""The reconciler on a real kernel, in a network namespace."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from fib_nodes import reconciler, routes

from fib.kernel import RouteEvent, Unsupported
from fib.model import Encap, NodeInfo, Prefix, RemoteRoute, Vtep, pack_addr, vtep_mac
from fib.netlink import NetlinkKernel
from fib.plan import plan_ipip_device
from fib.reconciler import FibConfig, Reconciler
from fib.service import FibService
from podbgp.lab.netns import Netns

pytestmark = pytest.mark.root
SO_DETACH_FILTER = 27

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0")
B, C = pack_addr("10.0.0.2"), pack_addr("10.0.0.3")
P1, P2, P3 = (Prefix.parse(f"10.244.{i}.0/26") for i in (1, 2, 3))
OWN = Prefix.parse("10.244.0.0/26")


def test_install_replace_delete_ecmp_blackhole(node: Netns, kernels: list[NetlinkKernel]) -> None:
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (B,)))
    rec.set_route(RemoteRoute(P2, (B, C)))
    rec.set_own_block(OWN)
    rec.apply()
    assert routes(node, "proto", "80") == [
        "blackhole 10.244.0.0/26",
        "10.244.1.0/26 via 10.0.0.2 dev eth0",
        "10.244.2.0/26",
        "nexthop via 10.0.0.2 dev eth0 weight 1",
        "nexthop via 10.0.0.3 dev eth0 weight 1",
    ]
    rec.set_route(RemoteRoute(P1, (C,)))
    rec.set_route(RemoteRoute(P2, (C,)))
    rec.apply()
    assert routes(node, "proto", "80") == [
        "blackhole 10.244.0.0/26",
        "10.244.1.0/26 via 10.0.0.3 dev eth0",
        "10.244.2.0/26 via 10.0.0.3 dev eth0",
    ]
    rec.del_route(P1)
    rec.del_own_block(OWN)
    rec.apply()
    assert routes(node, "proto", "80") == ["10.244.2.0/26 via 10.0.0.3 dev eth0"]
    writes = rec.counters.route_writes
    rec.resync()
    assert rec.counters.route_writes == writes  # already right: a dump, no writes
    assert rec.snapshot()["in_sync"] == 1


def test_foreign_routes_untouched(node: Netns, kernels: list[NetlinkKernel]) -> None:
    node.ip("route", "add", "10.244.9.0/26", "via", "10.0.0.2", "proto", "static")
    node.ip("route", "add", "10.244.1.0/26", "via", "10.0.0.3", "proto", "boot")
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (B,)))
    rec.set_route(RemoteRoute(P2, (B,)))
    rec.apply()
    rec.sweep_stale()
    rec.resync()
    assert routes(node, "proto", "static") == ["10.244.9.0/26 via 10.0.0.2 dev eth0"]
    assert routes(node, "proto", "boot") == ["10.244.1.0/26 via 10.0.0.3 dev eth0"]
    assert routes(node, "proto", "80") == ["10.244.2.0/26 via 10.0.0.2 dev eth0"]
    snap = rec.snapshot()
    assert snap["conflicts"] == 1
    assert [r["state"] for r in snap["routes"]] == ["conflict", "ok"]


def test_vxlan_device_neighbour_and_fdb(node: Netns, kernels: list[NetlinkKernel]) -> None:
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_vtep(Vtep(C, pack_addr("10.244.3.0"), vtep_mac("node-c")))
    rec.set_route(RemoteRoute(P3, (C,), vxlan=Encap.ALWAYS))
    rec.apply()
    link = node.ip("-d", "link", "show", "vxlan.podbgp")
    assert "mtu 1450" in link and f"link/ether {vtep_mac('node-a')}" in link
    for part in ("vxlan id 4096", "local 10.0.0.1", "dev eth0", "dstport 4789", "nolearning"):
        assert part in link
    assert "10.244.0.0/32" in node.addresses("vxlan.podbgp")
    assert routes(node, "proto", "80") == ["10.244.3.0/26 via 10.244.3.0 dev vxlan.podbgp onlink"]
    neigh = node.ip("neigh", "show", "dev", "vxlan.podbgp")
    assert f"10.244.3.0 lladdr {vtep_mac('node-c')} PERMANENT" in neigh
    fdb = node.run("bridge", "fdb", "show", "dev", "vxlan.podbgp")
    assert f"{vtep_mac('node-c')} dst 10.0.0.3 self permanent" in fdb
    # the device is kept correct: a changed MTU is put back at the next resync
    node.ip("link", "set", "vxlan.podbgp", "mtu", "1300")
    rec.resync()
    assert "mtu 1450" in node.ip("link", "show", "vxlan.podbgp")


def test_ipip_on_the_real_kernel(node: Netns, kernels: list[NetlinkKernel]) -> None:
    kernel = NetlinkKernel(node.name)
    kernels.append(kernel)
    try:
        kernel.ensure_ipip(plan_ipip_device(NODE, 1500))
    except Unsupported as exc:
        pytest.skip(f"IP-in-IP not testable on this kernel: {exc}")
    rec = reconciler(node, kernels)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (C,), ipip=Encap.ALWAYS))
    rec.apply()
    assert routes(node, "proto", "80") == ["10.244.1.0/26 via 10.0.0.3 dev tunl0 onlink"]


async def _until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_drift_repaired_from_kernel_events(node: Netns, kernels: list[NetlinkKernel]) -> None:
    rec = reconciler(node, kernels, resync_interval=3600)
    rec.set_node(NODE)
    rec.set_route(RemoteRoute(P1, (B,)))
    rec.set_route(RemoteRoute(P2, (B,)))
    service = FibService(rec)
    task = asyncio.create_task(service.run())
    try:
        await _until(lambda: len(routes(node, "proto", "80")) == 2)
        node.ip("route", "del", "10.244.1.0/26")
        node.ip("route", "replace", "10.244.2.0/26", "via", "10.0.0.3", "proto", "80")
        await _until(lambda: routes(node, "proto", "80") == [
            "10.244.1.0/26 via 10.0.0.2 dev eth0", "10.244.2.0/26 via 10.0.0.2 dev eth0"])  # fmt: skip
        assert rec.counters.resyncs == 1  # repaired from events, not by a resync
        assert rec.counters.drift_events >= 2 and rec.counters.drift_repaired >= 2
        rec.set_route(RemoteRoute(P3, (C,)))
        service.wake()
        await _until(lambda: len(routes(node, "proto", "80")) == 3)
    finally:
        service.stop()
        await task
    assert len(routes(node, "proto", "80")) == 3  # stopping leaves routes in place


def test_restart_adoption_no_route_missing(node: Netns, kernels: list[NetlinkKernel]) -> None:
    wanted = [Prefix(bytes([10, 245, i >> 8, i & 255]), 32) for i in range(3000)]
    leftovers = [Prefix(bytes([10, 246, 0, i]), 32) for i in range(50)]
    old = reconciler(node, kernels)
    old.set_node(NODE)
    old.set_routes(RemoteRoute(p, (B,)) for p in wanted + leftovers)
    old.apply()
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
        old.kernel.close()  # the old daemon stops (or dies): routes stay
        kernels.remove(old.kernel)  # type: ignore[arg-type]
        new = reconciler(node, kernels)
        new.set_node(NODE)
        new.apply()  # adopts everything as stale, writes nothing
        assert new.counters.stale_adopted == 3050 and new.counters.route_writes == 0
        # BGP converges: routes come back, some with a new next hop
        new.set_routes(RemoteRoute(p, (C,) if i % 10 == 0 else (B,)) for i, p in enumerate(wanted))
        new.apply()
        assert new.counters.route_writes == 300
        assert len(routes(node, "proto", "80")) == 3050  # leftovers kept until End-of-RIB
        assert new.sweep_stale() == 50
        time.sleep(0.05)
    finally:
        stop.set()
        poller.join()
    assert len(samples) > 3 and max(samples) == 0  # never a wanted route missing
    assert len(routes(node, "proto", "80")) == 3000
    assert len(routes(node, "proto", "80", "via", "10.0.0.3")) == 300


def _route_events(kernel: NetlinkKernel, want: int, timeout: float = 10.0) -> list[RouteEvent]:
    """Route events read until `want` have arrived (or the timeout)."""
    got: list[RouteEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [e for e in kernel.read_events() if isinstance(e, RouteEvent)]
        time.sleep(0.05)
    return got


@pytest.mark.parametrize("in_kernel", [True, False], ids=["bpf-filter", "python-skip"])
def test_own_writes_echo_nothing_foreign_changes_arrive(
    node: Netns, kernels: list[NetlinkKernel], in_kernel: bool
) -> None:
    """Writing 500 routes (and deleting them) yields no events; someone else's route does."""
    kernel = NetlinkKernel(node.name)
    kernels.append(kernel)
    assert kernel.events is not None and kernel.echo_filtered
    if not in_kernel:
        kernel.events.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    rec = Reconciler(kernel, FibConfig())
    rec.set_node(NODE)
    rec.apply()
    kernel.read_events()
    rec.set_routes(RemoteRoute(Prefix(pack_addr(f"10.245.{i // 250}.{i % 250}"), 32), (B,))
                   for i in range(500))  # fmt: skip
    rec.apply()
    assert len(rec.installed) == 500
    node.ip("route", "add", "10.246.0.0/24", "via", "10.0.0.3", "proto", "static")
    events = _route_events(kernel, 1)
    assert [(e.deleted, str(Prefix(e.route.dst, e.route.dst_len))) for e in events] == [
        (False, "10.246.0.0/24")
    ]
    for i in range(500):
        rec.del_route(Prefix(pack_addr(f"10.245.{i // 250}.{i % 250}"), 32))
    rec.apply()
    node.ip("route", "del", "10.246.0.0/24")
    events = _route_events(kernel, 1)
    assert [(e.deleted, e.route.dst_len) for e in events] == [(True, 24)]
    assert rec.counters.drift_events == 0
