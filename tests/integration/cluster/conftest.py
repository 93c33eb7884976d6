"""Stores for the cluster-resource tests: a fresh SQLite file, or a namespace on one real etcd."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ipam.etcdlab import EtcdCluster, have_etcd
from ipam.identity import init_cluster
from ipam.store.base import OpenMode, Store
from ipam.store.etcd import EtcdStore
from ipam.store.sqlite import SqliteStore


@pytest.fixture(scope="module")
def etcd_one() -> Iterator[EtcdCluster]:
    why = have_etcd()
    if why:
        pytest.skip(why)
    with EtcdCluster.start(1) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An initialised store (it has a cluster ID), of each kind."""
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "podbgp.db", poll_interval=0.02, mode=OpenMode.CREATE)
    else:
        server: EtcdCluster = request.getfixturevalue("etcd_one")
        s = EtcdStore(server.endpoints, namespace=f"/test-{uuid.uuid4().hex}")
    await init_cluster(s)
    try:
        yield s
    finally:
        await s.close()
