"""The cluster lab's plan: racks, labels, the sessions the labels call for, node configs."""

from __future__ import annotations

import tomllib

import pytest

from podbgp.cli import build_parser
from podbgp.config.merge import effective_config
from podbgp.config.resources import read_resource_file
from podbgp.lab.clusterplan import (
    expected_peers,
    plan_cluster,
    render_node_identity,
    render_resources,
)
from podbgp.lab.labplan import PlanError


def test_six_nodes_are_two_racks_of_two_reflectors_and_a_client() -> None:
    plan = plan_cluster(6, 2, prefix="t-", state_dir="/tmp/t")
    assert [n.name for n in plan.nodes] == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert [n.address for n in plan.rack_nodes(1)] == ["10.99.2.1/24", "10.99.2.2/24",
                                                       "10.99.2.3/24"]  # fmt: skip
    assert plan.node("a1").labels == {"rack": "a", "route-reflector": "true"}
    assert plan.node("b3").labels == {"rack": "b"}
    # two pods per node in namespace lab, and one in namespace legacy on each rack's last node
    assert len(plan.pods) == 14
    assert [(p.name, p.namespace) for p in plan.pods if p.namespace != "lab"] == [
        ("a3-legacy", "legacy"), ("b3-legacy", "legacy")]  # fmt: skip
    assert plan.datastore_url == (
        "etcd:http://10.99.0.1:2379,http://10.99.0.2:2379,http://10.99.0.3:2379"
    )


def test_an_odd_count_puts_the_extra_node_in_rack_a() -> None:
    plan = plan_cluster(5, 0, prefix="t-", state_dir="/tmp/t")
    assert [len(plan.rack_nodes(r)) for r in (0, 1)] == [3, 2]
    assert not plan.pods


def test_expected_peers_follow_the_labels() -> None:
    plan = plan_cluster(8, 1, prefix="t-", state_dir="/tmp/t")
    # reflector a1: its ToR, the other reflectors (a2, b1, b2), its rack's clients (a3, a4)
    assert expected_peers(plan, plan.node("a1")) == {
        "10.99.1.254", "10.99.1.2", "10.99.2.1", "10.99.2.2", "10.99.1.3", "10.99.1.4"}  # fmt: skip
    # client b4: its ToR and its rack's reflectors only
    assert expected_peers(plan, plan.node("b4")) == {"10.99.2.254", "10.99.2.1", "10.99.2.2"}


def test_the_resources_file_and_every_node_file_make_a_valid_config() -> None:
    plan = plan_cluster(6, 1, prefix="t-", state_dir="/tmp/t")
    resources = read_resource_file(tomllib.loads(render_resources(plan)))
    assert sorted(r.name for r in resources) == ["default", "default", "legacy", "tor-a", "tor-b"]
    for node in plan.nodes:
        text = render_node_identity(plan, node)
        config = effective_config(tomllib.loads(text), resources).config
        assert config.node.name == node.name and config.node.asn == 64512
        assert dict(config.node.labels) == node.labels
        assert config.datastore.endpoints[0] == "http://10.99.0.1:2379"
        assert [str(p.address) for p in config.applied_peers] == [node.gateway]
        assert config.bgp.route_reflector_group_label == "rack"
        assert config.bgp.is_route_reflector == node.reflector
        assert [str(p.cidr) for p in config.ipam.pools] == ["10.244.0.0/16", "10.245.0.0/24"]


@pytest.mark.parametrize("nodes", [1, 61])
def test_bad_sizes_are_refused(nodes: int) -> None:
    with pytest.raises(PlanError, match="--nodes"):
        plan_cluster(nodes, 1, prefix="t-", state_dir="/tmp/t")


def test_cli_takes_the_cluster_topology() -> None:
    args = build_parser().parse_args(["lab", "up", "--topology", "cluster"])
    assert (args.topology, args.nodes) == ("cluster", None)
    assert build_parser().parse_args(["lab", "up"]).topology == "segment"
