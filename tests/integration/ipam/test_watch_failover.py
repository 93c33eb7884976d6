"""A watch whose etcd member dies resumes on another member with no change lost or repeated.

The watcher's store lists the member it will watch on first; a writer (on the
other members first) creates keys one after another, and the watched member is
killed (SIGKILL) while the writes go on. The watch must then deliver every
key once, in revision order, across the break.
"""

from __future__ import annotations

import asyncio

import pytest

from ipam.etcdlab import EtcdCluster
from ipam.store.base import Event, EventKind
from ipam.store.etcd import EtcdStore

pytestmark = [pytest.mark.slow, pytest.mark.etcd]

KEYS = 150
KILL_AFTER = 40
LAST = f"/w/k{KEYS - 1:03d}"


async def scenario(cluster: EtcdCluster, victim: int) -> list[Event]:
    eps = cluster.endpoints
    watcher = EtcdStore([eps[victim], *(e for i, e in enumerate(eps) if i != victim)])
    writer = EtcdStore([e for i, e in enumerate(eps) if i != victim] + [eps[victim]])
    _, rev = await writer.list_prefix("/w/")
    seen: list[Event] = []
    killed = asyncio.Event()

    async def watch() -> None:
        async for batch in watcher.watch("/w/", rev + 1):
            seen.extend(batch)
            if len(seen) >= KILL_AFTER and not killed.is_set():
                cluster.kill(victim)  # the member this stream is on
                killed.set()
            if any(e.key == LAST for e in batch):
                return

    async def write() -> None:
        for i in range(KEYS):
            await writer.create(f"/w/k{i:03d}", str(i).encode())
            await asyncio.sleep(0.005)

    try:
        task = asyncio.ensure_future(watch())
        await asyncio.wait_for(write(), 90)
        await asyncio.wait_for(task, 60)
        assert killed.is_set()
    finally:
        await watcher.close()
        await writer.close()
    return seen


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_watch_resumes_after_its_member_is_killed(etcd3: EtcdCluster, role: str) -> None:
    leader = etcd3.leader()
    victim = leader if role == "leader" else (leader + 1) % 3
    seen = asyncio.run(scenario(etcd3, victim))
    assert [e.key for e in seen] == [f"/w/k{i:03d}" for i in range(KEYS)]
    assert all(e.kind is EventKind.PUT for e in seen)
    revs = [e.mod_revision for e in seen]
    assert revs == sorted(set(revs)), "a change repeated or out of order"
