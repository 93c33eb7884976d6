"""Fixtures for IPAM tests: one real etcd for the session, and a store of each kind.

The `store` fixture is parametrized: every test that takes it runs once on a
fresh SQLite file and once on the real etcd (in its own key namespace, so the
tests share one server without seeing each other's keys).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ipam.etcdlab import EtcdCluster, have_etcd
from ipam.store.base import OpenMode, Store
from ipam.store.etcd import EtcdStore
from ipam.store.sqlite import SqliteStore


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdCluster]:
    why = have_etcd()
    if why:
        pytest.skip(why)
    cluster = EtcdCluster.start(1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "ipam.db", poll_interval=0.02, mode=OpenMode.CREATE)
    else:
        server: EtcdCluster = request.getfixturevalue("etcd_server")
        s = EtcdStore(server.endpoints, namespace=f"/test-{uuid.uuid4().hex}")
    try:
        yield s
    finally:
        await s.close()
