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

Leases: tables ``leases`` (id, ttl, expiry) and ``lease_keys`` (key -> lease).
Time is ``CLOCK_BOOTTIME``, which every process on the host shares and which
neither NTP nor an operator can step, together with the kernel's boot ID: a
lease granted before a reboot has expired after it (its holder is gone too).
Reads leave out keys whose lease has expired; writers (every `txn`, every
lease call and the poll of a read-write watch) delete them at a revision of
their own, so watchers see the DELETE as they would on etcd. A store created
before leases existed gets the two tables the first time it is opened for
writing.

Watch: SQLite has no cross-process notification. Each watcher reads the
``events`` table from where it left off whenever it is woken, and
`ipam.store.feed.ChangeFeed` decides when: at a local commit, on a kernel event
for the database or its ``-wal`` file (another process committed, or the file
was deleted or replaced) once a read of the revision shows it moved, when the
next lease with keys runs out (a writable store deletes those keys, so watchers
see the DELETE as on etcd), and every `safety_interval` seconds (every
`poll_interval` where inotify is unavailable). An idle store costs nothing
between events; the 50 ms poll it replaced cost an idle daemon 2-3 % of a core.
Callers get a stream of changes and never poll themselves. Events older than
`keep_events` revisions are compacted; a watcher that fell that far behind gets
`WatchCompacted`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from ipam.store.base import (
    Compare,
    Delete,
    Event,
    EventKind,
    KeyValue,
    LeaseExpired,
    Op,
    OpenMode,
    Put,
    Store,
    StoreError,
    StoreIdentityError,
    StoreMissing,
    StoreReplaced,
    StoreUnavailable,
    TxnResult,
    WatchCompacted,
    prefix_end,
)
from ipam.store.feed import ChangeFeed
from ipam.store.sqlite_schema import (
    BOOT_ID,
    EXPIRED_KEYS,
    GLANCE,
    LEASE_SCHEMA,
    LEASE_TABLES,
    SCHEMA,
    TABLES,
    lease_clock,
)

T = TypeVar("T")

INIT_HINT = "run `podbgp datastore init` to create it, or check the path"


class SqliteStore(Store):
    kind = "sqlite"

    def __init__(
        self,
        path: str | Path,
        busy_timeout: float = 30.0,
        poll_interval: float = 1.0,
        keep_events: int = 10000,
        mode: OpenMode = OpenMode.READ_WRITE,
        safety_interval: float = 30.0,
    ) -> None:
        self.path = str(path)
        self.mode = mode
        self.busy_timeout = busy_timeout
        self.poll_interval = poll_interval  # how often the watch reads without inotify
        self.safety_interval = safety_interval  # and with it, in case an event was missed
        self.keep_events = keep_events
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None  # the store's thread's
        self._peek: sqlite3.Connection | None = None  # the event loop's, read-only
        names = {self.path, os.path.realpath(self.path)}
        self._feed = ChangeFeed(
            [*names, *(n + "-wal" for n in names)],
            self._look,
            (StoreError, sqlite3.Error),
            poll_interval,
            safety_interval,
        )
        self._closed = False
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the opened file
        self._leases = False  # the lease tables exist (an old read-only store may lack them)
        self.clock: Callable[[], float] = lease_clock

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
        self._leases = tables >= LEASE_TABLES
        if self.mode is OpenMode.READ_ONLY:
            return
        self._wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        stmts: tuple[str, ...] = SCHEMA if self.mode is OpenMode.CREATE else ()
        if not self._leases:
            stmts += LEASE_SCHEMA
        if stmts:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in stmts:
                    conn.execute(stmt)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._leases = True

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

    def _expired_keys(self, db: sqlite3.Connection) -> set[str]:
        """Keys whose lease has run out but which no writer has deleted yet."""
        if not self._leases:
            return set()
        return {r[0] for r in db.execute(EXPIRED_KEYS, (self.clock(), BOOT_ID))}

    def _get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        db = self._db()
        q = "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?"
        db.execute("BEGIN")
        try:
            gone = self._expired_keys(db)
            return [
                None if k in gone else self._row(k, db.execute(q, (k,)).fetchone()) for k in keys
            ]
        finally:
            db.execute("COMMIT")

    def _list(self, prefix: str, keys_only: bool) -> tuple[list[KeyValue], int]:
        db = self._db()
        col = "x''" if keys_only else "value"
        q = f"SELECT key, {col}, create_rev, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key"
        db.execute("BEGIN")
        try:
            gone = self._expired_keys(db)
            rows = db.execute(q, (prefix, prefix_end(prefix))).fetchall()
            rev = db.execute("SELECT rev FROM meta").fetchone()[0]
        finally:
            db.execute("COMMIT")
        kvs = [KeyValue(k, bytes(v), c, m) for k, v, c, m in rows if k not in gone]
        return kvs, int(rev)

    async def get(self, key: str) -> KeyValue | None:
        return (await self._run(self._get_many, [key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        return await self._run(self._get_many, list(keys))

    async def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        return await self._run(self._list, prefix, keys_only)

    # -- writes ----------------------------------------------------------------
    def _write(self, fn: Callable[[sqlite3.Connection, int], tuple[bool, int, T]]) -> T:
        """Run `fn(db, rev)` in one write transaction, after deleting the keys of expired leases.

        `fn` returns (commit?, the revision after it, its result); the store-wide
        revision and the event compaction follow. Keys that expired are committed
        even when `fn` asks for none."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            start, compacted = db.execute("SELECT rev, compacted FROM meta").fetchone()
            rev = self._expire(db, start)
            commit, rev, result = fn(db, rev)
            if rev == start and not commit:
                db.execute("ROLLBACK")  # a lost compare writes nothing (not even a WAL frame)
                return result
            if rev - compacted > 2 * self.keep_events:
                compacted = rev - self.keep_events
                db.execute("DELETE FROM events WHERE rev <= ?", (compacted,))
            db.execute("UPDATE meta SET rev = ?, compacted = ?", (rev, compacted))
            db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _expire(self, db: sqlite3.Connection, rev: int) -> int:
        """Delete the keys of leases that ran out, at a revision of their own; the new revision."""
        if not self._leases:
            return rev
        gone = sorted(self._expired_keys(db))
        if gone:
            rev += 1
            self._apply(db, [Delete(k) for k in gone], rev)
        db.execute("DELETE FROM leases WHERE expires <= ? OR boot != ?", (self.clock(), BOOT_ID))
        return rev

    def _txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        def step(db: sqlite3.Connection, rev: int) -> tuple[bool, int, TxnResult]:
            q = "SELECT mod_rev FROM kv WHERE key = ?"
            for c in compares:
                row = db.execute(q, (c.key,)).fetchone()
                if (row[0] if row else 0) != c.mod_revision:
                    return False, rev, TxnResult(False, rev)
            if ops:
                rev += 1
                self._apply(db, ops, rev)
            return True, rev, TxnResult(True, rev)

        return self._write(step)

    def _apply(self, db: sqlite3.Connection, ops: Sequence[Op], rev: int) -> None:
        for op in ops:
            if isinstance(op, Put):
                self._attach(db, op)
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
                if self._leases:
                    db.execute("DELETE FROM lease_keys WHERE key = ?", (op.key,))
                db.execute(
                    "INSERT OR REPLACE INTO events (rev, key, value) VALUES (?, ?, NULL)",
                    (rev, op.key),
                )

    def _attach(self, db: sqlite3.Connection, op: Put) -> None:
        """Bind the key to its Put's lease (or to none), as etcd does on every put."""
        if not self._leases:
            if op.lease:
                raise LeaseExpired(f"sqlite {self.path}: lease {op.lease:x} not found")
            return
        db.execute("DELETE FROM lease_keys WHERE key = ?", (op.key,))
        if not op.lease:
            return
        if db.execute("SELECT 1 FROM leases WHERE id = ?", (op.lease,)).fetchone() is None:
            raise LeaseExpired(f"sqlite {self.path}: lease {op.lease:x} not found (expired?)")
        db.execute("INSERT INTO lease_keys (key, lease) VALUES (?, ?)", (op.key, op.lease))

    # -- leases ----------------------------------------------------------------
    def _grant(self, ttl: int) -> int:
        lease = secrets.randbits(62) + 1  # never reused: a stale holder cannot renew another's

        def step(db: sqlite3.Connection, rev: int) -> tuple[bool, int, int]:
            db.execute(
                "INSERT INTO leases (id, ttl, expires, boot) VALUES (?, ?, ?, ?)",
                (lease, ttl, self.clock() + ttl, BOOT_ID),
            )
            return True, rev, lease

        return self._write(step)

    def _keep_alive(self, lease: int) -> int:
        def step(db: sqlite3.Connection, rev: int) -> tuple[bool, int, int]:
            row = db.execute("SELECT ttl FROM leases WHERE id = ?", (lease,)).fetchone()
            if row is None:
                return False, rev, 0
            db.execute("UPDATE leases SET expires = ? WHERE id = ?", (self.clock() + row[0], lease))
            return True, rev, int(row[0])

        return self._write(step)

    def _revoke(self, lease: int) -> None:
        def step(db: sqlite3.Connection, rev: int) -> tuple[bool, int, None]:
            keys = [
                r[0] for r in db.execute("SELECT key FROM lease_keys WHERE lease = ?", (lease,))
            ]
            if keys:
                rev += 1
                self._apply(db, [Delete(k) for k in keys], rev)
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))
            return True, rev, None

        self._write(step)

    async def grant_lease(self, ttl: int) -> int:
        if ttl < 1:
            raise ValueError(f"lease TTL {ttl}: must be at least 1 second")
        return await self._run(self._grant, ttl)

    async def keep_alive(self, lease: int) -> int:
        return await self._run(self._keep_alive, lease)

    async def revoke_lease(self, lease: int) -> None:
        await self._run(self._revoke, lease)
        self._feed.wake()

    def _expire_due(self) -> bool:
        """Delete the keys of expired leases, if there are any; True if something was deleted."""
        db = self._db()
        if self.mode is OpenMode.READ_ONLY or not self._leases:
            return False
        if not db.execute(EXPIRED_KEYS + " LIMIT 1", (self.clock(), BOOT_ID)).fetchone():
            return False
        return self._write(lambda db, rev: (True, (new := self._expire(db, rev)), new > rev))

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        result = await self._run(self._txn, list(compares), list(ops))
        if result.succeeded and ops:
            self._feed.wake(result.revision)
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
        self._feed.join(changed)
        next_rev = max(start_revision, 1)
        try:
            while True:
                changed.clear()
                events, rev = await self._run(self._events_since, prefix, next_rev)
                next_rev = max(next_rev, rev + 1)
                for r in sorted({e.mod_revision for e in events}):
                    yield [e for e in events if e.mod_revision == r]
                if not events:
                    await changed.wait()  # the monitor, or a local commit, sets it
        finally:
            self._feed.leave(changed)

    def _changes(self) -> tuple[int, float | None]:
        """The store-wide revision, after deleting the keys of expired leases, and the
        seconds until the next lease with keys runs out (None: none, or a read-only store)."""
        self._expire_due()
        db = self._db()
        rev = int(db.execute("SELECT rev FROM meta").fetchone()[0])
        if self.mode is OpenMode.READ_ONLY or not self._leases:
            return rev, None
        (due,) = db.execute(
            "SELECT MIN(l.expires) FROM leases l JOIN lease_keys k ON k.lease = l.id"
            " WHERE l.boot = ?",
            (BOOT_ID,),
        ).fetchone()
        return rev, None if due is None else max(due - self.clock(), 0.0)

    async def _look(self) -> tuple[int, float | None]:
        """The change feed's look: a glance on the loop if it need not wait or write."""
        seen = self._glance()
        return seen if seen is not None else await self._run(self._changes)

    def _glance(self) -> tuple[int, float | None] | None:
        """What `_changes` returns, read on the event loop's own read-only connection that
        never waits (busy_timeout 0); None when it would wait, or a lease has run out
        (deleting its keys is a write, for the store's thread). Another node's lease
        renewal wakes every watching process: on this path it costs ~50 us of CPU, through
        the thread ~1 ms (measured: the hand-off, not SQLite, is the cost)."""
        if self._closed:
            raise StoreUnavailable("store is closed")
        if self._conn is None:
            return None  # not opened yet: the thread opens it (and learns the schema)
        self.check_file()
        try:
            if self._peek is None:
                uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
                self._peek = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
            if self.mode is OpenMode.READ_ONLY or not self._leases:
                return int(self._peek.execute("SELECT rev FROM meta").fetchone()[0]), None
            rev, due, stale = self._peek.execute(GLANCE, (BOOT_ID,)).fetchone()
        except sqlite3.Error:
            return None  # busy, or not there: the thread's path waits, or raises the error
        left = None if due is None else due - self.clock()
        if stale or (left is not None and left <= 0):
            return None
        return int(rev), left

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._feed.stop()
        if self._peek is not None:
            self._peek.close()
            self._peek = None
        conn = self._conn

        def _close() -> None:
            if conn is not None:
                conn.close()

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=True)
