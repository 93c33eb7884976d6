"""Cluster resources in a real datastore (SQLite file, etcd): apply, revisions, CAS, watch.

`podbgp.cluster` against both store kinds; a 3-member etcd losing a member
while files are applied shows an apply is all or nothing.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from ipam.etcdlab import EtcdCluster, have_etcd
from ipam.identity import init_cluster
from ipam.store import Compare, Op, Store, StoreUnavailable, TxnResult
from ipam.store.etcd import EtcdStore
from podbgp.cluster import (
    ATTEMPTS,
    ResourceConflict,
    ResourceError,
    apply_resources,
    delete_resource,
    read_resources,
    watch_resources,
)
from podbgp.config import ConfigError
from podbgp.config.resources import Resource, ResourceKind, file_labels, read_resource_file


def rs(text: str) -> list[Resource]:
    return read_resource_file(tomllib.loads(text))


POOL_A = '[[pool]]\nname = "a"\ncidr = "10.1.0.0/16"\n'
POOL_B = '[[pool]]\nname = "b"\ncidr = "10.2.0.0/16"\n'


async def test_apply_get_delete_round_trip_with_revisions(store: Store) -> None:
    done = await apply_resources(store, rs(POOL_A + "[bgp]\nasn = 64512\n"))
    assert {r.ref for r in done.written} == {"pool/a", "bgp/default"} == done.created
    current = await read_resources(store)
    a = current.find(ResourceKind.POOL, "a")
    assert a is not None and a.spec == {"cidr": "10.1.0.0/16"} and a.revision == done.revision
    # The same file again writes nothing; a change writes only what changed.
    again = await apply_resources(store, rs(POOL_A + "[bgp]\nasn = 64512\n"))
    assert again.written == () and len(again.unchanged) == 2
    changed = await apply_resources(
        store, rs(POOL_A.replace("/16", "/17") + "[bgp]\nasn = 64512\n")
    )
    assert [r.ref for r in changed.written] == ["pool/a"] and not changed.created
    after = await read_resources(store)
    assert after.find(ResourceKind.POOL, "a").revision > a.revision  # type: ignore[union-attr]
    assert after.find(ResourceKind.BGP, "default").revision == done.revision  # type: ignore[union-attr]
    # Delete at a stale revision is refused; at the current one it goes.
    with pytest.raises(ResourceError, match="changed since"):
        await delete_resource(store, ResourceKind.POOL, "a", a.revision)
    await delete_resource(store, ResourceKind.POOL, "a")
    assert (await read_resources(store)).find(ResourceKind.POOL, "a") is None
    with pytest.raises(ResourceError, match="no pool named 'a'"):
        await delete_resource(store, ResourceKind.POOL, "a")


async def test_an_invalid_set_writes_nothing(store: Store) -> None:
    await apply_resources(store, rs(POOL_A))
    before = await read_resources(store)
    new = rs(POOL_B + '[[pool]]\nname = "c"\ncidr = "10.1.128.0/17"\n')
    with pytest.raises(ConfigError) as e:
        await apply_resources(store, new, file_labels(new))
    assert list(e.value.errors) == [
        'pool[1].cidr: "10.1.128.0/17" overlaps pool "a" ("10.1.0.0/16")'
    ]
    after = await read_resources(store)
    assert after.resources == before.resources and after.serial_revision == before.serial_revision


class Interleaved(Store):
    """A store whose next `txn`s are each preceded by someone else's write (a lost race)."""

    def __init__(self, inner: Store, before_txn: Callable[[], Awaitable[None]], times: int) -> None:
        self.inner, self.before_txn, self.times = inner, before_txn, times
        self.kind = inner.kind
        self.txns = 0

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        return await self.inner.get(key)

    async def get_many(self, keys: Sequence[str]):  # type: ignore[no-untyped-def]
        return await self.inner.get_many(keys)

    async def list_prefix(self, prefix: str, keys_only: bool = False):  # type: ignore[no-untyped-def]
        return await self.inner.list_prefix(prefix, keys_only)

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        self.txns += 1
        if self.times > 0:
            self.times -= 1
            await self.before_txn()
        return await self.inner.txn(compares, ops)

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list]:  # type: ignore[type-arg]
        return self.inner.watch(prefix, start_revision)

    async def grant_lease(self, ttl: int) -> int:
        return await self.inner.grant_lease(ttl)

    async def keep_alive(self, lease: int) -> int:
        return await self.inner.keep_alive(lease)

    async def revoke_lease(self, lease: int) -> None:
        await self.inner.revoke_lease(lease)

    async def close(self) -> None:
        pass


async def test_a_lost_race_re_reads_and_applies_on_the_new_set(store: Store) -> None:
    """Two applies at once: the one whose CAS fails re-reads, re-validates and writes after."""

    async def b_first() -> None:
        await apply_resources(store, rs(POOL_B))

    racer = Interleaved(store, b_first, 1)
    done = await apply_resources(racer, rs(POOL_A))
    assert racer.txns == 2  # the first CAS lost to b's write
    assert [r.ref for r in done.written] == ["pool/a"]
    names = {r.name for r in (await read_resources(store)).of_kind(ResourceKind.POOL)}
    assert names == {"a", "b"}


async def test_a_lost_race_against_a_conflicting_write_is_refused(store: Store) -> None:
    """The winner's pool overlaps ours: the retry validates against it and writes nothing."""

    async def b_first() -> None:
        await apply_resources(store, rs(POOL_B))

    racer = Interleaved(store, b_first, 1)
    new = rs('[[pool]]\nname = "a"\ncidr = "10.2.0.0/24"\n')
    with pytest.raises(ConfigError, match='overlaps pool "b"'):
        await apply_resources(racer, new, file_labels(new))
    names = {r.name for r in (await read_resources(store)).of_kind(ResourceKind.POOL)}
    assert names == {"b"}


async def test_losing_every_race_says_retry(store: Store) -> None:
    n = 0

    async def someone_writes() -> None:
        nonlocal n
        n += 1
        await apply_resources(store, rs(f'[[pool]]\nname = "x{n}"\ncidr = "10.{n + 10}.0.0/16"\n'))

    racer = Interleaved(store, someone_writes, ATTEMPTS)
    with pytest.raises(ResourceConflict, match="nothing was written, run the apply again"):
        await apply_resources(racer, rs(POOL_A))
    assert (await read_resources(store)).find(ResourceKind.POOL, "a") is None


async def test_concurrent_applies_of_one_resource_both_land_in_turn(store: Store) -> None:
    results = await asyncio.gather(
        apply_resources(store, rs(POOL_A)),
        apply_resources(store, rs(POOL_A.replace("/16", "/17"))),
    )
    revisions = {r.revision for res in results for r in res.written}
    assert len(revisions) == len([r for res in results for r in res.written])  # no shared revision
    final = (await read_resources(store)).find(ResourceKind.POOL, "a")
    assert final is not None and final.spec["cidr"] in ("10.1.0.0/16", "10.1.0.0/17")


async def test_the_watch_yields_the_set_after_each_change(store: Store) -> None:
    seen: list[set[str]] = []
    got = asyncio.Event()

    async def follow() -> None:
        async for current in watch_resources(store):
            seen.append({r.ref for r in current.resources})
            got.set()

    task = asyncio.ensure_future(follow())
    try:
        await asyncio.wait_for(got.wait(), 10)
        assert seen[-1] == set()
        got.clear()
        await apply_resources(store, rs(POOL_A + POOL_B))
        async with asyncio.timeout(10):
            while seen[-1] != {"pool/a", "pool/b"}:
                got.clear()
                await got.wait()
        await delete_resource(store, ResourceKind.POOL, "a")
        async with asyncio.timeout(10):
            while seen[-1] != {"pool/b"}:
                got.clear()
                await got.wait()
    finally:
        task.cancel()


# ---------------------------------------------------------------- an etcd member killed


@pytest.fixture
def etcd3() -> object:
    why = have_etcd()
    if why:
        pytest.skip(why)
    with EtcdCluster.start(3) as c:
        yield c


def generation(g: int, size: int = 20) -> list[Resource]:
    text = "".join(f'[[pool]]\nname = "g{g}-p{i}"\ncidr = "10.{g}.{i}.0/24"\n' for i in range(size))
    return rs(text)


@pytest.mark.etcd
@pytest.mark.timeout(180)
async def test_an_etcd_member_killed_during_applies_never_leaves_half_a_file(
    etcd3: EtcdCluster, tmp_path: Path
) -> None:
    store = EtcdStore(etcd3.endpoints, call_timeout=2.0, retry_budget=20.0)
    try:
        await init_cluster(store)
        outcomes: dict[int, str] = {}

        async def apply_all() -> None:
            for g in range(40):
                try:
                    await apply_resources(store, generation(g))
                    outcomes[g] = "applied"
                except StoreUnavailable as e:
                    outcomes[g] = f"unavailable: {e}"

        task = asyncio.ensure_future(apply_all())
        async with asyncio.timeout(60):
            while len(outcomes) < 5:
                await asyncio.sleep(0.01)
        etcd3.kill(0)  # the member the client talks to first, mid-stream
        await asyncio.wait_for(task, 150)
        current = await read_resources(store)
        counts: dict[int, int] = {}
        for r in current.of_kind(ResourceKind.POOL):
            g = int(r.name.split("-")[0][1:])
            counts[g] = counts.get(g, 0) + 1
        assert all(c == 20 for c in counts.values()), counts  # every file whole, or absent
        assert {g for g, o in outcomes.items() if o == "applied"} <= set(counts)
        assert max(counts) == 39  # and the applies went on after the member died
    finally:
        await store.close()


async def test_a_watch_that_fell_behind_the_compaction_lists_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """History dropped while the follower was busy: it re-lists and goes on (WatchCompacted)."""
    from ipam.store import OpenMode
    from ipam.store.sqlite import SqliteStore

    s = SqliteStore(tmp_path / "c.db", keep_events=5, poll_interval=0.02, mode=OpenMode.CREATE)
    try:
        await init_cluster(s)
        follow = watch_resources(s).__aiter__()
        first = await asyncio.wait_for(follow.__anext__(), 10)
        assert first.resources == ()
        for i in range(12):  # more revisions than the store keeps events for
            await apply_resources(s, rs(f'[[pool]]\nname = "p{i}"\ncidr = "10.{i}.0.0/16"\n'))
        caplog.set_level("INFO", "podbgp.daemon")
        latest = await asyncio.wait_for(follow.__anext__(), 10)
        assert len(latest.of_kind(ResourceKind.POOL)) == 12
        assert "were compacted; listing again" in caplog.text
        await follow.aclose()  # type: ignore[attr-defined]
    finally:
        await s.close()
