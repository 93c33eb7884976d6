"""The SQLite store's tables, its queries shared by several calls, and the lease clock.

`ipam.store.sqlite` explains the design (WAL, ``BEGIN IMMEDIATE``, leases on
``CLOCK_BOOTTIME`` with the kernel's boot ID); this module holds its data
definitions so that the store itself stays about its calls.
"""

from __future__ import annotations

import time

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
    " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " rev INTEGER NOT NULL, compacted INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (id, rev, compacted) VALUES (0, 0, 0)",
    "CREATE TABLE IF NOT EXISTS events (rev INTEGER NOT NULL, key TEXT NOT NULL,"
    " value BLOB, PRIMARY KEY (rev, key)) WITHOUT ROWID",
)
LEASE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL,"
    " expires REAL NOT NULL, boot TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lease_keys (key TEXT PRIMARY KEY, lease INTEGER NOT NULL)"
    " WITHOUT ROWID",
)
TABLES = frozenset({"kv", "meta", "events"})
LEASE_TABLES = frozenset({"leases", "lease_keys"})
# Keys of leases that have run out, as of (now, boot ID).
EXPIRED_KEYS = (
    "SELECT k.key FROM lease_keys k JOIN leases l ON l.id = k.lease"
    " WHERE l.expires <= ? OR l.boot != ?"
)


# The revision, the next lease with keys to run out, and whether one is of an earlier boot.
GLANCE = (
    "SELECT (SELECT rev FROM meta), MIN(l.expires), MAX(l.boot != ?)"
    " FROM leases l JOIN lease_keys k ON k.lease = l.id"
)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


def lease_clock() -> float:
    """Seconds since boot, counting suspend; the same in every process on the host."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


__all__ = [
    "BOOT_ID",
    "EXPIRED_KEYS",
    "GLANCE",
    "LEASE_SCHEMA",
    "LEASE_TABLES",
    "SCHEMA",
    "TABLES",
    "lease_clock",
]
