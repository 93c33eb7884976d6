"""podbgp-cni against a missing, misspelt or replaced store: a CNI error, nothing handed out.

The operator trial's outage, replayed with the real plugin in real namespaces and a real
SQLite file: a pod holds an address, the store file goes (``rm podbgp.db*``), and the next
ADD must not create a fresh store and hand that address out again. Re-initialising the
store is a *different* cluster, which the node also refuses (it recorded the ID it joined).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cni_plugin import Cluster, addr_of, init_store, path

from ipam.identity import read_membership
from podbgp.cni_net import host_ifname
from podbgp.lab.netns import NetnsGroup

pytestmark = [pytest.mark.root]


def links(cluster: Cluster) -> str:
    return cluster.node.ip("-o", "link", "show")


def remove_store(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def cluster(netns: NetnsGroup, tmp_path: Path) -> Cluster:
    return Cluster(netns, tmp_path, pools=["10.244.0.0/24/28"])


def test_deleted_store_refused_then_reinitialised_store_refused(cluster: Cluster) -> None:
    p1 = cluster.pod("p1")
    first = addr_of(cluster.add(p1, "c1"), 4)
    assert first.startswith("10.244.0.")
    joined = read_membership(cluster.conf["cluster_id_file"])
    assert joined is not None and joined.cluster_id == cluster.cluster_id
    remove_store(cluster.db)

    p2 = cluster.pod("p2")
    status, out = cluster.call("ADD", "c2", path(p2))
    assert status != 0 and out["code"] == 11, out
    assert f"{cluster.db}: the datastore does not exist" in out["msg"], out
    assert "podbgp datastore init" in out["msg"]
    assert not cluster.db.exists()  # not created by the plugin
    assert host_ifname("c2") not in links(cluster)  # nothing wired either

    # The operator re-creates the store: another cluster, and this node knows it.
    other = init_store(cluster.db)
    status, out = cluster.call("ADD", "c2", path(p2))
    assert status != 0 and out["code"] == 11, out
    assert f"cluster ID {other} is not the cluster this node joined" in out["msg"], out
    assert cluster.cluster_id in out["msg"]
    assert cluster.held() == {}  # nothing allocated in the new store
    assert host_ifname("c2") not in links(cluster)
    # DEL fails as well (the runtime retries it): releasing by handle in a foreign store
    # could free another pod's address.
    status, out = cluster.call("DEL", "c1", path(p1))
    assert status != 0 and out["code"] == 11, out
    assert cluster.held() == {}


def test_misspelt_store_path_is_refused_and_creates_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    p1 = cluster.pod("p1")
    typo = tmp_path / "podbgp-typo" / "podbgp.db"
    status, out = cluster.call("ADD", "c1", path(p1), conf={**cluster.conf,
                               "datastore": f"sqlite:{typo}"})  # fmt: skip
    assert status != 0 and out["code"] == 11, out
    assert f"{typo}: the datastore does not exist" in out["msg"], out
    assert not typo.parent.exists()
    assert host_ifname("c1") not in links(cluster)


def test_invalid_daemon_config_fails_add_naming_the_key(cluster: Cluster, tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        '[node]\nname = "node-a"\nasn = 64512\naddress = "10.99.0.1/24"\n'
        f'[datastore]\nkind = "sqlite"\npth = "{cluster.db}"\n'
        '[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
        f'[api]\nsocket = "{tmp_path}/node.sock"\n'
    )
    conf = {"cniVersion": "1.0.0", "name": "k8s", "type": "podbgp-cni", "podbgp_config": str(toml)}
    p1 = cluster.pod("p1")
    status, out = cluster.call("ADD", "c1", path(p1), stdin=json.dumps(conf).encode())
    assert status != 0 and out["code"] == 7, out
    assert "datastore.pth: unknown key (did you mean path?)" in out["msg"], out
    assert cluster.held() == {}
    assert host_ifname("c1") not in links(cluster)
