"""The store interface: a small revisioned key-value store with CAS and watch.

Modelled on etcd v3's data model, so the etcd implementation is a thin mapping
and the SQLite one reproduces it:

* every write bumps one store-wide *revision*; each key remembers the revision
  of its last change (`mod_revision`). A key that does not exist has
  mod_revision 0;
* `txn(compares, ops)` applies `ops` (puts and deletes on several keys)
  atomically iff every compare `key's mod_revision == expected` holds. That is
  the only way to write: a compare-and-swap on revisions, never a blind put.
  A failed compare is not an error, it returns ``succeeded=False`` and the
  caller re-reads (and retries a bounded number of times);
* `watch(prefix, start_revision)` streams every change at or after
  `start_revision` in revision order, so a reader can `list` a snapshot at
  revision R and then watch from R + 1 without missing or repeating a change.

Leases (etcd v3's lease model, the only notion of time in the store): a
caller grants a lease with a TTL in seconds and keeps it alive; a `Put` may
attach its key to a lease, and when the lease is not kept alive for its TTL
(the holder died) the store deletes every key attached to it, as an ordinary
DELETE event a watcher sees. `keep_alive` answers 0 once the lease has
expired; a `Put` naming such a lease raises `LeaseExpired` and writes nothing.
A new Put of the key with another lease (or none) detaches it from the old
one, which is how a restarted holder takes its key over without a gap.

Failures of the store itself (server down, database locked for too long) raise
`StoreUnavailable`; a watch that asks for history the store has dropped raises
`WatchCompacted` (re-list, then watch again). A store that is not the one the
caller meant -- a missing SQLite file, a file replaced under an open
connection, a cluster ID that differs from the one this node joined -- raises a
`StoreIdentityError` (`StoreMissing`, `StoreReplaced`); see `ipam.identity`.

Opening never creates a store (`OpenMode`): only ``OpenMode.CREATE``, used by
``podbgp datastore init`` and by ``podbgp run`` with ``datastore.create``,
does.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import Enum


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix`."""
    if not prefix:
        return "\U0010ffff"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class StoreError(Exception):
    """Base class of datastore errors."""


class StoreUnavailable(StoreError):
    """The datastore could not be reached or did not answer in time."""


class StoreIdentityError(StoreError):
    """The store is not the one this node joined: missing, replaced, foreign or not initialised.

    Never retried and never repaired silently: handing out addresses from the
    wrong store is how one address ends up on two pods (`ipam.identity`).
    """


class StoreMissing(StoreIdentityError):
    """The store does not exist where the configuration points (no file, no cluster key)."""


class StoreReplaced(StoreIdentityError):
    """The store at the configured place is no longer the one that was opened or joined."""


class LeaseExpired(StoreError):
    """A Put named a lease that has expired, been revoked or never existed; nothing was written."""


class WatchCompacted(StoreError):
    """The watch asked for revisions the store no longer keeps."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revisions before {compact_revision} were compacted")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Compare:
    """Holds iff `key`'s mod_revision equals `mod_revision` (0: the key is absent)."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    """Write `value` at `key`; with a `lease` (non-zero) the key lives only as long as that lease."""

    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int


class OpenMode(Enum):
    """How a store is opened: reads only, reads and writes, or created if missing."""

    READ_ONLY = "ro"
    READ_WRITE = "rw"
    CREATE = "create"


class EventKind(Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    key: str
    value: bytes  # b"" for a delete
    mod_revision: int


class Store(abc.ABC):
    """A revisioned key-value store (see the module docstring)."""

    #: Short name for messages and metrics: "sqlite" or "etcd".
    kind: str = ""

    @property
    def url(self) -> str:
        """Where the store is, in the ``--datastore`` form (for messages)."""
        return self.kind

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """The key's current value and revisions, or None."""

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        """Several keys read at one revision, in the order asked."""

    @abc.abstractmethod
    async def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        """Every key starting with `prefix`, sorted by key, and the revision read at.

        With `keys_only` the values are b"" (cheaper for etcd).
        """

    @abc.abstractmethod
    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        """Apply `ops` atomically iff every compare holds."""

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        """Changes under `prefix` from `start_revision` on, one list per revision batch."""

    @abc.abstractmethod
    async def grant_lease(self, ttl: int) -> int:
        """A new lease that expires `ttl` seconds after its last keep-alive; returns its ID."""

    @abc.abstractmethod
    async def keep_alive(self, lease: int) -> int:
        """Renew `lease` for its full TTL; returns the TTL, or 0 if the lease has expired."""

    @abc.abstractmethod
    async def revoke_lease(self, lease: int) -> None:
        """End `lease` now, deleting its keys (no error if it has already expired)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- conveniences built on txn ---------------------------------------------
    async def create(self, key: str, value: bytes) -> bool:
        """Put `key` only if it does not exist yet."""
        return (await self.txn([Compare(key, 0)], [Put(key, value)])).succeeded

    async def put_cas(self, key: str, value: bytes, mod_revision: int) -> bool:
        """Put `key` only if its mod_revision is still `mod_revision`."""
        return (await self.txn([Compare(key, mod_revision)], [Put(key, value)])).succeeded

    async def delete_cas(self, key: str, mod_revision: int) -> bool:
        """Delete `key` only if its mod_revision is still `mod_revision`."""
        return (await self.txn([Compare(key, mod_revision)], [Delete(key)])).succeeded
