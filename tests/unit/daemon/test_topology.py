"""Mesh, route-reflector groups and label-selected peers from the node registry, as tables."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipam import Node
from podbgp.config import SelectedPeer
from podbgp.topology import cluster_peers, mesh_peers, node_ip, selected_peers


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


# -- reflector groups per rack ------------------------------------------------------------


def _racked(*specs: tuple[str, str, str, str]) -> dict[str, Node]:
    """(name, address, cluster ID, rack); rack "" = no label."""
    return {
        name: Node(
            name=name,
            asn=64512,
            address=addr,
            route_reflector_cluster_id=cid,
            labels={"rack": rack} if rack else {},
        )
        for name, addr, cid, rack in specs
    }


# Two racks, a reflector pair in each (sharing the rack's cluster ID), two clients each.
RACKS = _racked(
    ("r1a", "10.1.0.1/24", "10.1.0.1", "r1"),
    ("r1b", "10.1.0.2/24", "10.1.0.1", "r1"),
    ("r1c", "10.1.0.3/24", "", "r1"),
    ("r1d", "10.1.0.4/24", "", "r1"),
    ("r2a", "10.2.0.1/24", "10.2.0.1", "r2"),
    ("r2b", "10.2.0.2/24", "10.2.0.1", "r2"),
    ("r2c", "10.2.0.3/24", "", "r2"),
    ("r2d", "10.2.0.4/24", "", "r2"),
)
# Rack r3 has no reflector; node "lone" has no rack label.
ORPHANS = {
    **RACKS,
    **_racked(("r3c", "10.3.0.3/24", "", "r3"), ("lone", "10.9.0.9/24", "", "")),
}
REFLECTORS = {"r1a", "r1b", "r2a", "r2b"}


def _names(nodes: dict[str, Node], me: str, label: str = "rack") -> dict[str, bool]:
    """Peer node -> route_reflector_client, as `me` sees it."""
    got = mesh_peers(nodes[me], nodes, group_label=label)
    return {p.node: p.route_reflector_client for p in got.values()}


@pytest.mark.parametrize(
    ("nodes", "me", "expected"),
    [
        # a client: its rack's reflector pair only, as ordinary peers
        (RACKS, "r1c", {"r1a": False, "r1b": False}),
        (RACKS, "r2d", {"r2a": False, "r2b": False}),
        # a reflector: every other reflector (both racks, not clients), its rack's clients
        (RACKS, "r1a", {"r1b": False, "r2a": False, "r2b": False, "r1c": True, "r1d": True}),
        (RACKS, "r2b", {"r1a": False, "r1b": False, "r2a": False, "r2c": True, "r2d": True}),
        # a rack without a reflector, and a node without the label: every reflector
        (ORPHANS, "r3c", dict.fromkeys(sorted(REFLECTORS), False)),
        (ORPHANS, "lone", dict.fromkeys(sorted(REFLECTORS), False)),
        # ... and every reflector takes them as clients, besides its own rack's
        (
            ORPHANS,
            "r2a",
            {"r1a": False, "r1b": False, "r2b": False, "r2c": True, "r2d": True}
            | {"r3c": True, "lone": True},
        ),
    ],
)
def test_reflector_groups(nodes: dict[str, Node], me: str, expected: dict[str, bool]) -> None:
    assert _names(nodes, me) == expected


def test_without_a_group_label_every_client_peers_with_every_reflector() -> None:
    assert set(_names(RACKS, "r1c", label="")) == REFLECTORS
    assert set(_names(RACKS, "r1a", label="")) == set(RACKS) - {"r1a"}


def test_a_rack_whose_reflectors_left_falls_back_to_the_others() -> None:
    gone = {n: node for n, node in RACKS.items() if n not in ("r2a", "r2b")}
    assert _names(gone, "r2c") == {"r1a": False, "r1b": False}
    assert _names(gone, "r1a") == {"r1b": False, "r1c": True, "r1d": True, "r2c": True, "r2d": True}


def test_label_change_moves_a_client_to_its_new_racks_reflectors() -> None:
    moved = {**RACKS, "r1d": replace(RACKS["r1d"], labels={"rack": "r2"})}
    assert set(_names(moved, "r1d")) == {"r2a", "r2b"}
    assert "r1d" not in _names(moved, "r1a")
    assert _names(moved, "r2a")["r1d"] is True


@pytest.mark.parametrize("nodes", [RACKS, ORPHANS], ids=["racks", "orphans"])
def test_groups_are_symmetric_and_dial_one_way(nodes: dict[str, Node]) -> None:
    """Both ends of every pair configure it, and exactly one of them dials."""
    for me in nodes:
        for peer in mesh_peers(nodes[me], nodes, group_label="rack").values():
            back = mesh_peers(nodes[peer.node], nodes, group_label="rack")
            mine = [p for p in back.values() if p.node == me]
            assert len(mine) == 1, (me, peer.node)
            assert peer.passive != mine[0].passive, (me, peer.node)
            # a client on one side is a reflector on the other, never both clients
            assert not (peer.route_reflector_client and mine[0].route_reflector_client)


def test_two_clients_never_peer() -> None:
    for me in set(ORPHANS) - REFLECTORS:
        assert set(_names(ORPHANS, me)) <= REFLECTORS


# -- peers chosen by label ------------------------------------------------------------------


def _rule(peer: str, node: str = "all()", **kw: object) -> SelectedPeer:
    return SelectedPeer(peer_selector=peer, node_selector=node, **kw)  # type: ignore[arg-type]


LABELLED = {
    name: Node(name=name, asn=asn, address=addr, labels=labels)
    for name, asn, addr, labels in [
        ("a", 64512, "10.0.0.1/24", {"rack": "r1", "role": "edge"}),
        ("b", 64512, "10.0.0.2/24", {"rack": "r1"}),
        ("c", 64513, "10.0.0.3/24", {"rack": "r2", "role": "edge"}),
        ("d", 64512, "10.0.0.4/24", {"rack": "r2"}),
    ]
}


@pytest.mark.parametrize(
    ("me", "rules", "expected"),
    [
        # every edge node is a peer of every node (not of itself)
        ("b", [_rule('role == "edge"')], {"a", "c"}),
        ("a", [_rule('role == "edge"')], {"c"}),
        # node_selector: only nodes of rack r2 have the rule
        ("b", [_rule("has(role)", 'rack == "r2"')], set()),
        ("d", [_rule("has(role)", 'rack == "r2"')], {"a", "c"}),
        # && and !=, !has
        ("d", [_rule('rack == "r1" && !has(role)')], {"b"}),
        ("a", [_rule('rack != "r1"')], {"c", "d"}),
        # no match at all
        ("a", [_rule('rack == "r9"')], set()),
        # two rules: the union
        ("b", [_rule('rack == "r2"'), _rule('role == "edge"')], {"a", "c", "d"}),
    ],
)
def test_selected_peers(me: str, rules: list[SelectedPeer], expected: set[str]) -> None:
    got = selected_peers(LABELLED[me], LABELLED, rules)
    assert {p.node for p in got.values()} == expected
    assert all(p.address == node_ip(LABELLED[p.node]) for p in got.values())


def test_selected_peer_takes_the_nodes_as_unless_given_and_the_first_rule_wins() -> None:
    first, second = _rule("has(role)"), _rule("all()", asn=65000)
    got = selected_peers(LABELLED["b"], LABELLED, [first, second])
    assert got["10.0.0.3"].asn == 64513 and got["10.0.0.3"].rule is first
    assert got["10.0.0.4"].asn == 65000 and got["10.0.0.4"].rule is second


def test_selected_peers_dial_one_way_unless_passive() -> None:
    rule = _rule("all()")
    a = selected_peers(LABELLED["a"], LABELLED, [rule])["10.0.0.2"]
    b = selected_peers(LABELLED["b"], LABELLED, [rule])["10.0.0.1"]
    assert (a.passive, b.passive) == (False, True)
    quiet = _rule("all()", passive=True)
    assert selected_peers(LABELLED["a"], LABELLED, [quiet])["10.0.0.2"].passive


def test_label_change_adds_or_removes_exactly_that_peer() -> None:
    rule = [_rule('role == "edge"')]
    before = selected_peers(LABELLED["b"], LABELLED, rule)
    d = replace(LABELLED["d"], labels={"rack": "r2", "role": "edge"})
    after = selected_peers(LABELLED["b"], {**LABELLED, "d": d}, rule)
    assert after.keys() - before.keys() == {"10.0.0.4"}
    assert all(after[k] == v for k, v in before.items())  # the others are unchanged
    a = replace(LABELLED["a"], labels={"rack": "r1"})
    fewer = selected_peers(LABELLED["b"], {**LABELLED, "a": a}, rule)
    assert before.keys() - fewer.keys() == {"10.0.0.1"}


def test_selected_peer_replaces_the_mesh_entry_and_keeps_the_rest() -> None:
    rule = _rule('role == "edge"', asn=64512, route_reflector_client=True)
    got = cluster_peers(LABELLED["b"], LABELLED, mesh=True, rules=[rule])
    assert set(got) == {"10.0.0.1", "10.0.0.3", "10.0.0.4"}
    assert got["10.0.0.1"].rule is rule and got["10.0.0.1"].route_reflector_client
    assert got["10.0.0.4"].rule is None  # from the mesh
    assert cluster_peers(LABELLED["b"], LABELLED, mesh=False, rules=[rule]).keys() == {
        "10.0.0.1",
        "10.0.0.3",
    }


def test_a_pair_of_rules_selects_both_ways() -> None:
    """The docs' edge example: edge nodes peer with every other node and back."""
    rules = [_rule("has(role)", "!has(role)"), _rule("!has(role)", "has(role)")]
    for me in LABELLED.values():
        for peer in selected_peers(me, LABELLED, rules).values():
            back = selected_peers(LABELLED[peer.node], LABELLED, rules)
            assert any(p.node == me.name for p in back.values()), (me.name, peer.node)
    assert {p.node for p in selected_peers(LABELLED["a"], LABELLED, rules).values()} == {"b", "d"}
    assert {p.node for p in selected_peers(LABELLED["b"], LABELLED, rules).values()} == {"a", "c"}
