"""Golden vectors for every BMP message podbgp sends, laid out field by field as
RFC 7854 §4 draws them (and RFC 9069 §4 for the Loc-RIB peer)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from bgp.monitor.bmp import (
    PeerDownReason,
    PeerHeader,
    PeerType,
    Stat,
    StatType,
    TerminationReason,
    encode_initiation,
    encode_peer_down,
    encode_peer_up,
    encode_route_monitoring,
    encode_statistics,
    encode_termination,
)
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.messages import Notification, encode_message


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


PEER4 = PeerHeader(IPv4Address("192.0.2.1"), 65001, IPv4Address("10.0.0.1"), 1_700_000_000.25)
# §4.2: type 0, flags 0, distinguisher 0, address (IPv4 in the last 4 octets), AS, id,
# seconds 1700000000 = 0x6553f100, microseconds 250000 = 0x0003d090.
PEER4_HEX = """00 00 0000000000000000 00000000000000000000000 0c0000201
               0000fde9 0a000001 6553f100 0003d090"""
UPDATE = h("ffffffffffffffffffffffffffffffff 0017 02 0000 0000")  # IPv4 End-of-RIB


def test_peer_header_ipv4() -> None:
    assert PEER4.encode() == h(PEER4_HEX)


def test_peer_header_ipv6_post_policy_as2() -> None:
    p = PeerHeader(
        IPv6Address("2001:db8::1"), 64512, IPv4Address("10.0.0.2"), 0.0, post_policy=True, as2=True
    )
    # V (0x80) | L (0x40) | A (0x20) = 0xe0
    want = "00 e0 0000000000000000 20010db8000000000000000000000001 0000fc00 0a000002 00000000 00000000"
    assert p.encode() == h(want)


def test_loc_rib_peer_header() -> None:
    """RFC 9069 §4.1: peer type 3, address zero; §4.2: F flag is the top bit."""
    p = PeerHeader(None, 65000, IPv4Address("10.9.9.9"), 1.0, peer_type=PeerType.LOC_RIB)
    want = "03 00 0000000000000000 " + "00" * 16 + " 0000fde8 0a090909 00000001 00000000"
    assert p.encode() == h(want)
    filtered = PeerHeader(
        None, 65000, IPv4Address("10.9.9.9"), 1.0, PeerType.LOC_RIB, filtered=True
    )
    assert filtered.encode()[1] == 0x80


def test_initiation() -> None:
    # §4.3: common header (version 3, length 6 + 4+5 + 4+2 = 21, type 4); sysDescr (1), sysName (2).
    want = "03 00000015 04  0001 0005 706f646267  0002 0002 6e31"
    assert encode_initiation("n1", "podbg") == h(want)


def test_termination() -> None:
    # §4.5: length 6 + 6 + 6; a string TLV, then the reason TLV (type 1, 2 octets: 0 admin close).
    want = "03 00000012 05  0000 0002 6279  0001 0002 0000"
    assert encode_termination(TerminationReason.ADMIN_CLOSE, "by") == h(want)
    assert encode_termination(TerminationReason.UNSPECIFIED) == h("03 0000000c 05 0001 0002 0001")


def test_route_monitoring() -> None:
    msg = encode_route_monitoring(PEER4, UPDATE)
    assert msg == h("03 00000047 00") + h(PEER4_HEX) + UPDATE
    assert len(msg) == 6 + 42 + 23


def test_peer_up() -> None:
    sent, received = b"SENT-OPEN", b"RECEIVED-OPEN"  # opaque here: copied whole
    msg = encode_peer_up(PEER4, IPv4Address("192.0.2.2"), 40000, 179, sent, received)
    body = h(PEER4_HEX) + h("00000000000000000000 0000 c0000202  9c40 00b3") + sent + received
    assert msg == h("03") + (6 + len(body)).to_bytes(4, "big") + h("03") + body


def test_peer_up_information_string() -> None:
    msg = encode_peer_up(PEER4, None, 0, 0, b"", b"", strings=("hi",))
    assert msg.endswith(h("0000 0002 6869"))


def test_peer_down_with_notification() -> None:
    note = encode_message(Notification(6, 2, b""), CodecContext())  # Cease/Administrative Shutdown
    msg = encode_peer_down(PEER4, PeerDownReason.REMOTE_NOTIFICATION, note)
    assert (
        msg
        == h("03") + (6 + 42 + 1 + 21).to_bytes(4, "big") + h("02") + h(PEER4_HEX) + h("03") + note
    )


def test_peer_down_local_fsm_event_and_remote_close() -> None:
    local = encode_peer_down(PEER4, PeerDownReason.LOCAL_NO_NOTIFICATION, fsm_event=10)
    assert local[-3:] == h("02 000a")
    remote = encode_peer_down(PEER4, PeerDownReason.REMOTE_NO_NOTIFICATION)
    assert remote == h("03 00000031 02") + h(PEER4_HEX) + h("04")


def test_peer_down_notification_reason_needs_the_pdu() -> None:
    with pytest.raises(ValueError, match="NOTIFICATION"):
        encode_peer_down(PEER4, PeerDownReason.LOCAL_NOTIFICATION)


def test_statistics() -> None:
    stats = [
        Stat(StatType.REJECTED_BY_POLICY, 3),  # 32-bit counter
        Stat(StatType.ADJ_RIB_IN, 5),  # 64-bit gauge
        Stat(StatType.ADJ_RIB_IN_FAMILY, 2, Family.IPV6_UNICAST),  # AFI, SAFI, 64-bit gauge
    ]
    want = (
        "03 00000057 01"
        + PEER4_HEX
        + "00000003"
        + "0000 0004 00000003"
        + "0007 0008 0000000000000005"
        + "0009 000b 0002 01 0000000000000002"
    )
    assert encode_statistics(PEER4, stats) == h(want)


def test_statistics_counter_wraps_and_family_gauge_needs_a_family() -> None:
    assert Stat(StatType.DUPLICATE_WITHDRAW, 2**32 + 1).encode() == h("0002 0004 00000001")
    with pytest.raises(ValueError, match="family"):
        Stat(StatType.LOC_RIB_FAMILY, 1).encode()
