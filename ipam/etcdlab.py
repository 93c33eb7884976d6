"""Throwaway etcd servers for tests, benchmarks and the lab (not for production).

`EtcdCluster.start(n)` runs `n` etcd members on 127.0.0.1 with a temporary
data directory and returns once the cluster has a leader. Ports are drawn at
random below 32768: a port found by binding to port 0 lies in the ephemeral
range, where an outgoing connection can take it before etcd binds it (seen on
this machine, RECIPES.md section 8); a start that fails is retried with new
ports. `stop()` kills every member and removes the data directory; `kill(i)`
kills one member with SIGKILL, as a crash would.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def have_etcd() -> str | None:
    """None if an etcd binary is available, else the reason it is not."""
    if not os.access(ETCD, os.X_OK):
        return "etcd is not installed (Debian package etcd-server)"
    return None


class EtcdCluster:
    """A running set of etcd members (see the module docstring)."""

    def __init__(self, base: Path, client_ports: list[int], peer_ports: list[int]) -> None:
        self.base = base
        self.client_ports = client_ports
        self.peer_ports = peer_ports
        self.procs: list[subprocess.Popen[bytes] | None] = []

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    @property
    def url(self) -> str:
        """The `--datastore` form: ``etcd:http://...,http://...``."""
        return "etcd:" + ",".join(self.endpoints)

    @classmethod
    def start(cls, members: int = 1, tries: int = 6, timeout: float = 20.0) -> EtcdCluster:
        last = ""
        for _ in range(tries):
            ports = random.sample(range(20000, 32000, 2), members)
            base = Path(tempfile.mkdtemp(prefix="podbgp-etcd-"))
            cluster = cls(base, ports, [p + 1 for p in ports])
            try:
                cluster._launch()
                if cluster._wait_healthy(timeout):
                    return cluster
                last = cluster.log_tail()
            except OSError as e:
                last = str(e)
            cluster.stop()
        raise RuntimeError(f"etcd did not start after {tries} tries: {last}")

    def _launch(self) -> None:
        names = [f"m{i}" for i in range(len(self.client_ports))]
        initial = ",".join(
            f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, self.peer_ports, strict=True)
        )
        for name, cp, pp in zip(names, self.client_ports, self.peer_ports, strict=True):
            d = self.base / name
            d.mkdir()
            cmd = [
                ETCD,
                f"--name={name}",
                f"--data-dir={d / 'data'}",
                f"--listen-client-urls=http://127.0.0.1:{cp}",
                f"--advertise-client-urls=http://127.0.0.1:{cp}",
                f"--listen-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{pp}",
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
        url = f"http://127.0.0.1:{self.client_ports[index]}/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

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
