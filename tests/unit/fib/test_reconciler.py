"""The reconciler against the in-memory kernel: batches, drift, conflicts, restart, errors."""

from __future__ import annotations

import errno

from fib.fake import FakeKernel
from fib.kernel import KernelError, LinkEvent
from fib.model import (
    RTN_UNICAST,
    Encap,
    FdbEntry,
    KernelRoute,
    Neighbour,
    Nexthop,
    NodeInfo,
    Prefix,
    Reach,
    RemoteRoute,
    Vtep,
    pack_addr,
    vtep_mac,
)
from fib.nexthops import NH_ID_BASE
from fib.reconciler import FibConfig, Reconciler, key_of

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0")
B = pack_addr("10.0.0.2")
C = pack_addr("10.0.0.3")


def block(i: int) -> Prefix:
    return Prefix(bytes([10, 244, i // 4, (i % 4) * 64]), 26)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(
    kernel: FakeKernel | None = None, clock: Clock | None = None
) -> tuple[Reconciler, FakeKernel]:
    kernel = kernel or FakeKernel()
    rec = Reconciler(kernel, FibConfig(resync_interval=90), clock=clock or Clock())
    rec.set_node(NODE)
    return rec, kernel


def table(kernel: FakeKernel) -> dict[str, str]:
    """The kernel's routes as text, hops shown whether inline or through an object."""
    return {
        str(Prefix(r.dst, r.dst_len)): r._replace(nh_id=0).describe()
        for r in kernel.table(254).values()
    }


def test_install_in_one_batch_then_resync_writes_nothing() -> None:
    rec, kernel = make()
    rec.set_routes(RemoteRoute(block(i), (B,)) for i in range(1, 101))
    rec.set_own_block(block(0))
    rec.apply()
    assert kernel.write_calls == 1 and kernel.route_writes == 101
    assert table(kernel)["10.244.0.0/26"] == "blackhole 10.244.0.0/26 proto 80"
    assert table(kernel)["10.244.0.64/26"] == "10.244.0.64/26 via 10.0.0.2 dev eth0 proto 80"
    kernel.read_events()
    rec.resync()
    assert kernel.route_writes == 101 and kernel.dumps == 2
    snap = rec.snapshot()
    assert snap["desired"] == snap["installed"] == snap["in_sync"] == 101


def test_replace_and_delete() -> None:
    rec, kernel = make()
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    rec.set_route(RemoteRoute(block(1), (B, C)))
    rec.apply()
    assert (
        "nexthop via 10.0.0.2 dev eth0 nexthop via 10.0.0.3 dev eth0"
        in table(kernel)[str(block(1))]
    )
    rec.del_route(block(1))
    rec.apply()
    assert table(kernel) == {}
    assert rec.snapshot()["installed"] == 0


def test_foreign_route_is_never_touched_and_reported_as_conflict() -> None:
    rec, kernel = make()
    foreign = KernelRoute(block(1).addr, 26, RTN_UNICAST, (Nexthop(C, "eth0"),), protocol=4)
    kernel.external_replace(foreign)
    other = KernelRoute(block(9).addr, 26, RTN_UNICAST, (Nexthop(C, "eth0"),), protocol=186)
    kernel.external_replace(other)
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    assert kernel.table(254)[foreign.key] == foreign
    assert kernel.table(254)[other.key] == other
    assert rec.snapshot()["conflicts"] == 1
    assert rec.snapshot()["routes"][0]["state"] == "conflict"
    # once the foreign route is gone, ours goes in straight from the event
    kernel.read_events()
    kernel.external_delete(foreign)
    rec.handle_events()
    rec.apply()
    assert kernel.table(254)[foreign.key].protocol == 80
    assert kernel.table(254)[other.key] == other


def test_drift_repaired_from_events() -> None:
    rec, kernel = make()
    rec.set_routes([RemoteRoute(block(1), (B,)), RemoteRoute(block(2), (B,))])
    rec.apply()
    rec.handle_events()  # echoes of our own writes: nothing to do
    assert not rec.dirty and rec.counters.drift_events == 0
    mine = kernel.table(254)[key_of(block(1))]
    kernel.external_delete(mine)
    kernel.external_replace(
        kernel.table(254)[key_of(block(2))]._replace(nexthops=(Nexthop(C, "eth0"),), nh_id=0)
    )
    rec.handle_events()
    rec.apply()
    assert kernel.table(254)[key_of(block(1))] == mine
    assert "via 10.0.0.2" in table(kernel)[str(block(2))]
    assert rec.counters.drift_events == 2 and rec.counters.drift_repaired == 2
    assert kernel.dumps == 1  # repaired without a resync


def test_lost_events_and_periodic_resync_repair_drift() -> None:
    clock = Clock()
    rec, kernel = make(clock=clock)
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    kernel.table(254).clear()  # silently: no event
    rec.apply()
    assert table(kernel) == {}
    clock.now = 91
    rec.apply()
    assert str(block(1)) in table(kernel)
    assert rec.counters.resyncs == 2 and rec.counters.drift_repaired == 1
    kernel.table(254).clear()
    kernel.overflow()
    rec.handle_events()
    rec.apply()
    assert str(block(1)) in table(kernel) and rec.counters.event_overruns == 1


def test_netlink_error_triggers_resync() -> None:
    rec, kernel = make()
    rec.set_route(RemoteRoute(block(1), (B,)))
    kernel.fail_next_write = KernelError("ENOBUFS")
    rec.apply()
    assert table(kernel) == {} and rec.need_resync and rec.counters.netlink_errors == 1
    rec.apply()
    assert str(block(1)) in table(kernel)


def test_refused_route_is_reported_and_retried_when_its_device_appears() -> None:
    rec, kernel = make()
    pod = Prefix.parse("10.244.0.5/32")
    rec.set_local_pod(pod, "cali1")
    rec.apply()
    assert rec.snapshot()["routes"][0]["state"] == "failed: No such device"
    kernel.links["cali1"] = 1500
    rec.handle_events([LinkEvent(False, "cali1")])
    rec.apply()
    assert table(kernel)[str(pod)] == "10.244.0.5/32 dev cali1 proto 80"


def test_restart_adopts_routes_and_sweeps_only_after_convergence() -> None:
    old, kernel = make()
    old.set_routes(RemoteRoute(block(i), (B,)) for i in range(1, 5))
    old.apply()
    before = dict(kernel.table(254))
    # the new process knows nothing yet, then learns routes one by one
    new, _ = make(kernel)
    new.apply()
    assert kernel.table(254) == before and new.counters.stale_adopted == 4
    writes = kernel.route_writes
    new.set_route(RemoteRoute(block(1), (B,)))  # same as before: adopted, no write
    new.set_route(RemoteRoute(block(2), (C,)))  # changed: replaced in place
    new.apply()
    assert kernel.route_writes == writes + 1
    assert len(kernel.table(254)) == 4  # blocks 3 and 4 still there (stale)
    assert new.sweep_stale() == 2
    assert set(table(kernel)) == {str(block(1)), str(block(2))}
    assert "via 10.0.0.3" in table(kernel)[str(block(2))]
    # after convergence an owned route nobody wants is removed at the next resync
    kernel.external_replace(before[key_of(block(3))])
    new.resync()
    assert set(table(kernel)) == {str(block(1)), str(block(2))}


def test_withdraw_before_sweep_deletes_routes_this_run_installed() -> None:
    rec, kernel = make()
    rec.apply()
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    rec.del_route(block(1))
    rec.apply()
    assert table(kernel) == {}


def test_vxlan_device_neighbours_and_fdb() -> None:
    rec, kernel = make()
    c_vtep = Vtep(C, pack_addr("10.244.9.0"), vtep_mac("node-c"))
    rec.set_vtep(c_vtep)
    rec.set_route(RemoteRoute(block(1), (C,), vxlan=Encap.ALWAYS))
    rec.apply()
    spec = kernel.devices["vxlan.podbgp"]
    assert spec.mtu == 1450 and kernel.links["vxlan.podbgp"] == 1450
    assert kernel.neighbours == {Neighbour("vxlan.podbgp", c_vtep.vtep_address, c_vtep.mac)}
    assert kernel.fdb == {FdbEntry("vxlan.podbgp", c_vtep.mac, C)}
    assert (
        table(kernel)[str(block(1))]
        == "10.244.0.64/26 via 10.244.9.0 dev vxlan.podbgp onlink proto 80"
    )
    rec.del_vtep(C)
    rec.apply()
    assert kernel.neighbours == set() and kernel.fdb == set()
    assert table(kernel) == {} and rec.snapshot()["unroutable"] == [str(block(1))]


def test_ipip_unsupported_is_reported() -> None:
    rec, _kernel = make(FakeKernel(ipip_supported=False))
    rec.set_route(RemoteRoute(block(1), (C,), ipip=Encap.ALWAYS))
    rec.apply()
    snap = rec.snapshot()
    assert "no IP-in-IP" in snap["tunnels"]["ipip_unsupported"]
    assert snap["failed"] == 1 and rec.failed[key_of(block(1))] == errno.ENODEV


def test_ipip_route_installed_when_supported() -> None:
    rec, kernel = make()
    rec.set_route(RemoteRoute(block(1), (C,), ipip=Encap.ALWAYS))
    rec.apply()
    assert table(kernel)[str(block(1))] == "10.244.0.64/26 via 10.0.0.3 dev tunl0 onlink proto 80"
    assert kernel.devices["tunl0"].mtu == 1480


def test_snapshot_is_plain_data() -> None:
    import json

    rec, _ = make()
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    snap = json.loads(json.dumps(rec.snapshot()))
    assert snap["routes"] == [{
        "prefix": "10.244.0.64/26",
        "desired": f"10.244.0.64/26 nhid {NH_ID_BASE} via 10.0.0.2 dev eth0 proto 80",
        "installed": f"10.244.0.64/26 nhid {NH_ID_BASE} via 10.0.0.2 dev eth0 proto 80",
        "state": "ok",
    }]  # fmt: skip
    assert snap["nexthops"]["rows"] == [f"id {NH_ID_BASE} via 10.0.0.2 dev eth0 proto 80"]
    assert set(snap["counters"]) >= {"resyncs", "drift_repaired", "drift_events", "route_writes"}


def test_a_new_block_of_a_known_vtep_does_not_dump_neighbours_or_fdb() -> None:
    # the cluster's common event: another block of a node whose VTEP is known
    rec, kernel = make()
    c_vtep = Vtep(C, pack_addr("10.244.9.0"), vtep_mac("node-c"))
    rec.set_vtep(c_vtep)
    rec.set_route(RemoteRoute(block(1), (C,), vxlan=Encap.CROSS_SUBNET))
    rec.apply()
    dumps = kernel.tunnel_dumps
    assert dumps > 0 and rec.tunnels.vxlan_ok
    rec.update_remote({block(i).dest: Reach((C,), vxlan=Encap.CROSS_SUBNET) for i in range(2, 6)})
    rec.set_route(RemoteRoute(block(6), (C,), vxlan=Encap.ALWAYS))
    rec.apply()
    assert kernel.tunnel_dumps == dumps
    assert all(str(block(i)) in table(kernel) for i in range(1, 7))
    # a new VTEP still syncs the entries
    d_vtep = Vtep(B, pack_addr("10.244.8.0"), vtep_mac("node-d"))
    rec.set_vtep(d_vtep)
    rec.apply()
    assert kernel.tunnel_dumps > dumps
    assert FdbEntry("vxlan.podbgp", d_vtep.mac, B) in kernel.fdb


def test_a_route_needing_another_tunnel_device_makes_it() -> None:
    rec, kernel = make()
    rec.set_route(RemoteRoute(block(1), (C,), vxlan=Encap.ALWAYS))
    rec.apply()
    assert "vxlan.podbgp" in kernel.devices and "tunl0" not in kernel.devices
    rec.set_route(RemoteRoute(block(1), (C,), ipip=Encap.ALWAYS))  # the same prefix
    rec.apply()
    assert "tunl0" in kernel.devices


def test_a_dual_stack_vtep_stands_for_both_next_hops_until_deleted() -> None:
    rec, kernel = make()
    c6 = pack_addr("fd00::3")
    vtep = Vtep(C, pack_addr("10.244.9.0"), vtep_mac("node-c"), node_address6=c6)
    rec.set_vtep(vtep)
    block6 = Prefix.parse("fd00:10:244::40/122")
    rec.set_route(RemoteRoute(block6, (c6,), vxlan=Encap.ALWAYS))
    rec.apply()
    assert rec.inputs.vteps == {C: vtep, c6: vtep}
    assert table(kernel)[str(block6)].startswith(f"{block6} via fe80::"), table(kernel)
    assert Neighbour("vxlan.podbgp", vtep.link_local, vtep.mac) in kernel.neighbours
    rec.del_vtep(C)  # by its underlay address: both entries go
    rec.apply()
    assert rec.inputs.vteps == {} and table(kernel) == {}
    assert rec.snapshot()["unroutable"] == [str(block6)]
