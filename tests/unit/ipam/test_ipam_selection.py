"""`ipam.selection.candidate_pools` as a table: which pools serve a request, and the
error a named pool that cannot serve gives."""

from __future__ import annotations

from typing import Any

import pytest

from ipam import IpamConfig, Pool, PoolNotUsable, PoolUse
from ipam.selection import PoolRequest, candidate_pools, namespace_labels

DEFAULT = {"cidr": "10.244.0.0/16"}
LEGACY = {"cidr": "10.250.0.0/24", "namespace_selector": 'projectcalico.org/name == "legacy"'}
RACK1 = {"cidr": "10.251.0.0/24", "node_selector": 'rack == "r1"'}
TUNNEL = {"cidr": "10.99.0.0/24", "allowed_uses": ["tunnel"]}
WORKLOAD = {"cidr": "10.96.0.0/24", "allowed_uses": ["workload"]}
BOTH = {"cidr": "10.98.0.0/24", "allowed_uses": ["tunnel", "workload"]}
OFF = {"cidr": "10.97.0.0/24", "disabled": True}
V6 = {"cidr": "fd00:244::/56"}
CONFIG = IpamConfig(
    pools=tuple(Pool.parse(p) for p in (DEFAULT, LEGACY, RACK1, TUNNEL, BOTH, OFF, V6))
)


def cidrs(pools: list[Pool]) -> list[str]:
    return [str(p.cidr) for p in pools]


def req(namespace: str = "", use: str = "workload", explicit: tuple[str, ...] = (), v: int = 4
        ) -> PoolRequest:  # fmt: skip
    return PoolRequest(v, PoolUse(use), namespace_labels(namespace), explicit)


@pytest.mark.parametrize(
    ("request_", "labels", "want"),
    [
        # Pods of other namespaces (or none): the pools with no namespace selector.
        (req("default"), {}, ["10.244.0.0/16", "10.98.0.0/24"]),
        (req(""), {}, ["10.244.0.0/16", "10.98.0.0/24"]),
        # The namespace's own pool is its only candidate.
        (req("legacy"), {}, ["10.250.0.0/24"]),
        # node_selector still applies.
        (req("default"), {"rack": "r1"}, ["10.244.0.0/16", "10.251.0.0/24", "10.98.0.0/24"]),
        # Tunnel addresses only from pools allowing "tunnel", dedicated ones first.
        (req(use="tunnel"), {}, ["10.99.0.0/24"]),
        (req(v=6), {}, ["fd00:244::/56"]),
        (req(v=6, use="tunnel"), {}, ["fd00:244::/56"]),  # the default allows both
        # Named pools, in the order named.
        (req("default", explicit=("10.98.0.0/24", "10.244.0.0/16")), {},
         ["10.98.0.0/24", "10.244.0.0/16"]),
        (req("legacy", explicit=("10.244.0.0/16",)), {}, ["10.244.0.0/16"]),
    ],
)  # fmt: skip
def test_candidates(request_: PoolRequest, labels: dict[str, str], want: list[str]) -> None:
    assert cidrs(candidate_pools(CONFIG, request_, "n1", labels)) == want


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (req(explicit=("10.1.0.0/24",)), "pool 10.1.0.0/24 does not exist (pools: 10.244.0.0/16,"),
        (req(explicit=("10.97.0.0/24",)), "pool 10.97.0.0/24 is disabled"),
        (req(explicit=("10.99.0.0/24",)), "pool 10.99.0.0/24 allows tunnel, not workload"),
        (req(explicit=("10.251.0.0/24",)),
         'pool 10.251.0.0/24 does not select node n1 (node_selector rack == "r1")'),
        (req("default", explicit=("10.250.0.0/24",)),
         "pool 10.250.0.0/24 does not select namespace default (namespace_selector "
         'projectcalico.org/name == "legacy")'),
        (req(explicit=("fd00:244::/56",)), "pool fd00:244::/56 is IPv6, the request is for IPv4"),
    ],
)  # fmt: skip
def test_named_pools_that_cannot_serve_are_errors(request_: PoolRequest, error: str) -> None:
    with pytest.raises(PoolNotUsable) as e:
        candidate_pools(CONFIG, request_, "n1", {})
    assert str(e.value).startswith(error), str(e.value)


def test_namespace_labels() -> None:
    assert namespace_labels("legacy") == {"projectcalico.org/name": "legacy"}
    assert namespace_labels("") == {}


def test_a_namespace_pool_selected_by_a_negation_serves_every_other_namespace() -> None:
    others: dict[str, Any] = {
        "cidr": "10.252.0.0/24",
        "namespace_selector": 'projectcalico.org/name != "legacy"',
    }
    config = IpamConfig(pools=(Pool.parse(DEFAULT), Pool.parse(LEGACY), Pool.parse(others)))
    assert cidrs(candidate_pools(config, req("web"), "n1", {})) == ["10.252.0.0/24"]
    assert cidrs(candidate_pools(config, req("legacy"), "n1", {})) == ["10.250.0.0/24"]


def test_pools_dedicated_to_a_use_come_before_pools_allowing_both() -> None:
    config = IpamConfig(pools=tuple(Pool.parse(p) for p in (BOTH, WORKLOAD)))
    assert cidrs(candidate_pools(config, req(), "n1", {})) == ["10.96.0.0/24"]
    assert cidrs(candidate_pools(config, req(use="tunnel"), "n1", {})) == ["10.98.0.0/24"]
    both = IpamConfig(pools=(Pool.parse(DEFAULT),))
    assert Pool.parse(DEFAULT).allowed_uses == (PoolUse.WORKLOAD, PoolUse.TUNNEL)
    assert cidrs(candidate_pools(both, req(use="tunnel"), "n1", {})) == ["10.244.0.0/16"]
