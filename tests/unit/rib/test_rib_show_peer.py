"""``rib.show``'s per-peer views: what a peer was sent (Adj-RIB-Out) equals the UPDATEs
it pulled, decoded; what it sent, after and before import policy."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from ribkit import V4, announce, attrs, drain, facts, make_rib, peer, withdraw

from rib import builtin
from rib.show import NotKept, advertised, peer_routes, received, received_pre_policy


def _sent(rows: list[dict[str, object]]) -> dict[str, tuple[object, object, object]]:
    return {str(r["prefix"]): (r["next_hop"], r["as_path"], r["med"]) for r in rows}


def test_advertised_is_what_the_peer_pulled() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["203.0.113.0/24", "198.51.100.0/24"], attrs((65001, 7), med=50))
    announce(rib, b, ["192.0.2.128/25"], attrs((65002,), nh="192.0.2.2"))
    withdraw(rib, a, ["198.51.100.0/24"])
    pulled = drain(rib, b).announced
    rows = advertised(rib, b)
    # Split horizon: b's own route is not in what b is told; a's withdrawn one neither.
    assert [r["prefix"] for r in rows] == ["203.0.113.0/24"]
    got = pulled["203.0.113.0/24"]
    assert _sent(rows) == {"203.0.113.0/24": (str(got.next_hop), "65000 65001 7", got.med)}
    assert rows[0]["next_hop"] == "10.0.0.1" and rows[0]["local_pref"] is None  # eBGP rewrite
    # a is told of b's route; filtered by an address inside it, and by family.
    assert [r["prefix"] for r in advertised(rib, a, prefix="192.0.2.200")] == ["192.0.2.128/25"]
    assert advertised(rib, a, family="ipv6") == []
    counts = peer_routes(rib, b)
    assert counts is not None
    assert counts.advertised["ipv4"] == 1 and counts.received["ipv4"] == 1
    assert counts.received_pre_policy is None  # not kept without soft reconfiguration


def test_advertised_is_empty_while_down_and_unknown_peer_raises() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    c = peer(rib, "192.0.2.3", 65003, up=False)
    announce(rib, a, ["203.0.113.0/24"], attrs())
    assert advertised(rib, c) == []
    with pytest.raises(KeyError):
        advertised(rib, "192.0.2.99")
    assert peer_routes(rib, "192.0.2.99") is None


def test_received_after_and_before_import_policy() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, soft_reconfiguration=True,
             import_policy=builtin("none"))  # fmt: skip
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001,), med=3, communities=(65001 << 16 | 9,)))
    announce(rib, b, ["203.0.113.0/24"], attrs((65002,), nh="192.0.2.2"))
    assert received(rib, a) == []  # rejected by import policy
    pre = received_pre_policy(rib, a)
    assert [(r["prefix"], r["as_path"], r["med"], r["communities"]) for r in pre] == [
        ("203.0.113.0/24", "65001", 3, ["65001:9"])
    ]
    rows = received(rib, b)
    assert [(r["prefix"], r["peer"], r["best"], r["next_hop"]) for r in rows] == [
        ("203.0.113.0/24", b, True, "192.0.2.2")
    ]
    with pytest.raises(NotKept):
        received_pre_policy(rib, b)
    counts = peer_routes(rib, a)
    assert counts is not None
    assert counts.total("received") == 0 and counts.received_pre_policy == {"ipv4": 1}


def test_add_path_advertised_rows_carry_the_sent_path_ids() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    c = peer(rib, "10.0.0.3", 65000, add_path_send=-1,
             fx=facts(bgp_id="10.0.0.3", add_path_tx=(V4,)))  # fmt: skip
    announce(rib, a, ["203.0.113.0/24"], attrs((65001,), nh="192.0.2.1"))
    announce(rib, b, ["203.0.113.0/24"], attrs((65002, 1), nh="192.0.2.2"))
    pulled = drain(rib, c, add_path=True).announced
    rows = advertised(rib, c)
    assert sorted(f"{r['prefix']}#{r['path_id']}" for r in rows) == sorted(pulled)
    assert {r["next_hop"] for r in rows} == {str(IPv4Address("192.0.2.1")), "192.0.2.2"}
