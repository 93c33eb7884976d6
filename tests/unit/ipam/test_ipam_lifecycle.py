"""Node lifecycle over a real store (SQLite file and etcd): leases, lapse, gone, removal, cordon."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from ipam import Exhausted, Ipam, IpamConfig, Node, NodeRegistry, Pool
from ipam.lifecycle import (
    LIFECYCLE,
    Lifecycle,
    Liveness,
    Member,
    NodeError,
    NodeState,
    Phase,
    Timing,
    next_deadline,
    phase,
    reap,
    reaper,
    release_node,
)
from ipam.store.base import Store

T = Timing(gone_after=100.0, remove_after=1000.0)
LIVE = Liveness(lease=7, ttl=10, since=0.0, pid=1)


@pytest.mark.parametrize(
    ("state", "live", "now", "expected"),
    [
        (NodeState(), None, 0, Phase.UNLEASED),  # an older podbgp's record: never taken out
        (NodeState(), LIVE, 0, Phase.LIVE),
        (NodeState(leased=True), LIVE, 0, Phase.LIVE),
        (NodeState(leased=True), None, 0, Phase.LAPSED),  # nobody noted when yet
        (NodeState(leased=True, lapsed_at=10), None, 109.9, Phase.LAPSED),
        (NodeState(leased=True, lapsed_at=10), None, 110, Phase.GONE),
        (NodeState(leased=True, lapsed_at=10), LIVE, 5000, Phase.LIVE),  # came back
        (NodeState(leased=True, removed_at=3), None, 0, Phase.REMOVED),
        (NodeState(leased=True, removed_at=3), LIVE, 0, Phase.LIVE),  # rejoined
    ],
)
def test_phase_table(state: NodeState, live: Liveness | None, now: float, expected: Phase) -> None:
    assert phase(state, live, now, T) is expected


def test_the_reaper_is_the_smallest_live_name_and_deadlines_follow_the_lapse() -> None:
    members = {
        "a": Member("a", None, NodeState(leased=True, lapsed_at=50), None),
        "b": Member("b", None, NodeState(leased=True), LIVE),
        "c": Member("c", None, NodeState(leased=True), LIVE),
    }
    assert reaper(members, 60, T) == "b"
    assert next_deadline(members, T, 60) == 150
    assert next_deadline(members, T, 150) == 1050  # then its removal
    assert next_deadline(members, T, 1050) is None
    assert reaper({}, 0, T) is None


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


POOL = IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/24", "block_size": 28}),))


async def _node(store: Store, name: str) -> None:
    await NodeRegistry(store).register(Node(name, asn=65000, address="192.0.2.1/24"))


async def test_hold_then_restart_never_lapses(store: Store) -> None:
    lc = Lifecycle(store)
    await _node(store, "n1")
    first = await lc.hold("n1", 2)
    m = await lc.member("n1")
    assert m is not None and m.live == first and m.state.leased
    # kill -9 and a start before the lease ran out: the new run takes the key over.
    second = await lc.hold("n1", 30)
    await asyncio.sleep(3.5)  # the first lease has expired by now (etcd rounds TTLs up to ~2 s)
    assert await store.keep_alive(first.lease) == 0
    m = await lc.member("n1")
    assert m is not None and m.live is not None and m.live.lease == second.lease
    assert m.phase(time.time(), T) is Phase.LIVE and m.state.lapsed_at is None


async def test_keep_holds_the_lease_and_a_dead_holder_lapses(store: Store) -> None:
    lc = Lifecycle(store)
    await _node(store, "n1")
    live = await lc.hold("n1", 2)
    keeper = asyncio.ensure_future(lc.keep("n1", live, lambda _l: None))
    await asyncio.sleep(4.5)
    m = await lc.member("n1")
    assert m is not None and m.live is not None, "kept alive for longer than its TTL"
    keeper.cancel()  # the holder dies
    deadline = time.monotonic() + 15
    while (m := await lc.member("n1")) is not None and m.live is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert m is not None and m.phase(time.time(), T) is Phase.LAPSED
    assert await lc.mark_lapsed("n1") is True
    assert await lc.mark_lapsed("n1") is False  # only the first observer records it
    m = await lc.member("n1")
    assert m is not None and m.state.lapsed_at is not None and m.node is not None


async def test_remove_refuses_a_live_node_unless_forced(store: Store) -> None:
    lc = Lifecycle(store)
    await _node(store, "n1")
    await lc.hold("n1", 30)
    with pytest.raises(NodeError, match="holds a live lease"):
        await lc.remove("n1")
    assert await lc.remove("n1", force=True) is True
    m = await lc.member("n1")
    assert m is not None and m.node is None and m.live is None
    assert m.phase(time.time(), T) is Phase.REMOVED
    assert await lc.remove("n1") is False  # already removed
    with pytest.raises(NodeError, match="not registered"):
        await lc.remove("nobody")


async def test_a_cordoned_node_gets_no_new_block(store: Store) -> None:
    lc = Lifecycle(store)
    ipam = Ipam(store, IpamConfig(pools=POOL.pools, strict_affinity=True))
    await _node(store, "n1")
    for i in range(16):  # one /28 is the node's
        await ipam.allocate("n1", f"h{i}")
    assert await lc.cordon("n1", True) is True
    assert await lc.cordon("n1", True) is False
    with pytest.raises(Exhausted, match="cordoned"):
        await ipam.allocate("n1", "h-more")
    addr = ipaddress.ip_address("10.9.0.200")
    with pytest.raises(Exhausted, match="cordoned"):
        await ipam.assign(addr, "n1", "h-static")
    await ipam.release_handle("h3")
    assert (await ipam.allocate("n1", "h-more")).block == (await ipam.blocks())[0].cidr
    await lc.cordon("n1", False)
    await ipam.allocate("n1", "h-again")  # a new block
    assert len(await ipam.blocks()) == 2
    with pytest.raises(NodeError, match="not registered"):
        await lc.cordon("ghost", True)


async def test_reap_removes_a_long_gone_node_once_and_frees_its_blocks(store: Store) -> None:
    clock = Clock()
    lc = Lifecycle(store, clock)
    ipam = Ipam(store, POOL)
    for name in ("a", "b", "z"):
        await _node(store, name)
        await lc.hold(name, 60)
    await ipam.allocate("z", "pod-z")
    # z's daemon died long ago: its live key is gone and a peer noted when.
    m = await lc.member("z")
    assert m is not None and m.live is not None
    await store.revoke_lease(m.live.lease)
    assert await lc.mark_lapsed("z")
    clock.now += T.remove_after + 1
    members = await lc.members()
    assert members["z"].phase(clock.now, T) is Phase.GONE
    assert await reap(lc, ipam, "b", members, T) == []  # b is not the reaper
    assert await reap(lc, ipam, "a", members, T) == ["z"]
    assert await ipam.blocks() == [] and await ipam.handles() == {}
    assert (await lc.members())["z"].phase(clock.now, T) is Phase.REMOVED
    assert await reap(lc, ipam, "a", await lc.members(), T) == []  # once


async def test_watch_sees_leases_come_and_go(store: Store) -> None:
    lc = Lifecycle(store)
    await _node(store, "n1")
    seen: list[dict[str, Member]] = []

    async def follow() -> None:
        async for members in lc.watch():
            seen.append(members)
            if "n1" in members and members["n1"].state.cordoned:
                return

    task = asyncio.ensure_future(follow())
    await asyncio.sleep(0.3)
    live = await lc.hold("n1", 30)
    await store.revoke_lease(live.lease)
    await lc.cordon("n1", True)
    await asyncio.wait_for(task, 10)
    assert seen[0]["n1"].live is None and not seen[0]["n1"].state.leased
    assert any(s["n1"].live is not None for s in seen)
    assert seen[-1]["n1"].live is None and seen[-1]["n1"].state.leased


async def test_reap_finishes_a_removal_whose_remover_died_before_releasing(store: Store) -> None:
    lc = Lifecycle(store)
    ipam = Ipam(store, POOL)
    for name in ("a", "z"):
        await _node(store, name)
    await lc.hold("a", 60)
    await ipam.allocate("z", "pod-z")
    assert await lc.remove("z")  # the tombstone is written, the release never happened
    assert [b.affinity for b in await ipam.blocks()] == ["z"]
    assert await reap(lc, ipam, "a", await lc.members(), T) == ["z"]
    assert await ipam.blocks() == [] and await ipam.affinities() == {}


async def test_reap_forgets_a_node_removed_longer_than_forget_after(store: Store) -> None:
    """A removed node's tombstone and record of what its removal released are dropped by the
    reaper `forget_after` after the removal (not before, never with 0), so a cluster that
    loses nodes does not keep one record per node for ever; a node that came back is kept."""
    clock = Clock()
    lc = Lifecycle(store, clock)
    ipam = Ipam(store, POOL)
    timing = Timing(gone_after=100.0, remove_after=1000.0, forget_after=5000.0)
    for name in ("a", "y", "z"):
        await _node(store, name)
    await lc.hold("a", 60)
    for name in ("y", "z"):
        await ipam.allocate(name, f"pod-{name}")
        assert await lc.remove(name) and await release_node(lc, ipam, name) is not None
    assert sorted(await lifecycle_keys(store)) == ["released/y", "released/z", "state/a",
                                                   "state/y", "state/z"]  # fmt: skip
    clock.now += 4999
    await reap(lc, ipam, "a", await lc.members(), timing)
    assert set(await lc.members()) == {"a", "y", "z"}  # not yet
    await lc.hold("y", 60)  # y came back meanwhile: kept
    clock.now += 2
    never = Timing(gone_after=100.0, remove_after=1000.0)
    assert await reap(lc, ipam, "a", await lc.members(), never) == []
    assert set(await lc.members()) == {"a", "y", "z"}  # 0: kept for ever
    assert await reap(lc, ipam, "a", await lc.members(), timing) == []
    assert set(await lc.members()) == {"a", "y"}
    assert sorted(await lifecycle_keys(store)) == ["released/y", "state/a", "state/y"]
    assert not await lc.forget("z") and not await lc.forget("a")  # nothing (more) to forget


async def lifecycle_keys(store: Store) -> list[str]:
    """The lifecycle's state and released records (live keys left out)."""
    kvs, _ = await store.list_prefix(LIFECYCLE, keys_only=True)
    return [k for kv in kvs if not (k := kv.key.removeprefix(LIFECYCLE)).startswith("live/")]
