"""`podbgp explain` on a running lab: each break in the chain, made on purpose, is named.

The `peered` option (each node its own AS, eBGP to an FRR ToR): a healthy remote pod
address, a node's own block, an export policy rejecting the block towards the ToR
(the rule is named), the other nodes then having no path at all, a kernel route deleted
by hand (put back, and the drift named), a node's daemon stopped (its session down), and
garbage as the argument (exit 2, one line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import Cluster, blocks, routes, start, stop, wait

from podbgp.lab.labplan import render_node_config, tor_address
from podbgp.lab.netns import IP

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("explain")), "peered", nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


def explain(c: Cluster, node: str, target: str) -> dict[str, Any]:
    return c.ask(node, "explain", target=target)  # type: ignore[no-any-return]


def cli(c: Cluster, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    sock = str(c.plan.socket_path(node))
    return subprocess.run([sys.executable, "-m", "podbgp", "explain", *args, "--socket", sock],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def peer_row(r: dict[str, Any], peer: str) -> dict[str, Any]:
    return next(p for p in r["peers"] if p["peer"] == peer)


def test_healthy_remote_pod(cluster: Cluster) -> None:
    c = cluster
    ip = c.pod_ip("n2")
    r = explain(c, "n1", ip)
    assert r["ipam"]["affinity"] == "n2" and r["ipam"]["affinity_state"] == "confirmed"
    assert r["ipam"]["allocated"] is True
    assert r["origin"]["originated"] is False and "n2" in r["origin"]["why"]
    best = r["rib"]["best"]
    assert best is not None and best["peer"] == tor_address(0)
    assert r["kernel"]["state"] == "ok", r["kernel"]
    assert r["breaks"] == [], r["breaks"]
    text = cli(c, "n1", ip)
    assert text.returncode == 0, text.stderr
    assert "no break in the chain" in text.stdout and "installed as planned" in text.stdout


def test_own_block(cluster: Cluster) -> None:
    c = cluster
    block = blocks(c, "n1")[0]
    r = explain(c, "n1", block)
    assert r["origin"]["originated"] is True and r["origin"]["prefix"] == block
    tor = peer_row(r, tor_address(0))
    assert tor["step"] == "sent" and tor["advertised"] is True
    assert tor["policy"]["policy"] == "local" and tor["policy"]["accepted"] is True
    assert r["breaks"] == []


def _reload(c: Cluster, node: str, tor_peer: str = "", extra: str = "") -> None:
    text = render_node_config(c.plan, c.plan.node(node))
    if tor_peer:
        text = text.replace('export = "local"\n', tor_peer)
    c.plan.config_path(node).write_text(text + extra)
    os.kill(c.pid(node), signal.SIGHUP)


def test_export_policy_rejects_block(cluster: Cluster) -> None:
    c = cluster
    block = blocks(c, "n1")[0]
    policy = f"""
[[policy]]
name = "hide-n1"
default_action = "accept"
[[policy.rule]]
match = {{ prefix = "{block}" }}
action = "reject"
"""
    _reload(c, "n1", tor_peer='export = "hide-n1"\n', extra=policy)
    try:
        wait(lambda: block not in routes(c.ns("n2")), 20, "n2 lost n1's block")
        r = explain(c, "n1", block)
        tor = peer_row(r, tor_address(0))
        assert tor["step"] == "export-policy" and tor["advertised"] is False, tor
        assert tor["policy"] == {"policy": "hide-n1", "accepted": False, "rule": 0,
                                 "why": "rule[0] matches: reject"}  # fmt: skip
        assert any("hide-n1" in b for b in r["breaks"]), r["breaks"]
        # Seen from n2: nobody announces it, and n1 is the node that would.
        r2 = explain(c, "n2", block)
        assert r2["rib"]["prefix"] is None
        assert any("nobody announces it" in b and "n1" in b for b in r2["breaks"]), r2["breaks"]
    finally:
        _reload(c, "n1")
        wait(lambda: block in routes(c.ns("n2")), 20, "n1's block back at n2")


def test_kernel_route_deleted_by_hand(cluster: Cluster) -> None:
    c = cluster
    block = blocks(c, "n2")[0]
    subprocess.run([IP, "-n", c.ns("n1"), "route", "del", block, "proto", "80"],
                   check=True, timeout=10)  # fmt: skip
    wait(lambda: block in routes(c.ns("n1")), 15, "the reconciler put the route back")
    r = explain(c, "n1", block)
    assert r["kernel"]["state"] == "ok"
    assert r["kernel"]["last_drift"]["what"] == "deleted", r["kernel"]
    assert "someone else" in cli(c, "n1", block).stdout


def test_garbage_argument(cluster: Cluster) -> None:
    bad = cli(cluster, "n1", "10.1.2.300")
    assert bad.returncode == 2 and "not an IP prefix or address" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_json_is_the_daemon_answer(cluster: Cluster) -> None:
    c = cluster
    out = cli(c, "n1", c.pod_ip("n3"), "--json")
    assert out.returncode == 0
    assert set(json.loads(out.stdout)) == {"query", "node", "ipam", "origin", "rib", "peers",
                                           "kernel", "breaks"}  # fmt: skip


def test_node_stopped(cluster: Cluster) -> None:
    """Last: n3's daemon stops for good; n1 still has its block through the ToR until the
    ToR's session to n3 goes, then nothing — and explain says nobody announces it."""
    c = cluster
    block = blocks(c, "n3")[0]
    proc = c.procs.get("n3")
    os.kill(c.pid("n3"), signal.SIGTERM)
    if proc is not None:
        proc.wait(20)
    wait(lambda: block not in routes(c.ns("n1")), 30, "n1 lost n3's block")
    r = explain(c, "n1", block)
    assert r["rib"]["prefix"] is None
    assert any("nobody announces it" in b for b in r["breaks"]), r["breaks"]
