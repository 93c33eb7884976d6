"""`podbgp audit` on a running mesh lab: each break, made on purpose, is found and named.

Three nodes in the unencapsulated iBGP mesh with one SQLite datastore: a healthy
cluster audits clean (exit 0); a block announced while its affinity is pending and a
stray route inside the pool that no block owns; one block affine to two nodes; a route
podbgp does not own taking the slot of a pod route in a kernel; a node's daemon
stopped (its sessions down everywhere, its socket unreachable) — each exit 1 with the
finding named, on the nodes that can see it.
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

from ipam.model import affinity_key, dumps
from ipam.store.base import Delete, Put
from podbgp.lab.labplan import POOL, render_node_config
from podbgp.lab.netns import IP

pytestmark = [pytest.mark.root, pytest.mark.e2e]
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("audit")), "mesh", nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


def run_audit(c: Cluster, *nodes: str) -> tuple[int, list[dict[str, Any]]]:
    socks = [a for n in nodes for a in ("--socket", str(c.plan.socket_path(n)))]
    out = subprocess.run([sys.executable, "-m", "podbgp", "audit", "--json", *socks],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def found(reports: list[dict[str, Any]], node: str) -> set[tuple[str, str]]:
    r = next(r for r in reports if r["node"] == node)
    return {(f["check"], f["subject"]) for f in r["findings"]}


def pending() -> bytes:
    return dumps({"state": "pending", "ts": 0.0})


def test_healthy_cluster_is_clean(cluster: Cluster) -> None:
    code, reports = run_audit(cluster, *NODES)
    assert code == 0, reports
    assert all(r["ok"] for r in reports)
    text = subprocess.run([sys.executable, "-m", "podbgp", "audit", "--socket",
                           str(cluster.plan.socket_path("n1"))],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert text.returncode == 0 and text.stdout.strip() == "n1: ok"


def test_pending_affinity_advertised_and_unowned_route(cluster: Cluster) -> None:
    c = cluster
    pend, stray = "10.244.250.0/26", "10.244.251.0/26"
    assert ipaddress.ip_network(pend).subnet_of(ipaddress.ip_network(POOL))  # type: ignore[arg-type]
    store_write(c, [Put(affinity_key("n2", ipaddress.ip_network(pend)), pending())])
    extra = "".join(f'\n[[bgp.originate]]\nprefix = "{p}"\n' for p in (pend, stray))
    c.plan.config_path("n2").write_text(render_node_config(c.plan, c.plan.node("n2")) + extra)
    os.kill(c.pid("n2"), signal.SIGHUP)
    try:
        wait(lambda: {pend, stray} <= set(routes(c.ns("n1"))), 20, "n1 routes n2's extra prefixes")
        code, reports = run_audit(c, "n1", "n2")
        assert code == 1
        for node in ("n1", "n2"):
            got = found(reports, node)
            assert ("pending-affinity-advertised", pend) in got, (node, got)
            assert ("route-to-unowned-block", stray) in got, (node, got)
        r2 = next(r for r in reports if r["node"] == "n2")
        [why] = [f["detail"] for f in r2["findings"] if f["subject"] == pend]
        assert why.startswith("announced by this node"), why
    finally:
        c.plan.config_path("n2").write_text(render_node_config(c.plan, c.plan.node("n2")))
        os.kill(c.pid("n2"), signal.SIGHUP)
        store_write(c, [Delete(affinity_key("n2", ipaddress.ip_network(pend)))])
        wait(lambda: stray not in routes(c.ns("n1")), 20, "n1 dropped the stray route")
    wait(lambda: run_audit(c, *NODES)[0] == 0, 20, "clean again")


def test_block_affine_to_two_nodes(cluster: Cluster) -> None:
    c = cluster
    block = ipaddress.ip_network(blocks(c, "n1")[0])
    key = affinity_key("n3", block)
    store_write(c, [Put(key, dumps({"state": "confirmed", "ts": 0.0}))])
    try:
        code, reports = run_audit(c, "n2")
        assert code == 1 and ("overlapping-affinity", str(block)) in found(reports, "n2")
    finally:
        store_write(c, [Delete(key)])
    wait(lambda: run_audit(c, *NODES)[0] == 0, 20, "clean again")


def test_foreign_route_in_a_pod_route_slot(cluster: Cluster) -> None:
    c = cluster
    block = blocks(c, "n2")[0]
    ns = c.ns("n1")
    subprocess.run([IP, "-n", ns, "route", "replace", block, "dev", "lo", "proto", "static"],
                   check=True, timeout=10)  # fmt: skip
    try:
        wait(lambda: routes(ns, "static").get(block), 5, "the foreign route in place")
        code, reports = run_audit(c, "n1")
        got = found(reports, "n1")
        assert code == 1 and ("kernel-route", block) in got, got
        assert ("block-not-routed", block) in got
        # podbgp never touches a route it does not own: still there.
        assert block in routes(ns, "static")
    finally:
        subprocess.run([IP, "-n", ns, "route", "del", block, "proto", "static"], timeout=10)
    wait(lambda: block in routes(ns), 20, "podbgp's route back once the slot is free")
    wait(lambda: run_audit(c, *NODES)[0] == 0, 20, "clean again")


def test_stopped_node(cluster: Cluster) -> None:
    """Last: n3's daemon stops; the others find its session down, n3 does not answer."""
    c = cluster
    n3 = c.plan.node("n3").ip
    os.kill(c.pid("n3"), signal.SIGTERM)
    proc = c.procs.get("n3")
    if proc is not None:
        proc.wait(20)

    def down_everywhere() -> list[dict[str, Any]] | None:
        code, reports = run_audit(c, *NODES)
        ok = code == 1 and all(("session-down", n3) in found(reports, n) for n in ("n1", "n2"))
        return reports if ok else None

    reports = wait(down_everywhere, 30, "n3's sessions reported down")
    r3 = next(r for r in reports if r["node"] == str(c.plan.socket_path("n3")))
    assert r3["findings"][0]["check"] == "unreachable"
