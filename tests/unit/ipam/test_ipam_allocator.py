"""The allocator's behaviour, on SQLite and on a real etcd (the `store` fixture)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from ipam import (
    AddressInUse,
    Exhausted,
    Ipam,
    IpamConfig,
    Node,
    NodeRegistry,
    NotInPool,
    Pool,
    announcement,
)
from ipam.model import affinity_key, block_key, dumps, handle_key
from ipam.store.base import Delete, Store

ip = ipaddress.ip_address
net = ipaddress.ip_network


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(*pools: dict[str, Any], **kw: Any) -> IpamConfig:
    return IpamConfig(pools=tuple(Pool.parse(p) for p in pools), **kw)


SMALL = {"cidr": "10.1.0.0/26", "block_size": 28}  # 4 blocks of 16


async def confirmed(ipam: Ipam, node: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [c for (n, c), s in (await ipam.affinities()).items() if n == node and s == "confirmed"]


async def test_allocate_claims_a_block_and_is_idempotent_per_handle(store: Store) -> None:
    ipam = Ipam(store, config(SMALL, {"cidr": "fd00::/120", "block_size": 124}))
    a = await ipam.allocate("n1", "pod-a", attrs={"namespace": "ns", "pod": "a"})
    assert a.address in net("10.1.0.0/26") and not a.borrowed
    assert a.address in a.block and a.block.prefixlen == 28
    again = await ipam.allocate("n1", "pod-a")
    assert again.address == a.address and again.seq == a.seq
    six = await ipam.allocate("n1", "pod-a", version=6)
    assert six.address.version == 6 and six.address in net("fd00::/120")
    assert await confirmed(ipam, "n1") == sorted([a.block, six.block], key=lambda c: c.version)
    info = await ipam.show(a.address)
    assert info.affinity == "n1" and info.allocation is not None
    assert info.allocation.handle == "pod-a" and info.allocation.attrs["pod"] == "a"
    assert info.allocation.node == "n1"
    assert await ipam.check() == []


async def test_nodes_get_different_blocks_and_fill_their_own_first(store: Store) -> None:
    ipam = Ipam(store, config(SMALL))
    a = [await ipam.allocate("node-a", f"a{i}") for i in range(16)]
    b = await ipam.allocate("node-b", "b0")
    assert len({x.block for x in a}) == 1  # one block filled before a second is claimed
    assert b.block != a[0].block
    a17 = await ipam.allocate("node-a", "a16")
    assert a17.block not in (a[0].block, b.block) and not a17.borrowed
    blocks = {blk.cidr: blk.affinity for blk in await ipam.blocks()}
    assert blocks == {a[0].block: "node-a", b.block: "node-b", a17.block: "node-a"}


async def test_strict_affinity_reports_what_ran_out(store: Store) -> None:
    ipam = Ipam(store, config(SMALL, strict_affinity=True, max_blocks_per_node=1))
    for i in range(16):
        await ipam.allocate("n1", f"h{i}")
    with pytest.raises(Exhausted, match=r"node n1 has all its max_blocks_per_node=1 blocks full"):
        await ipam.allocate("n1", "one-more")
    ipam2 = Ipam(store, config(SMALL, strict_affinity=True, max_blocks_per_node=10))
    for n in ("n2", "n3", "n4"):
        await ipam2.allocate(n, f"{n}-0")
    with pytest.raises(
        Exhausted, match=r"pool 10\.1\.0\.0/26 has no free block and strict_affinity is on"
    ):
        await ipam2.allocate("n5", "n5-0")


async def test_borrowing_when_no_block_can_be_claimed(store: Store) -> None:
    cfg = config(SMALL, max_blocks_per_node=1)
    ipam = Ipam(store, cfg)
    for n in ("n1", "n2", "n3", "n4"):
        await ipam.allocate(n, f"{n}-0")
    got = await ipam.allocate("n5", "borrower")
    assert got.borrowed
    owner = (await ipam.show(got.address)).affinity
    assert owner in {"n1", "n2", "n3", "n4"}
    blocks = await ipam.blocks()
    ann = announcement("n5", blocks, await confirmed(ipam, "n5"), cfg)
    assert ann.prefixes == {net(f"{got.address}/32")} and ann.blackholes == frozenset()
    owner_ann = announcement(owner, blocks, await confirmed(ipam, owner), cfg)
    assert owner_ann.prefixes == {got.block} and owner_ann.blackholes == {got.block}


async def test_exhaustion_hands_out_every_address_once(store: Store) -> None:
    ipam = Ipam(store, config({"cidr": "10.2.0.0/27", "block_size": 29}))
    got = []
    nodes = ["n1", "n2", "n3"]
    for i in range(32):
        got.append((await ipam.allocate(nodes[i % 3], f"h{i}")).address)
    assert sorted(got) == list(net("10.2.0.0/27"))
    with pytest.raises(Exhausted, match=r"no block of pool 10\.2\.0\.0/27 has a free address"):
        await ipam.allocate("n1", "late")
    assert await ipam.check() == []


async def test_specific_address(store: Store) -> None:
    ipam = Ipam(store, config(SMALL))
    a = await ipam.assign(ip("10.1.0.20"), "n1", "static")
    assert a.block == net("10.1.0.16/28") and not a.borrowed
    assert (await ipam.assign(ip("10.1.0.20"), "n1", "static")).seq == a.seq
    with pytest.raises(AddressInUse, match="already allocated to handle static"):
        await ipam.assign(ip("10.1.0.20"), "n2", "other")
    with pytest.raises(NotInPool):
        await ipam.assign(ip("192.0.2.1"), "n1", "x")
    # n1 now owns that block; its next allocation comes from it, not the specific address.
    nxt = await ipam.allocate("n1", "next")
    assert nxt.block == a.block and nxt.address != a.address
    # Another node's specific address in n1's block is borrowed.
    b = await ipam.assign(ip("10.1.0.30"), "n2", "pinned")
    assert b.borrowed
    assert await ipam.check() == []


async def test_release_by_address_refuses_stale_sequence(store: Store) -> None:
    ipam = Ipam(store, config(SMALL))
    first = await ipam.assign(ip("10.1.0.5"), "n1", "old-pod")
    assert await ipam.release_address(first.address, first.seq)
    second = await ipam.assign(ip("10.1.0.5"), "n1", "new-pod")
    assert second.seq > first.seq
    # The old pod's late DEL must not free the new pod's address.
    assert not await ipam.release_address(first.address, first.seq)
    info = await ipam.show(first.address)
    assert info.allocation is not None and info.allocation.handle == "new-pod"
    assert await ipam.release_address(first.address)  # no seq: frees whoever holds it
    assert not await ipam.release_address(first.address)
    assert await ipam.handles() == {}


async def test_release_by_handle(store: Store) -> None:
    ipam = Ipam(store, config(SMALL, {"cidr": "fd00::/120", "block_size": 124}))
    a = await ipam.allocate("n1", "pod")
    b = await ipam.allocate("n1", "pod", version=6)
    keep = await ipam.allocate("n1", "other")
    assert set(await ipam.release_handle("pod")) == {a.address, b.address}
    assert await ipam.release_handle("pod") == []
    assert (await ipam.show(a.address)).allocation is None
    assert (await ipam.show(keep.address)).allocation is not None
    assert set(await ipam.handles()) == {"other"}
    assert await ipam.check() == []


async def test_reuse_in_longest_free_order(store: Store) -> None:
    ipam = Ipam(store, config({"cidr": "10.3.0.0/29", "block_size": 29}))
    addrs = [(await ipam.allocate("n1", f"h{i}")).address for i in range(4)]
    assert await ipam.release_address(addrs[1])
    assert await ipam.release_address(addrs[0])
    # The four never-used addresses come first, then h1's, then h0's.
    more = [(await ipam.allocate("n1", f"m{i}")).address for i in range(6)]
    assert more[:4] == list(net("10.3.0.0/29"))[4:]
    assert more[4:] == [addrs[1], addrs[0]]


async def test_release_empty_blocks_keeps_one(store: Store) -> None:
    ipam = Ipam(store, config(SMALL))
    got = [await ipam.allocate("n1", f"h{i}") for i in range(20)]  # two blocks
    assert len({g.block for g in got}) == 2
    for g in got:
        await ipam.release_handle(g.handle)
    released = await ipam.release_empty_blocks("n1")
    assert len(released) == 1
    assert len(await confirmed(ipam, "n1")) == 1
    assert len(await ipam.blocks()) == 1
    assert await ipam.release_empty_blocks("n1") == []
    assert await ipam.check() == []


async def test_remove_node_frees_its_addresses_and_blocks(store: Store) -> None:
    ipam = Ipam(store, config(SMALL, max_blocks_per_node=1))
    first = {n: await ipam.allocate(n, f"{n}-0") for n in ("n1", "n2", "n3", "n4")}
    borrowed = await ipam.allocate("n5", "n5-0")
    owner = (await ipam.show(borrowed.address)).affinity
    assert owner is not None
    assert [r.address for r in await ipam.remove_node(owner)] == [first[owner].address]
    assert (await ipam.show(first[owner].address)).allocation is None
    # The owner's block stays for the borrower, with no affinity.
    info = await ipam.show(borrowed.address)
    assert info.affinity is None and info.allocation is not None
    assert await confirmed(ipam, owner) == []
    assert await ipam.check() == []
    # A new node adopts the orphaned block.
    got = await ipam.allocate("n6", "n6-0")
    assert got.block == borrowed.block and not got.borrowed
    # Removing the borrower frees its /32 only.
    assert [r.address for r in await ipam.remove_node("n5")] == [borrowed.address]
    assert await ipam.check() == []


async def test_remove_node_retries_an_affinity_that_changed_under_it(store: Store) -> None:
    # Between listing the node's affinities and deleting one, another writer touches it:
    # the delete's compare loses, and remove_node re-reads and deletes it (it used to
    # drop the failed transaction's result and leave the affinity behind).
    ipam = Ipam(store, config(SMALL))
    got = await ipam.allocate("n1", "pod-a")
    akey = affinity_key("n1", got.block)
    real_txn = store.txn
    raced: list[str] = []

    async def racing_txn(compares: Any, ops: Any) -> Any:
        if not raced and any(isinstance(op, Delete) and op.key == akey for op in ops):
            raced.append(akey)
            now = await store.get(akey)
            assert now is not None
            assert await store.put_cas(akey, now.value, now.mod_revision)
        return await real_txn(compares, ops)

    store.txn = racing_txn  # type: ignore[method-assign]
    assert [r.address for r in await ipam.remove_node("n1")] == [got.address]
    assert raced == [akey]
    assert await store.get(akey) is None
    assert await ipam.affinities() == {}
    assert await ipam.check() == []


async def test_gc_releases_leaks_after_grace(store: Store) -> None:
    clock = Clock()
    ipam = Ipam(store, config(SMALL), clock=clock)
    live = await ipam.allocate("n1", "live")
    leak = await ipam.allocate("n1", "gone")
    clock.now += 100
    young = await ipam.allocate("n1", "starting")  # younger than the grace period
    report = await ipam.gc(lambda h, a: h == "live", grace=50, dry_run=True)
    assert report.released == [(str(leak.address), "gone")]
    assert (await ipam.show(leak.address)).allocation is not None  # dry run changed nothing
    report = await ipam.gc(lambda h, a: h == "live", grace=50)
    assert report.released == [(str(leak.address), "gone")]
    assert (await ipam.show(leak.address)).allocation is None
    assert (await ipam.show(live.address)).allocation is not None
    assert (await ipam.show(young.address)).allocation is not None
    assert await ipam.check() == []


async def test_crash_mid_claim_is_settled(store: Store) -> None:
    """A pending affinity left by a crash: confirmed if its block exists, else dropped by gc."""
    clock = Clock()
    ipam = Ipam(store, config(SMALL), clock=clock)
    b1, b2 = net("10.1.0.0/28"), net("10.1.0.16/28")
    pending = dumps({"state": "pending", "ts": clock.now})
    # Crash after step 1 (affinity pending, no block) for b1 ...
    await store.create(affinity_key("n1", b1), pending)
    # ... and after step 2 (block created) for b2.
    from ipam.block import Block

    await store.create(affinity_key("n1", b2), pending)
    await store.create(block_key(b2), dumps(Block.new(b2, "n1").to_json()))
    got = await ipam.allocate("n1", "h")  # settles b2, leaves b1 (could be mid-claim)
    assert got.block == b2
    assert (await ipam.affinities())[("n1", b2)] == "confirmed"
    assert (await ipam.affinities())[("n1", b1)] == "pending"
    clock.now += 10
    report = await ipam.gc(lambda h, a: True, grace=5)
    assert report.affinities_dropped == [f"n1 {b1}"]
    assert ("n1", b1) not in await ipam.affinities()
    assert await ipam.check() == []


async def test_check_finds_and_gc_repairs_a_dangling_handle(store: Store) -> None:
    ipam = Ipam(store, config(SMALL))
    await ipam.allocate("n1", "h")
    bogus = {"addrs": {"10.1.0.9": {"block": "10.1.0.0/28", "seq": 99}}}
    await store.create(handle_key("ghost"), dumps(bogus))
    problems = await ipam.check()
    assert problems == ["handle ghost lists 10.1.0.9 which its block does not give it"]
    report = await ipam.gc(lambda h, a: True, grace=0)
    assert report.handles_repaired == ["ghost"]
    assert await ipam.check() == []


async def test_disabled_pools_and_node_selectors(store: Store) -> None:
    cfg = config(
        {"cidr": "10.9.0.0/24", "disabled": True},
        {"cidr": "10.8.0.0/24", "node_selector": 'rack == "r1"'},
        {"cidr": "10.7.0.0/24", "node_selector": "!has(rack)"},
    )
    ipam = Ipam(store, cfg)
    reg = NodeRegistry(store)
    await reg.register(Node(name="r1n", labels={"rack": "r1"}))
    await reg.register(Node(name="r2n", labels={"rack": "r2"}))
    assert (await ipam.allocate("r1n", "a")).address in net("10.8.0.0/24")
    assert (await ipam.allocate("plain", "b")).address in net("10.7.0.0/24")
    with pytest.raises(Exhausted, match="no enabled IPv4 pool selects node r2n"):
        await ipam.allocate("r2n", "c")
    with pytest.raises(Exhausted, match=r"pool 10\.9\.0\.0/24 is disabled"):
        await ipam.assign(ip("10.9.0.1"), "r1n", "d")


async def test_concurrent_allocations_in_one_process(store: Store) -> None:
    """Many tasks at once (two Ipam objects, as two processes would): no address twice."""
    cfg = config({"cidr": "10.4.0.0/26", "block_size": 28})
    a, b = Ipam(store, cfg), Ipam(store, cfg)

    async def worker(ipam: Ipam, node: str, i: int) -> str:
        return str((await ipam.allocate(node, f"{node}-{i}")).address)

    results = await asyncio.gather(*(worker(a if i % 2 else b, f"n{i % 3}", i) for i in range(64)))
    assert len(set(results)) == 64
    assert await a.check() == []


class LostAnswerStore:
    """A store whose first block `create` is applied but reported as failed.

    That is what the etcd store sees when a member dies after committing a
    transaction and the retry on another member finds its own write there.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, key: str, value: bytes) -> bool:
        ok = await self.inner.create(key, value)
        if ok and "/blocks/" in key and not self.lost:
            self.lost += 1
            return False
        return ok


async def test_claim_survives_a_lost_answer(store: Store) -> None:
    flaky = LostAnswerStore(store)
    ipam = Ipam(flaky, config(SMALL))  # type: ignore[arg-type]
    a = await ipam.allocate("n1", "pod-a")
    assert flaky.lost == 1
    assert await confirmed(ipam, "n1") == [a.block]
    assert await ipam.check() == []
