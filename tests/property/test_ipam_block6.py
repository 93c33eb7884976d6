"""IPv6 block arithmetic at the edges: /122 blocks in a /56, borrowing and exhaustion.

A /56 holds 2**66 blocks of /122, far past anything a loop could visit, so the arithmetic
must never enumerate: block number 0 and the last one, the wrap-around of a node's
candidate order at the end of the pool, an index one past the end. IPv6 has no broadcast
address, so all 64 addresses of a /122 are handed out, the last one (…3f) too. Then the
allocator on a real SQLite store with a pool of four /122 blocks: each node claims one
block (``max_blocks_per_node = 1``), a fifth node borrows addresses from the others'
blocks, and when every address is held the next allocation fails
with `Exhausted`, never a second holder.
"""

from __future__ import annotations

import asyncio
import ipaddress
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipam import Exhausted, Ipam, IpamConfig, Pool
from ipam.block import Block, BlockError, block_at, block_count, block_of, candidate_blocks
from ipam.identity import init_cluster
from ipam.store import OpenMode, open_store

# ULA /56 prefixes (RFC 4193: fd00::/8, then 48 bits of global ID and subnet).
SLASH56 = st.integers(0, 2**48 - 1).map(
    lambda r: ipaddress.IPv6Network(((0xFD << 120) | (r << 72), 56))
)


@st.composite
def index_in(draw: st.DrawFn, n: int) -> int:
    """A block index, with the two ends drawn often."""
    return draw(st.one_of(st.just(0), st.just(n - 1), st.integers(0, n - 1)))


@given(SLASH56, st.integers(116, 128), st.data())
def test_blocks_of_a_slash56_at_both_ends(
    pool: ipaddress.IPv6Network, size: int, data: st.DataObject
) -> None:
    n = block_count(pool, size)
    assert n == 2 ** (size - 56)
    i = data.draw(index_in(n))
    block = block_at(pool, size, i)
    span = 2 ** (128 - size)
    assert block.prefixlen == size and block.subnet_of(pool)
    assert int(block.network_address) == int(pool.network_address) + i * span
    # Every address of the block, its first and last, maps back to it.
    for addr in (block.network_address, block[span // 2], block[-1]):
        assert block_of(pool, size, addr) == block
    if i + 1 < n:
        assert int(block_at(pool, size, i + 1).network_address) == int(block[-1]) + 1
    else:
        assert block[-1] == pool[-1]  # the last block ends the pool
    for outside in (-1, n):
        with pytest.raises(BlockError):
            block_at(pool, size, outside)
    with pytest.raises(BlockError):
        block_of(pool, size, pool[-1] + 1)


@given(SLASH56, st.text(min_size=1, max_size=12))
def test_candidate_order_starts_anywhere_and_wraps_at_the_end(
    pool: ipaddress.IPv6Network, node: str
) -> None:
    size = 122
    n = block_count(pool, size)
    order = candidate_blocks(pool, size, node)
    first = [next(order) for _ in range(3)]
    start = (int(first[0].network_address) - int(pool.network_address)) >> (128 - size)
    assert first == [block_at(pool, size, (start + k) % n) for k in range(3)]
    # Near the end of the pool the order wraps to block 0 (checked without enumerating).
    small = ipaddress.IPv6Network((int(pool.network_address), 120))  # 4 blocks of /122
    seen = list(candidate_blocks(small, size, node))
    assert sorted(seen) == [block_at(small, size, k) for k in range(4)]
    k = seen.index(block_at(small, size, 3))
    assert seen[(k + 1) % 4] == block_at(small, size, 0)


@given(SLASH56, st.data())
def test_every_address_of_a_slash122_is_handed_out_once_then_none(
    pool: ipaddress.IPv6Network, data: st.DataObject
) -> None:
    i = data.draw(index_in(block_count(pool, 122)))
    block = Block.new(block_at(pool, 122, i), "n1")
    got = [block.allocate(f"h{k}", "n1", {}, 0.0) for k in range(64)]
    addresses = [g[0] for g in got if g is not None]
    assert len(set(addresses)) == 64 and all(a in block.cidr for a in addresses)
    assert block.cidr[-1] in addresses  # no broadcast address in IPv6: …3f is a pod's
    assert block.allocate("h64", "n1", {}, 0.0) is None and block.free == 0
    block.check()


POOL6 = Pool.parse({"cidr": "fd00:9::/120", "block_size": 122})  # four /122 blocks
CONFIG = IpamConfig(pools=(POOL6,), max_blocks_per_node=1)
NODES = ("n1", "n2", "n3", "n4", "n5")


async def _allocate_all(db: Path, order: list[str]) -> None:
    store = open_store(f"sqlite:{db}", OpenMode.CREATE)
    await init_cluster(store)
    ipam = Ipam(store, CONFIG)
    try:
        held: dict[ipaddress.IPv6Address, str] = {}
        affine: dict[str, ipaddress.IPv6Network] = {}
        for k, node in enumerate(order):
            got = await ipam.allocate(node, f"c{k}", 6)
            addr = got.address
            assert isinstance(addr, ipaddress.IPv6Address) and addr in POOL6.cidr
            assert addr not in held, f"{addr} handed out twice"
            held[addr] = node
            assert got.block.prefixlen == 122 and addr in got.block
            if got.borrowed:
                # Only once every block has a node, and never from the node's own block.
                assert len(affine) == 4 and affine.get(node) != got.block
            else:
                assert affine.setdefault(node, got.block) == got.block
        assert len(set(affine.values())) == len(affine)  # one block per node, no sharing
        # Fill the pool to the last address, then one more: Exhausted, nothing doubled.
        borrowed = 0
        for k in range(256 - len(held)):
            node = NODES[k % 5]
            got = await ipam.allocate(node, f"fill{k}", 6)
            assert got.address not in held
            held[got.address] = node  # type: ignore[index]
            if got.borrowed:
                borrowed += 1
                owner = [n for n, b in affine.items() if b == got.block]
                assert owner and owner != [node], (node, got.block, affine)
            else:
                assert affine.setdefault(node, got.block) == got.block
        assert borrowed > 0  # five nodes, four blocks: one node lives on borrowed /128s
        assert len(held) == 256 and POOL6.cidr[-1] in held
        with pytest.raises(Exhausted, match="no block of pool"):
            await ipam.allocate("n5", "one-too-many", 6)
        assert await ipam.check() == []
    finally:
        await store.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(NODES), min_size=1, max_size=40))
def test_claim_borrow_and_exhaust_an_ipv6_pool(order: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_allocate_all(Path(d) / "podbgp.db", order))
