"""A 3-member etcd loses its leader while nodes allocate and one holds its lease:
no address is handed out twice, the store stays consistent, and the lease is never
lost (the holder's keep-alives move to a live member; the node never lapses)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from ipam import Exhausted, Ipam, IpamConfig, Node, NodeRegistry, Pool
from ipam.etcdlab import EtcdCluster
from ipam.identity import ensure_cluster
from ipam.lifecycle import LIVE, Lifecycle
from ipam.store.base import EventKind
from ipam.store.etcd import EtcdStore

pytestmark = [pytest.mark.slow, pytest.mark.etcd]

CONFIG = IpamConfig(pools=(Pool.parse({"cidr": "10.78.0.0/25", "block_size": 28}),))
TTL = 3


async def scenario(cluster: EtcdCluster) -> None:
    main = EtcdStore(cluster.endpoints)
    await ensure_cluster(main)
    for n in ("n1", "n2"):
        await NodeRegistry(main).register(Node(n))
    lc = Lifecycle(main)
    live = await lc.hold("n1", TTL)
    renewed: list[object] = []
    keeper = asyncio.ensure_future(lc.keep("n1", live, renewed.append))
    _, rev = await main.list_prefix(LIVE)
    deletes: list[str] = []

    async def watch() -> None:
        async for batch in main.watch(LIVE, rev + 1):
            deletes.extend(e.key for e in batch if e.kind is EventKind.DELETE)

    watcher = asyncio.ensure_future(watch())
    got: list[tuple[str, str]] = []
    stores = [EtcdStore(cluster.endpoints) for _ in range(4)]

    async def allocator(i: int) -> None:
        ipam = Ipam(stores[i], CONFIG)
        for k in range(40):
            try:
                a = await ipam.allocate(f"n{1 + i % 2}", f"w{i}-{k}")
            except Exhausted:
                return
            got.append((str(a.address), f"w{i}-{k}"))

    workers = [asyncio.ensure_future(allocator(i)) for i in range(4)]
    while len(got) < 30:
        await asyncio.sleep(0.02)
    cluster.kill(cluster.leader())  # mid-run, the leader
    await asyncio.wait_for(asyncio.gather(*workers), 120)
    await asyncio.sleep(2 * TTL)  # renewals keep going across the new leader's term
    try:
        addrs = [a for a, _ in got]
        assert len(addrs) == len(set(addrs)), "an address handed out twice"
        assert len(addrs) == 128  # the whole pool, none lost
        assert sorted(map(ipaddress.ip_address, addrs)) == list(CONFIG.pools[0].cidr)
        assert await Ipam(main, CONFIG).check() == []
        assert deletes == [] and renewed == [], "the lease lapsed while a member died"
        m = await lc.member("n1")
        assert m is not None and m.live is not None and m.live.lease == live.lease
    finally:
        keeper.cancel()
        watcher.cancel()
        for s in [main, *stores]:
            await s.close()


def test_leader_killed_during_allocations_and_lease_renewals(etcd3: EtcdCluster) -> None:
    asyncio.run(scenario(etcd3))
