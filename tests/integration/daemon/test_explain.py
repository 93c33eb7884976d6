"""`podbgp explain` on a running lab: each break in the chain, made on purpose, is named.

The `peered` option (each node its own AS, eBGP to an FRR ToR): a healthy remote pod
address, a node's own block, an export policy rejecting the block towards the ToR
(the rule is named), the other nodes then having no path at all, a kernel route deleted
by hand (put back, and the drift named), an affinity left pending, the ToR filtering a
block on import, a node's daemon stopped (its session down), and garbage as the argument
(exit 2, one line).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import Cluster, blocks, routes, start, stop, store_write, wait

from ipam.block import Block
from ipam.model import affinity_key, block_key, dumps
from ipam.store.base import Delete, Put
from podbgp.lab.labplan import TOR_ASN, render_node_config, tor_address
from podbgp.lab.netns import IP
from podbgp.lab.peers_frr import VTYSH

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


def test_affinity_left_pending(cluster: Cluster) -> None:
    """A claim interrupted between writing the block and confirming the affinity."""
    c = cluster
    block = ipaddress.ip_network("10.244.252.0/26")
    keys = [affinity_key("n2", block), block_key(block)]
    store_write(c, [Put(keys[0], dumps({"state": "pending", "ts": 0.0})),
               Put(keys[1], dumps(Block.new(block, "n2").to_json()))])  # fmt: skip
    try:
        r = explain(c, "n1", "10.244.252.9")
        assert r["ipam"]["block"] == str(block) and r["ipam"]["affinity"] == "n2"
        assert r["ipam"]["affinity_state"] == "pending"
        assert "pending" in r["origin"]["why"] and "n2" in r["origin"]["why"]
        assert any("nobody announces it" in b and "pending" in b for b in r["breaks"])
    finally:
        store_write(c, [Delete(k) for k in keys])


def test_peer_filters_it(cluster: Cluster) -> None:
    """The ToR drops n1's block on import: n1 sent it, n2 never gets it back."""
    c = cluster
    block = blocks(c, "n1")[0]
    n1 = c.plan.node("n1").ip
    tor = [
        "configure terminal",
        f"ip prefix-list hide-n1 seq 5 deny {block}",
        "ip prefix-list hide-n1 seq 10 permit 0.0.0.0/0 le 32",
        "route-map hide-n1 permit 10",
        "match ip address prefix-list hide-n1",
        "exit",
        f"router bgp {TOR_ASN}",
        "address-family ipv4 unicast",
        "neighbor RANGE0 route-map hide-n1 in",
    ]  # the lab's listen range (peers_frr)
    vtysh(c, *tor)
    vtysh(c, f"clear bgp ipv4 unicast {n1} soft in")
    try:
        wait(lambda: block not in routes(c.ns("n2")), 20, "n2 lost n1's block")
        r1 = explain(c, "n1", block)
        tor_row = peer_row(r1, tor_address(0))
        assert tor_row["step"] == "sent" and tor_row["advertised"] is True
        r2 = explain(c, "n2", block)
        assert r2["rib"]["prefix"] is None
        assert any("nobody announces it" in b and "n1" in b for b in r2["breaks"])
    finally:
        vtysh(c, "configure terminal", f"router bgp {TOR_ASN}", "address-family ipv4 unicast",
              "no neighbor RANGE0 route-map hide-n1 in")  # fmt: skip
        vtysh(c, f"clear bgp ipv4 unicast {n1} soft in")
        wait(lambda: block in routes(c.ns("n2")), 20, "n1's block back at n2")


def vtysh(c: Cluster, *commands: str) -> str:
    args = [VTYSH, "--vty_socket", str(c.plan.state_dir / "tor-frr" / "run")]
    for cmd in commands:
        args += ["-c", cmd]
    out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


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
    # A SIGTERM is a graceful stop: the ToR may keep n3's routes as stale for the lab's
    # restart time (30 s, RFC 4724) before they go; wait that plus a margin.
    wait(lambda: block not in routes(c.ns("n1")), 60, "n1 lost n3's block")
    r = explain(c, "n1", block)
    assert r["rib"]["prefix"] is None
    assert any("nobody announces it" in b for b in r["breaks"]), r["breaks"]
