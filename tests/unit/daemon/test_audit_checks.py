"""`podbgp.audit.findings` as tables: each check fires on its break and only on it."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network

import pytest

from podbgp.audit import BlockRecord, Check, Snapshot, findings, report

POOL = ip_network("10.244.0.0/16")
B1, B2, B3 = (ip_network(f"10.244.{i}.0/26") for i in (1, 2, 3))


def healthy() -> Snapshot:
    """n1's view of a three-node cluster where everything is right."""
    return Snapshot(
        node="n1",
        pools=(POOL,),
        blocks=(BlockRecord(B1, "n1"), BlockRecord(B2, "n2"), BlockRecord(B3, "n3")),
        affinities={("n1", B1): "confirmed", ("n2", B2): "confirmed", ("n3", B3): "confirmed"},
        live_nodes=frozenset({"n1", "n2", "n3"}),
        rib=frozenset({B1, B2, B3, ip_network("0.0.0.0/0")}),
        originated=frozenset({B1}),
        kernel={B1: "ok", B2: "ok", B3: "ok"},
        peers={
            "10.0.0.2": ("Established", "up", False, "n2"),
            "10.0.0.3": ("Established", "up", False, "n3"),
        },
    )


def checks(s: Snapshot) -> list[tuple[Check, str]]:
    return [(f.check, f.subject) for f in findings(s)]


def test_healthy_has_no_findings() -> None:
    assert findings(healthy()) == []
    assert report(healthy())["ok"] is True


def test_block_not_routed_in_kernel() -> None:
    s = replace(healthy(), kernel={B1: "ok", B3: "ok"})
    assert checks(s) == [(Check.BLOCK_NOT_ROUTED, str(B2))]


def test_block_covered_by_an_aggregate_is_routed() -> None:
    s = replace(healthy(), kernel={B1: "ok", ip_network("10.244.2.0/23"): "ok"})
    assert checks(s) == []


def test_own_block_without_blackhole() -> None:
    s = replace(healthy(), kernel={B2: "ok", B3: "ok"})
    [f] = findings(s)
    assert (f.check, f.subject) == (Check.BLOCK_NOT_ROUTED, str(B1)) and "blackhole" in f.detail


def test_gone_node_block_is_not_expected() -> None:
    s = replace(healthy(), kernel={B1: "ok", B2: "ok"}, live_nodes=frozenset({"n1", "n2"}))
    assert checks(s) == []


def test_without_fib_the_rib_is_checked() -> None:
    s = replace(healthy(), kernel=None, rib=frozenset({B1, B3}))
    assert checks(s) == [(Check.BLOCK_NOT_ROUTED, str(B2))]


def test_route_to_unowned_block() -> None:
    stray = ip_network("10.244.9.0/26")
    s = replace(healthy(), rib=frozenset({B1, B2, B3, stray}))
    assert checks(s) == [(Check.ROUTE_TO_UNOWNED, str(stray))]


def test_borrowed_host_route_is_owned() -> None:
    host = ip_network("10.244.2.7/32")
    s = replace(healthy(), rib=frozenset({B1, B2, B3, host}))
    assert checks(s) == []


def test_route_outside_pools_is_not_judged() -> None:
    s = replace(healthy(), rib=frozenset({B1, B2, B3, ip_network("192.0.2.0/24")}))
    assert checks(s) == []


@pytest.mark.parametrize("where", ["originated", "rib"])
def test_pending_affinity_advertised(where: str) -> None:
    pending = ip_network("10.244.4.0/26")
    s = replace(
        healthy(),
        blocks=(*healthy().blocks, BlockRecord(pending, "n2")),
        affinities={**healthy().affinities, ("n2", pending): "pending"},
    )
    assert checks(s) == []  # pending and not advertised: fine
    if where == "originated":
        s = replace(s, originated=s.originated | {pending}, rib=(s.rib or frozenset()) | {pending})
    else:
        s = replace(s, rib=(s.rib or frozenset()) | {pending})
    assert checks(s) == [(Check.PENDING_ADVERTISED, str(pending))]


def test_block_affine_to_two_nodes() -> None:
    s = replace(healthy(), affinities={**healthy().affinities, ("n3", B2): "confirmed"})
    found = checks(s)
    assert (Check.OVERLAPPING_AFFINITY, str(B2)) in found


def test_block_record_disagrees_with_affinity() -> None:
    s = replace(
        healthy(), blocks=(BlockRecord(B1, "n1"), BlockRecord(B2, "n3"), BlockRecord(B3, "n3"))
    )
    [f] = findings(s)
    assert f.check is Check.OVERLAPPING_AFFINITY and "n3" in f.detail and "n2" in f.detail


@pytest.mark.parametrize("state", ["missing", "differs", "conflict", "failed: No such device"])
def test_kernel_route_states(state: str) -> None:
    s = replace(healthy(), kernel={B1: "ok", B2: state, B3: "ok"})
    assert (Check.KERNEL_ROUTE, str(B2)) in checks(s)


def test_stale_routes_only_after_convergence() -> None:
    old = ip_network("10.244.7.0/26")
    s = replace(
        healthy(), kernel={**(healthy().kernel or {}), old: "stale"}, kernel_converged=False
    )
    assert checks(s) == []
    assert checks(replace(s, kernel_converged=True)) == [(Check.KERNEL_ROUTE, str(old))]


def test_session_down() -> None:
    s = replace(healthy(), peers={**healthy().peers, "10.0.0.3": ("Active", "up", False, "n3")})
    [f] = findings(s)
    assert (f.check, f.subject) == (Check.SESSION_DOWN, "10.0.0.3") and "n3" in f.detail


def test_shut_down_and_dynamic_peers_are_not_expected() -> None:
    s = replace(healthy(), peers={"10.0.0.2": ("Idle", "down", False, None),
                                  "10.0.0.9": ("Active", "up", True, None)})  # fmt: skip
    assert checks(s) == []


def test_datastore_fault_replaces_ipam_checks() -> None:
    s = replace(healthy(), datastore_fault="datastore /x is missing", kernel={B1: "ok"})
    assert checks(s) == [(Check.DATASTORE, "datastore")]
