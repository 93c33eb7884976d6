"""The store contract, run against SQLite and a real etcd alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ipam.store import OpenMode, open_store
from ipam.store.base import (
    Compare,
    Delete,
    Event,
    EventKind,
    Put,
    Store,
    StoreError,
)
from ipam.store.sqlite import SqliteStore


async def test_create_is_create_if_absent(store: Store) -> None:
    assert await store.create("/k/a", b"1")
    assert not await store.create("/k/a", b"2")
    kv = await store.get("/k/a")
    assert kv is not None and kv.value == b"1"
    assert kv.create_revision == kv.mod_revision > 0


async def test_put_cas_only_on_the_revision_read(store: Store) -> None:
    await store.create("/k/a", b"1")
    kv = await store.get("/k/a")
    assert kv is not None
    assert await store.put_cas("/k/a", b"2", kv.mod_revision)
    assert not await store.put_cas("/k/a", b"3", kv.mod_revision)  # stale revision
    now = await store.get("/k/a")
    assert now is not None and now.value == b"2"
    assert now.mod_revision > kv.mod_revision and now.create_revision == kv.create_revision


async def test_delete_cas(store: Store) -> None:
    await store.create("/k/a", b"1")
    kv = await store.get("/k/a")
    assert kv is not None
    assert not await store.delete_cas("/k/a", kv.mod_revision + 100)
    assert await store.delete_cas("/k/a", kv.mod_revision)
    assert await store.get("/k/a") is None
    # A deleted key counts as absent again (mod_revision 0).
    assert await store.create("/k/a", b"again")


async def test_txn_is_all_or_nothing_over_several_keys(store: Store) -> None:
    await store.create("/k/a", b"1")
    a = await store.get("/k/a")
    assert a is not None
    res = await store.txn(
        [Compare("/k/a", a.mod_revision), Compare("/k/b", 0)],
        [Put("/k/a", b"2"), Put("/k/b", b"new"), Delete("/k/missing")],
    )
    assert res.succeeded
    a2, b2 = await store.get_many(["/k/a", "/k/b"])
    assert a2 is not None and b2 is not None and a2.value == b"2" and b2.value == b"new"
    assert a2.mod_revision == b2.mod_revision == res.revision
    # One failing compare: nothing is written.
    res = await store.txn(
        [Compare("/k/a", a2.mod_revision), Compare("/k/b", 0)],
        [Put("/k/a", b"3"), Put("/k/c", b"c")],
    )
    assert not res.succeeded
    assert [kv and kv.value for kv in await store.get_many(["/k/a", "/k/c"])] == [b"2", None]


async def test_list_prefix_sorted_with_revision(store: Store) -> None:
    for k in ("/p/b", "/p/a", "/p/c/d", "/q/x", "/p"):
        await store.create(k, k.encode())
    kvs, rev = await store.list_prefix("/p/")
    assert [kv.key for kv in kvs] == ["/p/a", "/p/b", "/p/c/d"]
    assert [kv.value for kv in kvs] == [b"/p/a", b"/p/b", b"/p/c/d"]
    assert rev >= max(kv.mod_revision for kv in kvs)
    keys, _ = await store.list_prefix("/p/", keys_only=True)
    assert [kv.key for kv in keys] == ["/p/a", "/p/b", "/p/c/d"]
    assert all(kv.value == b"" and kv.mod_revision > 0 for kv in keys)


async def test_get_many_keeps_order_and_reports_missing(store: Store) -> None:
    await store.create("/m/1", b"1")
    await store.create("/m/3", b"3")
    got = await store.get_many(["/m/3", "/m/2", "/m/1"])
    assert [kv and kv.value for kv in got] == [b"3", None, b"1"]


async def _collect(store: Store, prefix: str, start: int, n: int) -> list[list[Event]]:
    out: list[list[Event]] = []
    async for batch in store.watch(prefix, start):
        out.append(batch)
        if len(out) == n:
            break
    return out


async def test_watch_replays_from_a_revision_then_follows(store: Store) -> None:
    await store.create("/w/a", b"1")
    _, rev = await store.list_prefix("/w/")
    await store.create("/w/b", b"2")  # after the snapshot: must be replayed
    task = asyncio.create_task(_collect(store, "/w/", rev + 1, 3))
    await asyncio.sleep(0.1)
    await store.create("/other/x", b"not watched")
    a = await store.get("/w/a")
    assert a is not None
    await store.txn([Compare("/w/a", a.mod_revision)], [Delete("/w/a"), Put("/w/c", b"3")])
    await store.create("/w/d", b"4")
    batches = await asyncio.wait_for(task, 10)
    assert [[(e.kind, e.key, e.value) for e in b] for b in batches] == [
        [(EventKind.PUT, "/w/b", b"2")],
        [(EventKind.DELETE, "/w/a", b""), (EventKind.PUT, "/w/c", b"3")],
        [(EventKind.PUT, "/w/d", b"4")],
    ]
    revs = [b[0].mod_revision for b in batches]
    assert revs == sorted(revs) and len(set(revs)) == 3


async def test_sqlite_watch_sees_other_connections(tmp_path: Path) -> None:
    """A second process (here: a second connection) writing is seen by the watcher."""
    a = SqliteStore(tmp_path / "x.db", poll_interval=0.02, mode=OpenMode.CREATE)
    b = SqliteStore(tmp_path / "x.db")
    try:
        _, rev = await a.list_prefix("/")
        task = asyncio.create_task(_collect(a, "/n/", rev + 1, 1))
        await asyncio.sleep(0.05)
        await b.create("/n/1", b"from b")
        batches = await asyncio.wait_for(task, 5)
        assert batches[0][0].value == b"from b"
    finally:
        await a.close()
        await b.close()


async def test_sqlite_compacted_watch_raises(tmp_path: Path) -> None:
    from ipam.store.base import WatchCompacted

    s = SqliteStore(tmp_path / "c.db", keep_events=5, mode=OpenMode.CREATE)
    try:
        for i in range(30):
            await s.create(f"/c/{i}", b"x")
        with pytest.raises(WatchCompacted):
            await _collect(s, "/c/", 1, 1)
    finally:
        await s.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert open_store(f"sqlite:{tmp_path}/a.db").kind == "sqlite"
    etcd = open_store("etcd:http://127.0.0.1:2379,http://[::1]:2479")
    assert etcd.kind == "etcd"
    assert etcd.endpoints == ["127.0.0.1:2379", "[::1]:2479"]  # type: ignore[attr-defined]
    for bad in ("nope", "mysql:x", "etcd:ftp://h:1", "etcd:https://h:1?ca=/nonexistent.pem"):
        with pytest.raises(StoreError):
            open_store(bad)
