"""Route-reflector groups by label (`bgp.route_reflector_group_label = "rack"`) with real
podbgp daemons on one subnet sharing a SQLite registry.

n1 reflects for rack r1, n2 for rack r2 (each its own cluster ID); n3 is a client. The
sessions follow n3's rack label, changed live by reload: in r1 it peers with n1 only, in
r2 with n2 only, in a rack without a reflector (r3) with both (the fallback). The
reflectors' own session never resets, and every block reaches every kernel through
the reflectors (RFC 4456: the next hop is kept).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import daemon_lab as dl
import pytest

from podbgp.lab.labplan import render_node_config

pytestmark = [pytest.mark.root, pytest.mark.e2e]

NODES = ("n1", "n2", "n3")
RACKS = {"n1": "r1", "n2": "r2", "n3": "r1"}
CLUSTER_IDS = {"n1": "10.250.0.1", "n2": "10.250.0.2"}
SETTLE = 30.0


def config(c: dl.Cluster, node: str, rack: str) -> str:
    text = render_node_config(c.plan, c.plan.node(node))
    text = text.replace("\n[bgp]\n", f'labels = {{ rack = "{rack}" }}\n\n[bgp]\n', 1)
    bgp = 'route_reflector_group_label = "rack"\n'
    if node in CLUSTER_IDS:
        bgp += f'route_reflector_cluster_id = "{CLUSTER_IDS[node]}"\n'
    return text.replace("\n[bgp]\n", f"\n[bgp]\n{bgp}", 1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dl.Cluster]:
    c = dl.start(Path(tmp_path_factory.mktemp("groups")), "mesh", nodes=3, spare=0)
    try:
        # The reflector role is read at start: each node restarts with its labels.
        for n in NODES:
            dl.kill(c, n, signal.SIGTERM)
            dl.start_daemon(c, n, config=config(c, n, RACKS[n]))
        yield c
    finally:
        dl.stop(c)


def ip(c: dl.Cluster, node: str) -> str:
    return c.plan.node(node).ip


def peers_are(c: dl.Cluster, want: dict[str, set[str]]) -> bool:
    return all(set(dl.sessions(c, n)) == {ip(c, m) for m in want[n]} for n in want)


def relabel(c: dl.Cluster, rack: str) -> None:
    c.plan.config_path("n3").write_text(config(c, "n3", rack))
    os.kill(c.pid("n3"), signal.SIGHUP)


def routed(c: dl.Cluster) -> bool:
    return not dl.mismatches(c, list(NODES))


def test_a_client_peers_with_its_racks_reflector(cluster: dl.Cluster) -> None:
    c = cluster
    want = {"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}
    dl.wait(lambda: peers_are(c, want), SETTLE, f"sessions {want}")
    dl.wait(lambda: routed(c), SETTLE, "every block in every kernel via the reflectors")


def test_moving_to_another_rack_moves_the_session(cluster: dl.Cluster) -> None:
    c = cluster
    kept = dl.sessions(c, "n1")[ip(c, "n2")]
    relabel(c, "r2")
    want = {"n1": {"n2"}, "n2": {"n1", "n3"}, "n3": {"n2"}}
    dl.wait(lambda: peers_are(c, want), SETTLE, f"sessions {want}")
    dl.wait(lambda: routed(c), SETTLE, "every block routed again")
    assert dl.sessions(c, "n1")[ip(c, "n2")] == kept, "the reflectors' session reset"


def test_a_rack_without_a_reflector_falls_back_to_all(cluster: dl.Cluster) -> None:
    c = cluster
    kept = dl.sessions(c, "n1")[ip(c, "n2")]
    relabel(c, "r3")
    want = {"n1": {"n2", "n3"}, "n2": {"n1", "n3"}, "n3": {"n1", "n2"}}
    dl.wait(lambda: peers_are(c, want), SETTLE, f"sessions {want}")
    dl.wait(lambda: routed(c), SETTLE, "every block routed again")
    assert dl.sessions(c, "n1")[ip(c, "n2")] == kept, "the reflectors' session reset"
