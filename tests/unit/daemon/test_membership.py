"""`podbgp.membership` over a real SQLite file: the lease, the nodes the daemon builds from,
a reload of the timers, and the leak check's tick."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ipam import Ipam, IpamConfig, Node, NodeRegistry, Pool
from ipam.leaks import NETNS, NETNS_ID, netns_id
from ipam.lifecycle import LIVE, Lifecycle, release_node
from ipam.store import OpenMode
from ipam.store.base import EventKind, StoreError
from ipam.store.sqlite import SqliteStore
from podbgp.config import Config, load_config_text
from podbgp.membership import Membership


def config(extra: str = "") -> Config:
    return load_config_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        "[bgp]\nrestart_time = 1\n[ipam]\nnode_lease_ttl = 1\nnode_gone_grace = 1\n"
        "node_gone_after = 3\nleak_grace = 0\n" + extra
    )


async def test_a_new_ttl_moves_the_key_to_a_new_lease_without_a_gap(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", poll_interval=0.02, mode=OpenMode.CREATE)
    cfg = config()
    ipam = Ipam(store, IpamConfig())
    m = Membership(store, ipam, cfg)
    await NodeRegistry(store).register(Node("n1"))
    await m.hold()
    first = m.live
    assert first is not None and first.ttl == 1
    _, rev = await store.list_prefix(LIVE)
    events: list[EventKind] = []

    async def watch() -> None:
        async for batch in store.watch(LIVE, rev + 1):
            events.extend(e.kind for e in batch)

    watcher = asyncio.ensure_future(watch())
    keeper = asyncio.ensure_future(m.keep())
    await asyncio.sleep(2.5)  # longer than the TTL: kept alive
    new = load_config_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n[ipam]\nnode_lease_ttl = 30\n'
    )
    m.reconfigure(new, ipam)
    deadline = time.monotonic() + 5
    while m.live is first or m.live is None or m.live.ttl != 30:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5)  # the first lease has run out by now
    live = (await Lifecycle(store).member("n1")).live  # type: ignore[union-attr]
    assert live is not None and live.ttl == 30 and live.lease != first.lease
    assert EventKind.DELETE not in events
    assert m.timing.gone_after == 120 + 60  # defaults of the reloaded config
    keeper.cancel()
    watcher.cancel()
    await store.close()


async def test_nodes_leave_out_a_gone_node_and_the_reaper_removes_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", poll_interval=0.02, mode=OpenMode.CREATE)
    pool = IpamConfig(pools=(Pool.parse({"cidr": "10.6.0.0/24", "block_size": 28}),))
    ipam = Ipam(store, pool)
    for n in ("n1", "n9"):
        await NodeRegistry(store).register(Node(n, address="192.0.2.9/24"))
    await Lifecycle(store).hold("n9", 1)  # another node's daemon, never renewed: it died
    await ipam.allocate("n9", "pod")
    m = Membership(store, ipam, config())
    await m.hold()
    keeper = asyncio.ensure_future(m.keep())
    seen: list[set[str]] = []

    async def follow() -> None:
        async for nodes in m.nodes():
            seen.append(set(nodes))

    follower = asyncio.ensure_future(follow())
    await asyncio.sleep(0.5)
    assert seen[-1] == {"n1", "n9"}
    # n9 lapses after 1 s, is gone 2 s later and removed 3 s after the lapse. The count
    # follows the whole removal (`ipam.lifecycle.reap` returns after its blocks are
    # released and old records forgotten): wait for it too, not only for the blocks.
    deadline = time.monotonic() + 20
    while not (seen and seen[-1] == {"n1"} and m.nodes_removed and await ipam.blocks() == []):
        assert time.monotonic() < deadline, (seen[-3:], m.nodes_removed)
        await asyncio.sleep(0.1)
    assert m.nodes_removed == 1
    follower.cancel()
    keeper.cancel()
    await store.close()


async def test_housekeeping_releases_this_nodes_leaks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", poll_interval=0.02, mode=OpenMode.CREATE)
    pool = IpamConfig(pools=(Pool.parse({"cidr": "10.6.0.0/24", "block_size": 28}),))
    ipam = Ipam(store, pool)
    ns = tmp_path / "pod-ns"
    ns.write_text("")
    attrs = {NETNS: str(ns), NETNS_ID: netns_id(str(ns))}
    await ipam.allocate("n1", "pod", attrs=attrs)
    m = Membership(store, ipam, config())
    await m.housekeep_once()
    assert m.leaks_released == 0
    ns.unlink()
    await m.housekeep_once()
    assert m.leaks_released == 1 and await ipam.handles() == {}
    await store.close()


async def test_a_partition_past_node_gone_after_ends_with_the_pods_addresses_back(
    tmp_path: Path,
) -> None:
    """The daemon runs on, cut off from the store for longer than its lease and
    ``node_gone_after``: the others removed it and released its pods' addresses. When its
    next renewal finds the lease expired it holds a new one and takes them back, and then
    the daemon's part runs (`back`: its registry record, `Daemon._back`; tried again if the
    store fails it)."""
    store = SqliteStore(tmp_path / "s.db", poll_interval=0.02, mode=OpenMode.CREATE)
    pools = IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/24", "block_size": 28}),))
    ipam = Ipam(store, pools)
    handles_when_back: list[set[str]] = []
    calls = 0

    async def back() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreError("the store hiccuped")  # tried again a second later
        handles_when_back.append(set(await ipam.handles()))

    m = Membership(store, ipam, config(), back=back)
    await NodeRegistry(store).register(Node("n1"))
    await m.hold()
    assert m.live is not None
    ns = tmp_path / "pod-ns"
    ns.write_text("a pod's namespace")
    attrs = {NETNS: str(ns), NETNS_ID: netns_id(str(ns))}
    got = await ipam.allocate("n1", "pod-1", attrs=attrs)
    # What the rest of the cluster did while n1 could not reach the store:
    lc = Lifecycle(store)
    await store.revoke_lease(m.live.lease)
    assert await lc.remove("n1")
    assert await release_node(lc, ipam, "n1")
    assert await ipam.handles() == {}
    keeper = asyncio.ensure_future(m.keep())
    try:
        deadline = time.monotonic() + 10
        while "pod-1" not in await ipam.handles():
            assert time.monotonic() < deadline, "the address was not taken back"
            await asyncio.sleep(0.05)
        assert [r.address for r in m.restored.taken_back] == [got.address]
        while not handles_when_back:
            assert time.monotonic() < deadline, "the daemon's part did not run"
            await asyncio.sleep(0.05)
        assert handles_when_back == [{"pod-1"}]  # after the pod's address came back
        assert calls == 2
    finally:
        keeper.cancel()
        await store.close()
