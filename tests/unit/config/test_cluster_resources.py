"""Cluster resources as documents: reading a resources file, checking a set, merging under a node file.

Pure (no store): `podbgp.config.resources` and `podbgp.config.merge`.
"""

from __future__ import annotations

import ipaddress
import tomllib

import pytest

from podbgp.config import ConfigError
from podbgp.config.merge import effective_config
from podbgp.config.resources import (
    Resource,
    ResourceKind,
    check_resource_set,
    file_labels,
    read_resource_file,
)

CLUSTER = """
[bgp]
asn = 64512
hold_time = 30
mesh = true

[[pool]]
name = "default"
cidr = "10.244.0.0/16"
block_size = 26

[[peer]]
name = "tor1"
address = "10.0.0.1"
asn = 65000
export = "tag"

[[policy]]
name = "tag"
[[policy.rule]]
action = "accept"
set = { community_add = ["64512:100"] }

[[reservation]]
name = "gw"
cidrs = ["10.244.0.1/32"]
"""

NODE = """
[node]
name = "n1"
address = "10.0.0.11/24"
labels = { rack = "r1" }
[datastore]
path = "/tmp/x.db"
"""


def read(text: str) -> list[Resource]:
    return read_resource_file(tomllib.loads(text))


def errors_of(text: str, stored: list[Resource] | None = None) -> list[str]:
    try:
        new = read(text)
    except ConfigError as e:
        return list(e.errors)
    names = {(r.kind, r.name) for r in new}
    kept = [r for r in stored or [] if (r.kind, r.name) not in names]
    return check_resource_set([*kept, *new], file_labels(new))


def test_a_resources_file_reads_every_kind() -> None:
    rs = read(CLUSTER)
    assert [(r.kind, r.name) for r in rs] == [
        (ResourceKind.BGP, "default"),
        (ResourceKind.POOL, "default"),
        (ResourceKind.PEER, "tor1"),
        (ResourceKind.POLICY, "tag"),
        (ResourceKind.RESERVATION, "gw"),
    ]
    assert rs[2].spec == {"address": "10.0.0.1", "asn": 65000, "export": "tag"}
    assert check_resource_set(rs) == []


def test_every_error_is_reported_with_its_path_in_the_file() -> None:
    errors = errors_of("""
[bgp]
asn = 0
holdtime = 3
listen = ["1.2.3.4"]
[[pool]]
name = "ok"
cidr = "10.1.0.0/16"
block_size = 8
[[pool]]
name = "Bad Name"
cidr = "10.2.0.0/16"
[[peer]]
name = "p"
address = "10.0.0.1"
asn = 4294967296
import = "nosuch"
[[reservation]]
name = "r"
cidrs = ["10.0.0.1/24"]
[[poool]]
""")
    assert errors == [
        "pool[1].name: \"Bad Name\" is not a resource name (lower-case letters, digits, '-', '.', '_')",
        "poool: unknown kind (did you mean pool?); kinds: bgp, pool, peer, policy, reservation",
        "bgp.asn: 0 is not an AS number (RFC 7607 reserves AS 0)",
        "bgp.listen: is per node (this node's listen addresses): set it in the node's TOML",
        "peer[0].asn: 4294967296 is not an AS number (1..4294967295)",
        'peer[0].import: "nosuch" is neither "all" | "none" nor the name of a [[policy]]',
        "bgp.holdtime: unknown key (did you mean hold_time?)",
        "pool[0].block_size: 8 is not within 16..32 (pool 10.1.0.0/16)",
        'reservation[0].cidrs[0]: "10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)',
    ]


def test_a_key_of_the_node_files_sections_is_a_resource_key() -> None:
    """No second key list: a pool or peer resource takes exactly what [[ipam.pool]] / [[bgp.peer]] take."""
    from podbgp.config import accepted_keys

    pool_keys = {k.split(".", 2)[2] for k in accepted_keys() if k.startswith("ipam.pool[].")}
    peer_keys = {k.split(".", 2)[2] for k in accepted_keys() if k.startswith("bgp.peer[].")}
    assert {"cidr", "node_selector", "nat_outgoing"} <= pool_keys
    for key in sorted(pool_keys - {"cidr"}):
        errors = errors_of(f'[[pool]]\nname = "p"\ncidr = "10.0.0.0/16"\n{key} = []\n')
        assert not any("unknown key" in e for e in errors), (key, errors)
    for key in sorted(peer_keys - {"address", "asn"}):
        errors = errors_of(f'[[peer]]\nname = "p"\naddress = "10.0.0.1"\nasn = 1\n{key} = []\n')
        assert not any("unknown key" in e for e in errors), (key, errors)
    assert errors_of('[[pool]]\nname = "p"\ncidr = "10.0.0.0/16"\nnat_outgong = true\n') == [
        "pool[0].nat_outgong: unknown key (did you mean nat_outgoing?)"
    ]


def test_checks_on_the_set_name_stored_resources_by_name() -> None:
    stored = [
        Resource(ResourceKind.POOL, "rack1", {"cidr": "10.244.0.0/16"}, 5),
        Resource(ResourceKind.PEER, "tor", {"address": "10.0.0.1", "asn": 65000}, 6),
    ]
    errors = errors_of(
        '[[pool]]\nname = "new"\ncidr = "10.244.128.0/17"\n'
        '[[peer]]\nname = "tor2"\naddress = "10.0.0.1"\nasn = 65001\n',
        stored,
    )
    assert errors == [
        'peer[0].address: "10.0.0.1" is already peer "tor"',
        'pool[0].cidr: "10.244.128.0/17" overlaps pool "rack1" ("10.244.0.0/16")',
    ]
    # Re-applying a stored resource under its own name replaces it: no overlap with itself.
    assert errors_of('[[pool]]\nname = "rack1"\ncidr = "10.244.0.0/17"\n', stored) == []


def test_duplicate_names_and_a_second_bgp() -> None:
    assert errors_of('[[pool]]\nname = "a"\ncidr = "10.1.0.0/16"\n'
                     '[[pool]]\nname = "a"\ncidr = "10.2.0.0/16"\n') == [
        'pool[1].name: "a" is already pool[0]'
    ]  # fmt: skip
    assert errors_of('[bgp]\nname = "other"\n') == [
        'bgp.name: "other": the bgp resource is one, named "default"'
    ]
    assert errors_of("pool = 3\n") == ["pool: expected an array of tables ([[pool]])"]


# ---------------------------------------------------------------- merge


def test_a_five_line_node_file_takes_the_rest_from_the_cluster() -> None:
    eff = effective_config(tomllib.loads(NODE), with_revisions(read(CLUSTER)))
    c = eff.config
    assert c.node.asn == 64512
    assert c.bgp.hold_time == 30 and c.bgp.mesh
    assert [str(p.cidr) for p in c.ipam.pools] == ["10.244.0.0/16"]
    assert [str(p.address) for p in c.bgp.peers] == ["10.0.0.1"]
    assert c.bgp.peers[0].hold_time == 30  # inherited from the cluster's [bgp]
    assert [p.name for p in c.policies] == ["tag"]
    assert eff.origins["node.asn"] == "cluster bgp/default (revision 7)"
    assert eff.origins["bgp.peer[0]"] == "cluster peer/tor1 (revision 7)"
    assert eff.origins["node.name"] == "node file"
    assert eff.overrides == ()


def with_revisions(rs: list[Resource], revision: int = 7) -> list[Resource]:
    return [Resource(r.kind, r.name, r.spec, revision) for r in rs]


def test_keys_the_node_file_sets_win_and_are_reported() -> None:
    node = (
        NODE.replace("[node]", "[node]\nasn = 65099")
        + """
[bgp]
hold_time = 9
[[bgp.peer]]
address = "10.0.0.1"
asn = 65123
[[bgp.peer]]
address = "10.0.0.2"
asn = 65124
"""
    )
    eff = effective_config(tomllib.loads(node), read(CLUSTER))
    c = eff.config
    assert c.node.asn == 65099 and c.bgp.hold_time == 9 and c.bgp.mesh
    assert [(str(p.address), p.asn) for p in c.bgp.peers] == [
        ("10.0.0.1", 65123),
        ("10.0.0.2", 65124),
    ]
    assert [(o.path, o.node_value, o.cluster_value, o.resource) for o in eff.overrides if
            not isinstance(o.node_value, dict)] == [
        ("bgp.hold_time", 9, 30, "bgp/default"),
        ("node.asn", 65099, 64512, "bgp/default"),
    ]  # fmt: skip
    assert [(o.path, o.resource) for o in eff.overrides if isinstance(o.node_value, dict)] == [
        ("bgp.peer[0]", "peer/tor1")
    ]


def test_without_a_cluster_asn_the_node_needs_its_own() -> None:
    with pytest.raises(ConfigError) as e:
        effective_config(tomllib.loads(NODE), [])
    assert list(e.value.errors) == [
        "node.asn: is required (or give the cluster a default: asn in the bgp resource)"
    ]


def test_a_merged_error_names_the_cluster_resource() -> None:
    """A cluster peer that clashes with this node's file is reported as that resource."""
    node = NODE + '[bgp]\nenabled = true\nlisten = ["10.0.0.11"]\n'
    rs = [Resource(ResourceKind.PEER, "bad", {"address": "10.0.0.1", "asn": 1,
                                               "local_address": "fe80::1%eth0"}, 3)]  # fmt: skip
    with pytest.raises(ConfigError) as e:
        effective_config(tomllib.loads(node.replace("[node]", "[node]\nasn = 1")), rs)
    assert list(e.value.errors) == [
        'peer "bad" (cluster).local_address: "fe80::1%eth0" is IPv6 but the peer is IPv4'
    ]
    assert ipaddress.ip_address("10.0.0.1")


def test_the_reference_documents_every_kind_and_resource_key() -> None:
    """docs/configuration.md's "Cluster resources": one row per kind, the node-only [bgp] keys
    named in the bgp row, and every key of the resources' own."""
    from pathlib import Path

    from podbgp.config.resources import NODE_ONLY_BGP_KEYS

    text = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    section = text.split("## Cluster resources", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    kinds = [r.split("`")[1] for r in rows if r.count("|") == 4]
    assert kinds == [k.value for k in ResourceKind]
    bgp_row = rows[0]
    assert all(f"`{k}`" in bgp_row for k in NODE_ONLY_BGP_KEYS), bgp_row
    own = {
        k
        for r in rows
        if r.count("|") == 5
        for k in r.split("|")[1].strip().strip("`").split("`, `")
    }
    assert own == {"pool[].name", "peer[].name", "policy[].name", "reservation[].name",
                   "bgp.name", "bgp.asn", "reservation[].cidrs"}  # fmt: skip


def test_the_references_five_line_node_and_resources_file_make_a_config() -> None:
    """The two examples of "Cluster resources" work together as documented."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    section = text.split("## Cluster resources", 1)[1].split("\n## ", 1)[0]
    node_text, resources_text = [b.split("```", 1)[0] for b in section.split("```toml\n")[1:3]]
    assert len([ln for ln in node_text.splitlines() if "=" in ln]) == 5
    eff = effective_config(tomllib.loads(node_text), read(resources_text))
    c = eff.config
    assert (c.node.name, c.node.asn, c.bgp.mesh, c.bgp.hold_time) == ("node1", 64512, True, 30)
    assert [p.name for p in c.policies] == ["pods"] and c.bgp.peers[0].export_policy == "pods"
    assert [str(p.cidr) for p in c.ipam.pools] == ["10.244.0.0/16"]


def test_the_cluster_labs_resources_and_identity_files_make_every_nodes_config() -> None:
    """`podbgp.lab.clusterplan`'s resources file is valid, and each node's identity-only
    file over it gives the node its rack's ToR peer (chosen by node_selector later) and the
    cluster's AS, mesh settings and pools."""
    from podbgp.lab.clusterplan import plan_cluster, render_node_identity, render_resources

    plan = plan_cluster()
    resources = with_revisions(read(render_resources(plan)))
    assert check_resource_set(resources) == []
    for node in plan.nodes:
        c = effective_config(tomllib.loads(render_node_identity(plan, node)), resources).config
        assert c.node.name == node.name and c.node.asn == 64512 and c.bgp.mesh
        assert len(c.ipam.pools) == 2 and c.bgp.mesh_password


def test_the_cluster_example_makes_a_node_config() -> None:
    """examples/cluster: the resources file is a valid set and the five-line node file over
    it is a full config (the node's AS, the mesh, its rack's ToR, both pools)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "examples" / "cluster"
    resources = read((root / "resources.toml").read_text())
    assert check_resource_set(resources) == []
    node_text = (root / "node.toml").read_text()
    assert len([ln for ln in node_text.splitlines() if "=" in ln and not ln.startswith("#")]) == 5
    c = effective_config(tomllib.loads(node_text), resources).config
    assert (c.node.asn, c.bgp.mesh, c.bgp.hold_time) == (64512, True, 30)
    assert [str(p.address) for p in c.bgp.peers] == ["10.0.1.1"]
    assert [str(p.cidr) for p in c.ipam.pools] == ["10.244.0.0/16", "10.250.0.0/24"]


def test_the_bgp_resource_carries_prefix_advertisements() -> None:
    """Communities per originated prefix are set once for the cluster (Calico's BGPConfiguration)."""
    text = '[bgp]\n[[bgp.prefix_advertisement]]\ncidr = "10.244.0.0/16"\ncommunities = ["64512:100"]\n'
    assert errors_of(text) == []
    assert errors_of('[bgp]\n[[bgp.prefix_advertisement]]\ncidr = "10.244.0.0/16"\n') == [
        "bgp.prefix_advertisement[0].communities: give communities or large_communities to add"
    ]
