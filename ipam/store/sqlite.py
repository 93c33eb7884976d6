"""The SQLite store: one database file shared by every process on a host.

Tables: ``kv`` (key, value, create_rev, mod_rev), ``meta`` (the store-wide
revision and the compaction point) and ``events`` (one row per changed key per
revision, what `watch` replays).

Why it is safe with several processes:

* the database runs in WAL mode, so readers never block the writer and always
  see a committed snapshot;
* every `txn` runs inside ``BEGIN IMMEDIATE``: it takes the write lock
  *before* reading the revisions it compares, so compare and write are one
  atomic step across processes (a deferred transaction would read first and
  could fail to upgrade its lock, or worse, compare against a stale snapshot);
* ``synchronous=NORMAL``: a commit survives the death of the process
  (kill -9) but the last commits may be lost on power loss, which on a single
  host also takes every pod with it.

Why the calls run in a thread: ``BEGIN IMMEDIATE`` waits (busy_timeout) while
another process holds the write lock; on the event loop that wait would stall
the daemon's BGP timers. One dedicated thread owns the connection (a sqlite3
connection must stay on one thread), so calls are serialised in submission
order and the loop only pays one hand-off per call.

Opening never creates the file unless asked (`OpenMode.CREATE`, which
``podbgp datastore init`` uses): a missing file, or one without podbgp's
tables, is `StoreMissing` naming the path, so a misspelt path or a lost file
stops allocation instead of starting an empty store. `OpenMode.READ_ONLY`
opens with SQLite's ``mode=ro`` (a read command works on a read-only file and
cannot write). The device and inode of the file are kept at open; every call
first checks that the path still names that file, so a store deleted or
replaced under an open connection is `StoreMissing` / `StoreReplaced` at the
next call instead of reads and writes going to an unlinked file nobody else
sees.

Replace a database file only together with its ``-wal`` and ``-shm`` files
and with no process using it: SQLite replays a ``-wal`` into whatever file
has the matching name, which mixes two stores into one. `OpenMode.CREATE`
refuses to create a file next to a deleted store's leftover ``-wal``/``-shm``
for that reason.

Watch: SQLite has no cross-process notification, so a watcher reads the
``events`` table after every local commit and otherwise checks the revision
every `poll_interval` seconds (one indexed read). Callers still get a stream
of changes, never have to poll themselves. Events older than `keep_events`
revisions are compacted; a watcher that fell that far behind gets
`WatchCompacted`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from ipam.store.base import (
    Compare,
    Event,
    EventKind,
    KeyValue,
    Op,
    OpenMode,
    Put,
    Store,
    StoreIdentityError,
    StoreMissing,
    StoreReplaced,
    StoreUnavailable,
    TxnResult,
    WatchCompacted,
    prefix_end,
)

T = TypeVar("T")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
    " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " rev INTEGER NOT NULL, compacted INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (id, rev, compacted) VALUES (0, 0, 0)",
    "CREATE TABLE IF NOT EXISTS events (rev INTEGER NOT NULL, key TEXT NOT NULL,"
    " value BLOB, PRIMARY KEY (rev, key)) WITHOUT ROWID",
)
TABLES = frozenset({"kv", "meta", "events"})
INIT_HINT = "run `podbgp datastore init` to create it, or check the path"


class SqliteStore(Store):
    kind = "sqlite"

    def __init__(
        self,
        path: str | Path,
        busy_timeout: float = 30.0,
        poll_interval: float = 0.05,
        keep_events: int = 10000,
        mode: OpenMode = OpenMode.READ_WRITE,
    ) -> None:
        self.path = str(path)
        self.mode = mode
        self.busy_timeout = busy_timeout
        self.poll_interval = poll_interval
        self.keep_events = keep_events
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._waiters: set[asyncio.Event] = set()
        self._closed = False
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the opened file

    @property
    def url(self) -> str:
        return f"sqlite:{self.path}"

    # -- thread plumbing -------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise StoreUnavailable("store is closed")
        self.check_file()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, fn, *args)
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(f"sqlite {self.path}: {e}") from e

    def check_file(self) -> None:
        """Raise unless the path still names the file this store opened (one stat)."""
        if self._file is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreMissing(
                f"sqlite {self.path}: the datastore file was deleted while in use "
                "(nothing is allocated until it is back: move it back, or restore it and "
                "restart podbgp; until then this process keeps the deleted file open)"
            ) from None
        except OSError as e:
            raise StoreUnavailable(f"sqlite {self.path}: {e}") from e
        if (st.st_dev, st.st_ino) != self._file:
            raise StoreReplaced(
                f"sqlite {self.path}: the datastore file was replaced by another file while "
                "in use (a new inode); nothing is allocated until the original is moved back, "
                "or podbgp is restarted and checks the new file's cluster ID"
            )

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self.mode is OpenMode.CREATE:
            self._refuse_orphan_journal()
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        elif not os.path.isfile(self.path):
            what = "is not a file" if os.path.exists(self.path) else "does not exist"
            raise StoreMissing(f"sqlite {self.path}: the datastore {what}; {INIT_HINT}")
        before = os.stat(self.path) if self.mode is not OpenMode.CREATE else None
        uri = f"file:{quote(os.path.abspath(self.path))}?mode=" + {
            OpenMode.READ_ONLY: "ro", OpenMode.READ_WRITE: "rw", OpenMode.CREATE: "rwc"
        }[self.mode]  # fmt: skip
        conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        st = os.stat(self.path)
        if before is not None and (before.st_dev, before.st_ino) != (st.st_dev, st.st_ino):
            conn.close()
            raise StoreReplaced(f"sqlite {self.path}: the file was replaced while being opened")
        self._file = (st.st_dev, st.st_ino)
        return conn

    def _refuse_orphan_journal(self) -> None:
        """A deleted store's -wal left behind would be replayed into a new file of that name."""
        if os.path.exists(self.path):
            return
        left = [p for p in (self.path + "-wal", self.path + "-shm") if os.path.exists(p)]
        if left:
            raise StoreIdentityError(
                f"sqlite {self.path}: the file is gone but {' and '.join(left)} of the deleted "
                "store are still there, and SQLite would mix them into a new file of that name. "
                "Restore the file, or if it is really lost, stop every podbgp using it and "
                "remove those files first"
            )

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as e:  # "file is not a database"
            raise StoreMissing(f"sqlite {self.path}: {e}; {INIT_HINT}") from e
        if self.mode is not OpenMode.CREATE and not tables >= TABLES:
            raise StoreMissing(
                f"sqlite {self.path}: the file holds no podbgp datastore; {INIT_HINT}"
            )
        if self.mode is OpenMode.READ_ONLY:
            return
        self._wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        if self.mode is OpenMode.CREATE:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in SCHEMA:
                    conn.execute(stmt)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs an exclusive moment; several processes opening
        # a new file at once can see SQLITE_BUSY here without the busy handler.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # -- reads -----------------------------------------------------------------
    @staticmethod
    def _row(key: str, row: tuple[bytes, int, int] | None) -> KeyValue | None:
        if row is None:
            return None
        return KeyValue(key, bytes(row[0]), row[1], row[2])

    def _get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        db = self._db()
        q = "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?"
        db.execute("BEGIN")
        try:
            return [self._row(k, db.execute(q, (k,)).fetchone()) for k in keys]
        finally:
            db.execute("COMMIT")

    def _list(self, prefix: str, keys_only: bool) -> tuple[list[KeyValue], int]:
        db = self._db()
        col = "x''" if keys_only else "value"
        q = f"SELECT key, {col}, create_rev, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key"
        db.execute("BEGIN")
        try:
            rows = db.execute(q, (prefix, prefix_end(prefix))).fetchall()
            rev = db.execute("SELECT rev FROM meta").fetchone()[0]
        finally:
            db.execute("COMMIT")
        return [KeyValue(k, bytes(v), c, m) for k, v, c, m in rows], int(rev)

    async def get(self, key: str) -> KeyValue | None:
        return (await self._run(self._get_many, [key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        return await self._run(self._get_many, list(keys))

    async def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        return await self._run(self._list, prefix, keys_only)

    # -- writes ----------------------------------------------------------------
    def _txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            rev, compacted = db.execute("SELECT rev, compacted FROM meta").fetchone()
            q = "SELECT mod_rev FROM kv WHERE key = ?"
            for c in compares:
                row = db.execute(q, (c.key,)).fetchone()
                if (row[0] if row else 0) != c.mod_revision:
                    db.execute("ROLLBACK")
                    return TxnResult(False, rev)
            if ops:
                rev += 1
                self._apply(db, ops, rev)
                if rev - compacted > 2 * self.keep_events:
                    compacted = rev - self.keep_events
                    db.execute("DELETE FROM events WHERE rev <= ?", (compacted,))
                db.execute("UPDATE meta SET rev = ?, compacted = ?", (rev, compacted))
            db.execute("COMMIT")
            return TxnResult(True, rev)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _apply(db: sqlite3.Connection, ops: Sequence[Op], rev: int) -> None:
        for op in ops:
            if isinstance(op, Put):
                db.execute(
                    "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                    " mod_rev = excluded.mod_rev",
                    (op.key, op.value, rev, rev),
                )
                db.execute(
                    "INSERT OR REPLACE INTO events (rev, key, value) VALUES (?, ?, ?)",
                    (rev, op.key, op.value),
                )
            elif db.execute("DELETE FROM kv WHERE key = ?", (op.key,)).rowcount:
                db.execute(
                    "INSERT OR REPLACE INTO events (rev, key, value) VALUES (?, ?, NULL)",
                    (rev, op.key),
                )

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        result = await self._run(self._txn, list(compares), list(ops))
        if result.succeeded and ops:
            for waiter in self._waiters:
                waiter.set()
        return result

    # -- watch -----------------------------------------------------------------
    def _events_since(self, prefix: str, start: int) -> tuple[list[Event], int]:
        """Events under `prefix` from revision `start` on, and the current revision."""
        db = self._db()
        db.execute("BEGIN")
        try:
            rev, compacted = db.execute("SELECT rev, compacted FROM meta").fetchone()
            if start <= compacted:
                raise WatchCompacted(compacted + 1)
            rows = []
            if start <= rev:
                rows = db.execute(
                    "SELECT rev, key, value FROM events WHERE rev >= ? AND key >= ? AND key < ?"
                    " ORDER BY rev, key",
                    (start, prefix, prefix_end(prefix)),
                ).fetchall()
        finally:
            db.execute("COMMIT")
        events = [
            Event(EventKind.DELETE if v is None else EventKind.PUT, k, bytes(v or b""), r)
            for r, k, v in rows
        ]
        return events, int(rev)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        changed = asyncio.Event()
        self._waiters.add(changed)
        next_rev = max(start_revision, 1)
        try:
            while True:
                changed.clear()
                events, rev = await self._run(self._events_since, prefix, next_rev)
                next_rev = max(next_rev, rev + 1)
                for r in sorted({e.mod_revision for e in events}):
                    yield [e for e in events if e.mod_revision == r]
                if events:
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), self.poll_interval)
                except TimeoutError:
                    pass
        finally:
            self._waiters.discard(changed)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn

        def _close() -> None:
            if conn is not None:
                conn.close()

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=True)
