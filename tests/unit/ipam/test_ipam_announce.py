"""What a node announces: the pure function and the watch-driven stream."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

from ipam import Announcement, Ipam, IpamConfig, Pool, announcement, watch_announcements
from ipam.block import Block
from ipam.store.base import Store

net = ipaddress.ip_network


def cfg(*pools: dict[str, object]) -> IpamConfig:
    return IpamConfig(pools=tuple(Pool.parse(p) for p in pools))


def test_blocks_aggregate_borrowed_are_host_routes_and_unexported_pools_vanish() -> None:
    c = cfg(
        {"cidr": "10.0.0.0/24", "block_size": 26},
        {"cidr": "10.9.0.0/24", "block_size": 26, "disable_bgp_export": True},
        {"cidr": "fd00::/120", "block_size": 122},
    )
    own = [net("10.0.0.0/26"), net("10.0.0.64/26"), net("10.9.0.0/26"), net("fd00::/122")]
    blocks = [Block.new(b, "me") for b in own]
    pending = Block.new(net("10.0.0.192/26"), "me")  # claimed, not confirmed yet
    other = Block.new(net("10.0.0.128/26"), "you")
    other.allocate("h1", "me", {}, 0.0)  # borrowed by me
    other.allocate("h2", "you", {}, 0.0)
    other_unexported = Block.new(net("10.9.0.64/26"), "you")
    other_unexported.allocate("h3", "me", {}, 0.0)
    other6 = Block.new(net("fd00::40/122"), "you")
    other6.allocate("h4", "me", {}, 0.0)
    ann = announcement("me", [*blocks, pending, other, other_unexported, other6], own, c)
    assert ann.prefixes == {
        net("10.0.0.0/25"),  # two adjacent /26 aggregated
        net("fd00::/122"),
        net("10.0.0.128/32"),
        net("fd00::40/128"),
    }
    assert ann.blackholes == {net("10.0.0.0/25"), net("10.9.0.0/26"), net("fd00::/122")}
    you = announcement("you", [*blocks, other, other_unexported], [other.cidr], c)
    assert you.prefixes == {net("10.0.0.128/26")}  # not 10.9/…: that pool is not exported
    assert you.to_json() == {"prefixes": ["10.0.0.128/26"], "blackholes": ["10.0.0.128/26"]}


async def _next(it: AsyncIterator[Announcement]) -> Announcement:
    return await asyncio.wait_for(it.__anext__(), 10)


async def test_stream_follows_claims_borrows_and_releases(store: Store) -> None:
    c = IpamConfig(
        pools=(Pool.parse({"cidr": "10.5.0.0/27", "block_size": 28}),), max_blocks_per_node=1
    )
    ipam = Ipam(store, c)
    it = watch_announcements(store, "n1", c).__aiter__()
    assert await _next(it) == Announcement(frozenset(), frozenset())
    a = await ipam.allocate("n1", "a")
    ann = await _next(it)
    assert ann.prefixes == {a.block} and ann.blackholes == {a.block}
    # Allocations inside our own block change nothing: no event.
    await ipam.allocate("n1", "a2")
    await ipam.allocate("n2", "b")  # n2 claims the other block
    for i in range(14):
        await ipam.allocate("n1", f"fill{i}")
    borrowed = await ipam.allocate("n1", "borrowed")
    assert borrowed.borrowed
    ann = await _next(it)
    assert ann.prefixes == {a.block, net(f"{borrowed.address}/32")}
    await ipam.release_handle("borrowed")
    ann = await _next(it)
    assert ann.prefixes == {a.block}
    await ipam.remove_node("n1")
    assert await _next(it) == Announcement(frozenset(), frozenset())
    await it.aclose()  # type: ignore[attr-defined]


async def test_every_nodes_prefixes_for_routing_without_bgp(store: Store) -> None:
    from ipam import watch_node_blocks

    c = IpamConfig(
        pools=(Pool.parse({"cidr": "10.6.0.0/27", "block_size": 28, "disable_bgp_export": True}),),
        max_blocks_per_node=1,
    )
    ipam = Ipam(store, c)
    it = watch_node_blocks(store, c).__aiter__()
    assert await asyncio.wait_for(it.__anext__(), 10) == {}
    a = await ipam.allocate("n1", "a")
    assert await asyncio.wait_for(it.__anext__(), 10) == {"n1": frozenset({a.block})}
    b = await ipam.allocate("n2", "b")
    assert await asyncio.wait_for(it.__anext__(), 10) == {
        "n1": frozenset({a.block}),
        "n2": frozenset({b.block}),
    }
    for i in range(15):
        await ipam.allocate("n2", f"fill{i}")
    borrowed = await ipam.allocate("n2", "borrow")
    assert borrowed.borrowed and borrowed.block == a.block
    assert await asyncio.wait_for(it.__anext__(), 10) == {
        "n1": frozenset({a.block}),
        "n2": frozenset({b.block, net(f"{borrowed.address}/32")}),
    }
    await it.aclose()  # type: ignore[attr-defined]
