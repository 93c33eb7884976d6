"""Rib.advertised: prefixes each peer is currently told of, per family, without a scan.

Split horizon (rib.adjout): a peer is never sent its own routes, so its count is
its update group's Adj-RIB-Out less the entries holding its own paths.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

from ribkit import V4, V6, announce, attrs, drain, make_rib, peer, withdraw

from bgp.wire import PathAttributes
from rib import Policy, Rib


def v6a(asn: int, nh: str) -> PathAttributes:
    return PathAttributes(origin=0, as_path=((2, (asn,)),), mp_next_hop=(ip_address(nh),))


def told(rib: Rib, k: str) -> int:
    return len(drain(rib, k).announced)


def test_counts_follow_split_horizon_and_families() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    c = peer(rib, "192.0.2.3", 65003)
    announce(rib, a, ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"], attrs((65001,), "192.0.2.1"))
    announce(rib, b, ["10.4.0.0/16", "10.5.0.0/16"], attrs((65002,), "192.0.2.2"))
    announce(rib, a, ["2001:db8:1::/48"], v6a(65001, "2001:db8::1"))
    for k in (a, b, c):
        drain(rib, k)
    assert rib.advertised(a) == {V4: 2, V6: 0}
    assert rib.advertised(b) == {V4: 3, V6: 1}
    assert rib.advertised(c) == {V4: 5, V6: 1}
    withdraw(rib, a, ["10.1.0.0/16"])
    for k in (a, b, c):
        drain(rib, k)
    assert rib.advertised(b)[V4] == 2 and rib.advertised(c)[V4] == 4


def test_best_path_moving_between_peers_moves_the_counts() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["10.1.0.0/16", "10.2.0.0/16"], attrs((65001, 7, 8), "192.0.2.1"))
    drain(rib, a), drain(rib, b)
    assert rib.advertised(a)[V4] == 0 and rib.advertised(b)[V4] == 2
    # B's shorter AS path wins (RFC 4271 §9.1.2.2 a): A is now told of B's route.
    announce(rib, b, ["10.1.0.0/16"], attrs((65002,), "192.0.2.2"))
    assert told(rib, a) == 1
    drain(rib, b)
    assert rib.advertised(a)[V4] == 1 and rib.advertised(b)[V4] == 1
    withdraw(rib, b, ["10.1.0.0/16"])
    drain(rib, a), drain(rib, b)
    assert rib.advertised(a)[V4] == 0 and rib.advertised(b)[V4] == 2


def test_export_policy_rejections_are_not_counted() -> None:
    no10 = Policy.from_data(
        {
            "name": "no10",
            "rule": [{"match": {"as_path": "^65001 10$"}, "action": "reject"}],
            "default_action": "accept",
        }
    )
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    c = peer(rib, "192.0.2.3", 65003)
    d = peer(rib, "192.0.2.4", 65004)
    rib.set_policy(d, replace(rib.peers[d].policy, export_policy=no10))
    announce(rib, a, ["10.1.0.0/16"], attrs((65001,), "192.0.2.1"))
    announce(rib, a, ["10.2.0.0/16"], attrs((65001, 10), "192.0.2.1"))
    assert told(rib, c) == 2 and told(rib, d) == 1
    assert rib.advertised(c)[V4] == 2 and rib.advertised(d)[V4] == 1
    # The rejected path replaces an accepted one: D's count drops with the withdrawal.
    announce(rib, a, ["10.1.0.0/16"], attrs((65001, 10), "192.0.2.1"))
    assert drain(rib, d).withdrawn == ["10.1.0.0/16"]
    assert rib.advertised(d)[V4] == 0


def test_down_or_unknown_peer_has_nothing() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["10.1.0.0/16"], attrs((65001,), "192.0.2.1"))
    drain(rib, b)
    rib.peer_down(b)
    assert rib.advertised(b) == {}
    assert rib.advertised("198.51.100.1") == {}
