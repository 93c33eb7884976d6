"""RFC 4271 §6.3 / §9.1.2: a route whose next hop is one of our own addresses is ignored.

Our addresses are the session's local address (IPv4 and IPv6 ends) and the
node's configured addresses (``RibSettings.local_addresses``).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from ribkit import V4, V6, announce, attrs, drain, facts, key, make_rib, peer

from bgp.wire import PathAttributes
from rib import Path


def v6attrs(*hops: str) -> PathAttributes:
    return PathAttributes(
        origin=0, as_path=((2, (65001,)),), mp_next_hop=tuple(ip_address(h) for h in hops)
    )


def test_next_hop_equal_to_session_local_address_is_ignored() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=facts(local="192.0.2.254"))
    b = peer(rib, "192.0.2.2", 65002)
    drain(rib, b)
    announce(rib, a, ["203.0.113.0/24", "198.51.100.0/24"], attrs(nh="192.0.2.254"))
    assert rib.loc[V4] == {}
    assert rib.peers[a].total == 0
    assert drain(rib, b).announced == {}


def test_next_hop_equal_to_node_address_is_ignored() -> None:
    rib = make_rib(local_addresses=frozenset({IPv4Address("10.1.1.1")}))
    a = peer(rib, "192.0.2.1", 65001, fx=facts(local="192.0.2.254"))
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="10.1.1.1"))
    assert rib.best(V4, key("203.0.113.0/24")) is None
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.1"))
    best = rib.best(V4, key("203.0.113.0/24"))
    assert best is not None and best.nexthop == IPv4Address("192.0.2.1").packed


def test_only_our_addresses_count_per_session() -> None:
    """10.0.0.1 is our end of the session with A, not with B (no node address given)."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=facts(local="10.0.0.1"))
    b = peer(rib, "198.51.100.1", 65002, fx=facts(local="198.51.100.254", bgp_id="10.9.9.8"))
    announce(rib, a, ["203.0.113.0/24"], attrs((65001,), nh="10.0.0.1"))
    announce(rib, b, ["203.0.113.0/24"], attrs((65002,), nh="10.0.0.1"))
    entry = rib.loc[V4][key("203.0.113.0/24")]
    assert isinstance(entry, Path) and entry.source.key == b  # A's path was never a candidate
    assert rib.peers[a].total == 0 and rib.peers[b].total == 1


def test_replacement_with_own_next_hop_withdraws_the_earlier_route() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=facts(local="192.0.2.254"))
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.1"))
    assert "203.0.113.0/24" in drain(rib, b).announced
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.254"))
    assert rib.best(V4, key("203.0.113.0/24")) is None
    assert drain(rib, b).withdrawn == ["203.0.113.0/24"]
    assert rib.peers[a].total == 0


def test_ipv6_global_and_link_local_next_hops() -> None:
    rib = make_rib()
    fx = facts(local="192.0.2.254", local_address6=IPv6Address("2001:db8::fe"))
    a = peer(rib, "2001:db8::1", 65001, fx=fx)
    announce(rib, a, ["2001:db8:1::/48"], v6attrs("2001:db8::fe"))
    assert rib.best(V6, key("2001:db8:1::/48")) is None
    # RFC 2545 §3: the link-local next hop; our session end here is link-local.
    fx2 = facts(local="fe80::fe", bgp_id="10.9.9.8")
    b = peer(rib, "2001:db8::2", 65002, fx=fx2)
    announce(rib, b, ["2001:db8:2::/48"], v6attrs("2001:db8::2", "fe80::fe"))
    assert rib.best(V6, key("2001:db8:2::/48")) is None
    announce(rib, b, ["2001:db8:2::/48"], v6attrs("2001:db8::2", "fe80::2"))
    assert rib.best(V6, key("2001:db8:2::/48")) is not None


def test_checked_once_per_attribute_set() -> None:
    """The verdict is cached with the attribute set: later UPDATEs carrying the same
    attributes are rejected by the cache lookup, not by a per-prefix check."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=facts(local="192.0.2.254"))
    bad = attrs(nh="192.0.2.254")
    announce(rib, a, ["203.0.113.0/24"], bad)
    assert list(rib.peers[a].imports[V4].values()) == [(bad, None)]
    announce(rib, a, [f"10.{i}.0.0/16" for i in range(50)], bad)
    assert rib.loc[V4] == {}
    assert list(rib.peers[a].imports[V4].values()) == [(bad, None)]


def test_new_session_with_another_local_address_judges_afresh() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=facts(local="192.0.2.254"))
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.253"))
    assert rib.best(V4, key("203.0.113.0/24")) is not None
    rib.peer_down(a)
    rib.peer_up(a, facts(local="192.0.2.253", bgp_id="192.0.2.1"))
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.253"))
    assert rib.best(V4, key("203.0.113.0/24")) is None
