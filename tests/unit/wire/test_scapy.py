"""scapy.contrib.bgp as an independent dissector, both ways.

scapy's limits (shared/lab/RECIPES.md §9): one value per BGPPACommunity and
BGPPALargeCommunity, 2-octet AS_PATH unless ``use_2_bytes_asn`` is False and
BGPPAAS4BytesPath is used for building. The messages here stay inside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from bgp.wire import (
    CodecContext,
    Family,
    FourOctetAsCapability,
    MultiprotocolCapability,
    Notification,
    Open,
    PathAttributes,
    Update,
    decode_message,
    encode_message,
    key_from_network,
)

sbgp = pytest.importorskip("scapy.contrib.bgp")
CTX = CodecContext()


@pytest.fixture(autouse=True)
def four_octet_asns() -> Iterator[None]:
    old = sbgp.bgp_module_conf.use_2_bytes_asn
    sbgp.bgp_module_conf.use_2_bytes_asn = False
    yield
    sbgp.bgp_module_conf.use_2_bytes_asn = old


def _attrs(pkt: object) -> dict[int, object]:
    return {a.type_code: a.attribute for a in pkt[sbgp.BGPUpdate].path_attr}  # type: ignore[index]


def test_scapy_dissects_podbgp_ipv4_update() -> None:
    attrs = PathAttributes(
        origin=0,
        as_path=((2, (4200000001, 65002)),),
        next_hop=IPv4Address("192.0.2.1"),
        med=50,
        local_pref=200,
        communities=((65001 << 16) | 7,),
    )
    keys = [key_from_network(p)[1] for p in ("10.0.0.0/24", "10.1.0.0/16")]
    raw = encode_message(Update(attrs, {Family.IPV4_UNICAST: keys}), CTX)
    pkt = sbgp.BGPHeader(raw)
    assert pkt.type == 2 and pkt.len == len(raw)
    got = _attrs(pkt)
    assert got[1].origin == 0
    seg = got[2].segments[0]
    assert (seg.segment_type, list(seg.segment_value)) == (2, [4200000001, 65002])
    assert got[3].next_hop == "192.0.2.1"
    assert got[4].med == 50 and got[5].local_pref == 200
    assert got[8].community == (65001 << 16) | 7
    assert [n.prefix for n in pkt[sbgp.BGPUpdate].nlri] == ["10.0.0.0/24", "10.1.0.0/16"]


def test_scapy_dissects_podbgp_ipv6_update() -> None:
    attrs = PathAttributes(
        origin=2,
        as_path=((2, (65001,)),),
        mp_next_hop=(IPv6Address("2001:db8::1"), IPv6Address("fe80::1")),
    )
    key = key_from_network("2001:db8:5::/48")[1]
    raw = encode_message(Update(attrs, {Family.IPV6_UNICAST: [key]}), CTX)
    mp = _attrs(sbgp.BGPHeader(raw))[14]
    assert (mp.afi, mp.safi, mp.nh_addr_len) == (2, 1, 32)
    assert (mp.nh_v6_global, mp.nh_v6_link_local) == ("2001:db8::1", "fe80::1")
    assert [n.prefix for n in mp.nlri] == ["2001:db8:5::/48"]


def test_scapy_dissects_podbgp_open_and_notification() -> None:
    o = Open.build(
        4200000001,
        90,
        "10.0.0.1",
        (MultiprotocolCapability(1, 1), FourOctetAsCapability(4200000001)),
    )
    pkt = sbgp.BGPHeader(encode_message(o, CTX))
    op = pkt[sbgp.BGPOpen]
    assert (op.version, op.my_as, op.hold_time, op.bgp_id) == (4, 23456, 90, "10.0.0.1")
    n = sbgp.BGPHeader(encode_message(Notification(6, 2, b"\x02hi"), CTX))[sbgp.BGPNotification]
    assert (n.error_code, n.error_subcode) == (6, 2)


def test_podbgp_decodes_scapy_update() -> None:
    upd = sbgp.BGPHeader(type=2) / sbgp.BGPUpdate(
        path_attr=[
            sbgp.BGPPathAttr(type_flags=0x40, type_code=1, attribute=sbgp.BGPPAOrigin(origin=1)),
            sbgp.BGPPathAttr(
                type_flags=0x40,
                type_code=2,
                attribute=sbgp.BGPPAAS4BytesPath(
                    segments=[
                        sbgp.BGPPAAS4BytesPath.ASPathSegment(
                            segment_type=2, segment_value=[4200000001, 65000]
                        )
                    ]
                ),
            ),
            sbgp.BGPPathAttr(
                type_flags=0x40, type_code=3, attribute=sbgp.BGPPANextHop(next_hop="198.51.100.7")
            ),
            sbgp.BGPPathAttr(
                type_flags=0xC0,
                type_code=8,
                attribute=sbgp.BGPPACommunity(community=(65000 << 16) | 100),
            ),
        ],
        nlri=[sbgp.BGPNLRI_IPv4(prefix="203.0.113.0/24")],
    )
    msg = decode_message(bytes(upd), CTX)
    assert isinstance(msg, Update) and msg.attrs is not None and not msg.errors
    a = msg.attrs
    assert (a.origin, a.as_path, str(a.next_hop)) == (
        1,
        ((2, (4200000001, 65000)),),
        "198.51.100.7",
    )
    assert a.communities == ((65000 << 16) | 100,)
    assert [str(p) for p in msg.announced] == ["203.0.113.0/24"]


def test_podbgp_decodes_scapy_mp_reach_and_unreach() -> None:
    upd = sbgp.BGPHeader(type=2) / sbgp.BGPUpdate(
        path_attr=[
            sbgp.BGPPathAttr(type_flags=0x40, type_code=1, attribute=sbgp.BGPPAOrigin(origin=0)),
            sbgp.BGPPathAttr(
                type_flags=0x40,
                type_code=2,
                attribute=sbgp.BGPPAAS4BytesPath(
                    segments=[
                        sbgp.BGPPAAS4BytesPath.ASPathSegment(segment_type=2, segment_value=[65000])
                    ]
                ),
            ),
            sbgp.BGPPathAttr(
                type_flags=0x80,
                type_code=14,
                attribute=sbgp.BGPPAMPReachNLRI(
                    afi=2,
                    safi=1,
                    nh_addr_len=16,
                    nh_v6_addr="fd99:1::4",
                    nlri=[sbgp.BGPNLRI_IPv6(prefix="fd00:204::/64")],
                ),
            ),
        ]
    )
    msg = decode_message(bytes(upd), CTX)
    assert isinstance(msg, Update) and msg.attrs is not None and not msg.errors
    assert [str(h) for h in msg.attrs.mp_next_hop] == ["fd99:1::4"]
    assert [str(p) for p in msg.announced] == ["fd00:204::/64"]
    unreach = sbgp.BGPHeader(type=2) / sbgp.BGPUpdate(
        path_attr=[
            sbgp.BGPPathAttr(
                type_flags=0x80,
                type_code=15,
                attribute=sbgp.BGPPAMPUnreachNLRI(
                    afi=2,
                    safi=1,
                    afi_safi_specific=sbgp.BGPPAMPUnreachNLRI_IPv6(
                        withdrawn_routes=[sbgp.BGPNLRI_IPv6(prefix="fd00:204::/64")]
                    ),
                ),
            )
        ]
    )
    w = decode_message(bytes(unreach), CTX)
    assert isinstance(w, Update) and [str(p) for p in w.withdrawn] == ["fd00:204::/64"]
