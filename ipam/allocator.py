"""Address allocation over the store: affine blocks first, then claim, then borrow.

Every change is one store transaction that compares the mod_revision of every
key it read (the block, the handle record, the affinity) and writes them
together; if anyone wrote one of those keys in between, the transaction fails,
we re-read and try again -- at most `max_retries` times and only for that
reason. Every other error (store down, pool exhausted, address in use) is
raised at once.

Allocation for a node (`Ipam.allocate`):

1. if the handle already holds an address of that IP version, return it: a
   retried request (a CNI ADD repeated, an etcd call whose answer was lost)
   never takes a second address;
2. take the longest-free address of one of the node's confirmed blocks;
3. when they are full, claim a free block (``max_blocks_per_node``): write the
   affinity *pending*, create the block, confirm the affinity -- each a CAS,
   so two nodes never claim one block and a crash in between is settled by the
   next allocation or by `gc`;
4. when no block can be claimed and ``strict_affinity`` is off, borrow one
   address from another node's block (the borrower announces a /32 or /128);
5. otherwise raise `Exhausted` saying what ran out.

Release takes an optional sequence number (from the allocation) so a stale
release cannot free an address that has since gone to someone else.

Size (over ~800 lines, one concern): the ``Ipam`` class is the only writer of
blocks, handles and affinities, and every public operation (allocate, assign,
release, node removal, gc and its handle repair) is a CAS transaction built from the
same private helpers (``_commit``, ``_retry``, ``_take_ops``,
``_handle_without``); spreading the class over modules would make those helpers
another module's internals.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ipam.block import (
    Allocation,
    Block,
    IPAddress,
    IPNetwork,
    block_of,
    candidate_blocks,
    node_hash,
)
from ipam.model import (
    AFFINITY,
    BLOCKS,
    HANDLES,
    AddressInUse,
    Exhausted,
    IpamConfig,
    NodeRemoved,
    NotInPool,
    Pool,
    PoolNotUsable,
    PoolUse,
    RemovalSuperseded,
    Reserved,
    TooManyConflicts,
    affinity_key,
    affinity_prefix,
    block_key,
    cidr_of_key,
    dumps,
    handle_key,
    handle_of_key,
    loads,
    parse_affinity_key,
)
from ipam.selection import PoolRequest, candidate_pools, needs_node_labels
from ipam.store.base import Compare, Delete, KeyValue, Op, Put, Store

PENDING = "pending"
CONFIRMED = "confirmed"
DROPPED = "dropped"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Assigned:
    """The result of an allocation: the address and what to release it by."""

    address: IPAddress
    block: IPNetwork
    seq: int
    handle: str
    borrowed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "block": str(self.block),
            "seq": self.seq,
            "handle": self.handle,
            "borrowed": self.borrowed,
        }


@dataclass(frozen=True, slots=True)
class Released:
    """An address a node removal released, with the allocation it had (handle, attributes):
    what lets the node, should it come back, take it again for a pod still running there
    (`ipam.rejoin.restore_pods`)."""

    address: IPAddress
    allocation: Allocation

    def to_json(self) -> dict[str, Any]:
        return {"address": str(self.address), "allocation": self.allocation.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Released:
        return cls(ipaddress.ip_address(d["address"]), Allocation.from_json(d["allocation"]))


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """What `show` knows about one address."""

    address: IPAddress
    pool: Pool | None
    block: IPNetwork | None
    affinity: str | None
    allocation: Allocation | None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "pool": None if self.pool is None else str(self.pool.cidr),
            "block": None if self.block is None else str(self.block),
            "affinity": self.affinity,
            "allocated": self.allocation is not None,
            "allocation": None if self.allocation is None else self.allocation.to_json(),
        }


@dataclass(slots=True)
class GcReport:
    """What `gc` found and did (or would do, with dry_run)."""

    released: list[tuple[str, str]] = field(default_factory=list)  # (address, handle)
    affinities_confirmed: list[str] = field(default_factory=list)
    affinities_dropped: list[str] = field(default_factory=list)
    blocks_released: list[str] = field(default_factory=list)
    handles_repaired: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "released": [{"address": a, "handle": h} for a, h in self.released],
            "affinities_confirmed": self.affinities_confirmed,
            "affinities_dropped": self.affinities_dropped,
            "blocks_released": self.blocks_released,
            "handles_repaired": self.handles_repaired,
        }


class _Conflict(Exception):
    """A CAS lost; re-read and retry (never leaves this module)."""


class _Claimed(Exception):
    """A block was just claimed; start the allocation over (never leaves this module)."""


def _block(kv: KeyValue) -> Block:
    return Block.from_json(loads(kv.value))


def _handle_rec(kv: KeyValue | None) -> dict[str, Any]:
    return {"addrs": {}} if kv is None else dict(loads(kv.value))


def _unbacked(handle: str, rec: dict[str, Any], blocks: dict[IPNetwork, Block]) -> list[IPAddress]:
    """The addresses a handle record lists that no block gives to that handle."""
    bad: list[IPAddress] = []
    for a, ref in rec.get("addrs", {}).items():
        addr = ipaddress.ip_address(a)
        b = blocks.get(ipaddress.ip_network(ref["block"]))
        alloc = None if b is None else b.holder(addr)
        if alloc is None or alloc.handle != handle or alloc.seq != int(ref["seq"]):
            bad.append(addr)
    return bad


def _rev(kv: KeyValue | None) -> int:
    return 0 if kv is None else kv.mod_revision


class Ipam:
    """IPAM for the pools of `config`, over `store` (shared by every node)."""

    def __init__(
        self,
        store: Store,
        config: IpamConfig,
        clock: Callable[[], float] = time.time,
        max_retries: int = 200,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.max_retries = max_retries
        # (node, IP version) -> the block it last allocated from. Only a hint
        # that saves reading every block: the block's own affinity and the CAS
        # decide, and a stale or full hint costs one slow-path read.
        self._hint: dict[tuple[str, int], IPNetwork] = {}
        self.conflicts = 0  # CAS failures seen (a metric)

    # -- helpers ---------------------------------------------------------------
    async def _backoff(self, attempt: int) -> None:
        if attempt:
            self.conflicts += 1
            await asyncio.sleep(random.uniform(0, min(0.0005 * 2**attempt, 0.05)))

    def _reserved(self, cidr: IPNetwork) -> frozenset[int]:
        """The block's ordinals that `[[ipam.reservation]]` keeps out of use."""
        return self.config.reserved_in(cidr) if self.config.reservations else frozenset()

    async def _labels(self, node: str) -> dict[str, str]:
        if not needs_node_labels(self.config):
            return {}
        from ipam.nodes import NodeRegistry  # registry shares the store

        rec = await NodeRegistry(self.store).get(node)
        return {} if rec is None else dict(rec.labels)

    async def _admit(self, node: str) -> bool:
        """Whether `node` is cordoned (``podbgp node cordon``: no new blocks; read only when
        claiming or borrowing).

        A removed node that has not registered again (its daemon runs on after a
        ``podbgp node remove --force``, or its CNI plugin is called while it is away)
        gets nothing at all: `NodeRemoved`. Every address it took would be released by
        the reaper's next repair of removed nodes and handed out again."""
        from ipam.lifecycle import Lifecycle  # lifecycle records share the store

        state = await Lifecycle(self.store).admission(node)
        if state.removed:
            raise NodeRemoved(
                f"node {node} was removed from the cluster (podbgp node remove, or away for "
                "longer than node_gone_after): it gets no addresses until its podbgp daemon "
                "starts again and rejoins"
            )
        return state.cordoned

    async def _commit(self, compares: Sequence[Compare], ops: Sequence[Op]) -> None:
        if not (await self.store.txn(compares, ops)).succeeded:
            raise _Conflict

    def _take_ops(
        self, bkv: KeyValue, block: Block, hkv: KeyValue | None, handle: str, addr: IPAddress
    ) -> tuple[list[Compare], list[Op]]:
        """The transaction that stores `block` with `addr` newly held by `handle`."""
        alloc = block.holder(addr)
        assert alloc is not None
        rec = _handle_rec(hkv)
        rec["addrs"][str(addr)] = {"block": str(block.cidr), "seq": alloc.seq}
        hk = handle_key(handle)
        return (
            [Compare(bkv.key, bkv.mod_revision), Compare(hk, _rev(hkv))],
            [Put(bkv.key, dumps(block.to_json())), Put(hk, dumps(rec))],
        )

    # -- allocation --------------------------------------------------------------
    async def allocate(
        self,
        node: str,
        handle: str,
        version: int = 4,
        attrs: dict[str, str] | None = None,
        pool: str | None = None,
        *,
        request: PoolRequest | None = None,
    ) -> Assigned:
        """One address of IP `version` for `handle` on `node` (see the module docstring).

        `request` says which pools may serve (`ipam.selection`: use, namespace, named
        pools); without it, a pod's address of `version` (from `pool` if given)."""
        attrs = dict(attrs or {})
        if request is None:
            request = PoolRequest(version, explicit=(pool,) if pool else ())
        version = request.version
        pools = candidate_pools(self.config, request, node, await self._labels(node))
        if not pools:
            raise Exhausted(f"no enabled IPv{version} pool selects node {node} "
                            f"for a {request.describe()}")  # fmt: skip
        conflicts = 0
        for _ in range(self.max_retries + self.config.max_blocks_per_node):
            try:
                return await self._allocate_once(node, handle, version, attrs, pools)
            except _Claimed:
                continue  # a new block is ours: allocate from it
            except _Conflict:
                conflicts += 1
                if conflicts >= self.max_retries:
                    break
                await self._backoff(conflicts)
        raise TooManyConflicts(
            f"allocate {handle} on {node}: gave up after {self.max_retries} conflicting writes"
        )

    async def _allocate_once(
        self, node: str, handle: str, version: int, attrs: dict[str, str], pools: list[Pool]
    ) -> Assigned:
        hk = handle_key(handle)
        # Fast path: the handle and the block we last allocated from, in one read.
        hint = self._hint.get((node, version))
        kvs = await self.store.get_many([hk] if hint is None else [hk, block_key(hint)])
        hkv = kvs[0]
        held = self._held(handle, hkv, version)
        if held is not None:
            return held
        if hint is not None and kvs[1] is not None:
            got = await self._take_affine(node, handle, attrs, pools, hkv, [kvs[1]])
            if got is not None:
                return got
        # Slow path (once per filled block): re-read our affinities, try each block.
        affine = await self._refresh_affine(node, version)
        bkvs = await self.store.get_many([block_key(c) for c in affine])
        got = await self._take_affine(node, handle, attrs, pools, hkv, bkvs)
        if got is not None:
            return got
        return await self._claim_or_borrow(node, handle, version, attrs, pools, hkv)

    async def _take_affine(
        self,
        node: str,
        handle: str,
        attrs: dict[str, str],
        pools: list[Pool],
        hkv: KeyValue | None,
        bkvs: Sequence[KeyValue | None],
    ) -> Assigned | None:
        """Allocate from the first of our blocks with room; None if all are full."""
        for bkv in bkvs:
            if bkv is None:
                continue
            block = _block(bkv)
            if block.affinity != node or self.config.pool_of_block(block.cidr) not in pools:
                continue
            got = block.allocate(handle, node, attrs, self.clock(), self._reserved(block.cidr))
            if got is not None:
                self._hint[(node, block.cidr.version)] = block.cidr
                await self._commit(*self._take_ops(bkv, block, hkv, handle, got[0]))
                return Assigned(got[0], block.cidr, got[1].seq, handle, borrowed=False)
        return None

    def _held(self, handle: str, hkv: KeyValue | None, version: int) -> Assigned | None:
        """The handle's existing address of this version (idempotent allocation)."""
        for a, ref in _handle_rec(hkv)["addrs"].items():
            addr = ipaddress.ip_address(a)
            if addr.version == version:
                cidr = ipaddress.ip_network(ref["block"])
                return Assigned(addr, cidr, int(ref["seq"]), handle, borrowed=False)
        return None

    async def _refresh_affine(self, node: str, version: int) -> list[IPNetwork]:
        """Re-read the node's affinities, settling pending ones; returns its confirmed blocks."""
        kvs, _ = await self.store.list_prefix(affinity_prefix(node))
        confirmed: list[IPNetwork] = []
        for kv in kvs:
            _, cidr = parse_affinity_key(kv.key)
            state = loads(kv.value).get("state")
            if state == PENDING:
                state = await self._settle_pending(node, cidr, kv, grace=None)
            if state == CONFIRMED:
                confirmed.append(cidr)
        confirmed.sort(key=lambda c: (c.version, int(c.network_address)))
        return [c for c in confirmed if c.version == version]

    async def _settle_pending(
        self, node: str, cidr: IPNetwork, akv: KeyValue, grace: float | None
    ) -> str:
        """Confirm a pending affinity whose block is ours; with a grace, drop stale others.

        Returns the new state: "confirmed", "pending" or "dropped". Without
        `grace` nothing is dropped: another process of the same node may be
        between the steps of its claim.
        """
        bkv = await self.store.get(block_key(cidr))
        if bkv is not None and _block(bkv).affinity == node:
            value = dumps({"state": CONFIRMED, "ts": self.clock()})
            if await self.store.put_cas(akv.key, value, akv.mod_revision):
                return CONFIRMED
            return PENDING
        age = self.clock() - float(loads(akv.value).get("ts", 0))
        stale = grace is not None and age >= grace
        if stale and await self.store.delete_cas(akv.key, akv.mod_revision):
            return DROPPED
        return PENDING

    async def _claim_or_borrow(
        self,
        node: str,
        handle: str,
        version: int,
        attrs: dict[str, str],
        pools: list[Pool],
        hkv: KeyValue | None,
    ) -> Assigned:
        owned, _ = await self.store.list_prefix(affinity_prefix(node), keys_only=True)
        names = ", ".join(str(p.cidr) for p in pools)
        limit = self.config.max_blocks_per_node
        if await self._admit(node):
            why = f"node {node} is cordoned (no new blocks) and its blocks are full"
        elif len(owned) < limit:
            for pool in pools:
                if await self._claim(node, pool):
                    raise _Claimed
            why = f"pool {names} has no free block"
        else:
            why = f"node {node} has all its max_blocks_per_node={limit} blocks full"
        if self.config.strict_affinity:
            raise Exhausted(f"{why} and strict_affinity is on")
        got = await self._borrow(node, handle, attrs, pools, hkv)
        if got is not None:
            return got
        raise Exhausted(f"{why} and no block of pool {names} has a free address to borrow")

    async def _pool_blocks(self, pool: Pool, keys_only: bool) -> list[KeyValue]:
        """The pool's existing blocks (one range read over its key span)."""
        kvs, _ = await self.store.list_prefix(BLOCKS, keys_only=keys_only)
        return [
            kv
            for kv in kvs
            if (c := cidr_of_key(kv.key[len(BLOCKS) :])).version == pool.version
            and c.subnet_of(pool.cidr)  # type: ignore[arg-type]
        ]

    async def _claim(self, node: str, pool: Pool) -> bool:
        """Claim a free block (or an orphaned one) of `pool` for `node`."""
        existing = {
            cidr_of_key(kv.key[len(BLOCKS) :]) for kv in await self._pool_blocks(pool, True)
        }
        for cidr in candidate_blocks(pool.cidr, pool.block_size, node):
            if cidr in existing or len(self._reserved(cidr)) == cidr.num_addresses:
                continue
            if await self._claim_block(node, cidr, None):
                return True
            existing.add(cidr)
        # Every block exists; adopt one whose node was removed (affinity None).
        for bkv in await self._pool_blocks(pool, False):
            block = _block(bkv)
            if not block.free_outside(self._reserved(block.cidr)):
                continue
            if block.affinity is None and await self._claim_block(node, block.cidr, bkv):
                return True
        return False

    async def _claim_block(self, node: str, cidr: IPNetwork, orphan: KeyValue | None) -> bool:
        """The three-step claim: affinity pending, block created/adopted, affinity confirmed."""
        ak = affinity_key(node, cidr)
        if not await self.store.create(ak, dumps({"state": PENDING, "ts": self.clock()})):
            return False
        akv = await self.store.get(ak)
        assert akv is not None
        if orphan is None:
            ok = await self.store.create(block_key(cidr), dumps(Block.new(cidr, node).to_json()))
        else:
            block = _block(orphan)
            block.affinity = node
            ok = await self.store.put_cas(orphan.key, dumps(block.to_json()), orphan.mod_revision)
        if not ok and not await self._block_is(cidr, node):
            await self.store.delete_cas(ak, akv.mod_revision)
            return False
        confirmed = dumps({"state": CONFIRMED, "ts": self.clock()})
        await self.store.put_cas(ak, confirmed, akv.mod_revision)
        return True

    async def _block_is(self, cidr: IPNetwork, node: str) -> bool:
        """Is the block there and affine to `node`?

        A CAS reported as failed may still have been applied: the etcd store
        retries a transaction on another member when the first one's answer is
        lost, and the retry's compare then fails against our own write. Only
        `node`'s claimant can have set this affinity (it holds the pending
        affinity key, which `create` gives to one caller), so the block is ours.
        """
        bkv = await self.store.get(block_key(cidr))
        return bkv is not None and _block(bkv).affinity == node

    async def _borrow(
        self,
        node: str,
        handle: str,
        attrs: dict[str, str],
        pools: list[Pool],
        hkv: KeyValue | None,
    ) -> Assigned | None:
        """Take one address from any block with room (another node's), or None."""
        candidates: list[tuple[KeyValue, Block]] = []
        for pool in pools:
            for bkv in await self._pool_blocks(pool, False):
                block = _block(bkv)
                if block.free_outside(self._reserved(block.cidr)):
                    candidates.append((bkv, block))
        if not candidates:
            return None
        # Start at a per-node position so borrowers spread over the blocks.
        start = node_hash(node) % len(candidates)
        bkv, block = candidates[start]
        got = block.allocate(handle, node, attrs, self.clock(), self._reserved(block.cidr))
        assert got is not None
        await self._commit(*self._take_ops(bkv, block, hkv, handle, got[0]))
        return Assigned(got[0], block.cidr, got[1].seq, handle, borrowed=block.affinity != node)

    # -- specific addresses -------------------------------------------------------
    def _pool_for_address(self, address: IPAddress) -> Pool:
        pool = self.config.pool_of(address)
        if pool is None:
            raise NotInPool(f"{address} is in no configured pool")
        return pool

    async def assign(
        self, address: IPAddress, node: str, handle: str, attrs: dict[str, str] | None = None
    ) -> Assigned:
        """Hand out one specific address (a static pod IP); `AddressInUse` if taken."""
        pool = self._pool_for_address(address)
        if pool.disabled:
            raise Exhausted(f"pool {pool.cidr} is disabled")
        if PoolUse.WORKLOAD not in pool.allowed_uses:
            raise PoolNotUsable(f"{address}: pool {pool.cidr} is for tunnel addresses only")
        reservation = self.config.reservation_of(address)
        if reservation is not None:
            raise Reserved(f"{address} is reserved: {reservation}")
        cidr = block_of(pool.cidr, pool.block_size, address)
        assign = functools.partial(
            self._assign_once, address, cidr, node, handle, dict(attrs or {})
        )
        return await self._retry(f"assign {address}", assign)

    async def _assign_once(
        self, address: IPAddress, cidr: IPNetwork, node: str, handle: str, attrs: dict[str, str]
    ) -> Assigned:
        hkv, bkv = await self.store.get_many([handle_key(handle), block_key(cidr)])
        if bkv is None:
            owned, _ = await self.store.list_prefix(affinity_prefix(node), keys_only=True)
            cordoned = await self._admit(node)
            if len(owned) < self.config.max_blocks_per_node and not cordoned:
                await self._claim_block(node, cidr, None)
            elif not self.config.strict_affinity:
                await self.store.create(block_key(cidr), dumps(Block.new(cidr, None).to_json()))
            else:
                why = "is cordoned" if cordoned else f"has max_blocks_per_node={len(owned)}"
                raise Exhausted(
                    f"{address}: block {cidr} is unclaimed, node {node} {why} "
                    "and strict_affinity is on"
                )
            raise _Conflict
        block = _block(bkv)
        held = block.holder(address)
        if held is not None:
            if held.handle == handle:
                return Assigned(address, cidr, held.seq, handle, block.affinity != node)
            raise AddressInUse(f"{address} is already allocated to handle {held.handle}")
        alloc = block.assign(address, handle, node, attrs, self.clock())
        await self._commit(*self._take_ops(bkv, block, hkv, handle, address))
        return Assigned(address, cidr, alloc.seq, handle, borrowed=block.affinity != node)

    # -- release -----------------------------------------------------------------
    async def _find_block(self, address: IPAddress) -> KeyValue | None:
        pool = self.config.pool_of(address)
        if pool is not None:
            return await self.store.get(block_key(block_of(pool.cidr, pool.block_size, address)))
        # Not in a configured pool (the pool was removed): look at every block.
        kvs, _ = await self.store.list_prefix(BLOCKS, keys_only=True)
        for kv in kvs:
            cidr = cidr_of_key(kv.key[len(BLOCKS) :])
            if address.version == cidr.version and address in cidr:
                return await self.store.get(kv.key)
        return None

    async def release_address(self, address: IPAddress, seq: int | None = None) -> bool:
        """Free one address; False if it was free or `seq` names an older allocation."""
        return await self._retry(
            f"release {address}", functools.partial(self._release_once, address, seq)
        )

    async def _release_once(self, address: IPAddress, seq: int | None) -> bool:
        bkv = await self._find_block(address)
        if bkv is None:
            return False
        block = _block(bkv)
        alloc = block.release(address, seq)
        if alloc is None:
            return False
        hk = handle_key(alloc.handle)
        hkv = await self.store.get(hk)
        compares = [Compare(bkv.key, bkv.mod_revision), Compare(hk, _rev(hkv))]
        ops: list[Op] = [Put(bkv.key, dumps(block.to_json()))]
        ops += self._handle_without(hk, hkv, [address])
        await self._commit(compares, ops)
        return True

    @staticmethod
    def _handle_without(hk: str, hkv: KeyValue | None, addrs: Sequence[IPAddress]) -> list[Op]:
        if hkv is None:
            return []
        rec = _handle_rec(hkv)
        for a in addrs:
            rec["addrs"].pop(str(a), None)
        return [Put(hk, dumps(rec))] if rec["addrs"] else [Delete(hk)]

    async def release_handle(self, handle: str) -> list[IPAddress]:
        """Free every address `handle` holds; returns them (empty if none)."""
        return await self._retry(
            f"release {handle}", functools.partial(self._release_handle_once, handle)
        )

    async def _release_handle_once(self, handle: str) -> list[IPAddress]:
        hk = handle_key(handle)
        hkv = await self.store.get(hk)
        if hkv is None:
            return []
        refs = _handle_rec(hkv)["addrs"]
        cidrs = sorted({ref["block"] for ref in refs.values()})
        bkvs = await self.store.get_many([block_key(ipaddress.ip_network(c)) for c in cidrs])
        compares = [Compare(hk, hkv.mod_revision)]
        ops: list[Op] = [Delete(hk)]
        freed: list[IPAddress] = []
        for bkv in bkvs:
            if bkv is None:
                continue
            block = _block(bkv)
            for a, ref in refs.items():
                addr = ipaddress.ip_address(a)
                if addr in block.cidr and block.release(addr, int(ref["seq"])) is not None:
                    freed.append(addr)
            compares.append(Compare(bkv.key, bkv.mod_revision))
            ops.append(Put(bkv.key, dumps(block.to_json())))
        await self._commit(compares, ops)
        return sorted(freed, key=lambda a: (a.version, int(a)))

    async def release_empty_blocks(self, node: str, keep: int = 1) -> list[IPNetwork]:
        """Give back the node's blocks with no allocation, keeping at least `keep` blocks."""
        released: list[IPNetwork] = []
        akvs, _ = await self.store.list_prefix(affinity_prefix(node))
        bkvs = await self.store.get_many([block_key(parse_affinity_key(kv.key)[1]) for kv in akvs])
        remaining = len(akvs)
        for akv, bkv in zip(akvs, bkvs, strict=True):
            if remaining <= keep or bkv is None:
                continue
            block = _block(bkv)
            if block.used or block.affinity != node:
                continue
            ok = await self.store.txn(
                [Compare(bkv.key, bkv.mod_revision), Compare(akv.key, akv.mod_revision)],
                [Delete(bkv.key), Delete(akv.key)],
            )
            if ok.succeeded:
                released.append(block.cidr)
                remaining -= 1
        return released

    # -- node removal ---------------------------------------------------------------
    async def remove_node(self, node: str, guard: Sequence[Compare] = ()) -> list[Released]:
        """Release every address `node` allocated and every block affine to it.

        A block that still holds addresses borrowed by other nodes stays, with no
        affinity, until it empties or a node adopts it. Returns what was released,
        with the allocations (`ipam.lifecycle.release_node` keeps them for a return).

        `guard`: compares every write also makes (the removal's tombstone, the node's
        record and live key still as they were); once they fail, the node came back
        and `RemovalSuperseded` stops the removal where it is.
        """
        freed: list[Released] = []
        try:
            kvs, _ = await self.store.list_prefix(BLOCKS, keys_only=True)
            for kv in kvs:
                strip = functools.partial(self._strip_node, node, kv.key, guard)
                freed += await self._retry(f"remove {node} from {kv.key}", strip)
            akvs, _ = await self.store.list_prefix(affinity_prefix(node), keys_only=True)
            for akv in akvs:
                drop = functools.partial(self._drop_key, akv.key, guard)
                await self._retry(f"remove {node}'s affinity {akv.key}", drop)
        except RemovalSuperseded as exc:
            raise RemovalSuperseded(str(exc), freed) from None
        return freed

    async def _guarded(
        self, guard: Sequence[Compare], compares: list[Compare], ops: list[Op]
    ) -> None:
        """`_commit` with the guard's compares; a lost guard is `RemovalSuperseded`, not a retry."""
        try:
            await self._commit([*compares, *guard], ops)
        except _Conflict:
            if guard:
                now = await self.store.get_many([c.key for c in guard])
                if any(_rev(kv) != c.mod_revision for kv, c in zip(now, guard, strict=True)):
                    raise RemovalSuperseded("the node came back during its removal") from None
            raise

    async def _drop_key(self, key: str, guard: Sequence[Compare] = ()) -> None:
        """Delete ``key`` as it is now; a concurrent write makes it a conflict, to re-read."""
        kv = await self.store.get(key)
        if kv is not None:
            await self._guarded(guard, [Compare(key, kv.mod_revision)], [Delete(key)])

    async def _retry(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """The retry loop for one CAS-guarded change: ``attempt_once`` raises `_Conflict`
        when a compare lost; back off and re-read, at most ``max_retries`` times.
        (`allocate` has its own loop: a block claimed mid-way restarts it for free.)"""
        for attempt in range(self.max_retries):
            await self._backoff(attempt)
            try:
                return await attempt_once()
            except _Conflict:
                continue
        raise TooManyConflicts(f"{what}: gave up after {self.max_retries} conflicting writes")

    async def _strip_node(self, node: str, key: str, guard: Sequence[Compare]) -> list[Released]:
        bkv = await self.store.get(key)
        if bkv is None:
            return []
        block = _block(bkv)
        mine = [(block.address(o), a) for o, a in block.allocations.items() if a.node == node]
        if not mine and block.affinity != node:
            return []
        hks = sorted({handle_key(a.handle) for _, a in mine})
        hkvs = dict(zip(hks, await self.store.get_many(hks), strict=True))
        compares = [Compare(key, bkv.mod_revision)] + [Compare(k, _rev(v)) for k, v in hkvs.items()]
        ops: list[Op] = []
        for addr, alloc in mine:
            block.release(addr, alloc.seq)
        for hk, hkv in hkvs.items():
            ops += self._handle_without(
                hk, hkv, [a for a, al in mine if handle_key(al.handle) == hk]
            )
        if block.affinity == node:
            block.affinity = None
        ops.append(Delete(key) if not block.used else Put(key, dumps(block.to_json())))
        await self._guarded(guard, compares, ops)
        return [Released(a, al) for a, al in mine]

    # -- reading -------------------------------------------------------------------
    async def blocks(self) -> list[Block]:
        """Every block, in address order (the store's key order is text: 10.244.159 < 10.244.82)."""
        kvs, _ = await self.store.list_prefix(BLOCKS)
        blocks = [_block(kv) for kv in kvs]
        blocks.sort(key=lambda b: (b.cidr.version, int(b.cidr.network_address), b.cidr.prefixlen))
        return blocks

    async def affinities(self) -> dict[tuple[str, IPNetwork], str]:
        """(node, block) -> "pending" | "confirmed"."""
        kvs, _ = await self.store.list_prefix(AFFINITY)
        return {parse_affinity_key(kv.key): str(loads(kv.value)["state"]) for kv in kvs}

    async def show(self, address: IPAddress) -> AddressInfo:
        pool = self.config.pool_of(address)
        bkv = await self._find_block(address)
        if bkv is None:
            return AddressInfo(address, pool, None, None, None)
        block = _block(bkv)
        return AddressInfo(address, pool, block.cidr, block.affinity, block.holder(address))

    async def handles(self) -> dict[str, dict[str, Any]]:
        kvs, _ = await self.store.list_prefix(HANDLES)
        return {handle_of_key(kv.key): loads(kv.value) for kv in kvs}

    # -- consistency and garbage collection ----------------------------------------
    async def check(self) -> list[str]:
        """Every inconsistency between blocks, handles and affinities (empty: consistent).

        One line per `ipam.consistency.Problem`; that module also repairs them."""
        from ipam.consistency import problems

        return [str(p) for p in await problems(self)]

    async def gc(
        self,
        is_live: Callable[[str, Allocation], bool],
        grace: float = 300.0,
        dry_run: bool = False,
        release_empty: bool = True,
    ) -> GcReport:
        """Release leaked addresses and settle half-done claims.

        An allocation is leaked when `is_live(handle, allocation)` is False and
        it is older than `grace` seconds (the grace covers a pod still being
        set up). Pending affinities older than `grace` are confirmed if their
        block is the node's, else dropped; handle records that list addresses
        their blocks do not give them are repaired.
        """
        report = GcReport()
        now = self.clock()
        for (node, cidr), state in (await self.affinities()).items():
            if state != PENDING:
                continue
            akv = await self.store.get(affinity_key(node, cidr))
            if akv is None or dry_run:
                continue
            state = await self._settle_pending(node, cidr, akv, grace)
            if state == CONFIRMED:
                report.affinities_confirmed.append(f"{node} {cidr}")
            elif state == DROPPED:
                report.affinities_dropped.append(f"{node} {cidr}")
        for b in await self.blocks():
            for addr, alloc in b.held():
                if now - alloc.ts < grace or is_live(alloc.handle, alloc):
                    continue
                if dry_run or await self.release_address(addr, alloc.seq):
                    report.released.append((str(addr), alloc.handle))
        if not dry_run:
            report.handles_repaired = await self._repair_handles()
        if release_empty and not dry_run:
            nodes = {node for node, _ in (await self.affinities())}
            for node in sorted(nodes):
                report.blocks_released += [str(c) for c in await self.release_empty_blocks(node)]
        return report

    async def _repair_handles(self) -> list[str]:
        """Drop handle entries their block does not back (cannot happen with atomic txns)."""
        repaired: list[str] = []
        blocks = {b.cidr: b for b in await self.blocks()}
        for h, rec in (await self.handles()).items():
            bad = _unbacked(h, rec, blocks)
            if bad:
                hk = handle_key(h)
                hkv = await self.store.get(hk)
                ops = self._handle_without(hk, hkv, bad)
                if (await self.store.txn([Compare(hk, _rev(hkv))], ops)).succeeded:
                    repaired.append(h)
        return repaired

    # -- repair steps (ipam.consistency) -----------------------------------------------
    async def repair_handle(self, handle: str) -> bool:
        """Make `handle`'s record list exactly what the blocks give it; never touches a block.

        Every write that changes what a handle holds writes its record in the
        same transaction, so comparing the record's revision is enough."""
        return await self._retry(
            f"repair handle {handle}", functools.partial(self._repair_handle_once, handle)
        )

    async def _repair_handle_once(self, handle: str) -> bool:
        hk = handle_key(handle)
        hkv = await self.store.get(hk)
        held = {
            str(addr): {"block": str(b.cidr), "seq": a.seq}
            for b in await self.blocks()
            for addr, a in b.held()
            if a.handle == handle
        }
        rec = _handle_rec(hkv)
        if (hkv is None and not held) or (hkv is not None and held and rec["addrs"] == held):
            return False
        rec["addrs"] = held
        await self._commit(
            [Compare(hk, _rev(hkv))], [Put(hk, dumps(rec))] if held else [Delete(hk)]
        )
        return True

    async def drop_affinity(self, node: str, cidr: IPNetwork) -> bool:
        """Delete `node`'s affinity to `cidr` if the block is missing or someone else's."""
        ak, bk = affinity_key(node, cidr), block_key(cidr)
        akv, bkv = await self.store.get_many([ak, bk])
        if akv is None or (bkv is not None and _block(bkv).affinity == node):
            return False
        return (await self.store.txn([Compare(ak, akv.mod_revision), Compare(bk, _rev(bkv))],
                                     [Delete(ak)])).succeeded  # fmt: skip

    async def restore_affinity(self, node: str, cidr: IPNetwork) -> bool:
        """Write the missing affinity key of a block affine to `node` (confirmed)."""
        ak, bk = affinity_key(node, cidr), block_key(cidr)
        akv, bkv = await self.store.get_many([ak, bk])
        if akv is not None or bkv is None or _block(bkv).affinity != node:
            return False
        value = dumps({"state": CONFIRMED, "ts": self.clock()})
        return (await self.store.txn([Compare(ak, 0), Compare(bk, bkv.mod_revision)],
                                     [Put(ak, value)])).succeeded  # fmt: skip

    async def release_orphan_block(self, cidr: IPNetwork) -> bool:
        """Delete a block that is affine to nobody and holds no address."""
        bkv = await self.store.get(block_key(cidr))
        if bkv is None or _block(bkv).affinity is not None or _block(bkv).used:
            return False
        return await self.store.delete_cas(bkv.key, bkv.mod_revision)

    # -- usage ------------------------------------------------------------------------
    async def usage(self) -> list[dict[str, Any]]:
        """Per pool: blocks claimed, addresses used and free (for `podbgp ipam pools`)."""
        blocks = await self.blocks()
        out = []
        for p in self.config.pools:
            mine = [b for b in blocks if self.config.pool_of_block(b.cidr) == p]
            used = sum(b.used for b in mine)
            out.append(
                {
                    **p.to_json(),
                    "blocks": len(mine),
                    "blocks_total": 1 << (p.block_size - p.cidr.prefixlen),
                    "used": used,
                    "free": p.cidr.num_addresses - used,
                }
            )
        return out
