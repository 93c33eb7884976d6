"""Topology by labels with real podbgp daemons: the mesh password (TCP MD5, RFC 2385)
and in-cluster peers chosen by `peer_selector`, changed live by SIGHUP.

One lab (the `mesh` option, three nodes on one subnet, a shared SQLite registry),
these tests in order:
1. `bgp.mesh_password` set on every node: every mesh session comes back, signed.
2. One node with another password: it has no session at all, the two others keep
   theirs (same uptime), and the log says why the dials get no answer; the right
   password brings it back.
3. The mesh replaced by `peer_selector = "has(bgp)"` on the nodes labelled `bgp`:
   taking the label off one node (a reload of its `node.labels`, which rewrites its
   registry record) removes exactly its two sessions, putting it back adds them,
   and the session between the two other nodes never resets.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import Cluster, sessions, start, stop, wait

from podbgp.lab.labplan import render_node_config
from podbgp.topology import PASSIVE_DIAL_DELAY

pytestmark = [pytest.mark.root, pytest.mark.e2e]

NODES = ("n1", "n2", "n3")
SETTLE = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("labels")), "mesh", nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


def reload(c: Cluster, node: str, *, bgp: str = "", labels: str = "", extra: str = "") -> None:
    """The lab's config for `node` with `bgp` lines added to [bgp], `labels` as
    node.labels and `extra` tables at the end; then SIGHUP."""
    text = render_node_config(c.plan, c.plan.node(node))
    if "mesh =" in bgp:
        text = text.replace("mesh = true\n", "", 1)
    if labels:
        text = text.replace("\n[bgp]\n", f"labels = {labels}\n\n[bgp]\n", 1)
    text = text.replace("\n[bgp]\n", f"\n[bgp]\n{bgp}", 1)
    c.plan.config_path(node).write_text(text + extra)
    os.kill(c.pid(node), signal.SIGHUP)


def ip(c: Cluster, node: str) -> str:
    return c.plan.node(node).ip


def full_mesh(c: Cluster) -> bool:
    return all(set(sessions(c, n)) == {ip(c, m) for m in NODES if m != n} for n in NODES)


def collisions(c: Cluster, node: str) -> int:
    """Connection collisions in the node's log so far, resolved by it or by its peer."""
    text = c.log(node, 100_000)
    return text.count("connection collision") + text.count("Connection Collision Resolution")


def new_sessions(c: Cluster, since: float) -> bool:
    """Every pair Established, each session newer than `since` (wall clock)."""
    return full_mesh(c) and all(at >= since for n in NODES for at, _ in sessions(c, n).values())


def test_same_mesh_password_everywhere(cluster: Cluster) -> None:
    c = cluster
    wait(lambda: full_mesh(c), SETTLE, "the mesh up before the password")
    t0 = time.time() - 1
    before = {n: collisions(c, n) for n in NODES}
    for n in NODES:
        reload(c, n, bgp='mesh_password = "s3cret"\n')
    # The mesh sessions' options changed: each resets once and comes back signed.
    wait(lambda: new_sessions(c, t0), SETTLE, "every mesh session back with TCP MD5")
    # Both ends re-added each pair at once, yet only the active end dialled: the
    # passive end's one dial waits for it (podbgp.topology), so nothing collided.
    time.sleep(PASSIVE_DIAL_DELAY + 1)
    assert {n: collisions(c, n) for n in NODES} == before
    assert new_sessions(c, t0)


def test_another_password_gets_no_session(cluster: Cluster) -> None:
    c = cluster
    wait(lambda: full_mesh(c), SETTLE, "the signed mesh up")
    kept = sessions(c, "n1")[ip(c, "n2")]
    reload(c, "n3", bgp='mesh_password = "wrong"\n')
    wait(lambda: not sessions(c, "n3"), SETTLE, "n3 without sessions")
    wait(
        lambda: "TCP MD5 is on" in c.log("n3", 200) and "TCP MD5 is on" in c.log("n1", 200),
        SETTLE,
        "n1 and n3 say why their dials get no answer",
    )
    # Still nothing after several retries: the kernels drop the segments (RFC 2385).
    time.sleep(4)
    assert not sessions(c, "n3")
    assert ip(c, "n3") not in sessions(c, "n1") and ip(c, "n3") not in sessions(c, "n2")
    line = next(x for x in c.log("n1", 200).splitlines() if "TCP MD5 is on" in x)
    assert ip(c, "n3") in line and "no answer to connect" in line
    assert sessions(c, "n1")[ip(c, "n2")] == kept, "n1-n2 reset by n3's password"

    reload(c, "n3", bgp='mesh_password = "s3cret"\n')
    wait(lambda: full_mesh(c), SETTLE, "n3 back with the right password")
    assert sessions(c, "n1")[ip(c, "n2")] == kept


SELECT = """
[[bgp.peer]]
peer_selector = "has(bgp)"
node_selector = "has(bgp)"
"""
MESH_OFF = 'mesh = false\nmesh_password = "s3cret"\n'


def test_label_change_adds_and_removes_exactly_that_session(cluster: Cluster) -> None:
    c = cluster
    t0 = time.time() - 1
    for n in NODES:
        reload(c, n, bgp=MESH_OFF, labels='{ bgp = "on" }', extra=SELECT)
    # From mesh entries to selected ones: each session resets once.
    wait(lambda: new_sessions(c, t0), SETTLE, "every pair selected by label")
    kept = sessions(c, "n1")[ip(c, "n2")]
    assert sessions(c, "n2")[ip(c, "n1")]

    # n3 loses the label: n1 and n2 no longer select it, nor it them.
    reload(c, "n3", bgp=MESH_OFF, labels='{ other = "x" }', extra=SELECT)
    wait(
        lambda: (
            ip(c, "n3") not in sessions(c, "n1")
            and ip(c, "n3") not in sessions(c, "n2")
            and not sessions(c, "n3")
        ),
        SETTLE,
        "n3's sessions gone",
    )
    assert sessions(c, "n1") == {ip(c, "n2"): kept}

    # ... and gets it back: exactly its two sessions return.
    reload(c, "n3", bgp=MESH_OFF, labels='{ bgp = "on" }', extra=SELECT)
    wait(lambda: full_mesh(c), SETTLE, "n3's sessions back")
    assert sessions(c, "n1")[ip(c, "n2")] == kept
