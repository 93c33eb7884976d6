"""`podbgp run` and the datastore's identity, with real daemons on real SQLite files.

At start: a missing store is refused (and not created) unless ``datastore.create``; a
store that was never initialised, or whose cluster ID is not the one this node
recorded, is refused. While running: deleting the store file, or replacing it with
another store, is noticed, logged once at error level, reported by ``show node``,
``show ipam`` and the ``podbgp_datastore_ok`` metric; putting the joined store back
clears it.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ipam.identity import CLUSTER_KEY, init_cluster, read_membership
from ipam.store import OpenMode, open_store
from podbgp.api import APIError, ControlClient

CONFIG = """
[node]
name = "n1"
asn = 64512
address = "127.0.0.1/8"

[bgp]
enabled = false

[datastore]
{datastore}
{extra}

[[ipam.pool]]
cidr = "10.244.0.0/16"

[fib]
enabled = false

[api]
socket = "{dir}/podbgp.sock"
metrics = "{metrics}"
"""


def init_store(path: Path) -> str:
    async def go() -> str:
        store = open_store(f"sqlite:{path}", OpenMode.CREATE)
        try:
            return (await init_cluster(store)).cluster_id
        finally:
            await store.close()

    return asyncio.run(go())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, extra: str = "", metrics: str = "", datastore: str = "") -> Path:
    path = tmp / "node.toml"
    datastore = datastore or f'kind = "sqlite"\npath = "{tmp / "podbgp.db"}"'
    path.write_text(CONFIG.format(datastore=datastore, dir=tmp, extra=extra, metrics=metrics))
    return path


def run_once(tmp: Path, extra: str = "") -> tuple[int, str]:
    """`podbgp run` expected to refuse to start: its exit status and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "podbgp", "run", "--config", str(write_config(tmp, extra))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout}s (last: {value!r})")
        time.sleep(0.1)


class Daemon:
    def __init__(self, tmp: Path, extra: str = "", datastore: str = "") -> None:
        self.tmp = tmp
        self.metrics_port = free_port()
        config = write_config(tmp, extra, f"127.0.0.1:{self.metrics_port}", datastore)
        self.log = tmp / "daemon.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "podbgp", "run", "--config", str(config)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.client = ControlClient(str(tmp / "podbgp.sock"))
        wait_for("the daemon answers", self._answers)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"podbgp exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            self.client.request("show.node")
            return True
        except (OSError, APIError):
            return False

    def node(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request("show.node")
        return result

    def metric(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            body: str = r.read().decode()
        return next(line for line in body.splitlines() if line.startswith("podbgp_datastore_ok"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(extra: str = "", datastore: str = "") -> Daemon:
        d = Daemon(tmp_path, extra, datastore)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def test_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    rc, err = run_once(tmp_path)
    assert rc == 1, err
    assert f"{tmp_path}/podbgp.db: the datastore does not exist" in err, err
    assert "podbgp datastore init" in err
    assert not (tmp_path / "podbgp.db").exists()
    assert "Traceback" not in err


def test_misspelt_directory_is_refused_and_not_created(tmp_path: Path) -> None:
    init_store(tmp_path / "podbgp.db")
    config = write_config(tmp_path).read_text().replace(str(tmp_path), str(tmp_path / "tpyo"), 1)
    (tmp_path / "node.toml").write_text(config)
    proc = subprocess.run(
        [sys.executable, "-m", "podbgp", "run", "--config", str(tmp_path / "node.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and "does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "tpyo").exists()


def test_uninitialised_store_is_refused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:{tmp_path}/podbgp.db", OpenMode.CREATE)
    asyncio.run(store.list_prefix("/"))  # tables, no cluster ID: a pre-identity store
    asyncio.run(store.close())
    rc, err = run_once(tmp_path)
    assert rc == 1 and "not initialised (no cluster ID)" in err, err


def test_create_true_creates_once_then_a_new_store_is_refused(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    d = daemon_factory("create = true")
    first = d.node()["datastore"]["cluster_id"]
    assert read_membership(tmp_path / "cluster-id").cluster_id == first  # type: ignore[union-attr]
    d.stop()
    # The store is lost; create = true must not paper over it with a new empty one.
    (tmp_path / "podbgp.db").unlink()
    rc, err = run_once(tmp_path, "create = true")
    assert rc == 1 and "does not exist" in err, err
    assert not (tmp_path / "podbgp.db").exists()
    # An operator re-initialises it: another cluster, refused too.
    init_store(tmp_path / "podbgp.db")
    rc, err = run_once(tmp_path, "create = true")
    assert rc == 1 and f"is not the cluster this node joined ({first}" in err, err


def test_running_daemon_reports_a_moved_store_once_and_recovers(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    db = tmp_path / "podbgp.db"
    cluster = init_store(db)
    d = daemon_factory()
    assert d.node()["datastore"] == {
        "url": f"sqlite:{db}", "cluster_id": cluster, "ok": True, "error": None
    }  # fmt: skip
    assert d.metric() == "podbgp_datastore_ok 1.0"
    aside = tmp_path / "moved-away.db"
    db.rename(aside)  # a wrong volume mount, a careless mv
    wait_for("show node reports the loss", lambda: not d.node()["datastore"]["ok"])
    err = d.node()["datastore"]["error"]
    assert "deleted while in use" in err, err
    assert d.client.request("show.ipam")["datastore"]["error"] == err
    assert d.metric() == "podbgp_datastore_ok 0.0"
    time.sleep(3 * 2.0)  # several identity checks later: still one error line
    lines = [x for x in d.log.read_text().splitlines() if "deleted while in use" in x]
    assert len(lines) == 1 and "ERROR" in lines[0], lines
    assert not db.exists()  # nothing re-created it
    aside.rename(db)
    wait_for("the daemon resumes", lambda: d.node()["datastore"]["ok"])
    assert d.metric() == "podbgp_datastore_ok 1.0"
    assert "the joined store is back" in d.log.read_text()


def test_deleted_store_stays_refused_and_reinit_is_guarded(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    db = tmp_path / "podbgp.db"
    init_store(db)
    d = daemon_factory()
    db.unlink()  # the careless rm of the trial: -wal and -shm stay behind
    wait_for("show node reports the loss", lambda: not d.node()["datastore"]["ok"])
    # `datastore init` will not create a file that SQLite would mix with the old -wal.
    with pytest.raises(Exception, match="-wal"):
        init_store(db)
    assert not db.exists()
    time.sleep(2.0 * 2)
    assert not d.node()["datastore"]["ok"] and not db.exists()


def test_running_daemon_refuses_a_replaced_store(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    db = tmp_path / "podbgp.db"
    init_store(db)
    d = daemon_factory()
    other = tmp_path / "other.db"
    new_cluster = init_store(other)
    other.rename(db)  # atomically: the path now names a different, freshly initialised store
    wait_for("show node reports the replacement", lambda: not d.node()["datastore"]["ok"])
    assert "replaced" in d.node()["datastore"]["error"]
    # Its periodic re-join attempts keep refusing the new cluster.
    time.sleep(2 * 2.0)
    assert not d.node()["datastore"]["ok"]
    assert new_cluster not in (d.node()["datastore"]["cluster_id"],)


def test_wiped_cluster_key_is_noticed(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    db = tmp_path / "podbgp.db"
    init_store(db)
    d = daemon_factory()

    async def wipe() -> None:
        store = open_store(f"sqlite:{db}")
        try:
            kv = await store.get(CLUSTER_KEY)
            assert kv is not None and await store.delete_cas(CLUSTER_KEY, kv.mod_revision)
        finally:
            await store.close()

    asyncio.run(wipe())
    wait_for("show node reports the wipe", lambda: not d.node()["datastore"]["ok"])
    assert "cluster ID key was deleted" in d.node()["datastore"]["error"]


@pytest.mark.etcd
def test_running_daemon_on_etcd_notices_a_reinitialised_cluster(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    from ipam.etcdlab import EtcdCluster, have_etcd
    from ipam.model import ROOT
    from ipam.store.base import Delete

    if why := have_etcd():
        pytest.skip(why)
    with EtcdCluster.start(1) as etcd:
        endpoints = ", ".join(f'"{e}"' for e in etcd.endpoints)
        ds = f'kind = "etcd"\nendpoints = [{endpoints}]'
        proc = subprocess.run(
            [sys.executable, "-m", "podbgp", "run", "--config",
             str(write_config(tmp_path, datastore=ds))],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1 and "not initialised" in proc.stderr, proc.stderr
        d = daemon_factory("create = true", ds)  # a lab: the daemon initialises it
        joined = d.node()["datastore"]["cluster_id"]

        async def wipe_and_reinit() -> str:
            store = open_store(etcd.url)
            try:
                kvs, _ = await store.list_prefix(ROOT, keys_only=True)
                assert (await store.txn([], [Delete(kv.key) for kv in kvs])).succeeded
                return (await init_cluster(store)).cluster_id
            finally:
                await store.close()

        other = asyncio.run(wipe_and_reinit())
        wait_for("show node reports the wipe", lambda: not d.node()["datastore"]["ok"])
        assert d.node()["datastore"]["cluster_id"] == joined
        assert d.metric() == "podbgp_datastore_ok 0.0"
        time.sleep(2 * 2.0)
        assert not d.node()["datastore"]["ok"]  # the new cluster is not taken on its own
        assert other not in d.node()["datastore"]["cluster_id"]
        d.stop()


@pytest.mark.etcd
def test_daemon_joins_an_etcd_that_wants_tls_and_client_certificates(
    daemon_factory: Callable[..., Daemon],
) -> None:
    from ipam.etcdlab import EtcdCluster, have_etcd

    if why := have_etcd():
        pytest.skip(why)
    with EtcdCluster.start(1, tls=True) as etcd:
        assert etcd.tls is not None
        endpoints = ", ".join(f'"{e}"' for e in etcd.endpoints)
        ds = (f'kind = "etcd"\nendpoints = [{endpoints}]\nca_file = "{etcd.tls.ca}"\n'
              f'cert_file = "{etcd.tls.client_cert}"\nkey_file = "{etcd.tls.client_key}"')  # fmt: skip
        d = daemon_factory("create = true", ds)
        node = wait_for("the daemon joined", lambda: d.node()["datastore"]["ok"] and d.node())
        assert node["datastore"]["cluster_id"]
        assert d.metric() == "podbgp_datastore_ok 1.0"

        async def keys() -> list[str]:
            from ipam.model import ROOT

            store = open_store(etcd.url)  # the TLS files travel in the URL
            try:
                kvs, _ = await store.list_prefix(ROOT, keys_only=True)
                return [kv.key for kv in kvs]
            finally:
                await store.close()

        wait_for("n1 registered itself", lambda: any("n1" in k for k in asyncio.run(keys())))
        d.stop()
