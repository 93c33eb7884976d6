"""Throwaway etcd servers for tests, benchmarks and the lab (not for production).

`EtcdCluster.start(n)` runs `n` etcd members on 127.0.0.1 with a temporary
data directory and returns once the cluster has a leader. Ports are drawn at
random below 32768: a port found by binding to port 0 lies in the ephemeral
range, where an outgoing connection can take it before etcd binds it (seen on
this machine, RECIPES.md section 8); a start that fails is retried with new
ports. `stop()` kills every member and removes the data directory; `kill(i)`
kills one member with SIGKILL, as a crash would.

`start(n, tls=True)` serves clients over TLS only, with ``--client-cert-auth``:
a throwaway CA (made with the ``openssl`` command) signs the members' server
certificate and one client certificate; `tls` names the files, `endpoints` are
``https://`` and `url` carries them (``etcd:https://...?ca=...&cert=...&key=...``).

`start_at(hosts, wrap)` runs one member per host address on the standard ports
2379/2380 with each command prefixed by `wrap` — for the lab, ``ip netns exec NS``
puts the members in a namespace of their own, where the ports are free and the
members are reachable from other namespaces by routing; its health is then probed
with `etcdctl` through the same prefix.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ipam.store.etcd import TlsFiles

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
CLIENT_PORT = 2379
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True, slots=True)
class LabTls:
    """A throwaway CA and what it signed (PEM files), for an etcd that serves TLS."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, where: Path, hosts: list[str]) -> LabTls:
        """Make a CA, a server certificate for `hosts` (and localhost) and a client
        certificate under `where`, with the openssl command (EC P-256, valid 2 days)."""
        where.mkdir(parents=True)
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

        def run(*args: str) -> None:
            subprocess.run([OPENSSL, *args], cwd=where, check=True, capture_output=True)

        run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=podbgp lab etcd CA")  # fmt: skip
        sans = ",".join(["DNS:localhost", *(f"IP:{h}" for h in sorted(set(hosts)))])
        # etcd's JSON gateway dials etcd's own gRPC port with the server certificate, so
        # with --client-cert-auth that certificate must allow client use too (as kubeadm's do)
        for name, usage, alt in (("server", "serverAuth,clientAuth", sans),
                                 ("client", "clientAuth", "")):  # fmt: skip
            ext = where / f"{name}.ext"
            ext.write_text(
                f"extendedKeyUsage={usage}\n" + (f"subjectAltName={alt}\n" if alt else "")
            )
            run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=podbgp lab etcd {name}")  # fmt: skip
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name)  # fmt: skip
        return cls(where / "ca.pem", where / "server.pem", where / "server.key",
                   where / "client.pem", where / "client.key")  # fmt: skip

    @property
    def files(self) -> TlsFiles:
        """What a client of this etcd needs (the CA and the client certificate)."""
        return TlsFiles(str(self.ca), str(self.client_cert), str(self.client_key))

    @property
    def query(self) -> str:
        """The datastore URL's TLS options."""
        return self.files.query

    def client_context(self) -> ssl.SSLContext:
        return self.files.context()


def have_etcd() -> str | None:
    """None if an etcd binary is available, else the reason it is not."""
    if not os.access(ETCD, os.X_OK):
        return "etcd is not installed (Debian package etcd-server)"
    return None


class EtcdCluster:
    """A running set of etcd members (see the module docstring)."""

    def __init__(
        self,
        base: Path,
        client_ports: list[int],
        peer_ports: list[int],
        hosts: list[str] | None = None,
        wrap: tuple[str, ...] = (),
        tls: LabTls | None = None,
    ) -> None:
        self.base = base
        self.tls = tls
        self.client_ports = client_ports
        self.peer_ports = peer_ports
        self.hosts = hosts or ["127.0.0.1"] * len(client_ports)
        self.wrap = wrap
        self.procs: list[subprocess.Popen[bytes] | None] = []

    @property
    def endpoints(self) -> list[str]:
        scheme = "https" if self.tls else "http"
        return [f"{scheme}://{h}:{p}" for h, p in zip(self.hosts, self.client_ports, strict=True)]

    @property
    def url(self) -> str:
        """The `--datastore` form: ``etcd:http://...,http://...`` (with TLS, the files)."""
        return "etcd:" + ",".join(self.endpoints) + (self.tls.query if self.tls else "")

    @classmethod
    def start(
        cls, members: int = 1, tries: int = 6, timeout: float = 20.0, tls: bool = False
    ) -> EtcdCluster:
        last = ""
        for _ in range(tries):
            ports = random.sample(range(20000, 32000, 2), members)
            base = Path(tempfile.mkdtemp(prefix="podbgp-etcd-"))
            try:
                certs = LabTls.make(base / "tls", ["127.0.0.1"]) if tls else None
            except (OSError, subprocess.CalledProcessError):
                shutil.rmtree(base, ignore_errors=True)
                raise
            cluster = cls(base, ports, [p + 1 for p in ports], tls=certs)
            try:
                cluster._launch()
                if cluster._wait_healthy(timeout):
                    return cluster
                last = cluster.log_tail()
            except OSError as e:
                last = str(e)
            cluster.stop()
        raise RuntimeError(f"etcd did not start after {tries} tries: {last}")

    @classmethod
    def start_at(
        cls, hosts: list[str], wrap: tuple[str, ...], base: Path, timeout: float = 30.0
    ) -> EtcdCluster:
        """One member per address in `hosts`, each command run through `wrap` (a namespace),
        its data under `base` (created; `stop` removes it)."""
        base.mkdir(parents=True)
        n = len(hosts)
        cluster = cls(base, [CLIENT_PORT] * n, [CLIENT_PORT + 1] * n, list(hosts), wrap)
        try:
            cluster._launch()
            if cluster._wait_healthy(timeout):
                return cluster
            last = cluster.log_tail()
        except OSError as e:
            last = str(e)
        cluster.stop()
        raise RuntimeError(f"etcd did not start at {', '.join(hosts)}: {last}")

    def _launch(self) -> None:
        names = [f"m{i}" for i in range(len(self.client_ports))]
        members = list(zip(names, self.hosts, self.client_ports, self.peer_ports, strict=True))
        initial = ",".join(f"{n}=http://{h}:{pp}" for n, h, _, pp in members)
        scheme = "https" if self.tls else "http"
        secure = []
        if self.tls:  # clients over TLS only, each with a certificate of our CA
            secure = [f"--cert-file={self.tls.server_cert}", f"--key-file={self.tls.server_key}",
                      f"--trusted-ca-file={self.tls.ca}", "--client-cert-auth=true"]  # fmt: skip
        for name, host, cp, pp in members:
            d = self.base / name
            d.mkdir()
            cmd = [
                *self.wrap,
                ETCD,
                f"--name={name}",
                f"--data-dir={d / 'data'}",
                f"--listen-client-urls={scheme}://{host}:{cp}",
                f"--advertise-client-urls={scheme}://{host}:{cp}",
                *secure,
                f"--listen-peer-urls=http://{host}:{pp}",
                f"--initial-advertise-peer-urls=http://{host}:{pp}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                "--initial-cluster-token=podbgp-test",
                "--logger=zap",
                f"--log-outputs={d / 'etcd.log'}",
                "--log-level=warn",
            ]
            with open(d / "etcd.out", "wb") as out:
                self.procs.append(
                    subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=d)
                )

    def healthy(self, index: int) -> bool:
        if self.wrap:
            return self._healthy_wrapped(index)
        url = f"{self.endpoints[index]}/health"
        ctx = self.tls.client_context() if self.tls else None
        try:
            with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    def _healthy_wrapped(self, index: int) -> bool:
        """The member's health asked with etcdctl from inside `wrap` (RECIPES.md section 8)."""
        cmd = [*self.wrap, ETCDCTL, f"--endpoints={self.endpoints[index]}",
               "--dial-timeout=1s", "--command-timeout=2s", "endpoint", "health"]  # fmt: skip
        env = {**os.environ, "ETCDCTL_API": "3"}
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=5, env=env, check=False)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p is not None and p.poll() is not None for p in self.procs):
                return False
            if all(self.healthy(i) for i in range(len(self.procs))):
                return True
            time.sleep(0.05)
        return False

    def kill(self, index: int) -> None:
        """SIGKILL one member (a crash); the others keep quorum if a majority remains."""
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.procs[index] = None

    def leader(self) -> int:
        """The index of the live member that leads (etcd's Maintenance.Status, asked over HTTP)."""
        for i, endpoint in enumerate(self.endpoints):
            if self.procs[i] is None:
                continue
            req = urllib.request.Request(f"{endpoint}/v3/maintenance/status", data=b"{}")
            ctx = self.tls.client_context() if self.tls else None
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                st = json.load(r)
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                return i
        raise RuntimeError("etcd: no member leads")

    def log_tail(self) -> str:
        tails = []
        for f in sorted(self.base.glob("*/etcd.*")):
            tails.append(f"{f}: {f.read_text(errors='replace')[-500:]}")
        return "\n".join(tails)

    def stop(self) -> None:
        for i in range(len(self.procs)):
            self.kill(i)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
