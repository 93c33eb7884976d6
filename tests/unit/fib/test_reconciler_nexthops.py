"""The reconciler's nexthop objects on the in-memory kernel: groups, re-pointing, restart,
drift, fallback, foreign objects."""

from __future__ import annotations

import errno

from fib.fake import FakeKernel
from fib.kernel import KernelError
from fib.model import (
    Encap,
    Nexthop,
    NexthopObject,
    NexthopSpec,
    NodeInfo,
    Prefix,
    RemoteRoute,
    Vtep,
    pack_addr,
    vtep_mac,
)
from fib.nexthops import NH_ID_BASE
from fib.reconciler import FibConfig, Reconciler, key_of

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0", vtep="10.244.0.0")
B, C, D = (pack_addr(f"10.0.0.{i}") for i in (2, 3, 4))
VTEP_C = Vtep(C, pack_addr("10.244.9.0"), vtep_mac("node-c"))
VIA_B, VIA_C, VIA_D = (Nexthop(a, "eth0") for a in (B, C, D))


def block(i: int) -> Prefix:
    return Prefix(bytes([10, 244 + i // 1024, (i // 4) % 256, (i % 4) * 64]), 26)


def make(kernel: FakeKernel | None = None, **cfg: object) -> tuple[Reconciler, FakeKernel]:
    kernel = kernel or FakeKernel()
    rec = Reconciler(kernel, FibConfig(**cfg))  # type: ignore[arg-type]
    rec.set_node(NODE)
    return rec, kernel


def objects(kernel: FakeKernel) -> dict[int, NexthopSpec]:
    return {i: o.spec for i, o in kernel.nexthops.items()}


def hops_of(kernel: FakeKernel, prefix: Prefix) -> tuple[Nexthop, ...]:
    return kernel.table(254)[key_of(prefix)].nexthops


def nh_of(kernel: FakeKernel, prefix: Prefix) -> int:
    return kernel.table(254)[key_of(prefix)].nh_id


def writes(kernel: FakeKernel) -> tuple[int, int]:
    return kernel.route_writes, kernel.nexthop_writes


def test_routes_through_one_hop_share_one_object_and_ecmp_is_a_group() -> None:
    rec, kernel = make()
    rec.set_routes(RemoteRoute(block(i), (B,)) for i in range(1, 51))
    rec.set_route(RemoteRoute(block(60), (B, C)))
    rec.set_own_block(block(0))
    rec.apply()
    b, c, group = NH_ID_BASE, NH_ID_BASE + 1, NH_ID_BASE + 2
    assert objects(kernel) == {
        b: NexthopSpec(VIA_B),
        c: NexthopSpec(VIA_C),
        group: NexthopSpec(None, ((b, 1), (c, 1))),
    }
    assert all(o.protocol == 80 for o in kernel.nexthops.values())
    assert {nh_of(kernel, block(i)) for i in range(1, 51)} == {b}
    assert nh_of(kernel, block(60)) == group and hops_of(kernel, block(60)) == (VIA_B, VIA_C)
    assert nh_of(kernel, block(0)) == 0  # a blackhole stays a plain route
    assert kernel.nexthop_write_calls == 1 and kernel.write_calls == 1
    before = writes(kernel)
    kernel.read_events()
    rec.resync()
    assert writes(kernel) == before  # a dump of each, no writes
    assert rec.snapshot()["in_sync"] == 52 and rec.snapshot()["nexthops"]["objects"] == 3


def test_local_pods_and_deviceless_hops_stay_plain() -> None:
    rec, kernel = make()
    kernel.links["cali1"] = 1500
    rec.set_local_pod(Prefix.parse("10.244.0.5/32"), "cali1")
    far = pack_addr("192.168.7.7")  # outside the node's subnet: `via NODE`, no device
    rec.set_route(RemoteRoute(block(1), (far,)))
    rec.apply()
    assert kernel.nexthops == {}
    assert nh_of(kernel, block(1)) == 0 and hops_of(kernel, block(1)) == (Nexthop(far, "eth0"),)


def test_vtep_change_repoints_every_route_with_one_nexthop_replace() -> None:
    rec, kernel = make()
    rec.set_vtep(VTEP_C)
    rec.set_routes(RemoteRoute(block(i), (C,), vxlan=Encap.ALWAYS) for i in range(1000))
    rec.set_routes(RemoteRoute(block(i), (B, C), vxlan=Encap.ALWAYS) for i in range(1000, 1010))
    rec.apply()
    route_writes, nh_writes = writes(kernel)
    old = nh_of(kernel, block(0))
    moved = VTEP_C.__class__(C, pack_addr("10.244.99.0"), VTEP_C.mac)
    rec.set_vtep(moved)
    rec.apply()
    assert writes(kernel) == (route_writes, nh_writes + 1)  # one object replaced, no route
    new_hop = Nexthop(moved.vtep_address, "vxlan.podbgp", True)
    assert kernel.nexthops[old].spec == NexthopSpec(new_hop)
    assert all(hops_of(kernel, block(i)) == (new_hop,) for i in range(1000))
    assert new_hop in hops_of(kernel, block(1005))  # the group holding it follows
    assert rec.counters.nexthop_repoints == 1 and rec.snapshot()["in_sync"] == 1010


def test_encapsulation_change_of_a_node_is_one_replace() -> None:
    """Every block of node C moves from plain `via C dev eth0` to VXLAN at once."""
    rec, kernel = make()
    rec.set_vtep(VTEP_C)
    rec.set_routes(RemoteRoute(block(i), (C,)) for i in range(500))
    rec.set_routes(RemoteRoute(block(i), (B,)) for i in range(500, 600))
    rec.apply()
    before = writes(kernel)
    rec.set_routes(RemoteRoute(block(i), (C,), vxlan=Encap.ALWAYS) for i in range(500))
    rec.apply()
    assert writes(kernel) == (before[0], before[1] + 1)
    assert hops_of(kernel, block(7)) == (Nexthop(VTEP_C.vtep_address, "vxlan.podbgp", True),)
    assert hops_of(kernel, block(550)) == (VIA_B,)


def test_partial_move_rebinds_only_the_moved_routes() -> None:
    rec, kernel = make()
    rec.set_routes(RemoteRoute(block(i), (C,)) for i in range(10))
    rec.apply()
    before = writes(kernel)
    rec.set_routes(RemoteRoute(block(i), (D,)) for i in range(3))
    rec.apply()
    assert writes(kernel) == (before[0] + 3, before[1] + 1)  # a new object for D, 3 routes
    assert {hops_of(kernel, block(i)) for i in range(3)} == {(VIA_D,)}
    assert {hops_of(kernel, block(i)) for i in range(3, 10)} == {(VIA_C,)}


def test_group_membership_change_replaces_the_group_in_place() -> None:
    rec, kernel = make()
    rec.set_routes(RemoteRoute(block(i), (B, C)) for i in range(100))
    rec.set_route(RemoteRoute(block(200), (C,)))  # C is still needed on its own
    rec.apply()
    group = nh_of(kernel, block(0))
    before = writes(kernel)
    rec.set_routes(RemoteRoute(block(i), (B, D)) for i in range(100))
    rec.apply()
    assert writes(kernel) == (before[0], before[1] + 2)  # object for D, then the group
    assert nh_of(kernel, block(0)) == group
    assert hops_of(kernel, block(99)) == (VIA_B, VIA_D)
    assert hops_of(kernel, block(200)) == (VIA_C,)


def test_objects_go_only_after_the_routes_that_name_them() -> None:
    rec, kernel = make()
    rec.set_routes(RemoteRoute(block(i), (B, C)) for i in range(5))
    rec.apply()
    assert len(kernel.nexthops) == 3
    rec.set_routes(RemoteRoute(block(i), (D,)) for i in range(5))
    rec.apply()  # a deletion too early would have taken the routes with it
    assert {hops_of(kernel, block(i)) for i in range(5)} == {(VIA_D,)}
    assert objects(kernel) == {NH_ID_BASE + 3: NexthopSpec(VIA_D)}
    for i in range(5):
        rec.del_route(block(i))
    rec.apply()
    assert kernel.nexthops == {} and kernel.table(254) == {}


def test_restart_adopts_objects_and_sweeps_them_after_their_routes() -> None:
    old, kernel = make()
    old.set_routes(RemoteRoute(block(i), (B,)) for i in range(20))
    old.set_routes(RemoteRoute(block(i), (B, C)) for i in range(20, 30))
    old.set_routes(RemoteRoute(block(i), (D,)) for i in range(30, 35))  # gone after restart
    old.apply()
    before_routes, before_objects = dict(kernel.table(254)), objects(kernel)
    new, _ = make(kernel)
    new.apply()
    assert kernel.table(254) == before_routes and objects(kernel) == before_objects
    assert new.counters.stale_adopted == 35
    done = writes(kernel)
    new.set_routes(RemoteRoute(block(i), (B,)) for i in range(20))
    new.set_routes(RemoteRoute(block(i), (B, C)) for i in range(20, 30))
    new.apply()
    assert writes(kernel) == done  # same objects by content: nothing to write
    assert objects(kernel) == before_objects  # D's object kept: stale routes name it
    assert new.sweep_stale() == 5
    assert len(kernel.table(254)) == 30
    assert NexthopSpec(VIA_D) not in objects(kernel).values()
    assert new.snapshot()["in_sync"] == 30


def test_restart_with_a_changed_hop_rewrites_and_collects_the_old_object() -> None:
    old, kernel = make()
    old.set_routes(RemoteRoute(block(i), (B,)) for i in range(4))
    old.apply()
    new, _ = make(kernel)
    new.apply()
    new.set_routes(RemoteRoute(block(i), (C,)) for i in range(4))
    new.apply()
    assert {hops_of(kernel, block(i)) for i in range(4)} == {(VIA_C,)}
    assert objects(kernel) == {NH_ID_BASE + 1: NexthopSpec(VIA_C)}  # B's went after the routes


def test_deleted_object_is_repaired_by_a_resync() -> None:
    rec, kernel = make(resync_interval=3600)
    rec.set_routes(RemoteRoute(block(i), (B,)) for i in range(10))
    rec.set_route(RemoteRoute(block(10), (B, C)))
    rec.apply()
    rec.handle_events()
    assert not rec.pending()
    kernel.external_nexthop_delete(NH_ID_BASE)  # B's object: its routes vanish silently
    assert len(kernel.table(254)) == 1
    rec.handle_events()
    assert rec.need_resync and rec.counters.drift_events == 1
    rec.apply()
    assert len(kernel.table(254)) == 11
    assert hops_of(kernel, block(10)) == (VIA_B, VIA_C)  # the group got its member back
    assert rec.counters.nexthop_drift_repaired >= 1 and rec.counters.drift_repaired >= 10
    assert rec.snapshot()["in_sync"] == 11


def test_changed_object_is_put_back_from_its_event() -> None:
    rec, kernel = make(resync_interval=3600)
    rec.set_routes(RemoteRoute(block(i), (B,)) for i in range(3))
    rec.apply()
    rec.handle_events()
    kernel.write_nexthops([(0, NexthopObject(NH_ID_BASE, NexthopSpec(VIA_D), 80))])  # by hand
    rec.handle_events()
    rec.apply()
    assert objects(kernel)[NH_ID_BASE] == NexthopSpec(VIA_B)
    assert rec.counters.resyncs == 1 and rec.counters.drift_events == 1


def test_carrier_loss_flush_is_noticed_from_the_link_event() -> None:
    rec, kernel = make(resync_interval=3600)
    rec.set_routes(RemoteRoute(block(i), (B,)) for i in range(5))
    rec.apply()
    rec.handle_events()
    kernel.carrier_loss("eth0")  # objects and their routes gone, only a link event
    assert kernel.table(254) == {}
    rec.handle_events()
    assert rec.pending()
    rec.apply()
    assert len(kernel.table(254)) == 5 and rec.counters.resyncs == 2


def test_kernel_without_nexthop_objects_gets_plain_routes() -> None:
    rec, kernel = make(FakeKernel(nexthops_supported=False))
    rec.set_routes([RemoteRoute(block(1), (B,)), RemoteRoute(block(2), (B, C))])
    rec.apply()
    assert nh_of(kernel, block(1)) == 0 and hops_of(kernel, block(2)) == (VIA_B, VIA_C)
    snap = rec.snapshot()
    assert snap["nexthops"]["enabled"] is False and "no nexthop objects" in snap["nexthops"][
        "unsupported"]  # fmt: skip
    assert snap["in_sync"] == 2


def test_first_objects_refused_with_einval_turns_objects_off() -> None:
    kernel = FakeKernel()
    kernel.refuse_nexthop = {NH_ID_BASE + i: errno.EINVAL for i in range(3)}
    rec, _ = make(kernel)
    rec.set_routes([RemoteRoute(block(1), (B,)), RemoteRoute(block(2), (B, C))])
    rec.apply()
    assert not rec.nh.enabled and "Invalid argument" in rec.nh.unsupported
    assert nh_of(kernel, block(1)) == 0 and hops_of(kernel, block(2)) == (VIA_B, VIA_C)
    rec.set_route(RemoteRoute(block(3), (C,)))
    rec.apply()
    assert nh_of(kernel, block(3)) == 0 and kernel.nexthops == {}


def test_one_refused_object_sends_only_its_routes_back_to_plain_hops() -> None:
    kernel = FakeKernel()
    rec, _ = make(kernel)
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    kernel.refuse_nexthop = {NH_ID_BASE + 1: errno.ENETDOWN}  # C's object, when it comes
    rec.set_routes([RemoteRoute(block(2), (C,)), RemoteRoute(block(3), (B, C))])
    rec.apply()
    assert rec.nh.enabled
    assert nh_of(kernel, block(1)) == NH_ID_BASE
    assert nh_of(kernel, block(2)) == 0 and hops_of(kernel, block(2)) == (VIA_C,)
    assert nh_of(kernel, block(3)) == 0 and hops_of(kernel, block(3)) == (VIA_B, VIA_C)
    # C's object, and the group that needed it as a member
    assert rec.snapshot()["in_sync"] == 3 and rec.snapshot()["nexthops"]["refused"] == 2
    kernel.refuse_nexthop = {}
    rec.resync()  # refused objects are retried
    assert nh_of(kernel, block(2)) != 0 and nh_of(kernel, block(3)) != 0
    assert rec.snapshot()["in_sync"] == 3


def test_foreign_objects_are_never_touched_nor_their_ids_taken() -> None:
    kernel = FakeKernel()
    theirs_in_range = NexthopObject(NH_ID_BASE, NexthopSpec(VIA_B), protocol=4)
    ours_out_of_range = NexthopObject(77, NexthopSpec(VIA_C), protocol=80)
    kernel.write_nexthops([(0, theirs_in_range), (0, ours_out_of_range)])
    rec, _ = make(kernel)
    rec.set_routes([RemoteRoute(block(1), (B,)), RemoteRoute(block(2), (C,))])
    rec.apply()
    assert kernel.nexthops[NH_ID_BASE] == theirs_in_range
    assert kernel.nexthops[77] == ours_out_of_range
    assert nh_of(kernel, block(1)) not in (0, NH_ID_BASE, 77)
    rec.sweep_stale()
    rec.resync()
    assert kernel.nexthops[NH_ID_BASE] == theirs_in_range
    assert kernel.nexthops[77] == ours_out_of_range


def test_netlink_error_on_objects_leads_to_a_resync() -> None:
    rec, kernel = make()
    rec.set_route(RemoteRoute(block(1), (B,)))
    rec.apply()
    rec.set_route(RemoteRoute(block(2), (C,)))
    kernel.fail_next_write = KernelError("ENOBUFS")
    rec.apply()
    assert rec.need_resync
    rec.apply()
    assert nh_of(kernel, block(2)) != 0 and rec.snapshot()["in_sync"] == 2


def test_nexthops_can_be_turned_off_by_config() -> None:
    rec, kernel = make(nexthops=False)
    rec.set_route(RemoteRoute(block(1), (B, C)))
    rec.apply()
    assert kernel.nexthops == {} and kernel.nexthop_dumps == 0
    assert hops_of(kernel, block(1)) == (VIA_B, VIA_C)


def test_withdraw_and_announce_again_between_two_passes_is_no_write() -> None:
    """A peer's End-of-RIB sweeps a stale route and its UPDATE brings it back before the
    next pass (RFC 4724 §4.2, the receiving side): desired state is compared with the
    kernel at apply time, so nothing is written and the route keeps its object."""
    rec, kernel = make()
    reach = RemoteRoute(block(1), (C,)).reach
    rec.update_remote({block(1).dest: reach, block(2).dest: RemoteRoute(block(2), (B,)).reach})
    rec.apply()
    nh, done = nh_of(kernel, block(1)), writes(kernel)
    rec.update_remote({block(1).dest: None})
    rec.update_remote({block(1).dest: reach})
    rec.apply()
    assert writes(kernel) == done and nh_of(kernel, block(1)) == nh
    assert objects(kernel)[nh] == NexthopSpec(VIA_C)
