"""`podbgp watch` on a running mesh lab: route and peer events arrive as JSON lines.

n2 announces and withdraws a prefix (SIGHUP with a `[[bgp.originate]]`): a watcher on n1
sees the best path appear with n2 as its source, then the withdrawal; a watcher filtered
to another prefix sees neither. A reset of n1's session to n3 shows as down then up.
Wrong arguments are one line and exit 2.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import Cluster, sessions, start, stop, wait

from podbgp.lab.labplan import render_node_config

pytestmark = [pytest.mark.root, pytest.mark.e2e]
PREFIX = "10.250.7.0/24"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("watch")), "mesh", nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


class Watcher:
    """`podbgp watch --json` in the background, its events in a queue."""

    def __init__(self, c: Cluster, node: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "podbgp", "watch", "--json", "--socket",
             str(c.plan.socket_path(node)), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.proc.stderr is not None
        header = self.proc.stderr.readline()  # written once the daemon answered
        assert header.startswith('{"watching"'), header
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next_matching(self, want: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                break
            if all(e.get(k) == v for k, v in want.items()):
                return e
        raise AssertionError(f"no event {want} within {timeout} s")

    def seen(self) -> list[dict[str, Any]]:
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _originate(c: Cluster, node: str, on: bool) -> None:
    extra = f'\n[[bgp.originate]]\nprefix = "{PREFIX}"\n' if on else ""
    c.plan.config_path(node).write_text(render_node_config(c.plan, c.plan.node(node)) + extra)
    os.kill(c.pid(node), signal.SIGHUP)


def test_route_events(cluster: Cluster) -> None:
    c = cluster
    everything = Watcher(c, "n1")
    elsewhere = Watcher(c, "n1", "--events", "route", "--prefix", "10.251.0.0/16")
    try:
        _originate(c, "n2", True)
        e = everything.next_matching({"type": "route", "prefix": PREFIX, "event": "best"})
        assert e["peer"] == c.plan.node("n2").ip and e["next_hops"] == [c.plan.node("n2").ip]
        _originate(c, "n2", False)
        everything.next_matching({"type": "route", "prefix": PREFIX, "event": "withdrawn"})
        assert elsewhere.seen() == []
    finally:
        everything.close()
        elsewhere.close()


def test_peer_events(cluster: Cluster) -> None:
    c = cluster
    n3 = c.plan.node("n3").ip
    w = Watcher(c, "n1", "--events", "peer")
    try:
        before = sessions(c, "n1")[n3]
        out = subprocess.run([sys.executable, "-m", "podbgp", "peer", "reset", n3, "--socket",
                              str(c.plan.socket_path("n1"))], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
        assert out.returncode == 0, out.stderr
        down = w.next_matching({"type": "peer", "peer": n3, "event": "down"})
        assert down["reason"]
        up = w.next_matching({"type": "peer", "peer": n3, "event": "up"})
        assert "ipv4" in up["families"]
        wait(lambda: sessions(c, "n1").get(n3, before) != before, 20, "the session is back")
        assert all(e["type"] == "peer" for e in w.seen())
    finally:
        w.close()


def test_wrong_arguments(cluster: Cluster) -> None:
    sock = str(cluster.plan.socket_path("n1"))
    bad = subprocess.run([sys.executable, "-m", "podbgp", "watch", "--events", "routes",
                          "--socket", sock], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "events:" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "podbgp", "watch", "--prefix", "nope",
                          "--socket", sock], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
