"""Mesh and route-reflector topologies from the node registry, as tables."""

from __future__ import annotations

import pytest

from ipam import Node
from podbgp.topology import mesh_peers


def _nodes(*specs: tuple[str, str, str]) -> dict[str, Node]:
    return {
        name: Node(name=name, asn=64512, address=addr, route_reflector_cluster_id=cid)
        for name, addr, cid in specs
    }


MESH = _nodes(("a", "10.0.0.1/24", ""), ("b", "10.0.0.2/24", ""), ("c", "10.0.0.3/24", ""))
RR = _nodes(
    ("a", "10.0.0.1/24", "1.1.1.1"),
    ("b", "10.0.0.2/24", ""),
    ("c", "10.0.0.3/24", ""),
    ("d", "10.0.0.4/24", "1.1.1.1"),
)


@pytest.mark.parametrize(
    ("nodes", "me", "mesh", "expected"),
    [
        # full mesh: everyone; the lower address connects, the higher listens
        (MESH, "a", True, {"10.0.0.2": (False, False), "10.0.0.3": (False, False)}),
        (MESH, "b", True, {"10.0.0.1": (True, False), "10.0.0.3": (False, False)}),
        (MESH, "c", True, {"10.0.0.1": (True, False), "10.0.0.2": (True, False)}),
        # mesh off, no reflectors: nothing from the registry
        (MESH, "a", False, {}),
        # reflector: all other nodes, non-reflectors as clients, reflectors as plain iBGP
        (
            RR,
            "a",
            True,
            {"10.0.0.2": (False, True), "10.0.0.3": (False, True), "10.0.0.4": (False, False)},
        ),
        # client: only the reflectors, even with mesh on
        (RR, "b", True, {"10.0.0.1": (True, False), "10.0.0.4": (False, False)}),
        (RR, "c", False, {"10.0.0.1": (True, False), "10.0.0.4": (False, False)}),
    ],
)
def test_mesh_peers(
    nodes: dict[str, Node], me: str, mesh: bool, expected: dict[str, tuple[bool, bool]]
) -> None:
    got = mesh_peers(nodes[me], nodes, mesh=mesh)
    assert {a: (p.passive, p.route_reflector_client) for a, p in got.items()} == expected
    assert all(p.asn == 64512 for p in got.values())


def test_each_pair_connects_in_one_direction_only() -> None:
    for x in MESH:
        for addr, peer in mesh_peers(MESH[x], MESH).items():
            back = mesh_peers(MESH[peer.node], MESH)
            mine = next(p for p in back.values() if p.node == x)
            assert peer.passive != mine.passive, (x, addr)


def test_node_without_address_has_no_peers() -> None:
    me = Node(name="x", asn=64512)
    assert mesh_peers(me, {**MESH, "x": me}) == {}
