"""Three podbgp nodes in namespaces sharing a SQLite datastore, in each BGP topology.

Per topology (one lab each, shared by the tests of that topology, in this order):
every node's blocks reach every other node's kernel with the option's encapsulation;
a fourth node joins without any existing session resetting; a node removed from the
registry (and from IPAM) is withdrawn everywhere and loses its sessions.

Topologies: full iBGP mesh; node 1 as in-cluster route reflector (RFC 4456); eBGP to
an FRR ToR with a listen range and an AS per node (RFC 7938 style); BGP mesh with
VXLAN across subnets only; VXLAN always with no BGP at all (routes from the datastore).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import (
    Cluster,
    blocks,
    join,
    mismatches,
    peers,
    remove_node,
    routes,
    sessions,
    start,
    stop,
    wait,
)

from podbgp.lab import lab
from podbgp.lab.labplan import tor_address

pytestmark = [pytest.mark.root, pytest.mark.e2e]

OPTIONS = ["mesh", "rr", "peered", "vxlan-crosssubnet", "vxlan"]


@pytest.fixture(scope="module", params=OPTIONS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp(request.param)), request.param)
    try:
        yield c
    finally:
        stop(c)


def _expected_peers(c: Cluster, node: str) -> set[str]:
    """The session addresses the option gives `node` among the running nodes."""
    plan = c.plan
    me = plan.node(node)
    others = [n for n in c.running if n.name != node]
    if plan.option.bgp == "none":
        return set()
    if plan.option.bgp == "tor":
        return {tor_address(me.subnet)}
    if plan.option.bgp == "rr" and not me.route_reflector:
        return {n.ip for n in others if n.route_reflector}
    return {n.ip for n in others}


def test_every_block_reaches_every_kernel(cluster: Cluster) -> None:
    names = [n.name for n in cluster.running]
    for name in names:
        assert blocks(cluster, name), f"{name} announces no block"
        established = set(sessions(cluster, name))
        assert established == _expected_peers(cluster, name), name
    bad = mismatches(cluster, names)
    assert not bad, "\n".join(bad) + "\n" + lab.diagnostics(cluster.state)


def test_new_node_joins_without_resetting_sessions(cluster: Cluster) -> None:
    before = {n.name: sessions(cluster, n.name) for n in cluster.running}
    join(cluster, "n4")
    names = [n.name for n in cluster.running]
    assert names == ["n1", "n2", "n3", "n4"]
    wait(lambda: set(sessions(cluster, "n4")) == _expected_peers(cluster, "n4"), 30,
         "n4's sessions Established")  # fmt: skip
    wait(lambda: not mismatches(cluster, names), 30, "n4's block in every kernel and back")
    for name, old in before.items():
        now = sessions(cluster, name)
        for address, (established_at, flaps) in old.items():
            assert now.get(address) == (established_at, flaps), (
                f"{name}: session to {address} reset when n4 joined"
            )
    pairs = [(cluster.pod_ns("n4"), n, cluster.pod_ip(n)) for n in ("n1", "n2", "n3")]
    pairs += [(cluster.pod_ns(n), "n4", cluster.pod_ip("n4")) for n in ("n1", "n2", "n3")]
    results = lab.ping_pairs(pairs, wait=2.0)
    assert all(r.ok for r in results), results


def test_removed_node_is_withdrawn_everywhere(cluster: Cluster) -> None:
    n4_blocks = blocks(cluster, "n4")
    n4_ip = cluster.plan.node("n4").ip
    assert n4_blocks
    remove_node(cluster, "n4")
    rest = ["n1", "n2", "n3"]

    def leftovers() -> list[str]:
        left = [f"{n}: route {p}" for n in rest for p in n4_blocks if p in routes(cluster.ns(n))]
        left += [f"{n}: peer {n4_ip}" for n in rest if n4_ip in peers(cluster, n)]
        return left

    wait(lambda: not leftovers(), 15, "n4's routes and sessions gone from n1..n3")
    if cluster.plan.option.bgp == "tor":
        tor = cluster.plan.ns("tor")
        wait(lambda: not set(n4_blocks) & set(routes(tor, "bgp")), 15, "ToR withdrew n4's block")
    else:
        # The removed node drops its registry-derived peers too.
        wait(lambda: not peers(cluster, "n4"), 15, "n4 without mesh peers")
    # The others keep their own routes to each other.
    assert not mismatches(cluster, rest), "\n".join(mismatches(cluster, rest))
    # Removed from the set of running nodes' expectations from now on.
    cluster.state.nodes = [n for n in cluster.state.nodes if n["name"] != "n4"]
