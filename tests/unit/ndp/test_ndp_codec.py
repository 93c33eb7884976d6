"""bgp.ndp's ICMPv6 codec: RFC 4861 §4 layouts by hand and against scapy's dissector,
the RFC 4443 §2.3 checksum, and malformed messages dropped (never an exception)."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgp.ndp import (
    EchoReply,
    EchoRequest,
    NeighbourAdvertisement,
    NeighbourSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    checksum,
    decode,
    encode,
)

MAC = bytes.fromhex("020000000001")
SRC, DST = IPv6Address("fe80::1"), IPv6Address("ff02::1")


def test_router_advertisement_layout() -> None:
    """RFC 4861 §4.2: type 134, code 0, checksum, cur hop limit, M/O flags, router
    lifetime, reachable time, retrans timer; then a source link-layer address option
    (§4.6.1: type 1, length 1 unit of 8 octets, the MAC)."""
    ra = RouterAdvertisement(64, 0xC0, 0, 30000, 1000, MAC)
    raw = encode(ra)
    assert raw.hex() == "8600000040c0000000007530000003e80101020000000001"
    assert decode(raw) == ra


def test_every_message_round_trips() -> None:
    target = IPv6Address("fe80::2")
    for msg in (RouterSolicitation(MAC), RouterSolicitation(), RouterAdvertisement(),
                NeighbourSolicitation(target, MAC), NeighbourAdvertisement(target, 0x60, MAC),
                EchoRequest(7, 9, b"podbgp"), EchoReply(7, 9, b"")):  # fmt: skip
        assert decode(encode(msg)) == msg


def test_checksum_agrees_with_scapy() -> None:
    inet6 = pytest.importorskip("scapy.layers.inet6")
    pkt = (
        inet6.IPv6(src=str(SRC), dst=str(DST), hlim=255)
        / inet6.ICMPv6ND_RA(chlim=64, prf=0, routerlifetime=0)
        / inet6.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    )
    wire = bytes(pkt)[40:]
    ours = encode(RouterAdvertisement(64, 0, 0, 0, 0, MAC))
    assert ours[4:] == wire[4:]  # the same message, scapy's own field layout
    assert checksum(SRC, DST, ours) == int.from_bytes(wire[2:4], "big")
    # and scapy reads what we build
    back = inet6.ICMPv6ND_RA(ours)
    assert back.chlim == 64 and back.routerlifetime == 0


@pytest.mark.parametrize(
    "raw",
    [
        "8600000040",  # shorter than 16 octets (§6.1.2)
        "86010000400000000000000000000000",  # code 1 (§6.1.2)
        "860000004000000000000000000000000100020000000001",  # option length 0 (§4.6)
        "860000004000000000000000000000000102020000000001",  # option overruns
        "8700000000000000" + "ff020000000000000000000000000001",  # NS for a multicast target
        "8800000000000000",  # an NA shorter than 24 octets
        "0100000000000000",  # destination unreachable: not a type used here
    ],
)
def test_malformed_messages_are_dropped(raw: str) -> None:
    assert decode(bytes.fromhex(raw)) is None


@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    msg = decode(data)
    if msg is not None:  # what we keep of it survives a round trip
        assert decode(encode(msg)) == msg
