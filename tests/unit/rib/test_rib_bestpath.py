"""Decision process (RFC 4271 §9.1.2.2): each tie-break step on its own, as a table."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest
from ribkit import V4, attrs

import rib.bestpath as bp
from bgp.wire import PathAttributes
from rib.path import Path, Source


def src(
    name: str,
    *,
    ebgp: bool = True,
    bgp_id: str = "10.0.0.9",
    addr: str = "192.0.2.9",
    asn: int = 65001,
    local: bool = False,
) -> Source:
    s = Source(name, address=IPv4Address(addr), asn=asn, ebgp=ebgp, local=local)
    s.bgp_id = int(IPv4Address(bgp_id))
    return s


def path(s: Source, a: PathAttributes, cost: int | None = 0) -> Path:
    return Path(s.slot(0), a, V4, 100, cost)


def test_docstring_lists_exactly_the_steps() -> None:
    doc = bp.__doc__ or ""
    listed = re.findall(r"^\d+\. ([a-z-]+):", doc, flags=re.M)
    assert listed == [s.name for s in bp.STEPS]
    assert bp.ECMP_STEP in listed


def _two(a: Path, b: Path) -> tuple[Path, str]:
    r = bp.rank([b, a])
    return r.paths[0], r.reasons[0]


# Each row: winner and loser differ only in the criterion the step looks at.
CASES = [
    (
        # RFC 9494 §4.4: even LOCAL_PREF 0 beats a long-lived stale route.
        "not-llgr-stale",
        lambda: (
            path(src("a"), attrs(lp=0)),
            path(src("b"), attrs(lp=200, communities=(0xFFFF0006,))),
        ),
    ),
    (
        "local-pref",
        lambda: (path(src("a"), attrs(lp=200)), path(src("b"), attrs(lp=100))),
    ),
    (
        "local-origin",
        lambda: (
            path(src("l", local=True), attrs(path=(), nh="192.0.2.50")),
            path(src("b"), attrs(path=())),
        ),
    ),
    (
        "as-path-length",
        lambda: (path(src("a"), attrs((65001,))), path(src("b"), attrs((65001, 65002)))),
    ),
    (
        "origin",
        lambda: (path(src("a"), attrs(origin=0)), path(src("b"), attrs(origin=2))),
    ),
    (
        "med",
        lambda: (path(src("a"), attrs(med=5)), path(src("b"), attrs(med=10))),
    ),
    (
        "ebgp-over-ibgp",
        lambda: (path(src("a", ebgp=True), attrs()), path(src("b", ebgp=False), attrs())),
    ),
    (
        "igp-cost",
        lambda: (path(src("a"), attrs(), cost=1), path(src("b"), attrs(), cost=5)),
    ),
    (
        "router-id",
        lambda: (
            path(src("a", bgp_id="10.0.0.1"), attrs()),
            path(src("b", bgp_id="10.0.0.2"), attrs()),
        ),
    ),
    (
        "cluster-list-length",
        lambda: (
            path(src("a", ebgp=False), attrs(originator="10.1.1.1", clusters=("1.1.1.1",))),
            path(
                src("b", ebgp=False),
                attrs(originator="10.1.1.1", clusters=("1.1.1.1", "2.2.2.2")),
            ),
        ),
    ),
    (
        "peer-address",
        lambda: (
            path(src("a", addr="192.0.2.1"), attrs()),
            path(src("b", addr="192.0.2.2"), attrs()),
        ),
    ),
]


@pytest.mark.parametrize(("step", "make"), CASES, ids=[c[0] for c in CASES])
def test_each_step_decides_on_its_own(step: str, make: object) -> None:
    winner, loser = make()  # type: ignore[operator]
    best, reason = _two(winner, loser)
    assert best is winner
    assert reason == step
    r = bp.rank([winner, loser])
    assert r.reasons[1] == step  # the loser lost at the same step


def test_steps_in_rfc_order_local_pref_beats_shorter_path() -> None:
    a = path(src("a"), attrs((65001, 2, 3), lp=300))
    b = path(src("b"), attrs((65001,), lp=100))
    assert _two(a, b) == (a, "local-pref")


def test_med_only_compared_within_same_neighbour_as() -> None:
    # RFC 4271 §9.1.2.2 c: different neighbour AS → MED ignored, next step decides.
    a = path(src("a", bgp_id="10.0.0.1"), attrs((65001,), med=100))
    b = path(src("b", bgp_id="10.0.0.2"), attrs((65002,), med=1))
    best, reason = _two(a, b)
    assert best is a and reason == "router-id"
    r = bp.rank([a, b], always_med=True)
    assert r.paths[0] is b and r.reasons[0] == "med"


def test_missing_med_counts_as_zero() -> None:
    a = path(src("a", bgp_id="10.0.0.2"), attrs())
    b = path(src("b", bgp_id="10.0.0.1"), attrs(med=1))
    assert _two(a, b) == (a, "med")


def test_as_set_counts_one_and_confed_segments_zero() -> None:
    s_set = PathAttributes(
        origin=0, as_path=((2, (65001,)), (1, (1, 2, 3))), next_hop=IPv4Address("192.0.2.1")
    )
    s_seq = PathAttributes(
        origin=0, as_path=((2, (65001, 7, 8)),), next_hop=IPv4Address("192.0.2.1")
    )
    a, b = path(src("a"), s_set), path(src("b"), s_seq)
    assert a.as_len == 2 and b.as_len == 3
    confed = PathAttributes(
        origin=0, as_path=((3, (1, 2, 3)), (2, (65001,))), next_hop=IPv4Address("192.0.2.1")
    )
    assert path(src("c"), confed).as_len == 1


def test_originator_id_stands_in_for_router_id() -> None:
    # RFC 4456 §9: ORIGINATOR_ID replaces the peer's BGP identifier.
    a = path(src("a", ebgp=False, bgp_id="10.0.0.200"), attrs(originator="10.0.0.1"))
    b = path(src("b", ebgp=False, bgp_id="10.0.0.2"), attrs())
    assert _two(a, b) == (a, "router-id")


def test_unreachable_next_hop_not_eligible() -> None:
    a = path(src("a"), attrs(lp=500), cost=None)
    b = path(src("b"), attrs(lp=100))
    r = bp.rank([a, b])
    assert r.best is b
    assert r.paths[-1] is a and r.reasons[-1] == bp.NOT_ELIGIBLE
    assert bp.rank([a]).best is None


def test_ecmp_set_is_what_ties_through_igp_cost() -> None:
    a = path(src("a", bgp_id="10.0.0.1"), attrs(nh="192.0.2.1"))
    b = path(src("b", bgp_id="10.0.0.2"), attrs(nh="192.0.2.2"))
    c = path(src("c", bgp_id="10.0.0.3"), attrs(nh="192.0.2.3"), cost=9)
    r = bp.rank([c, b, a], max_paths=8)
    assert r.best is a
    assert r.ecmp == (a, b)
    assert r.nexthops == (IPv4Address("192.0.2.1").packed, IPv4Address("192.0.2.2").packed)
    assert bp.rank([a, b], max_paths=1).ecmp == (a,)


def test_ecmp_excludes_paths_with_same_next_hop() -> None:
    a = path(src("a", bgp_id="10.0.0.1"), attrs(nh="192.0.2.1"))
    b = path(src("b", bgp_id="10.0.0.2"), attrs(nh="192.0.2.1"))
    assert bp.rank([a, b]).ecmp == (a,)


def test_rank_orders_all_paths_and_is_order_independent() -> None:
    ps = [
        path(src(f"p{i}", bgp_id=f"10.0.0.{i + 1}"), attrs(med=m, lp=lp))
        for i, (m, lp) in enumerate([(5, 100), (1, 100), (3, 200), (0, 50)])
    ]
    r1 = bp.rank(ps)
    r2 = bp.rank(list(reversed(ps)))
    assert r1.paths == r2.paths
    assert [p.lp for p in r1.paths] == [200, 100, 100, 50]
    assert r1.paths[1].med == 1
