"""The Prometheus endpoint of a running node, scraped and parsed; the control socket's
owner check; `podbgp peer shutdown|enable|reset` and `podbgp show peers` through it. On a
three-node mesh whose n1 runs with `[api] metrics = "127.0.0.1:0"`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import Cluster, blocks, kill, sessions, start, start_daemon, stop, wait
from prometheus_client.parser import text_string_to_metric_families

from podbgp.lab.labplan import render_node_config
from podbgp.lab.netns import IP

pytestmark = [pytest.mark.root, pytest.mark.e2e]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("metrics")), "mesh", nodes=3, spare=0)
    try:
        kill(c, "n1", signal.SIGTERM)
        text = render_node_config(c.plan, c.plan.node("n1"))
        start_daemon(c, "n1", text.replace('metrics = ""', 'metrics = "127.0.0.1:0"'))
        others = {c.plan.node(n).ip for n in ("n2", "n3")}
        wait(lambda: set(sessions(c, "n1")) == others, 30, "n1's sessions back")
        wait(lambda: c.ask("n1", "show.node")["converged"], 30, "n1 converged")
        yield c
    finally:
        stop(c)


def scrape(c: Cluster, node: str) -> Samples:
    """GET /metrics inside the node's namespace, parsed by prometheus_client's own parser."""
    url = f"http://{c.ask(node, 'show.node')['metrics']}/metrics"
    code = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    )
    out = subprocess.run([IP, "netns", "exec", c.ns(node), sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
    samples: Samples = {}
    for family in text_string_to_metric_families(out):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {key}; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_metrics_endpoint(cluster: Cluster) -> None:
    c = cluster
    others = [c.plan.node(n).ip for n in ("n2", "n3")]
    wait(lambda: all(len(blocks(c, n)) == 1 for n in ("n1", "n2", "n3")), 10, "one block each")
    s = scrape(c, "n1")
    for peer in others:
        assert value(s, "podbgp_bgp_session_state", peer=peer, state="Established") == 1
        assert value(s, "podbgp_bgp_session_state", peer=peer, state="Idle") == 0
        assert value(s, "podbgp_bgp_session_uptime_seconds", peer=peer) > 0
        assert value(s, "podbgp_bgp_updates_total", peer=peer, direction="in") >= 1
        assert value(s, "podbgp_bgp_updates_total", peer=peer, direction="out") >= 1
        # Each mesh peer sends its own block; n1 sends only its own (iBGP split horizon).
        for kind in ("received", "accepted", "advertised"):
            got = value(s, "podbgp_bgp_prefixes", peer=peer, family="ipv4", kind=kind)
            assert got == 1, (peer, kind, got)
    # A blackhole for n1's block and one route to each other node's block.
    assert value(s, "podbgp_fib_routes", kind="desired") == 3
    assert value(s, "podbgp_fib_routes", kind="installed") == 3
    assert value(s, "podbgp_fib_drift_repairs_total") == 0
    assert value(s, "podbgp_ipam_blocks", pool="10.244.0.0/16") == 3  # the pool, cluster-wide
    assert value(s, "podbgp_ipam_addresses", pool="10.244.0.0/16", kind="used") == 3
    assert value(s, "podbgp_decision_runs_total") >= 2
    assert value(s, "podbgp_decision_seconds_total") > 0

    rows = {p["address"]: p for p in c.ask("n1", "show.peers")}
    for peer in others:
        assert rows[peer]["prefixes_received"] == 1
        assert rows[peer]["prefixes_advertised"] == 1


def test_control_socket_refuses_another_user(cluster: Cluster) -> None:
    """The socket file is 0600 in a 0700 directory, and SO_PEERCRED is checked too."""
    path = str(cluster.plan.socket_path("n1"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    code = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({path!r})\n"
        "except PermissionError:\n"
        "    print('refused: permission'); sys.exit(0)\n"
        's.sendall(b\'{"cmd": "show.node"}\\n\')\n'
        "print(s.recv(4096).decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20, check=True).stdout  # fmt: skip
    assert "refused: permission" in out or "permission denied" in out, out
    assert '"ok": true' not in out


def podbgp(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podbgp", *args, "--socket",
                           str(c.plan.socket_path("n1"))],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


def test_peer_shutdown_and_enable_from_the_cli(cluster: Cluster) -> None:
    c = cluster
    n1, n2 = c.plan.node("n1").ip, c.plan.node("n2").ip
    before_n3 = sessions(c, "n1")[c.plan.node("n3").ip]
    out = podbgp(c, "peer", "shutdown", n2, "--message", "maintenance window")
    assert out.returncode == 0, out.stderr
    wait(lambda: n2 not in sessions(c, "n1") and n1 not in sessions(c, "n2"), 10, "session down")
    row = {p["address"]: p for p in c.ask("n1", "show.peers")}[n2]
    assert (row["admin"], row["state"]) == ("down", "Idle")
    error = {p["address"]: p for p in c.ask("n2", "show.peers")}[n1]["last_error"]
    # Cease / Administrative Shutdown, sent as a Hard Reset between N-bit speakers (RFC 8538).
    assert (error["code"], error["subcode"], error["inner_code"], error["inner_subcode"]) == (
        6, 9, 6, 2), error  # fmt: skip
    assert "maintenance window" in error["reason"], error  # RFC 9003 communication
    assert podbgp(c, "peer", "enable", n2).returncode == 0
    wait(lambda: n2 in sessions(c, "n1"), 20, "session back after enable")
    table = podbgp(c, "show", "peers").stdout.splitlines()
    assert table[0].split()[:3] == ["PEER", "AS", "STATE"]
    assert any(line.split()[:3] == [n2, "64512", "Established"] for line in table[1:]), table
    assert sessions(c, "n1")[c.plan.node("n3").ip] == before_n3  # the other one untouched
    bad = podbgp(c, "peer", "reset", "10.1.2.3")
    assert bad.returncode == 1 and "no such peer 10.1.2.3" in bad.stderr
