"""Keys for topology by labels: peer_selector / node_selector on [[bgp.peer]],
bgp.mesh_password, bgp.route_reflector_group_label, and the per-peer local_asn and
allow_own_as — validation with key paths, the dump, the mapping onto the parts, and
what a reload changes."""

from __future__ import annotations

import ipaddress

import pytest

from podbgp.config import ConfigError, Peer, SelectedPeer, diff_configs, load_config_text

NODE = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    return list(info.value.errors)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 1\npeer_selector = "all()"\n',
            "bgp.peer[0].address: is not allowed with peer_selector "
            "(each selected node's address is used)",
        ),
        (
            "[[bgp.peer]]\nasn = 1\n",
            "bgp.peer[0].address: is required (or peer_selector, for in-cluster peers "
            "chosen by label; or interface, for an unnumbered peer)",
        ),
        (
            "[[bgp.peer]]\npeer_selector = 'rack = \"r1\"'\n",
            "bgp.peer[0].peer_selector: unsupported selector term 'rack = \"r1\"'",
        ),
        (
            '[[bgp.peer]]\npeer_selector = ""\n',
            'bgp.peer[0].peer_selector: must not be empty ("all()" selects every node)',
        ),
        (
            "[[bgp.peer]]\npeer_selector = 'has(edge)'\nnode_selector = 'has(x) || has(y)'\n",
            "bgp.peer[0].node_selector: unsupported selector term 'has(x) || has(y)'",
        ),
        (
            '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 1\nnode_selector = "rack"\n',
            "bgp.peer[0].node_selector: unsupported selector term 'rack'",
        ),
        (
            "[[bgp.peer]]\npeer_selector = 'has(edge)'\nasn = 23456\n",
            "bgp.peer[0].asn: 23456 is AS_TRANS (RFC 6793), not a real AS number",
        ),
        (
            "[[bgp.peer]]\npeer_selector = 'has(edge)'\nprefix = \"10.0.0.0/24\"\n",
            "bgp.peer[0].prefix: unknown key (did you mean max_prefixes?)",
        ),
        (
            '[bgp]\nroute_reflector_group_label = "not a label"\n',
            'bgp.route_reflector_group_label: "not a label" is not a label key',
        ),
        ("[bgp]\nmesh_password = " + '"' + "x" * 81 + '"\n', None),
        (
            '[[bgp.listen_range]]\nprefix = "10.9.0.0/24"\nasn = 1\npeer_selector = "all()"\n',
            "bgp.listen_range[0].peer_selector: unknown key",
        ),
    ],
)
def test_errors(text: str, message: str | None) -> None:
    got = errors_of(NODE + text)
    if message is None:  # the password's length: the key is named, the secret is not
        assert got == ["bgp.mesh_password: 81 bytes is longer than 80 (TCP_MD5SIG_MAXKEYLEN)"]
    else:
        assert got == [message]


def test_a_later_peer_keeps_its_index_after_a_selector_entry() -> None:
    text = (
        NODE
        + "[[bgp.peer]]\npeer_selector = 'has(edge)'\n"
        + '[[bgp.peer]]\naddress = "10.0.0.1"\nasn = 64512\n'
    )
    assert errors_of(text) == ['bgp.peer[1].address: "10.0.0.1" is this node\'s own address']


def test_selected_peer_loads_and_dumps() -> None:
    cfg = load_config_text(
        NODE
        + '[bgp]\nmesh_password = "s3cret"\nroute_reflector_group_label = "rack"\n'
        + "[[bgp.peer]]\npeer_selector = 'role == \"edge\"'\nnode_selector = '!has(role)'\n"
        + '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 65000\nnode_selector = \'rack == "r1"\'\n'
    )
    sel, static = cfg.bgp.peers
    assert isinstance(sel, SelectedPeer) and isinstance(static, Peer)
    assert (sel.peer_selector, sel.node_selector, sel.asn) == ('role == "edge"', "!has(role)", 0)
    assert cfg.bgp.selected_peers == (sel,) and cfg.bgp.static_peers == (static,)
    assert cfg.applied_peers == ()  # node.labels has no rack
    dumped = cfg.to_dict(reveal_secrets=False)["bgp"]
    assert dumped["mesh_password"] == "<redacted>"
    assert dumped["route_reflector_group_label"] == "rack"
    assert next(iter(dumped["peer"][0])) == "peer_selector" and "address" not in dumped["peer"][0]
    assert cfg.to_dict()["bgp"]["mesh_password"] == "s3cret"


def test_relabelling_the_node_adds_and_removes_static_peers_by_node_selector() -> None:
    peers = (
        '[[bgp.peer]]\naddress = "10.0.0.8"\nasn = 65000\nnode_selector = \'rack == "r1"\'\n'
        '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 65000\nnode_selector = \'rack == "r2"\'\n'
        '[[bgp.peer]]\naddress = "10.0.0.7"\nasn = 65000\n'
    )
    r1 = load_config_text(NODE + 'labels = { rack = "r1" }\n' + peers)
    r2 = load_config_text(NODE + 'labels = { rack = "r2" }\n' + peers)
    assert [str(p.address) for p in r1.applied_peers] == ["10.0.0.8", "10.0.0.7"]
    diff = diff_configs(r1, r2)
    assert [p.address for p in diff.peers_added] == [ipaddress.ip_address("10.0.0.9")]
    assert [p.address for p in diff.peers_removed] == [ipaddress.ip_address("10.0.0.8")]
    assert diff.peers_reset == ()
    assert diff.changed_keys == ("node.labels",)  # applied live, no restart needed


def test_topology_keys_reload_live() -> None:
    old = load_config_text(NODE)
    new = load_config_text(
        NODE + '[bgp]\nmesh_password = "x"\nroute_reflector_group_label = "rack"\nmesh = false\n'
    )
    assert diff_configs(old, new).changed_keys == ()


PEER = '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 65000\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            PEER + "local_asn = 64512\n",
            "bgp.peer[0].local_asn: 64512 is node.asn already (0 presents node.asn)",
        ),
        (
            PEER + "local_asn = 65000\n",
            "bgp.peer[0].local_asn: 65000 is the peer's own AS: it would see an iBGP session",
        ),
        (
            PEER.replace("65000", "64512") + "local_asn = 65100\n",
            "bgp.peer[0].local_asn: is for eBGP peers; this one is in the node's AS 64512",
        ),
        (
            "[[bgp.peer]]\npeer_selector = 'has(edge)'\nlocal_asn = 65100\n",
            "bgp.peer[0].local_asn: is for eBGP peers; this one is in the node's AS 64512",
        ),
        (
            PEER + "local_asn = 23456\n",
            "bgp.peer[0].local_asn: 23456 is AS_TRANS (RFC 6793), not a real AS number",
        ),
        (PEER + "allow_own_as = 11\n", None),
        (
            '[[bgp.listen_range]]\nprefix = "10.9.0.0/24"\nasn = 65000\nlocal_asn = 64512\n',
            "bgp.listen_range[0].local_asn: 64512 is node.asn already (0 presents node.asn)",
        ),
    ],
)
def test_local_asn_and_allow_own_as_errors(text: str, message: str | None) -> None:
    got = errors_of(NODE + text)
    if message is None:
        assert len(got) == 1 and got[0].startswith("bgp.peer[0].allow_own_as: 11 ")
    else:
        assert got == [message]


def test_local_asn_and_allow_own_as_reach_the_parts() -> None:
    from podbgp.wiring import peer_policy, peer_settings, rib_policies

    cfg = load_config_text(NODE + PEER + "local_asn = 65100\nallow_own_as = 2\n")
    (p,) = cfg.bgp.static_peers
    assert (p.local_asn, p.allow_own_as) == (65100, 2)
    assert peer_settings(cfg, p, "10.0.0.9").local_as == 65100
    pol = peer_policy("10.0.0.9", p, rib_policies(cfg))
    assert (pol.local_as, pol.allow_own_as) == (65100, 2)
    # A change resets the session (the OPEN differs), like any other session key.
    new = load_config_text(NODE + PEER + "local_asn = 65101\nallow_own_as = 2\n")
    assert [str(x.address) for x in diff_configs(cfg, new).peers_reset] == ["10.0.0.9"]


SELECT = "[[bgp.peer]]\npeer_selector = 'has(edge)'\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            NODE + "[bgp]\nmesh = false\nlisten = []\n" + SELECT,
            "bgp.listen: [] but peers chosen by peer_selector need inbound sessions",
        ),
        (
            '[node]\nname = "n1"\nasn = 64512\nrouter_id = "1.1.1.1"\n'
            + "[bgp]\nmesh = false\n"
            + SELECT,
            "node.address: is required for peers chosen by peer_selector",
        ),
    ],
)
def test_selected_peers_need_what_the_mesh_needs(text: str, message: str) -> None:
    assert errors_of(text) == [message]


def test_a_selected_peer_may_be_a_reflector_client_in_the_nodes_as() -> None:
    cfg = load_config_text(NODE + SELECT + "route_reflector_client = true\n")
    assert cfg.bgp.selected_peers[0].route_reflector_client
    assert errors_of(NODE + SELECT + "asn = 65000\nroute_reflector_client = true\n") == [
        "bgp.peer[0].route_reflector_client: AS 65000 is not this node's AS 64512; "
        "clients are iBGP peers (RFC 4456)"
    ]
