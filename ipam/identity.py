"""The datastore's identity: a cluster ID written once, checked by every node and CNI call.

Why: IPAM's promise (never one address twice) holds only within one store. A
store that is silently a *different* one -- a misspelt SQLite path, a file
deleted and re-created, an etcd wiped and re-initialised, another cluster's
etcd -- is empty or foreign, and allocating from it hands out addresses that
live pods already hold. So:

* a store is created only by an explicit step (``podbgp datastore init``, or
  ``podbgp run`` with ``datastore.create = true``), which writes the key
  `CLUSTER_KEY` holding a random cluster ID (a UUID) and the schema version.
  `init_cluster` writes it with a create-if-absent CAS, so two inits racing on
  one etcd (or one SQLite file) end with one ID, and the loser is told;
* every entry point `join`s the store before using it: the cluster key must
  be there (else `StoreMissing`: "not initialised") with a schema this code
  understands, and its ID must equal the one this node recorded when it first
  joined (else `StoreReplaced`);
* the node's record is a small JSON file outside the store (`Membership`,
  path from ``datastore.cluster_id_file``; by default ``cluster-id`` beside the
  daemon's control socket). It must live outside the store: a record inside a
  replaced store is replaced with it. The first contact (daemon start or a CNI
  call) records the ID, with an exclusive link so concurrent first contacts
  agree; afterwards it only changes when an operator deletes the file;
* `GuardedStore` keeps checking while in use: every write also compares the
  cluster key's revision (so a write can never land in a store re-initialised
  since it was joined -- the check and the write are one transaction), and
  its watches follow the whole podbgp key space so a deleted or rewritten
  cluster key ends the watch with `StoreReplaced` before any change of the new
  store is delivered. `verify` is the cheap explicit check a daemon runs
  periodically (one key read; for SQLite also the file's inode).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipam.model import ROOT, dumps, loads
from ipam.store.base import (
    Compare,
    Event,
    EventKind,
    KeyValue,
    Op,
    Store,
    StoreError,
    StoreIdentityError,
    StoreMissing,
    StoreReplaced,
    TxnResult,
)

CLUSTER_KEY = ROOT + "cluster"
SCHEMA_VERSION = 1
INIT_HINT = "run `podbgp datastore init` to create it, or check the datastore setting"


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    """What `CLUSTER_KEY` holds."""

    cluster_id: str
    schema: int
    created: float

    def to_json(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "schema": self.schema, "created": self.created}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClusterIdentity:
        return cls(str(d["cluster_id"]), int(d["schema"]), float(d.get("created", 0)))


class AlreadyInitialised(StoreError):
    """`init_cluster` found a cluster ID already there (it is left as it was)."""

    def __init__(self, where: str, identity: ClusterIdentity) -> None:
        super().__init__(f"{where}: already initialised (cluster ID {identity.cluster_id})")
        self.identity = identity


def _identity_of(store: Store, kv: KeyValue | None) -> ClusterIdentity:
    if kv is None:
        raise StoreMissing(
            f"{store.url}: the datastore is not initialised (no cluster ID); {INIT_HINT}"
        )
    try:
        ident = ClusterIdentity.from_json(loads(kv.value))
    except (ValueError, KeyError, TypeError) as e:
        raise StoreIdentityError(f"{store.url}: unreadable cluster ID record: {e}") from e
    if ident.schema > SCHEMA_VERSION:
        raise StoreIdentityError(
            f"{store.url}: schema version {ident.schema} is newer than this podbgp "
            f"understands ({SCHEMA_VERSION}); upgrade podbgp"
        )
    return ident


async def read_identity(store: Store) -> ClusterIdentity:
    """The store's identity; `StoreMissing` if it was never initialised."""
    return _identity_of(store, await store.get(CLUSTER_KEY))


async def init_cluster(store: Store, clock: Callable[[], float] = time.time) -> ClusterIdentity:
    """Write a new cluster ID (CAS: only if there is none); `AlreadyInitialised` otherwise."""
    ident = ClusterIdentity(str(uuid.uuid4()), SCHEMA_VERSION, clock())
    if await store.create(CLUSTER_KEY, dumps(ident.to_json())):
        return ident
    raise AlreadyInitialised(store.url, await read_identity(store))


async def ensure_cluster(store: Store) -> ClusterIdentity:
    """The store's identity, initialising it first if it has none (labs: ``create = true``)."""
    try:
        return await init_cluster(store)
    except AlreadyInitialised as e:
        return e.identity


# -- the node's record of the cluster it joined -------------------------------------
@dataclass(frozen=True, slots=True)
class Membership:
    """The cluster this node joined, kept in a file outside the store."""

    cluster_id: str
    datastore: str
    joined: float

    def to_json(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "datastore": self.datastore, "joined": self.joined}


def read_membership(path: str | Path) -> Membership | None:
    """The recorded membership, or None if this node never joined (no file)."""
    try:
        d = json.loads(Path(path).read_text())
        return Membership(str(d["cluster_id"]), str(d.get("datastore", "")), float(d["joined"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreIdentityError(f"cluster ID file {path}: cannot read it: {e}") from e


def record_membership(path: str | Path, m: Membership) -> Membership:
    """Record `m` unless a record exists; returns the record that is in place.

    Written to a temporary file and hard-linked into place: the link fails if
    another process recorded first, so concurrent first contacts agree on one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(m.to_json()) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    except OSError as e:
        raise StoreIdentityError(f"cluster ID file {path}: cannot write it: {e}") from e
    got = read_membership(path)
    assert got is not None
    return got


def _replaced_message(store: Store, ident: ClusterIdentity, m: Membership, path: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.joined))
    return (
        f"{store.url}: cluster ID {ident.cluster_id} is not the cluster this node joined "
        f"({m.cluster_id}, recorded in {path} at {when} from {m.datastore or '?'}): the store "
        "was replaced or the path points at another cluster's store. Restore the store or fix "
        f"the path; if the cluster was re-created on purpose, delete {path} and restart podbgp"
    )


async def join(store: Store, membership_file: str | None, *, record: bool = True) -> GuardedStore:
    """Check `store` is the cluster this node joined (recording it on first contact).

    With no `membership_file` only the store's own identity is checked (it
    exists and is initialised). Raises `StoreIdentityError` subclasses.
    """
    kv = await store.get(CLUSTER_KEY)
    ident = _identity_of(store, kv)
    assert kv is not None
    if membership_file:
        m = read_membership(membership_file)
        if m is None and record:
            m = record_membership(
                membership_file, Membership(ident.cluster_id, store.url, time.time())
            )
        if m is not None and m.cluster_id != ident.cluster_id:
            raise StoreReplaced(_replaced_message(store, ident, m, membership_file))
    return GuardedStore(store, ident, kv.mod_revision)


class GuardedStore(Store):
    """A joined store whose identity is re-checked on every write and watch (module docstring)."""

    def __init__(self, inner: Store, identity: ClusterIdentity, key_revision: int) -> None:
        self.inner = inner
        self.identity = identity
        self.kind = inner.kind
        self._key_revision = key_revision

    @property
    def url(self) -> str:
        return self.inner.url

    async def verify(self) -> None:
        """Raise `StoreIdentityError` unless the store still carries the joined cluster ID."""
        kv = await self.inner.get(CLUSTER_KEY)
        if kv is None:
            raise StoreMissing(
                f"{self.url}: the cluster ID key was deleted (the store was wiped); "
                "nothing is allocated until the store is restored"
            )
        ident = _identity_of(self.inner, kv)
        if ident.cluster_id != self.identity.cluster_id:
            raise StoreReplaced(
                f"{self.url}: the cluster ID changed from {self.identity.cluster_id} to "
                f"{ident.cluster_id} (the store was re-initialised); nothing is allocated "
                "until the joined store is restored"
            )
        self._key_revision = kv.mod_revision

    async def get(self, key: str) -> KeyValue | None:
        return await self.inner.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        return await self.inner.get_many(keys)

    async def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        return await self.inner.list_prefix(prefix, keys_only)

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        """The caller's CAS plus "the cluster key is unchanged", in one transaction."""
        guard = Compare(CLUSTER_KEY, self._key_revision)
        result = await self.inner.txn([*compares, guard], ops)
        if not result.succeeded:
            await self.verify()  # a lost compare on the cluster key is not a mere conflict
        return result

    async def grant_lease(self, ttl: int) -> int:
        return await self.inner.grant_lease(ttl)

    async def keep_alive(self, lease: int) -> int:
        return await self.inner.keep_alive(lease)

    async def revoke_lease(self, lease: int) -> None:
        await self.inner.revoke_lease(lease)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        """`prefix`'s changes; ends with `StoreIdentityError` if the cluster key changes."""
        async for batch in self.inner.watch(ROOT, start_revision):
            for ev in batch:
                if ev.key == CLUSTER_KEY:
                    self._check_event(ev)
            mine = [ev for ev in batch if ev.key.startswith(prefix)]
            if mine:
                yield mine

    def _check_event(self, ev: Event) -> None:
        if ev.kind is EventKind.DELETE:
            raise StoreMissing(f"{self.url}: the cluster ID key was deleted (the store was wiped)")
        ident = _identity_of(self.inner, KeyValue(ev.key, ev.value, 0, ev.mod_revision))
        if ident.cluster_id != self.identity.cluster_id:
            raise StoreReplaced(
                f"{self.url}: the cluster ID changed from {self.identity.cluster_id} to "
                f"{ident.cluster_id} (the store was re-initialised)"
            )
        self._key_revision = ev.mod_revision

    async def close(self) -> None:
        await self.inner.close()
