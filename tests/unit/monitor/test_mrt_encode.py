"""Golden vectors for the MRT records podbgp writes, laid out as RFC 6396 §4.3 and §4.4
(and RFC 8050 for ADD-PATH) draw them; each also read back by mrtparse."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from mrtread import records

from bgp.monitor.mrt import (
    MrtPeer,
    RibEntry,
    encode_bgp4mp_message,
    encode_peer_index_table,
    encode_rib,
    rib_attributes,
)
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


V4_ATTRS = PathAttributes(
    origin=0, as_path=((2, (65001, 4200000000)),), next_hop=IPv4Address("192.0.2.1")
)
V6_ATTRS = PathAttributes(
    origin=2, as_path=((2, (65002,)),), mp_next_hop=(IPv6Address("2001:db8::1"),)
)
EOR = h("ffffffffffffffffffffffffffffffff 0017 02 0000 0000")


def test_peer_index_table() -> None:
    peers = [
        MrtPeer(IPv4Address("10.0.0.1"), IPv4Address("192.0.2.1"), 65001),
        MrtPeer(IPv4Address("10.0.0.2"), IPv6Address("2001:db8::1"), 4200000000),
    ]
    body = (
        "0a000009 0002 6e31 0002"  # collector id, view name "n1", peer count
        " 02 0a000001 c0000201 0000fde9"  # type: AS4; id; IPv4 address; AS
        " 03 0a000002 20010db8000000000000000000000001 fa56ea00"  # type: AS4 | IPv6
    )
    want = h("0000000a 000d 0001") + len(h(body)).to_bytes(4, "big") + h(body)
    got = encode_peer_index_table(10, IPv4Address("10.0.0.9"), "n1", peers)
    assert got == want
    assert records(got)[0]["peer_entries"][1]["peer_as"] == "4200000000"


def test_rib_ipv4_unicast() -> None:
    attrs = "40010100 40020a0202 0000fde9 fa56ea00 400304c0000201"  # 4-octet AS_PATH always
    body = "00000007 10 0a01 0001  0000 00000005 0018" + attrs  # seq, /16 10.1, 1 entry
    got = encode_rib(10, 7, Family.IPV4_UNICAST, h("10 0a01"), [RibEntry(0, 5, V4_ATTRS)])
    assert got == h("0000000a 000d 0002") + len(h(body)).to_bytes(4, "big") + h(body)
    (rec,) = records(got)
    assert (rec["prefix"], rec["length"]) == ("10.1.0.0", 16)


def test_rib_ipv6_abbreviates_mp_reach() -> None:
    """§4.3.4: MP_REACH_NLRI keeps only the next hop's length and address."""
    mp = "800e11 10 20010db8000000000000000000000001"
    assert rib_attributes(V6_ATTRS, Family.IPV6_UNICAST) == h(mp + "40010102 4002060201 0000fdea")
    got = encode_rib(1, 0, Family.IPV6_UNICAST, h("30 20010db80001"), [RibEntry(3, 2, V6_ATTRS)])
    assert got[4:8] == h("000d 0004")  # TABLE_DUMP_V2, RIB_IPV6_UNICAST
    (rec,) = records(got)
    (entry,) = rec["rib_entries"]
    assert entry["path_attributes"][0]["value"]["next_hop"] == ["2001:db8::1"]


def test_rib_addpath_subtypes_carry_path_ids() -> None:
    """RFC 8050 §4: subtypes 8 and 10; each entry has a path identifier after its time."""
    v4 = encode_rib(1, 0, Family.IPV4_UNICAST, h("18 0a0000"), [RibEntry(0, 2, V4_ATTRS, 9)], True)
    assert v4[4:8] == h("000d 0008")
    assert v4[12 + 4 + 4 + 2 : 12 + 4 + 4 + 2 + 10] == h("0000 00000002 00000009")
    v6 = encode_rib(1, 0, Family.IPV6_UNICAST, h("00"), [RibEntry(0, 2, V6_ATTRS)], True)
    assert v6[4:8] == h("000d 000a")
    assert [e["path_id"] for r in records(v4 + v6) for e in r["rib_entries"]] == [9, 0]


def test_bgp4mp_message_as4() -> None:
    body = "0000fde9 0000fde8 0000 0001 c0000201 c0000202" + EOR.hex()
    got = encode_bgp4mp_message(
        11, 65001, 65000, IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"), EOR
    )
    assert got == h("0000000b 0010 0004") + len(h(body)).to_bytes(4, "big") + h(body)
    assert records(got)[0]["bgp_message"]["type"] == {2: "UPDATE"}


def test_bgp4mp_addpath_and_ipv6() -> None:
    got = encode_bgp4mp_message(
        1, 1, 2, IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"), EOR, add_path=True
    )
    assert got[4:8] == h("0010 0009")
    assert got[12 + 10 : 12 + 12] == h("0002")  # AFI IPv6
    with pytest.raises(ValueError, match="one family"):
        encode_bgp4mp_message(1, 1, 2, IPv6Address("2001:db8::1"), IPv4Address("192.0.2.2"), EOR)
