"""RFC 7606 actions for every attribute and NLRI malformation, as a table.

Each row is a hand-built UPDATE (tests/unit/wire/build.py, from the RFC
layouts), the context, and the action RFC 7606 (or RFC 4271/4760/6793/7607)
requires: the decoded ``action`` with the prefixes announced/withdrawn, or
the NOTIFICATION (code, subcode) of a session reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bgp.errors import BGPError, UpdateSubcode
from bgp.wire import Action, CodecContext, Family, PathAttributes, Update, decode_message

from .build import (
    BASE,
    ORIGIN_IGP,
    as_path4,
    attr,
    mp_reach,
    mp_unreach,
    next_hop,
    update,
    v4,
    v6,
)

P1 = "10.0.0.0/24"
P2 = "10.1.0.0/16"
NLRI = v4(P1) + v4(P2)
V6NH = bytes.fromhex("20010db8000000000000000000000001")
V6LL = bytes.fromhex("fe800000000000000000000000000001")
Q1 = "2001:db8:1::/48"
TAW = Action.TREAT_AS_WITHDRAW
AD = Action.ATTRIBUTE_DISCARD
NONE = Action.NONE
EBGP = {"ebgp": True, "peer_as": 65001}


@dataclass
class Case:
    name: str
    raw: bytes
    action: Action | None = None  # None: a session reset is expected
    announced: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    reset: tuple[int, int] | None = None
    ctx: dict[str, Any] = field(default_factory=dict)
    disabled: Family | None = None


def taw(name: str, attrs: bytes, **kw: Any) -> Case:
    """An IPv4 announcement of P1, P2 that must be withdrawn instead."""
    return Case(name, update(attrs=attrs, nlri=NLRI), TAW, [], [P1, P2], **kw)


def discard(name: str, attrs: bytes, **kw: Any) -> Case:
    """An IPv4 announcement whose bad attribute is dropped; routes stay."""
    return Case(name, update(attrs=attrs, nlri=NLRI), AD, [P1, P2], [], **kw)


def reset(name: str, raw: bytes, sub: int, **kw: Any) -> Case:
    return Case(name, raw, None, reset=(3, sub), **kw)


CASES = [
    Case("valid", update(attrs=BASE, nlri=NLRI), NONE, [P1, P2]),
    # §7.1 ORIGIN
    taw("origin length 2", attr(0x40, 1, b"\x00\x00") + as_path4(65001) + next_hop("192.0.2.1")),
    taw("origin value 3", attr(0x40, 1, b"\x03") + as_path4(65001) + next_hop("192.0.2.1")),
    # §3(c) flags
    taw("origin marked optional", attr(0xC0, 1, b"\x00") + as_path4(65001) + next_hop("192.0.2.1")),
    taw("med marked transitive", BASE + attr(0xC0, 4, b"\x00\x00\x00\x01")),
    # §7.6 and §7.7 soften only a wrong length: wrong flags stay §3(c) treat-as-withdraw
    taw("atomic_aggregate marked optional", BASE + attr(0xC0, 6, b"")),
    taw("aggregator marked well-known", BASE + attr(0x40, 7, b"\x00\x00\xfd\xea\xc0\x00\x02\x09")),
    taw(
        "aggregator marked non-transitive",
        BASE + attr(0x80, 7, b"\x00\x00\xfd\xea\xc0\x00\x02\x09"),
    ),
    # RFC 4271 §4.3: Partial must be 0 on well-known and optional non-transitive
    taw(
        "origin with partial bit",
        attr(0x60, 1, b"\x00") + as_path4(65001) + next_hop("192.0.2.1"),
    ),
    taw("med with partial bit", BASE + attr(0xA0, 4, b"\x00\x00\x00\x01")),
    discard("atomic_aggregate with partial bit", BASE + attr(0x60, 6, b"")),
    Case(
        "communities with partial bit kept (optional transitive)",
        update(attrs=BASE + attr(0xE0, 8, b"\x00\x00\x00\x01"), nlri=NLRI),
        NONE,
        [P1, P2],
    ),
    Case(
        "mp_reach with partial bit",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, v6(Q1), flags=0xA0)),
        TAW,
        [],
        [Q1],
    ),
    # §7.2 AS_PATH
    taw(
        "as_path segment overrun",
        ORIGIN_IGP + attr(0x40, 2, b"\x02\x03\x00\x00\xfd\xe9") + next_hop("192.0.2.1"),
    ),
    taw(
        "as_path zero-length segment",
        ORIGIN_IGP + attr(0x40, 2, b"\x02\x00") + next_hop("192.0.2.1"),
    ),
    taw(
        "as_path unknown segment type",
        ORIGIN_IGP + attr(0x40, 2, b"\x07\x01\x00\x00\xfd\xe9") + next_hop("192.0.2.1"),
    ),
    taw("as_path AS 0 (RFC 7607)", ORIGIN_IGP + as_path4(65001, 0) + next_hop("192.0.2.1")),
    taw("as_path first AS not the eBGP peer", BASE, ctx={"ebgp": True, "peer_as": 65099}),
    Case(
        "as_path first AS is the eBGP peer",
        update(attrs=BASE, nlri=NLRI),
        NONE,
        [P1, P2],
        ctx={"ebgp": True, "peer_as": 65001},
    ),
    Case(
        "as_path first AS not the eBGP peer, check off (RFC 7947 route server)",
        update(attrs=BASE, nlri=NLRI),
        NONE,
        [P1, P2],
        ctx={"ebgp": True, "peer_as": 65099, "enforce_first_as": False},
    ),
    taw(
        "confed segment from eBGP peer",
        ORIGIN_IGP + attr(0x40, 2, b"\x03\x01\x00\x00\xfd\xe9") + next_hop("192.0.2.1"),
        ctx={"ebgp": True},
    ),
    taw(
        "confed segment from iBGP peer, no confederation",
        ORIGIN_IGP
        + attr(0x40, 2, b"\x03\x01\x00\x00\xfe\x4c\x02\x01\x00\x00\xfd\xe9")
        + next_hop("192.0.2.1"),
    ),
    taw(
        "confed set from iBGP peer, no confederation",
        ORIGIN_IGP
        + attr(0x40, 2, b"\x04\x01\x00\x00\xfe\x4c\x02\x01\x00\x00\xfd\xe9")
        + next_hop("192.0.2.1"),
    ),
    Case(
        "confed segment from confed peer",
        update(
            attrs=ORIGIN_IGP
            + attr(0x40, 2, b"\x03\x01\x00\x00\xfd\xe9\x02\x01\x00\x00\xfd\xe9")
            + next_hop("192.0.2.1"),
            nlri=NLRI,
        ),
        NONE,
        [P1, P2],
        ctx={"ebgp": True, "confed_peer": True},
    ),
    # §7.3 NEXT_HOP
    taw("next_hop length 5", ORIGIN_IGP + as_path4(65001) + attr(0x40, 3, b"\x01\x02\x03\x04\x05")),
    taw("next_hop martian 0.0.0.0", ORIGIN_IGP + as_path4(65001) + next_hop("0.0.0.0")),
    taw("next_hop martian 127.0.0.1", ORIGIN_IGP + as_path4(65001) + next_hop("127.0.0.1")),
    taw("next_hop martian multicast", ORIGIN_IGP + as_path4(65001) + next_hop("224.0.0.5")),
    taw("next_hop martian class E", ORIGIN_IGP + as_path4(65001) + next_hop("255.255.255.255")),
    # §7.4 MED, §7.5 LOCAL_PREF
    taw("med length 3", BASE + attr(0x80, 4, b"\x00\x00\x01")),
    taw("local_pref length 2 from iBGP", BASE + attr(0x40, 5, b"\x00\x01")),
    discard("local_pref from eBGP", BASE + attr(0x40, 5, b"\x00\x00\x00\x64"), ctx={"ebgp": True}),
    discard(
        "local_pref from eBGP, bad flags and length: still discard",
        BASE + attr(0xC0, 5, b"\x00\x64"),
        ctx={"ebgp": True},
    ),
    Case(
        "local_pref from confed eBGP kept",
        update(attrs=BASE + attr(0x40, 5, b"\x00\x00\x00\x64"), nlri=NLRI),
        NONE,
        [P1, P2],
        ctx={"ebgp": True, "confed_peer": True},
    ),
    # §7.6 ATOMIC_AGGREGATE, §7.7 AGGREGATOR
    discard("atomic_aggregate length 1", BASE + attr(0x40, 6, b"\x00")),
    discard(
        "aggregator length 7 (4-octet session)",
        BASE + attr(0xC0, 7, b"\x00\x00\x01\xc0\x00\x02\x01"),
    ),
    discard(
        "aggregator AS 0 (RFC 7607)", BASE + attr(0xC0, 7, b"\x00\x00\x00\x00\xc0\x00\x02\x01")
    ),
    # §7.8 COMMUNITIES, §7.9-10, §7.14, RFC 8092
    taw("communities length 5", BASE + attr(0xC0, 8, b"\x00" * 5)),
    taw("communities length 0", BASE + attr(0xC0, 8, b"")),
    taw("originator_id length 3", BASE + attr(0x80, 9, b"\x00" * 3)),
    taw("cluster_list length 6", BASE + attr(0x80, 10, b"\x00" * 6)),
    discard("originator_id from eBGP", BASE + attr(0x80, 9, b"\x0a\x00\x00\x09"), ctx=EBGP),
    discard("cluster_list from eBGP", BASE + attr(0x80, 10, b"\x0a\x00\x00\xfe"), ctx=EBGP),
    discard(
        "originator_id from eBGP, bad length and flags: still discard",
        BASE + attr(0xC0, 9, b"\x0a\x00"),
        ctx=EBGP,
    ),
    discard(
        "cluster_list from eBGP, length 6: still discard",
        BASE + attr(0x80, 10, b"\x00" * 6),
        ctx=EBGP,
    ),
    Case(
        "originator_id and cluster_list from confed eBGP kept",
        update(
            attrs=BASE + attr(0x80, 9, b"\x0a\x00\x00\x09") + attr(0x80, 10, b"\x0a\x00\x00\xfe"),
            nlri=NLRI,
        ),
        NONE,
        [P1, P2],
        ctx={"ebgp": True, "confed_peer": True},
    ),
    taw("ext communities length 7", BASE + attr(0xC0, 16, b"\x00" * 7)),
    taw("large communities length 13", BASE + attr(0xC0, 32, b"\x00" * 13)),
    # RFC 6793 §6: AS4_* malformed → discard; on a 4-octet session they are ignored
    discard(
        "as4_path on a 2-octet session, malformed",
        ORIGIN_IGP
        + attr(0x40, 2, b"\x02\x01\xfd\xe9")
        + next_hop("192.0.2.1")
        + attr(0xC0, 17, b"\x02\x05\x00"),
        ctx={"as4": False},
    ),
    discard(
        "as4_aggregator length 6",
        ORIGIN_IGP
        + attr(0x40, 2, b"\x02\x01\xfd\xe9")
        + next_hop("192.0.2.1")
        + attr(0xC0, 7, b"\x5b\xa0\xc0\x00\x02\x01")
        + attr(0xC0, 18, b"\x00" * 6),
        ctx={"as4": False},
    ),
    discard("as4_path on a 4-octet session", BASE + attr(0xC0, 17, b"\x02\x01\x00\x00\xfd\xe9")),
    discard(
        "as4_path with a confed segment: the segment dropped, the route kept",
        ORIGIN_IGP
        + attr(0x40, 2, b"\x02\x01\x5b\xa0")
        + next_hop("192.0.2.1")
        + attr(0xC0, 17, b"\x03\x01\x00\x00\xfe\x4c\x02\x01\xfa\x56\xea\x01"),
        ctx={"as4": False},
    ),
    # §3(d) missing well-known
    taw("missing origin", as_path4(65001) + next_hop("192.0.2.1")),
    taw("missing as_path", ORIGIN_IGP + next_hop("192.0.2.1")),
    taw("missing next_hop", ORIGIN_IGP + as_path4(65001)),
    Case("nlri without any attribute", update(nlri=NLRI), TAW, [], [P1, P2]),
    # §3(g) duplicates
    Case(
        "duplicate origin: first kept",
        update(attrs=BASE + attr(0x40, 1, b"\x02"), nlri=NLRI),
        AD,
        [P1, P2],
    ),
    reset(
        "duplicate MP_REACH_NLRI",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, v6(Q1)) * 2),
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    ),
    reset(
        "duplicate MP_UNREACH_NLRI",
        update(attrs=mp_unreach(2, 1, v6(Q1)) * 2),
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    ),
    # §4 attribute length overruns: treat-as-withdraw, Total Path Attribute Length trusted
    taw("last attribute overruns the list", BASE + b"\xc0\x08\x08\x00\x00\x00\x01"),
    taw("two octets left after the last attribute", BASE + b"\xc0\x08"),
    # §3(j): a truncated MP attribute cannot be parsed, its routes not withdrawn
    reset(
        "mp_reach overruns the attribute list",
        update(attrs=BASE + b"\x80\x0e\x30\x00\x02\x01\x10" + V6NH, nlri=NLRI),
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
    ),
    reset(
        "mp_unreach overruns the attribute list",
        update(attrs=BASE + b"\x80\x0f\x09\x00\x02\x01\x20", nlri=NLRI),
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
    ),
    # unknown attributes (RFC 4271 §5, §6.3)
    Case(
        "unknown optional transitive kept",
        update(attrs=BASE + attr(0xC0, 99, b"abc"), nlri=NLRI),
        NONE,
        [P1, P2],
    ),
    Case(
        "unknown optional non-transitive dropped",
        update(attrs=BASE + attr(0x80, 99, b"abc"), nlri=NLRI),
        NONE,
        [P1, P2],
    ),
    reset(
        "unrecognised well-known attribute",
        update(attrs=BASE + attr(0x40, 99, b"abc"), nlri=NLRI),
        UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
    ),
    # §5.2 attributes but no reachable NLRI
    reset(
        "bad origin and no NLRI",
        update(attrs=attr(0x40, 1, b"\x00\x00") + as_path4(65001)),
        UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
    ),
    Case("discard-only error and no NLRI", update(attrs=BASE + attr(0x40, 6, b"\x00")), AD, [], []),
    reset(
        "bad communities with withdrawals only",
        update(withdrawn=v4(P1), attrs=BASE + attr(0xC0, 8, b"\x00" * 5)),
        UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
    ),
    # §5.2 counts MP_REACH_NLRI as a path attribute: empty MP_REACH_NLRI + error
    reset(
        "martian mp next hop and empty mp_reach NLRI",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, bytes(15) + b"\x01", b"")),
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
    ),
    reset(
        "mp_reach alone with bad flags and no NLRI",
        update(attrs=mp_reach(2, 1, V6NH, b"", flags=0xC0)),
        UpdateSubcode.ATTRIBUTE_FLAGS_ERROR,
    ),
    Case(
        "mp_unreach only with bad flags is not §5.2",
        update(attrs=mp_unreach(2, 1, v6(Q1), flags=0xC0)),
        TAW,
        [],
        [Q1],
    ),
    Case(
        "mp_reach NLRI unparseable, no other NLRI: AFI/SAFI disable kept",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, b"\x81" + bytes(16))),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV6_UNICAST,
    ),
    # §5.3 NLRI / withdrawn fields; RFC 4271 §6.3 lengths
    reset(
        "NLRI prefix length 33",
        update(attrs=BASE, nlri=b"\x21\x0a\x00\x00\x00\x00"),
        UpdateSubcode.INVALID_NETWORK_FIELD,
    ),
    reset(
        "NLRI prefix overruns",
        update(attrs=BASE, nlri=b"\x18\x0a\x00"),
        UpdateSubcode.INVALID_NETWORK_FIELD,
    ),
    reset(
        "withdrawn prefix overruns",
        update(withdrawn=b"\x18\x0a"),
        UpdateSubcode.INVALID_NETWORK_FIELD,
    ),
    reset(
        "withdrawn length too large",
        bytes.fromhex("ff" * 16) + b"\x00\x17\x02\x00\x09\x00\x00",
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    ),
    reset(
        "attribute length too large",
        bytes.fromhex("ff" * 16) + b"\x00\x17\x02\x00\x00\x00\x09",
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    ),
    # RFC 7911 ADD-PATH NLRI are checked like any NLRI (RFC 7606 §5.3)
    reset(
        "add-path NLRI field with a truncated path id",
        update(attrs=BASE, nlri=b"\x00\x00\x00\x07" + v4(P1) + b"\x00\x00"),
        UpdateSubcode.INVALID_NETWORK_FIELD,
        ctx={"add_path_ipv4": True},
    ),
    reset(
        "add-path withdrawn field with a truncated path id",
        update(withdrawn=b"\x00\x00\x01"),
        UpdateSubcode.INVALID_NETWORK_FIELD,
        ctx={"add_path_ipv4": True},
    ),
    Case(
        "add-path mp_reach NLRI with a truncated path id",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, b"\x00\x00\x00")),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV6_UNICAST,
        ctx={"add_path_ipv6": True},
    ),
    # MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 §7, RFC 7606 §3(j), §5.3, §7.11)
    Case(
        "mp_reach ipv6 16-octet next hop",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, v6(Q1))),
        NONE,
        [Q1],
    ),
    Case(
        "mp_reach ipv6 32-octet next hop",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH + V6LL, v6(Q1))),
        NONE,
        [Q1],
    ),
    # §7.11: a next hop of unexpected length hides where the NLRI start
    Case(
        "mp_reach ipv6 next hop length 12",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH[:12], v6(Q1))),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV6_UNICAST,
    ),
    Case(
        "mp_reach ipv6 next hop length 4",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, b"\xc0\x00\x02\x01", v6(Q1))),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV6_UNICAST,
    ),
    Case(
        "mp_reach ipv4 next hop length 5",
        update(
            attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(1, 1, b"\xc0\x00\x02\x01\x00", v4(P1))
        ),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV4_UNICAST,
    ),
    Case(
        "mp_reach ipv6 martian next hop ::1",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, bytes(15) + b"\x01", v6(Q1))),
        TAW,
        [],
        [Q1],
    ),
    Case(
        "mp_reach ipv6 multicast next hop",
        update(
            attrs=ORIGIN_IGP
            + as_path4(65001)
            + mp_reach(2, 1, b"\xff\x02" + bytes(13) + b"\x01", v6(Q1))
        ),
        TAW,
        [],
        [Q1],
    ),
    Case(
        "mp_reach ipv6 missing origin",
        update(attrs=as_path4(65001) + mp_reach(2, 1, V6NH, v6(Q1))),
        TAW,
        [],
        [Q1],
    ),
    Case(
        "mp_reach ipv6 prefix length 129",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, b"\x81" + bytes(16))),
        Action.AFI_SAFI_DISABLE,
        [],
        [],
        disabled=Family.IPV6_UNICAST,
    ),
    Case(
        "mp_reach next hop overruns",
        update(attrs=ORIGIN_IGP + as_path4(65001) + attr(0x80, 14, b"\x00\x02\x01\x20" + V6NH)),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV6_UNICAST,
    ),
    Case(
        "mp_unreach prefix overruns",
        update(attrs=mp_unreach(2, 1, b"\x40\x20\x01")),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV6_UNICAST,
    ),
    reset(
        "mp_reach shorter than AFI/SAFI",
        update(attrs=ORIGIN_IGP + as_path4(65001) + attr(0x80, 14, b"\x00\x02")),
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
    ),
    Case(
        "mp_reach unknown family ignored",
        update(attrs=BASE + mp_reach(25, 65, b"\x01\x02\x03\x04", b"\x00"), nlri=NLRI),
        AD,
        [P1, P2],
    ),
    Case(
        "ipv4 in mp_reach with ipv6 next hop, extended next hop on",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(1, 1, V6NH, v4(P1))),
        NONE,
        [P1],
        ctx={"extended_nexthop_ipv4": True},
    ),
    Case(
        "ipv4 in mp_reach with ipv6 next hop, extended next hop off",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(1, 1, V6NH, v4(P1))),
        Action.AFI_SAFI_DISABLE,
        disabled=Family.IPV4_UNICAST,
    ),
    Case(
        "ipv4 in mp_reach with martian ipv4 next hop",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(1, 1, b"\x7f\x00\x00\x01", v4(P1))),
        TAW,
        [],
        [P1],
    ),
    Case(
        "martian NEXT_HOP ignored when only MP_REACH carries routes",
        update(
            attrs=ORIGIN_IGP + as_path4(65001) + next_hop("0.0.0.0") + mp_reach(2, 1, V6NH, v6(Q1))
        ),
        NONE,
        [Q1],
    ),
    Case(
        "mp flags wrong (transitive) → treat-as-withdraw",
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, v6(Q1), flags=0xC0)),
        TAW,
        [],
        [Q1],
    ),
    Case(
        "v4 field and v6 mp_reach in one UPDATE",
        update(attrs=BASE + mp_reach(2, 1, V6NH, v6(Q1)), nlri=NLRI),
        NONE,
        [P1, P2, Q1],
    ),
    Case(
        "strongest action wins: discard + withdraw",
        update(attrs=BASE + attr(0x40, 6, b"\x00") + attr(0xC0, 8, b"\x00"), nlri=NLRI),
        TAW,
        [],
        [P1, P2],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rfc7606_action(case: Case) -> None:
    ctx = CodecContext(**case.ctx)
    if case.reset is not None:
        with pytest.raises(BGPError) as info:
            decode_message(case.raw, ctx)
        assert (info.value.code, info.value.subcode) == case.reset
        return
    msg = decode_message(case.raw, ctx)
    assert isinstance(msg, Update)
    assert msg.action == case.action, msg.errors
    assert sorted(map(str, msg.announced)) == sorted(case.announced)
    assert sorted(map(str, msg.withdrawn)) == sorted(case.withdrawn)
    assert msg.disabled == case.disabled
    if case.action != NONE:
        assert msg.errors, "a non-NONE action must say why"


def test_action_order_is_the_rfc7606_strength_order() -> None:
    assert NONE < AD < TAW < Action.AFI_SAFI_DISABLE < Action.SESSION_RESET


def test_unknown_transitive_is_passed_on_with_partial_bit() -> None:
    raw = update(attrs=BASE + attr(0xC0, 99, b"abc"), nlri=NLRI)
    msg = decode_message(raw, CodecContext())
    assert isinstance(msg, Update) and msg.attrs is not None
    (u,) = msg.attrs.unknown
    assert (u.flags & 0x20, u.code, u.value) == (0x20, 99, b"abc")
    assert b"\xe0\x63\x03abc" in msg.attrs.encode(CodecContext())


def test_unrecognised_well_known_carries_the_attribute_as_data() -> None:
    bad = attr(0x40, 99, b"abc")
    with pytest.raises(BGPError) as info:
        decode_message(update(attrs=BASE + bad, nlri=NLRI), CodecContext())
    assert info.value.data == bad


def test_mp_reach_32_octet_next_hop_keeps_link_local() -> None:
    raw = update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH + V6LL, v6(Q1)))
    msg = decode_message(raw, CodecContext())
    assert isinstance(msg, Update) and msg.attrs is not None
    assert [str(a) for a in msg.attrs.mp_next_hop] == ["2001:db8::1", "fe80::1"]
    assert str(msg.attrs.nexthop(Family.IPV6_UNICAST)) == "2001:db8::1"


def test_ipv4_with_ipv6_next_hop_rfc8950() -> None:
    raw = update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(1, 1, V6NH, v4(P1)))
    msg = decode_message(raw, CodecContext(extended_nexthop_ipv4=True))
    assert isinstance(msg, Update) and msg.attrs is not None
    assert str(msg.attrs.nexthop(Family.IPV4_UNICAST)) == "2001:db8::1"


def test_next_hop_ignored_without_ipv4_nlri_field() -> None:
    raw = update(attrs=BASE + mp_reach(2, 1, V6NH, v6(Q1)))
    msg = decode_message(raw, CodecContext())
    assert isinstance(msg, Update) and msg.attrs is not None
    assert msg.attrs.next_hop is None  # RFC 4760 §3


def test_as4_path_reconciliation_rfc6793() -> None:
    # AS_PATH (2-octet): 65010 23456 23456; AS4_PATH: 4200000001 4200000002
    path2 = attr(0x40, 2, b"\x02\x03" + b"\xfd\xf2" + b"\x5b\xa0" * 2)
    path4 = attr(
        0xC0, 17, b"\x02\x02" + (4200000001).to_bytes(4, "big") + (4200000002).to_bytes(4, "big")
    )
    agg2 = attr(0xC0, 7, b"\x5b\xa0\xc0\x00\x02\x09")
    agg4 = attr(0xC0, 18, (4200000009).to_bytes(4, "big") + b"\xc0\x00\x02\x09")
    raw = update(attrs=ORIGIN_IGP + path2 + next_hop("192.0.2.1") + agg2 + path4 + agg4, nlri=NLRI)
    msg = decode_message(raw, CodecContext(as4=False))
    assert isinstance(msg, Update) and msg.attrs is not None and msg.action == NONE
    assert msg.attrs.as_path == ((2, (65010, 4200000001, 4200000002)),)
    assert msg.attrs.aggregator is not None and msg.attrs.aggregator[0] == 4200000009


def test_as4_path_confed_segments_dropped_and_the_rest_merged_rfc6793() -> None:
    """RFC 6793 §6: discard the confederation segments, use the rest of AS4_PATH."""
    path2 = attr(0x40, 2, b"\x02\x03" + b"\xfd\xf2" + b"\x5b\xa0" * 2)
    confed = b"\x03\x01" + (65100).to_bytes(4, "big")
    seq = b"\x02\x02" + (4200000001).to_bytes(4, "big") + (4200000002).to_bytes(4, "big")
    for as4_value in (confed + seq, seq + b"\x04\x01" + (65101).to_bytes(4, "big")):
        raw = update(
            attrs=ORIGIN_IGP + path2 + next_hop("192.0.2.1") + attr(0xC0, 17, as4_value), nlri=NLRI
        )
        msg = decode_message(raw, CodecContext(as4=False))
        assert isinstance(msg, Update) and msg.attrs is not None
        assert msg.attrs.as_path == ((2, (65010, 4200000001, 4200000002)),)
        assert msg.action == AD and [str(p) for p in msg.announced] == [P1, P2]
        assert "RFC 6793 §6" in msg.errors[0].reason


def test_originator_id_and_cluster_list_from_ebgp_are_not_kept() -> None:
    """RFC 7606 §7.9, §7.10: the attributes are gone from the decoded set."""
    reflected = BASE + attr(0x80, 9, b"\x0a\x00\x00\x09") + attr(0x80, 10, b"\x0a\x00\x00\xfe")
    raw = update(attrs=reflected, nlri=NLRI)
    ebgp = decode_message(raw, CodecContext(ebgp=True, peer_as=65001))
    ibgp = decode_message(raw, CodecContext())
    assert isinstance(ebgp, Update) and ebgp.attrs is not None
    assert ebgp.attrs.originator_id is None and ebgp.attrs.cluster_list == ()
    assert {e.reason for e in ebgp.errors} == {
        "ORIGINATOR_ID from an external peer (RFC 7606 §7.9)",
        "CLUSTER_LIST from an external peer (RFC 7606 §7.10)",
    }
    assert isinstance(ibgp, Update) and ibgp.attrs is not None and ibgp.action == NONE
    assert str(ibgp.attrs.originator_id) == "10.0.0.9"


def test_as4_ignored_when_aggregator_is_not_as_trans() -> None:
    path2 = attr(0x40, 2, b"\x02\x02" + b"\xfd\xf2\x5b\xa0")
    path4 = attr(0xC0, 17, b"\x02\x01" + (4200000001).to_bytes(4, "big"))
    agg2 = attr(0xC0, 7, b"\xfd\xf3\xc0\x00\x02\x09")
    agg4 = attr(0xC0, 18, (4200000009).to_bytes(4, "big") + b"\xc0\x00\x02\x09")
    raw = update(attrs=ORIGIN_IGP + path2 + next_hop("192.0.2.1") + agg2 + path4 + agg4, nlri=NLRI)
    msg = decode_message(raw, CodecContext(as4=False))
    assert isinstance(msg, Update) and msg.attrs is not None
    assert msg.attrs.as_path == ((2, (65010, 23456)),)
    assert msg.attrs.aggregator is not None and msg.attrs.aggregator[0] == 65011


def test_as4_path_longer_than_as_path_is_ignored() -> None:
    path2 = attr(0x40, 2, b"\x02\x01\x5b\xa0")
    path4 = attr(0xC0, 17, b"\x02\x02" + (4200000001).to_bytes(4, "big") * 2)
    raw = update(attrs=ORIGIN_IGP + path2 + next_hop("192.0.2.1") + path4, nlri=NLRI)
    msg = decode_message(raw, CodecContext(as4=False))
    assert isinstance(msg, Update) and msg.attrs is not None
    assert msg.attrs.as_path == ((2, (23456,)),)


def test_end_of_rib_both_families() -> None:
    v4eor = decode_message(update(), CodecContext())
    v6eor = decode_message(update(attrs=mp_unreach(2, 1, b"")), CodecContext())
    assert isinstance(v4eor, Update) and v4eor.end_of_rib is Family.IPV4_UNICAST
    assert isinstance(v6eor, Update) and v6eor.end_of_rib is Family.IPV6_UNICAST
    plain = decode_message(update(withdrawn=v4(P1)), CodecContext())
    assert isinstance(plain, Update) and plain.end_of_rib is None


def test_trailing_bits_are_cleared_in_keys() -> None:
    raw = update(attrs=BASE, nlri=b"\x17\x0a\x00\x01")  # 10.0.1.0/23 → 10.0.0.0/23
    msg = decode_message(raw, CodecContext())
    assert isinstance(msg, Update)
    assert [str(p) for p in msg.announced] == ["10.0.0.0/23"]


def test_add_path_nlri_carry_path_ids() -> None:
    nlri = b"\x00\x00\x00\x07" + v4(P1) + b"\x00\x00\x00\x09" + v4(P1)
    msg = decode_message(update(attrs=BASE, nlri=nlri), CodecContext(add_path_ipv4=True))
    assert isinstance(msg, Update)
    assert [(str(p), p.path_id) for p in msg.announced] == [(P1, 7), (P1, 9)]
    assert msg.reach[Family.IPV4_UNICAST][0] == b"\x00\x00\x00\x07" + v4(P1)


def test_interning_returns_the_same_attribute_object() -> None:
    ctx = CodecContext()
    a = decode_message(update(attrs=BASE, nlri=v4(P1)), ctx)
    b = decode_message(update(attrs=BASE, nlri=v4(P2)), ctx)
    assert isinstance(a, Update) and isinstance(b, Update)
    assert a.attrs is b.attrs
    c = decode_message(
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, v6(Q1))), ctx
    )
    d = decode_message(
        update(attrs=ORIGIN_IGP + as_path4(65001) + mp_reach(2, 1, V6NH, v6("2001:db8:2::/48"))),
        ctx,
    )
    assert isinstance(c, Update) and isinstance(d, Update)
    assert c.attrs is d.attrs


def test_large_communities_duplicates_removed_rfc8092() -> None:
    lc = [(65001, 1, 2), (65001, 1, 2), (65002, 3, 4), (65001, 1, 2)]
    value = b"".join(
        a.to_bytes(4, "big") + b.to_bytes(4, "big") + c.to_bytes(4, "big") for a, b, c in lc
    )
    msg = decode_message(update(attrs=BASE + attr(0xC0, 32, value), nlri=NLRI), CodecContext())
    assert isinstance(msg, Update) and msg.attrs is not None and msg.action == NONE
    assert msg.attrs.large_communities == ((65001, 1, 2), (65002, 3, 4))


def test_large_communities_duplicates_never_sent_rfc8092() -> None:
    attrs = PathAttributes(origin=0, as_path=(), large_communities=((1, 2, 3), (1, 2, 3)))
    raw = attrs.encode(CodecContext())
    assert raw.endswith(attr(0xC0, 32, bytes.fromhex("000000010000000200000003")))
