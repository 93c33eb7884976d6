"""bgp.ndp.Finder: who the neighbour of a link is, with a fake clock and no sockets."""

from __future__ import annotations

from ipaddress import IPv6Address

from bgp.ndp import (
    ALL_NODES,
    ALL_ROUTERS,
    Discovery,
    EchoReply,
    EchoRequest,
    Finder,
    NeighbourAdvertisement,
    NeighbourHeard,
    NeighbourSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    decode,
    encode,
)

US, PEER, OTHER = IPv6Address("fe80::1"), IPv6Address("fe80::2"), IPv6Address("fe80::3")


def sent(f: Finder) -> list[tuple[IPv6Address, object]]:
    return [(p.dest, decode(p.data)) for p in f.packets_to_send()]


def events(f: Finder) -> list[NeighbourHeard]:
    out = []
    while (ev := f.next_event()) is not None:
        out.append(ev)
    return out


def test_ra_mode_solicits_and_advertises_as_a_non_default_router() -> None:
    f = Finder(Discovery.RA, frozenset({US}), interval=10.0, lladdr=b"\x02" * 6)
    f.start(100.0)
    out = sent(f)
    assert out == [(ALL_ROUTERS, RouterSolicitation(b"\x02" * 6)),
                   (ALL_NODES, RouterAdvertisement(source_lladdr=b"\x02" * 6))]  # fmt: skip
    ra = out[1][1]
    assert isinstance(ra, RouterAdvertisement) and ra.lifetime == 0  # RFC 4861 §4.2
    assert f.get_timer() == 110.0
    f.handle_timer(105.0)
    assert sent(f) == []  # not due yet
    f.handle_timer(110.0)
    assert [d for d, _ in sent(f)] == [ALL_NODES] and f.get_timer() == 120.0


def test_ra_mode_neighbour_is_the_sender_of_a_valid_advertisement() -> None:
    f = Finder(Discovery.RA, frozenset({US}))
    f.start(0.0)
    f.packets_to_send()
    ra = encode(RouterAdvertisement())
    f.receive(ra, PEER, 64, 1.0)  # RFC 4861 §6.1.2: hop limit must be 255
    f.receive(ra, US, 255, 1.0)  # our own, looped back
    f.receive(ra, IPv6Address("2001:db8::2"), 255, 1.0)  # not link-local
    f.receive(encode(EchoReply(0x5042, 1)), OTHER, 64, 1.0)  # not an RA
    assert events(f) == [] and f.neighbour is None
    f.receive(ra, PEER, 255, 2.0)
    assert events(f) == [NeighbourHeard(PEER)] and f.neighbour == PEER
    f.receive(ra, PEER, 255, 3.0)
    assert events(f) == []  # heard again: nothing new
    f.receive(ra, OTHER, 255, 4.0)
    assert events(f) == [NeighbourHeard(OTHER)]  # the speaker decides whether to follow


def test_ra_mode_answers_a_solicitation_at_once() -> None:
    f = Finder(Discovery.RA, frozenset({US}))
    f.start(0.0)
    f.packets_to_send()
    f.receive(encode(RouterSolicitation()), PEER, 255, 1.0)  # RFC 4861 §6.2.6
    assert [(d, type(m)) for d, m in sent(f)] == [(ALL_NODES, RouterAdvertisement)]
    assert f.neighbour is None  # a solicitation names no router


def test_nd_mode_echoes_until_someone_answers() -> None:
    f = Finder(Discovery.ND, frozenset({US}), interval=2.0, ident=77)
    f.start(0.0)
    [(dest, echo)] = sent(f)
    assert dest == ALL_NODES and isinstance(echo, EchoRequest) and echo.ident == 77
    f.handle_timer(2.0)
    [(_, echo2)] = sent(f)
    assert isinstance(echo2, EchoRequest) and echo2.seq == echo.seq + 1
    f.receive(encode(EchoReply(78, 1)), PEER, 64, 2.5)  # someone else's echo
    assert f.neighbour is None
    f.receive(encode(EchoReply(77, 2)), PEER, 64, 2.5)
    assert events(f) == [NeighbourHeard(PEER)]
    f.handle_timer(4.0)
    assert sent(f) == []  # found: no more echoes


def test_nd_mode_learns_from_resolution_of_our_address() -> None:
    f = Finder(Discovery.ND, frozenset({US}))
    f.start(0.0)
    ns_other = encode(NeighbourSolicitation(OTHER))
    f.receive(ns_other, PEER, 255, 1.0)  # resolving someone else: not about us
    assert f.neighbour is None
    f.receive(encode(NeighbourSolicitation(US)), PEER, 64, 1.0)  # hop limit not 255
    assert f.neighbour is None
    f.receive(encode(NeighbourSolicitation(US)), PEER, 255, 1.0)
    assert f.neighbour == PEER
    g = Finder(Discovery.ND, frozenset({US}))
    g.receive(encode(NeighbourAdvertisement(PEER, 0x20)), PEER, 255, 1.0)
    assert g.neighbour == PEER
