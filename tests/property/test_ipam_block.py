"""Block arithmetic under hypothesis: blocks tile the pool, addresses are never lost or doubled."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from ipam.block import (
    Block,
    block_at,
    block_count,
    block_of,
    candidate_blocks,
)


@st.composite
def pools(draw: st.DrawFn) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]:
    v6 = draw(st.booleans())
    bits = 128 if v6 else 32
    block_size = draw(st.integers(bits - 6, bits))  # blocks of 1..64 addresses
    plen = draw(st.integers(block_size - 5, block_size))  # 1..32 blocks
    base = draw(st.integers(0, 2**bits - 1)) >> (bits - plen) << (bits - plen)
    return ipaddress.ip_network((base, plen)), block_size


@given(pools(), st.text(min_size=1, max_size=20))
def test_blocks_tile_the_pool(pool: tuple[ipaddress._BaseNetwork, int], node: str) -> None:
    cidr, size = pool
    n = block_count(cidr, size)  # type: ignore[arg-type]
    blocks = [block_at(cidr, size, i) for i in range(n)]  # type: ignore[arg-type]
    # No overlap, every address of the pool in exactly one block.
    assert sum(b.num_addresses for b in blocks) == cidr.num_addresses
    for a, b in itertools.pairwise(blocks):
        assert int(a.broadcast_address) + 1 == int(b.network_address)
    assert blocks[0].network_address == cidr.network_address
    assert blocks[-1].broadcast_address == cidr.broadcast_address
    # The node's candidate order visits every block exactly once.
    order = list(candidate_blocks(cidr, size, node))  # type: ignore[arg-type]
    assert sorted(order, key=lambda c: int(c.network_address)) == blocks
    # block_of finds the block of any address.
    for b in blocks:
        assert block_of(cidr, size, b.broadcast_address) == b  # type: ignore[arg-type]


ops = st.lists(
    st.tuples(st.sampled_from(["alloc", "release", "stale", "assign"]), st.integers(0, 63)),
    max_size=200,
)


@settings(max_examples=200)
@given(pools(), ops)
def test_allocate_release_keep_invariants(
    pool: tuple[ipaddress._BaseNetwork, int], steps: list[tuple[str, int]]
) -> None:
    cidr, size = pool
    block = Block.new(block_at(cidr, size, 0), "n1")  # type: ignore[arg-type]
    held: dict[int, int] = {}  # ordinal -> seq, our model of the block
    free_order = list(range(block.size))  # longest-free order
    seqs: set[int] = set()
    for op, x in steps:
        o = x % block.size
        if op == "alloc":
            got = block.allocate(f"h{x}", "n1", {}, 0.0)
            if not free_order:
                assert got is None
                continue
            assert got is not None
            expect = free_order.pop(0)
            assert block.ordinal(got[0]) == expect
            assert got[1].seq not in seqs
            seqs.add(got[1].seq)
            held[expect] = got[1].seq
        elif op == "assign" and o not in held:
            alloc = block.assign(block.address(o), f"h{x}", "n1", {}, 0.0)
            free_order.remove(o)
            assert alloc.seq not in seqs
            seqs.add(alloc.seq)
            held[o] = alloc.seq
        elif op == "release":
            released = block.release(block.address(o), held.get(o))
            assert (released is not None) == (o in held)
            if o in held:
                del held[o]
                free_order.append(o)
        elif op == "stale" and o in held:
            # A release naming an older allocation frees nothing.
            assert block.release(block.address(o), held[o] - 1 if held[o] > 1 else 10**9) is None
        block.check()
        assert block.unallocated == free_order
        assert {k: a.seq for k, a in block.allocations.items()} == held
        assert Block.from_json(block.to_json()) == block
