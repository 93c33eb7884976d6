"""The allocator with per-request pools, uses and reservations (SQLite and etcd)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ipam import Exhausted, Ipam, IpamConfig, Pool, PoolNotUsable, PoolUse, Reservation, Reserved
from ipam.selection import PoolRequest, namespace_labels
from ipam.store.base import Store

net = ipaddress.ip_network
DEFAULT = {"cidr": "10.244.0.0/24", "block_size": 28}
LEGACY = {
    "cidr": "10.250.0.0/24",
    "block_size": 28,
    "namespace_selector": 'projectcalico.org/name == "legacy"',
}
TUNNEL = {"cidr": "10.99.0.0/28", "block_size": 28, "allowed_uses": ["tunnel"]}


def config(*pools: dict[str, Any], **kw: Any) -> IpamConfig:
    return IpamConfig(pools=tuple(Pool.parse(p) for p in pools), **kw)


def pod(namespace: str, *explicit: str) -> PoolRequest:
    return PoolRequest(4, PoolUse.WORKLOAD, namespace_labels(namespace), explicit)


async def test_a_node_holds_blocks_of_several_pools_one_per_namespace(store: Store) -> None:
    ipam = Ipam(store, config(DEFAULT, LEGACY, TUNNEL))
    web = [await ipam.allocate("n1", f"web{i}", request=pod("web")) for i in range(3)]
    old = [await ipam.allocate("n1", f"old{i}", request=pod("legacy")) for i in range(3)]
    vtep = await ipam.allocate("n1", "vtep", request=PoolRequest(4, PoolUse.TUNNEL))
    assert all(a.address in net("10.244.0.0/24") for a in web)
    assert all(a.address in net("10.250.0.0/24") for a in old)
    assert vtep.address in net("10.99.0.0/28")
    blocks = {b.cidr: b.affinity for b in await ipam.blocks()}
    assert len(blocks) == 3 and set(blocks.values()) == {"n1"}
    # Each allocation after the first of its kind came from the block already held.
    assert len({a.block for a in web}) == 1 and len({a.block for a in old}) == 1
    assert await ipam.check() == []


async def test_tunnel_pools_never_serve_pods_and_workload_pools_never_tunnels(
    store: Store,
) -> None:
    ipam = Ipam(store, config(TUNNEL))
    with pytest.raises(Exhausted, match="no enabled IPv4 pool selects node n1 for a workload"):
        await ipam.allocate("n1", "pod")
    ipam = Ipam(store, config({**DEFAULT, "allowed_uses": ["workload"]}))
    with pytest.raises(Exhausted, match="for a tunnel address"):
        await ipam.allocate("n1", "vtep", request=PoolRequest(4, PoolUse.TUNNEL))
    with pytest.raises(PoolNotUsable, match="tunnel addresses only"):
        await Ipam(store, config(TUNNEL)).assign(ipaddress.ip_address("10.99.0.3"), "n1", "h")


async def test_named_pools_are_honoured_or_refused(store: Store) -> None:
    ipam = Ipam(store, config(DEFAULT, LEGACY))
    got = await ipam.allocate("n1", "a", request=pod("legacy", "10.244.0.0/24"))
    assert got.address in net("10.244.0.0/24")
    with pytest.raises(PoolNotUsable, match=r"pool 10\.250\.0\.0/24 does not select namespace web"):
        await ipam.allocate("n1", "b", request=pod("web", "10.250.0.0/24"))
    with pytest.raises(PoolNotUsable, match=r"pool 10\.7\.0\.0/24 does not exist"):
        await ipam.allocate("n1", "c", request=pod("web", "10.7.0.0/24"))
    assert [h for h in await ipam.handles()] == ["a"]  # the refusals wrote nothing


async def test_reservations_cost_their_addresses_not_their_blocks(store: Store) -> None:
    reserved = (
        Reservation(net("10.244.0.0/28"), "whole block"),
        Reservation(net("10.244.0.16/32"), "gateway"),
        Reservation(net("10.244.0.20/31")),
    )
    ipam = Ipam(store, config({"cidr": "10.244.0.0/27", "block_size": 28},
                              reservations=reserved, strict_affinity=True))  # fmt: skip
    got = []
    while True:
        try:
            got.append((await ipam.allocate("n1", f"h{len(got)}")).address)
        except Exhausted:
            break
    # Block 10.244.0.0/28 is wholly reserved and never claimed; the other block gives its
    # 16 addresses less the 3 reserved.
    assert [str(b.cidr) for b in await ipam.blocks()] == ["10.244.0.16/28"]
    assert sorted(int(a) & 0xFF for a in got) == [17, 18, 19, *range(22, 32)]
    with pytest.raises(Reserved, match=r"10\.244\.0\.21 is reserved: 10\.244\.0\.20/31$"):
        await ipam.assign(ipaddress.ip_address("10.244.0.21"), "n1", "x")


async def test_borrowing_skips_reserved_addresses(store: Store) -> None:
    cfg = config({"cidr": "10.244.0.0/28", "block_size": 28},
                 reservations=(Reservation(net("10.244.0.8/29")),), max_blocks_per_node=1)  # fmt: skip
    ipam = Ipam(store, cfg)
    owner = [await ipam.allocate("owner", f"o{i}") for i in range(4)]
    borrowed = [await ipam.allocate("borrower", f"b{i}") for i in range(4)]
    assert all(b.borrowed for b in borrowed)
    every = {int(a.address) & 0xFF for a in owner + borrowed}
    assert every == set(range(8))
    with pytest.raises(Exhausted):
        await ipam.allocate("borrower", "one-too-many")
