"""IPv4 routes with an IPv6 next hop (RFC 8950), and link-local next hops (RFC 2545 §3).

On a session over IPv6 with the extended next hop capability negotiated, IPv4
routes leave with our IPv6 next hop in MP_REACH_NLRI: the node's global address
and the session's link-local one when both exist, the link-local one alone on
an unnumbered link. Without the capability, or over an IPv4 session, IPv4 routes
keep an IPv4 next hop. A link-local next hop learned on one link is never passed
on as it is to a peer on another.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from ribkit import V4, V6, announce, attrs, drain, facts, key, make_rib, peer

from bgp.wire import PathAttributes
from rib.path import hop_text


def v6attrs(*hops: str, path: tuple[int, ...] = (65001,)) -> PathAttributes:
    return PathAttributes(
        origin=0, as_path=((2, path),), mp_next_hop=tuple(ip_address(h) for h in hops)
    )


def unnumbered(ll: str = "fe80::fe", glob: str | None = None, enh: bool = True) -> object:
    return facts(
        local="192.0.2.254",  # unused: link_local makes it an IPv6 session
        link_local=IPv6Address(ll),
        local_address6=IPv6Address(glob) if glob else None,
        extended_nexthop=enh,
        bgp_id="10.9.9.8",
    )


def test_ipv4_route_to_unnumbered_peer_has_the_link_local_next_hop() -> None:
    rib = make_rib()
    src = peer(rib, "192.0.2.1", 65001)
    dst = peer(rib, "fe80::2", 65002, fx=unnumbered())  # type: ignore[arg-type]
    announce(rib, src, ["203.0.113.0/24"], attrs(nh="192.0.2.1"))
    out = drain(rib, dst).announced["203.0.113.0/24"]
    assert out.next_hop is None  # RFC 8950 §3: in MP_REACH_NLRI, not NEXT_HOP
    assert out.mp_next_hop == (IPv6Address("fe80::fe"),)


def test_global_and_link_local_when_the_node_has_a_global_address() -> None:
    rib = make_rib()
    src = peer(rib, "192.0.2.1", 65001)
    fx = unnumbered(glob="2001:db8::fe")
    dst = peer(rib, "fe80::2", 65002, fx=fx)  # type: ignore[arg-type]
    announce(rib, src, ["203.0.113.0/24"], attrs(nh="192.0.2.1"))
    announce(rib, src, ["2001:db8:9::/48"], v6attrs("2001:db8::1"))
    got = drain(rib, dst).announced
    want = (IPv6Address("2001:db8::fe"), IPv6Address("fe80::fe"))
    assert got["203.0.113.0/24"].mp_next_hop == want  # RFC 2545 §3: 32 octets
    assert got["2001:db8:9::/48"].mp_next_hop == want


def test_without_extended_next_hop_ipv4_routes_keep_an_ipv4_next_hop() -> None:
    rib = make_rib()
    src = peer(rib, "192.0.2.1", 65001)
    fx = facts(local="fe80::fe", bgp_id="10.9.9.8")  # IPv6 session, no capability
    dst = peer(rib, "fe80::2", 65002, fx=fx)
    announce(rib, src, ["203.0.113.0/24"], attrs(nh="192.0.2.1"))
    out = drain(rib, dst).announced["203.0.113.0/24"]
    # No IPv4 address of ours on this session: the route's own IPv4 next hop stays.
    assert out.next_hop == IPv4Address("192.0.2.1") and out.mp_next_hop == ()


def test_ipv4_session_with_extended_next_hop_keeps_ipv4_next_hop() -> None:
    rib = make_rib()
    src = peer(rib, "192.0.2.1", 65001)
    dst = peer(rib, "198.51.100.2", 65002,
               fx=facts(local="198.51.100.254", bgp_id="10.9.9.8", extended_nexthop=True))  # fmt: skip
    announce(rib, src, ["203.0.113.0/24"], attrs(nh="192.0.2.1"))
    assert drain(rib, dst).announced["203.0.113.0/24"].next_hop == IPv4Address("198.51.100.254")


def test_ipv4_route_learned_with_link_local_next_hop_is_installable() -> None:
    rib = make_rib()
    a = peer(rib, "fe80::2", 65002, fx=unnumbered())  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], v6attrs("fe80::2", path=(65002,)))
    best = rib.best(V4, key("203.0.113.0/24"))
    assert best is not None and best.nexthop == IPv6Address("fe80::2").packed


def test_unspecified_global_next_hop_falls_back_to_link_local() -> None:
    rib = make_rib()
    a = peer(rib, "fe80::2", 65002, fx=unnumbered())  # type: ignore[arg-type]
    announce(rib, a, ["2001:db8:5::/48"], v6attrs("::", "fe80::2", path=(65002,)))
    best = rib.best(V6, key("2001:db8:5::/48"))
    assert best is not None and best.nexthop == IPv6Address("fe80::2").packed


def test_link_local_next_hop_is_not_passed_to_another_link() -> None:
    rib = make_rib()
    a = peer(rib, "fe80::2", 65002, fx=unnumbered("fe80::fe"))  # type: ignore[arg-type]
    # An iBGP peer keeps next hops (RFC 4271 §5.1.3) but not another link's link-local one.
    b = peer(rib, "fe80::3", 65000, fx=unnumbered("fe80::fd"))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], v6attrs("fe80::2", path=(65002,)))
    out = drain(rib, b).announced["203.0.113.0/24"]
    assert out.mp_next_hop == (IPv6Address("fe80::fd"),)


def test_link_local_next_hop_carries_the_link_of_its_session() -> None:
    """Two links' fe80::2 are two next hops: the FIB routes each through its own link."""
    rib = make_rib()
    a = peer(rib, "fe80::2%eth1", 65002, fx=unnumbered())  # type: ignore[arg-type]
    b = peer(rib, "fe80::2%eth2", 65003, fx=unnumbered())  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], v6attrs("fe80::2", path=(65002,)))
    announce(rib, b, ["198.51.100.0/24"], v6attrs("fe80::2", path=(65003,)))
    one, two = rib.best(V4, key("203.0.113.0/24")), rib.best(V4, key("198.51.100.0/24"))
    assert one is not None and one.nexthop == IPv6Address("fe80::2").packed + b"eth1"
    assert two is not None and two.nexthop == IPv6Address("fe80::2").packed + b"eth2"
    assert hop_text(one.nexthop) == "fe80::2%eth1"
    assert hop_text(IPv4Address("10.0.0.1").packed) == "10.0.0.1"
