"""etcd over TLS with client-certificate auth: a real etcd that serves https:// only.

The store reads, writes and watches through TLS with the node's client certificate; a
missing or foreign client certificate, or a CA that did not sign the member's, is a
one-line error at once (not an outage retried until the budget is spent); the CLI takes
the TLS files in the datastore URL and the daemon takes them from `[datastore]`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipam.etcdlab import EtcdCluster, LabTls, have_etcd
from ipam.identity import CLUSTER_KEY
from ipam.store import StoreError, open_store
from ipam.store.base import Put
from ipam.store.etcd import EtcdStore, TlsFiles

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def etcd_tls() -> Iterator[EtcdCluster]:
    if why := have_etcd():
        pytest.skip(why)
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (Debian package openssl)")
    with EtcdCluster.start(1, tls=True) as c:
        yield c


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> LabTls:
    """Certificates of another CA."""
    return LabTls.make(tmp_path_factory.mktemp("tls") / "other", ["127.0.0.1"])


def files(c: EtcdCluster) -> TlsFiles:
    assert c.tls is not None
    return TlsFiles(str(c.tls.ca), str(c.tls.client_cert), str(c.tls.client_key))


def test_reads_writes_and_watches_over_tls(etcd_tls: EtcdCluster) -> None:
    async def go() -> tuple[bytes | None, list[str]]:
        store = open_store(etcd_tls.url)
        assert store.url == etcd_tls.url  # the TLS files travel with the URL
        try:
            watch = store.watch("/tls/", 1)
            seen: list[str] = []

            async def take() -> None:
                async for batch in watch:
                    seen.extend(e.key for e in batch)
                    if len(seen) >= 2:
                        return

            task = asyncio.create_task(take())
            await asyncio.sleep(0.2)
            assert (await store.txn([], [Put("/tls/a", b"1"), Put("/tls/b", b"2")])).succeeded
            await asyncio.wait_for(task, 20)
            kv = await store.get("/tls/a")
            return (kv.value if kv else None), seen
        finally:
            await store.close()

    value, seen = asyncio.run(go())
    assert value == b"1" and seen == ["/tls/a", "/tls/b"]


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("no client certificate", "refused the handshake (TLS alert: bad certificate)"),
        ("a client certificate of another CA", "refused the handshake"),
        ("a CA that did not sign the member's", "certificate did not verify"),
    ],
)
def test_a_certificate_problem_is_one_line_at_once(
    etcd_tls: EtcdCluster, stranger: LabTls, case: str, expect: str
) -> None:
    good = files(etcd_tls)
    tls = {
        "no client certificate": TlsFiles(good.ca),
        "a client certificate of another CA": TlsFiles(
            good.ca, str(stranger.client_cert), str(stranger.client_key)
        ),
        "a CA that did not sign the member's": TlsFiles(str(stranger.ca), good.cert, good.key),
    }[case]

    async def go() -> str:
        store = EtcdStore(etcd_tls.endpoints, retry_budget=30.0, tls=tls)
        try:
            await store.get(CLUSTER_KEY)
        except StoreError as exc:
            return str(exc)
        finally:
            await store.close()
        return "no error"

    t0 = time.monotonic()
    message = asyncio.run(go())
    assert expect in message and "\n" not in message, message
    assert message.startswith(f"etcd {etcd_tls.endpoints[0]}: TLS: ")
    assert time.monotonic() - t0 < 10  # not retried until the 30 s budget is spent


def test_files_that_are_missing_or_wrong_are_named(etcd_tls: EtcdCluster, tmp_path: Path) -> None:
    good = files(etcd_tls)
    ep = etcd_tls.endpoints
    with pytest.raises(StoreError, match=r"CA file /nonexistent/ca.pem: No such file"):
        EtcdStore(ep, tls=TlsFiles("/nonexistent/ca.pem"))
    with pytest.raises(StoreError, match="not a PEM certificate with its matching private key"):
        EtcdStore(ep, tls=TlsFiles(good.ca, good.ca, good.ca))
    with pytest.raises(StoreError, match="needs its key"):
        EtcdStore(ep, tls=TlsFiles(good.ca, good.cert, ""))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podbgp", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_cli_takes_the_tls_files_in_the_datastore_url(etcd_tls: EtcdCluster) -> None:
    init = cli("datastore", "init", "--datastore", etcd_tls.url)
    assert init.returncode == 0, init.stderr
    show = cli("datastore", "show", "--datastore", etcd_tls.url)
    assert show.returncode == 0 and "cluster" in show.stdout.lower(), show.stdout + show.stderr
    assert etcd_tls.tls is not None
    bare = "etcd:" + etcd_tls.endpoints[0] + f"?ca={etcd_tls.tls.ca}"  # no client certificate
    refused = cli("datastore", "show", "--datastore", bare)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    lines = [x for x in refused.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "refused the handshake" in lines[0], refused.stderr


def test_daemon_with_a_missing_ca_file_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "127.0.0.1/8"\n[bgp]\nenabled = false\n'
        '[datastore]\nkind = "etcd"\nendpoints = ["https://127.0.0.1:2379"]\n'
        f'ca_file = "{tmp_path}/gone/ca.pem"\n[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
        f'[fib]\nenabled = false\n[api]\nsocket = "{tmp_path}/podbgp.sock"\nmetrics = ""\n'
    )
    proc = cli("run", "--config", str(config))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"CA file {tmp_path}/gone/ca.pem: No such file or directory" in proc.stderr
