"""A 3-member etcd for the IPAM failover and contention tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipam.etcdlab import EtcdCluster, have_etcd


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    if why := have_etcd():
        pytest.skip(why)
    with EtcdCluster.start(3) as c:
        yield c
