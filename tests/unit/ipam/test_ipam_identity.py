"""The datastore's identity (`ipam.identity`), on a real SQLite file and on a real etcd.

Every test that takes `store` runs on both (tests/unit/ipam/conftest.py). A `twin` is a
second, independent client of the same store: another process's view (a second SQLite
connection on the file, a second etcd client in the same key namespace).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ipam import Ipam, IpamConfig, Pool
from ipam.identity import (
    CLUSTER_KEY,
    AlreadyInitialised,
    GuardedStore,
    Membership,
    init_cluster,
    join,
    read_identity,
    read_membership,
    record_membership,
)
from ipam.model import BLOCKS, IPAM, ROOT, dumps
from ipam.store.base import (
    Compare,
    Delete,
    Event,
    OpenMode,
    Store,
    StoreIdentityError,
    StoreMissing,
    StoreReplaced,
)
from ipam.store.etcd import EtcdStore
from ipam.store.sqlite import SqliteStore

CONFIG = IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/24", "block_size": 28}),))


def twin(store: Store, mode: OpenMode = OpenMode.READ_WRITE) -> Store:
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path, poll_interval=0.02, mode=mode)
    assert isinstance(store, EtcdStore)
    return EtcdStore([f"http://{e}" for e in store.endpoints], namespace=store.namespace)


async def wipe_and_reinit(store: Store) -> str:
    """What `etcdctl del --prefix /podbgp/` plus `podbgp datastore init` does: a new cluster."""
    kvs, _ = await store.list_prefix(ROOT, keys_only=True)
    assert (await store.txn([], [Delete(kv.key) for kv in kvs])).succeeded
    return (await init_cluster(store)).cluster_id


async def test_init_once_then_already_initialised(store: Store) -> None:
    with pytest.raises(StoreMissing, match="not initialised"):
        await read_identity(store)
    ident = await init_cluster(store)
    assert ident.schema == 1 and len(ident.cluster_id) == 36
    with pytest.raises(AlreadyInitialised) as e:
        await init_cluster(store)
    assert e.value.identity == ident
    assert await read_identity(store) == ident


async def test_concurrent_inits_have_one_winner(store: Store) -> None:
    clients = [twin(store, OpenMode.CREATE) for _ in range(6)]  # six `datastore init`s
    try:
        results = await asyncio.gather(*(init_cluster(c) for c in clients), return_exceptions=True)
    finally:
        for c in clients:
            await c.close()
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, AlreadyInitialised)]
    assert len(won) == 1 and len(lost) == 5, results
    assert {r.identity.cluster_id for r in lost} == {won[0].cluster_id}
    assert (await read_identity(store)).cluster_id == won[0].cluster_id


async def test_join_records_on_first_contact_and_refuses_another_cluster(
    store: Store, tmp_path: Path
) -> None:
    record = tmp_path / "state" / "cluster-id"
    with pytest.raises(StoreMissing):
        await join(store, str(record))
    assert not record.exists()  # nothing recorded for a store that is not there
    ident = await init_cluster(store)
    joined = await join(store, str(record))
    assert joined.identity == ident
    m = read_membership(record)
    assert m is not None and m.cluster_id == ident.cluster_id and m.datastore == store.url
    # The store is wiped and re-created: another ID, refused with both IDs named.
    other = await wipe_and_reinit(store)
    with pytest.raises(StoreReplaced) as e:
        await join(store, str(record))
    assert other in str(e.value) and ident.cluster_id in str(e.value)
    assert str(record) in str(e.value)
    # Without a record to compare with, only the store's own identity is checked.
    assert (await join(store, None)).identity.cluster_id == other


async def test_a_write_into_a_reinitialised_store_is_refused_not_retried(store: Store) -> None:
    await init_cluster(store)
    guarded = await join(store, None)
    ipam = Ipam(guarded, CONFIG)
    assert (await ipam.allocate("n1", "h1")).address.version == 4
    admin = twin(store)
    try:
        await wipe_and_reinit(admin)
    finally:
        await admin.close()
    with pytest.raises(StoreReplaced, match="cluster ID changed"):
        await ipam.allocate("n1", "h2")
    blocks, _ = await store.list_prefix(BLOCKS)
    assert blocks == []  # nothing was written into the new cluster's store


async def test_every_guarded_write_carries_the_cluster_key_compare(store: Store) -> None:
    await init_cluster(store)
    guarded = await join(store, None)
    kv = await store.get(CLUSTER_KEY)
    assert kv is not None
    # Same ID rewritten (a new revision): a write that raced it fails as a conflict, the
    # guard re-reads the key, finds the same cluster, and the retry succeeds.
    assert await store.put_cas(CLUSTER_KEY, kv.value, kv.mod_revision)
    assert not (await guarded.txn([Compare("/x", 0)], [])).succeeded
    assert await guarded.create("/x", b"1")


async def _first_batches(guarded: GuardedStore, start: int, out: list[list[Event]]) -> None:
    async for batch in guarded.watch(IPAM, start):
        out.append(batch)


async def test_a_watch_ends_when_the_store_is_wiped(store: Store) -> None:
    await init_cluster(store)
    guarded = await join(store, None)
    block = BLOCKS + "10.9.0.0-28"
    assert await store.create(block, dumps({"x": 1}))
    _, rev = await store.list_prefix(IPAM)
    seen: list[list[Event]] = []
    task = asyncio.create_task(_first_batches(guarded, rev + 1, seen))
    await asyncio.sleep(0.1)
    admin = twin(store)
    try:
        kvs, _ = await admin.list_prefix(ROOT, keys_only=True)
        assert (await admin.txn([], [Delete(kv.key) for kv in kvs])).succeeded
    finally:
        await admin.close()
    with pytest.raises(StoreMissing, match="cluster ID key was deleted"):
        await asyncio.wait_for(task, 10)
    assert seen == []  # the block's deletion never reached the follower


async def test_verify_notices_a_changed_id(store: Store) -> None:
    await init_cluster(store)
    guarded = await join(store, None)
    await guarded.verify()
    kv = await store.get(CLUSTER_KEY)
    assert kv is not None
    forged = dumps({"cluster_id": "someone-else", "schema": 1, "created": 0})
    assert await store.put_cas(CLUSTER_KEY, forged, kv.mod_revision)
    with pytest.raises(StoreReplaced, match="someone-else"):
        await guarded.verify()


async def test_a_newer_schema_is_refused(store: Store) -> None:
    assert await store.create(CLUSTER_KEY, dumps({"cluster_id": "c", "schema": 99}))
    with pytest.raises(StoreIdentityError, match="schema version 99 is newer"):
        await join(store, None)


def test_concurrent_first_records_agree(tmp_path: Path) -> None:
    path = tmp_path / "cluster-id"
    got = {record_membership(path, Membership(f"id-{i}", "x", 0.0)).cluster_id for i in range(5)}
    assert got == {"id-0"}


def test_an_unreadable_record_is_an_identity_error(tmp_path: Path) -> None:
    path = tmp_path / "cluster-id"
    path.write_text("{not json")
    with pytest.raises(StoreIdentityError, match="cannot read it"):
        read_membership(path)
