"""The SQLite store's change feed runs on kernel events, not a poll.

Every store here has its fallback poll and its safety read set to a minute, so
anything seen within a few seconds was seen because of an event (inotify, a
local commit, a lease running out), never because of a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ipam.store import feed
from ipam.store.base import (
    Event,
    EventKind,
    OpenMode,
    Put,
    StoreMissing,
    StoreReplaced,
)
from ipam.store.inotify import FileWatch
from ipam.store.sqlite import SqliteStore

SLOW = 60.0  # longer than any test here waits: a timer never explains what a test sees
BOUND = 10.0  # generous under load, far below SLOW


def _store(path: Path, mode: OpenMode = OpenMode.READ_WRITE) -> SqliteStore:
    return SqliteStore(path, poll_interval=SLOW, safety_interval=SLOW, mode=mode)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "w.db"
    s = _store(path, OpenMode.CREATE)
    await s.create("/w/seed", b"0")
    await s.close()
    yield path


async def _next_batch(it: AsyncIterator[list[Event]]) -> list[Event]:
    return await asyncio.wait_for(anext(it), BOUND)


def _write_from_another_process(path: Path, key: str, value: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from ipam.store.sqlite import SqliteStore\n"
        "async def main():\n"
        "    s = SqliteStore(sys.argv[1])\n"
        "    await s.create(sys.argv[2], sys.argv[3].encode())\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), key, value], check=True, timeout=60)


async def test_another_process_commit_is_seen_without_a_poll(db: Path) -> None:
    s = _store(db)
    try:
        _, rev = await s.list_prefix("/w/")
        it = s.watch("/w/", rev + 1).__aiter__()
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(_write_from_another_process, db, "/w/other", "hello")
        batch = await asyncio.wait_for(pending, BOUND)  # from its commit: BOUND < SLOW
        assert [(e.kind, e.key, e.value) for e in batch] == [(EventKind.PUT, "/w/other", b"hello")]
        await it.aclose()  # type: ignore[attr-defined]
    finally:
        await s.close()


async def test_idle_watch_runs_no_statement(db: Path) -> None:
    """Three watchers on an idle store: not one SQL statement for seconds on end."""
    s = _store(db)
    statements: list[str] = []
    try:
        _, rev = await s.list_prefix("/")
        its = [s.watch(p, rev + 1).__aiter__() for p in ("/w/", "/x/", "/")]
        pending = [asyncio.ensure_future(anext(it)) for it in its]
        await asyncio.sleep(0.5)  # every watcher and the monitor have read once
        # Count what the store's own connection executes from now on (on its thread).
        conn = s._conn
        assert conn is not None
        await asyncio.get_running_loop().run_in_executor(
            s._thread, conn.set_trace_callback, statements.append
        )
        await asyncio.sleep(3.0)
        assert statements == [], statements
        # Still awake: a local commit reaches all three.
        await s.txn([], [Put("/w/k", b"1")])
        batches = await asyncio.wait_for(asyncio.gather(*pending[:1], pending[2]), BOUND)
        assert all(b[0].key == "/w/k" for b in batches)
        assert not pending[1].done()  # "/x/" saw nothing
        pending[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending[1]
        for it in its:
            await it.aclose()  # type: ignore[attr-defined]
    finally:
        await s.close()


async def test_moved_away_store_ends_the_watch_promptly(db: Path) -> None:
    s = _store(db)
    try:
        _, rev = await s.list_prefix("/w/")
        it = s.watch("/w/", rev + 1).__aiter__()
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.3)
        db.rename(db.with_name("aside.db"))
        with pytest.raises(StoreMissing, match="deleted while in use"):
            await asyncio.wait_for(pending, BOUND)
    finally:
        await s.close()


async def test_replaced_store_ends_the_watch_promptly(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    o = _store(other, OpenMode.CREATE)
    await o.create("/w/x", b"other")
    await o.close()
    s = _store(db)
    try:
        _, rev = await s.list_prefix("/w/")
        it = s.watch("/w/", rev + 1).__aiter__()
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.3)
        os.rename(other, db)
        with pytest.raises(StoreReplaced):
            await asyncio.wait_for(pending, BOUND)
    finally:
        await s.close()


async def test_expired_lease_is_deleted_when_it_runs_out(db: Path) -> None:
    """No poll: the monitor wakes when the lease is due and deletes its key."""
    s = _store(db)
    try:
        lease = await s.grant_lease(1)
        await s.txn([], [Put("/w/leased", b"x", lease=lease)])
        _, rev = await s.list_prefix("/w/")
        it = s.watch("/w/", rev + 1).__aiter__()
        t0 = time.monotonic()
        batch = await _next_batch(it)
        assert [(e.kind, e.key) for e in batch] == [(EventKind.DELETE, "/w/leased")]
        assert 0.5 < time.monotonic() - t0 < BOUND
        await it.aclose()  # type: ignore[attr-defined]
    finally:
        await s.close()


async def test_without_inotify_it_polls_and_says_so_once(
    db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """inotify cannot be taken away from this kernel for one test: its constructor fails
    as it does at the per-user instance limit."""

    def no_inotify(paths: object) -> FileWatch:
        raise OSError(errno.EMFILE, "inotify_init1: Too many open files")

    monkeypatch.setattr(feed, "FileWatch", no_inotify)
    monkeypatch.setattr(feed, "_told_no_inotify", False)
    s = SqliteStore(db, poll_interval=0.2, safety_interval=SLOW)
    try:
        with caplog.at_level(logging.WARNING, logger="ipam.store.feed"):
            for n in range(2):  # a second watch (a second monitor) logs nothing more
                _, rev = await s.list_prefix("/w/")
                it = s.watch("/w/", rev + 1).__aiter__()
                pending = asyncio.ensure_future(anext(it))
                await asyncio.sleep(0.3)
                await asyncio.to_thread(_write_from_another_process, db, f"/w/p{n}", "v")
                batch = await asyncio.wait_for(pending, BOUND)
                assert batch[0].key == f"/w/p{n}"
                await it.aclose()  # type: ignore[attr-defined]
        told = [r for r in caplog.records if "no inotify" in r.getMessage()]
        assert len(told) == 1 and "within 0.2 s" in told[0].getMessage()
    finally:
        await s.close()


def test_file_watch_reports_its_files_and_names_only(tmp_path: Path) -> None:
    a, wal, unrelated = tmp_path / "a.db", tmp_path / "a.db-wal", tmp_path / "b.db"
    a.write_bytes(b"1")
    w = FileWatch([str(a), str(wal)])  # the -wal does not exist yet
    try:
        assert not w.read()
        unrelated.write_bytes(b"x")  # another file in the same directory
        assert not w.read()
        with a.open("ab") as f:
            f.write(b"2")
        assert w.read()
        wal.write_bytes(b"w")  # created: watched from now on
        assert w.read()
        with wal.open("ab") as f:
            f.write(b"more")
        assert w.read()
        unrelated.rename(a)  # a new inode under the name
        assert w.read()
        with a.open("ab") as f:  # ... and that inode is watched
            f.write(b"3")
        assert w.read()
        a.unlink()
        assert w.read()
    finally:
        w.close()


def test_file_watch_on_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileWatch([str(tmp_path / "no" / "such.db")])


def _renew_from_another_process(path: Path, times: int) -> None:
    code = (
        "import asyncio, sys\n"
        "from ipam.store.sqlite import SqliteStore\n"
        "async def main():\n"
        "    s = SqliteStore(sys.argv[1])\n"
        "    lease = await s.grant_lease(60)\n"
        "    for _ in range(int(sys.argv[2])):\n"
        "        await s.keep_alive(lease)\n"
        "        await asyncio.sleep(0.2)\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(times)], check=True, timeout=60)


async def test_another_process_lease_renewal_wakes_no_watcher_and_no_thread(db: Path) -> None:
    """Every node renews its lease every few seconds; on a shared file each renewal is a
    commit every other node's store sees. It moves no revision: the monitor's glance on
    the loop says so, the store's thread runs nothing and no watcher wakes."""
    s = _store(db)
    statements: list[str] = []
    try:
        _, rev = await s.list_prefix("/w/")
        it = s.watch("/w/", rev + 1).__aiter__()
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.5)
        conn = s._conn
        assert conn is not None
        await asyncio.get_running_loop().run_in_executor(
            s._thread, conn.set_trace_callback, statements.append
        )
        await asyncio.to_thread(_renew_from_another_process, db, 5)
        await asyncio.sleep(0.5)
        assert statements == [], statements
        assert not pending.done()
        await asyncio.to_thread(_write_from_another_process, db, "/w/after", "x")
        batch = await asyncio.wait_for(pending, BOUND)  # still listening
        assert batch[0].key == "/w/after"
        await it.aclose()  # type: ignore[attr-defined]
    finally:
        await s.close()
