"""Leases, the store's one notion of time: the same contract on SQLite and a real etcd."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from ipam.store.base import (
    Compare,
    Event,
    EventKind,
    LeaseExpired,
    OpenMode,
    Put,
    Store,
)
from ipam.store.sqlite import SqliteStore

# etcd rounds a TTL up to its minimum (about 2 s with the default election timeout).
TTL = 2


async def _until_gone(store: Store, key: str, timeout: float = 15.0) -> float:
    """Seconds until `key` disappears (bounded)."""
    start = time.monotonic()
    while await store.get(key) is not None:
        assert time.monotonic() - start < timeout, f"{key} still there after {timeout} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def test_a_put_with_a_lease_lives_while_the_lease_is_kept_alive(store: Store) -> None:
    lease = await store.grant_lease(TTL)
    assert await store.create("/l/a", b"x") is True
    assert (await store.txn([Compare("/l/b", 0)], [Put("/l/b", b"live", lease)])).succeeded
    deadline = time.monotonic() + 2.5 * TTL
    while time.monotonic() < deadline:
        assert await store.keep_alive(lease) >= TTL
        assert await store.get("/l/b") is not None
        await asyncio.sleep(TTL / 4)
    kv = await store.get("/l/b")
    assert kv is not None and kv.value == b"live"


async def test_an_expired_lease_deletes_its_keys_and_watchers_see_it(store: Store) -> None:
    _, rev = await store.list_prefix("/l/")
    lease = await store.grant_lease(TTL)
    await store.txn([], [Put("/l/b", b"live", lease), Put("/l/keep", b"plain")])
    seen: list[Event] = []

    async def follow() -> None:
        async for batch in store.watch("/l/", rev + 1):
            seen.extend(batch)
            if any(e.kind is EventKind.DELETE for e in batch):
                return

    watcher = asyncio.ensure_future(follow())
    took = await _until_gone(store, "/l/b")
    assert took >= TTL - 1.0  # not before its time (etcd may round the TTL up)
    await asyncio.wait_for(watcher, 10)
    assert [(e.kind, e.key) for e in seen][-1] == (EventKind.DELETE, "/l/b")
    assert await store.get("/l/keep") is not None  # keys without the lease stay
    assert await store.keep_alive(lease) == 0


async def test_a_put_naming_an_expired_lease_writes_nothing(store: Store) -> None:
    lease = await store.grant_lease(TTL)
    await store.revoke_lease(lease)
    with pytest.raises(LeaseExpired):
        await store.txn([], [Put("/l/other", b"1"), Put("/l/b", b"2", lease)])
    assert await store.get("/l/other") is None and await store.get("/l/b") is None
    await store.revoke_lease(lease)  # a second revoke is no error


async def test_revoke_deletes_at_once(store: Store) -> None:
    lease = await store.grant_lease(60)
    await store.txn([], [Put("/l/b", b"1", lease)])
    await store.revoke_lease(lease)
    assert await store.get("/l/b") is None


async def test_a_new_holder_takes_the_key_over_without_a_gap(store: Store) -> None:
    """A restarted daemon puts its key with a fresh lease; the old lease's end leaves it alone."""
    old = await store.grant_lease(TTL)
    await store.txn([], [Put("/l/b", b"run 1", old)])
    new = await store.grant_lease(60)
    await store.txn([], [Put("/l/b", b"run 2", new)])
    await store.revoke_lease(old)
    kv = await store.get("/l/b")
    assert kv is not None and kv.value == b"run 2"
    await store.txn([], [Put("/l/b", b"no lease")])  # a put without one detaches it
    await store.revoke_lease(new)
    assert await store.get("/l/b") is not None


async def test_a_bad_ttl_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 1 second"):
        await store.grant_lease(0)


# -- SQLite specifics ---------------------------------------------------------------------
async def test_sqlite_lease_from_another_boot_has_expired(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, mode=OpenMode.CREATE) as s:
        lease = await s.grant_lease(3600)
        await s.txn([], [Put("/l/b", b"1", lease)])
    db = sqlite3.connect(path)
    db.execute("UPDATE leases SET boot = 'another-boot'")
    db.commit()
    db.close()
    async with SqliteStore(path, mode=OpenMode.READ_ONLY) as ro:
        assert await ro.get("/l/b") is None  # a reader leaves it out before anyone deletes it
        assert (await ro.list_prefix("/l/"))[0] == []
    async with SqliteStore(path) as rw:
        await rw.txn([], [Put("/l/x", b"1")])  # any write deletes it, at its own revision
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM kv WHERE key = '/l/b'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM events WHERE key = '/l/b' AND value IS NULL").fetchone()
    db.close()


async def test_sqlite_store_from_before_leases_gets_the_tables_when_opened_for_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    async with SqliteStore(path, mode=OpenMode.CREATE) as s:
        await s.create("/k", b"1")
    db = sqlite3.connect(path)
    db.execute("DROP TABLE leases")
    db.execute("DROP TABLE lease_keys")
    db.commit()
    db.close()
    async with SqliteStore(path, mode=OpenMode.READ_ONLY) as ro:
        assert await ro.get("/k") is not None  # still readable
    async with SqliteStore(path) as rw:
        lease = await rw.grant_lease(60)
        await rw.txn([], [Put("/l/b", b"1", lease)])
        assert await rw.get("/l/b") is not None


async def test_sqlite_leases_are_shared_between_processes_on_one_file(tmp_path: Path) -> None:
    """Two store objects (as two processes would) see one lease table and one clock."""
    path = tmp_path / "s.db"
    async with SqliteStore(path, mode=OpenMode.CREATE) as a, SqliteStore(path) as b:
        lease = await a.grant_lease(60)
        await a.txn([], [Put("/l/b", b"1", lease)])
        assert await b.keep_alive(lease) == 60
        await b.revoke_lease(lease)
        assert await a.get("/l/b") is None
