"""OPEN validation and capability negotiation (bgp.negotiate), one RFC rule per test."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from bgp.errors import OpenMessageError, OpenSubcode
from bgp.negotiate import build_open, hold_and_keepalive, negotiate, validate_open
from bgp.settings import AddPathMode, PeerSettings
from bgp.wire import Action, CodecContext, PathAttributes, Update, decode_message
from bgp.wire.capabilities import (
    AddPathCapability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
    GracefulRestartCapability,
    MultiprotocolCapability,
    RouteRefreshCapability,
)
from bgp.wire.constants import AS_TRANS, Family
from bgp.wire.messages import Open
from bgp.wire.prefix import Prefix
from bgp.wire.update import encode_announce

V4, V6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST


def ps(**kw: object) -> PeerSettings:
    kw.setdefault("address", "10.0.0.2")
    kw.setdefault("asn", 65002)
    return PeerSettings(**kw)  # type: ignore[arg-type]


def their_open(*caps: object, asn: int = 65002, hold: int = 90, rid: str = "10.0.0.2") -> Open:
    return Open(
        asn if asn <= 0xFFFF else AS_TRANS,
        hold,
        IPv4Address(rid),
        tuple(caps),  # type: ignore[arg-type]
    )


def test_our_open_announces_what_settings_ask_for() -> None:
    msg = build_open(
        4200000001,
        "10.0.0.1",
        ps(
            add_path=AddPathMode.BOTH, graceful_restart=True, restart_time=30, extended_nexthop=True
        ),
    )
    assert msg.asn == AS_TRANS and msg.peer_as == 4200000001
    kinds = {type(c) for c in msg.capabilities}
    assert {
        MultiprotocolCapability,
        RouteRefreshCapability,
        ExtendedMessageCapability,
        FourOctetAsCapability,
        AddPathCapability,
        GracefulRestartCapability,
        ExtendedNextHopCapability,
    } <= kinds
    gr = msg.find(GracefulRestartCapability)[0]
    assert isinstance(gr, GracefulRestartCapability) and gr.restart_time == 30


def test_peer_as_from_four_octet_capability() -> None:
    msg = their_open(FourOctetAsCapability(4200000002), asn=4200000002)
    assert validate_open(msg, 65001, "10.0.0.1", ps(asn=4200000002)) == 4200000002


@pytest.mark.parametrize(
    ("msg", "why"),
    [
        (
            Open(
                65002,
                90,
                IPv4Address("10.0.0.2"),
                (FourOctetAsCapability(65003),),
            ),
            "disagree",
        ),
        (
            Open(
                65002,
                90,
                IPv4Address("10.0.0.2"),
                (FourOctetAsCapability(4200000002),),
            ),
            "not AS_TRANS",
        ),
        (
            Open(
                AS_TRANS,
                90,
                IPv4Address("10.0.0.2"),
                (FourOctetAsCapability(AS_TRANS),),
            ),
            "AS_TRANS cap",
        ),
    ],
)
def test_inconsistent_as_fields_are_bad_peer_as(msg: Open, why: str) -> None:
    with pytest.raises(OpenMessageError) as exc:
        validate_open(msg, 65001, "10.0.0.1", ps(asn=0))
    assert exc.value.subcode == OpenSubcode.BAD_PEER_AS, why


@pytest.mark.parametrize(
    "msg",
    [
        Open(0, 90, IPv4Address("10.0.0.2")),
        Open(0, 90, IPv4Address("10.0.0.2"), (FourOctetAsCapability(0),)),
    ],
    ids=["my-as-0", "four-octet-as-0"],
)
def test_peer_as_zero_is_bad_peer_as_even_unconfigured(msg: Open) -> None:
    # RFC 7607 §2: an OPEN whose AS is 0 is refused with Bad Peer AS.
    with pytest.raises(OpenMessageError) as exc:
        validate_open(msg, 65001, "10.0.0.1", ps(asn=0))
    assert exc.value.subcode == OpenSubcode.BAD_PEER_AS


def test_any_as_accepted_when_unconfigured() -> None:
    assert validate_open(their_open(asn=64999), 65001, "10.0.0.1", ps(asn=0)) == 64999


def test_same_identifier_is_allowed_between_ases_but_not_inside_one() -> None:
    # RFC 6286 §2.2: uniqueness is only required within an AS.
    assert validate_open(their_open(rid="10.0.0.1"), 65001, "10.0.0.1", ps()) == 65002
    with pytest.raises(OpenMessageError) as exc:
        validate_open(their_open(asn=65001, rid="10.0.0.1"), 65001, "10.0.0.1", ps(asn=65001))
    assert exc.value.subcode == OpenSubcode.BAD_BGP_IDENTIFIER


def test_no_mp_capability_means_ipv4_unicast() -> None:
    ours = build_open(65001, "10.0.0.1", ps())
    neg = negotiate(ours, their_open(), 65001, ps(), 65002)
    assert neg.families == {V4}
    with pytest.raises(OpenMessageError) as exc:
        validate_open(their_open(), 65001, "10.0.0.1", ps(families=(V6,)))
    assert exc.value.subcode == OpenSubcode.UNSUPPORTED_CAPABILITY
    assert exc.value.data == bytes([1, 4, 0, 2, 0, 1])  # our MP capability for IPv6


def test_add_path_per_family_and_direction() -> None:
    ours = build_open(65001, "10.0.0.1", ps(add_path=AddPathMode.BOTH))
    theirs = their_open(
        MultiprotocolCapability(1, 1),
        MultiprotocolCapability(2, 1),
        AddPathCapability(((1, 1, 2), (2, 1, 1))),  # they send v4 paths, receive v6 paths
        FourOctetAsCapability(65002),
    )
    neg = negotiate(ours, theirs, 65001, ps(add_path=AddPathMode.BOTH), 65002)
    assert neg.add_path_rx == {V4} and neg.add_path_tx == {V6}
    assert neg.ctx.add_path_ipv4 and not neg.ctx.add_path_ipv6
    assert neg.ctx.add_path_send_ipv6 and not neg.ctx.add_path_send_ipv4
    only_rx = negotiate(ours, theirs, 65001, ps(add_path=AddPathMode.RECEIVE), 65002)
    assert only_rx.add_path_rx == {V4} and not only_rx.add_path_tx


def test_as4_extended_message_nexthop_refresh_and_gr_need_both_sides() -> None:
    settings = ps(extended_nexthop=True, graceful_restart=True)
    ours = build_open(65001, "10.0.0.1", settings)
    bare = negotiate(ours, their_open(MultiprotocolCapability(1, 1)), 65001, settings, 65002)
    assert not bare.ctx.as4 and not bare.ctx.extended_message and not bare.ctx.extended_nexthop_ipv4
    assert not bare.route_refresh and bare.peer_restart is None
    full = their_open(
        MultiprotocolCapability(1, 1),
        FourOctetAsCapability(65002),
        ExtendedMessageCapability(),
        ExtendedNextHopCapability(((1, 1, 2),)),
        RouteRefreshCapability(),
        GracefulRestartCapability(120, False, False, ((1, 1, True),)),
    )
    neg = negotiate(ours, full, 65001, settings, 65002)
    assert neg.ctx.as4 and neg.ctx.extended_message and neg.ctx.extended_nexthop_ipv4
    assert neg.route_refresh and not neg.enhanced_route_refresh
    assert neg.peer_restart is not None and neg.peer_restart.restart_time == 120
    assert neg.ctx.ebgp and neg.ebgp
    assert neg.as_dict()["graceful_restart"] is True


def test_a_capability_counts_only_when_both_sides_sent_it() -> None:
    # Moved here with the codec's second negotiate (deleted): RFC 5492 §3, ADD-PATH per
    # direction (RFC 7911 §4), extended message only when both offered it (RFC 8654 §3).
    settings = ps(add_path=AddPathMode.BOTH, extended_message=True)
    ours = build_open(65001, "10.0.0.1", settings)
    assert any(isinstance(c, ExtendedMessageCapability) for c in ours.capabilities)
    theirs = their_open(FourOctetAsCapability(65002), AddPathCapability(((1, 1, 2),)))
    ctx = negotiate(ours, theirs, 65001, settings, 65002).ctx
    assert ctx.as4 and ctx.add_path_ipv4 and not ctx.add_path_send_ipv4
    assert not ctx.extended_message and ctx.peer_as == 65002 and ctx.ebgp
    assert not ctx.add_path_ipv6


@pytest.mark.parametrize(
    ("ours", "theirs", "keepalive", "expected"),
    [
        (90, 180, None, (90, 30)),
        (9, 90, None, (9, 3)),
        (30, 0, None, (0, 0)),
        (90, 90, 10, (90, 10)),
        (9, 9, 10, (9, 3)),
        (3, 90, None, (3, 1)),
    ],
)
def test_hold_and_keepalive(
    ours: int, theirs: int, keepalive: int | None, expected: tuple[int, int]
) -> None:
    assert hold_and_keepalive(ours, theirs, keepalive) == expected


def test_hold_time_one_or_two_is_rejected_by_settings() -> None:
    with pytest.raises(ValueError):
        ps(hold_time=2)


def test_restarting_speaker_sets_restart_and_forwarding_bits() -> None:
    fresh = build_open(65001, "10.0.0.1", ps(graceful_restart=True))
    again = build_open(65001, "10.0.0.1", ps(graceful_restart=True, restarting=True))
    gr0, gr1 = fresh.find(GracefulRestartCapability)[0], again.find(GracefulRestartCapability)[0]
    assert isinstance(gr0, GracefulRestartCapability) and isinstance(gr1, GracefulRestartCapability)
    assert not gr0.restarting and not any(f for _, _, f in gr0.families)
    assert gr1.restarting and all(f for _, _, f in gr1.families)


@pytest.mark.parametrize(("enforce", "action"), [(True, Action.TREAT_AS_WITHDRAW), (False, None)])
def test_first_as_check_follows_peer_settings(enforce: bool, action: Action | None) -> None:
    """RFC 4271 §6.3 (a MAY): off for a route server, whose paths start with its
    clients' ASes (RFC 7947 §2.2.2.1), so their routes are kept, not withdrawn."""
    settings = ps(enforce_first_as=enforce)
    ours = build_open(65001, "10.0.0.1", settings)
    neg = negotiate(ours, their_open(FourOctetAsCapability(65002)), 65001, settings, 65002)
    assert neg.ctx.enforce_first_as is enforce and neg.ctx.ebgp and neg.ctx.peer_as == 65002
    attrs = PathAttributes(
        origin=0, as_path=((2, (65099, 65003)),), next_hop=IPv4Address("10.0.0.2")
    )
    nlri = [Prefix.from_str("10.9.0.0/24").nlri()]
    raw = encode_announce(attrs, V4, nlri, CodecContext(as4=True))[0]
    msg = decode_message(raw, neg.ctx)
    assert isinstance(msg, Update)
    assert msg.action == (action or Action.NONE), msg.errors
    assert [str(p) for p in (msg.withdrawn if action else msg.announced)] == ["10.9.0.0/24"]


@pytest.mark.parametrize(("peer_as", "kept"), [(65002, False), (65001, True)])
def test_reflection_attributes_kept_only_from_internal_peers(peer_as: int, kept: bool) -> None:
    """The negotiated context says whether the session is external, so the codec
    discards ORIGINATOR_ID and CLUSTER_LIST from an eBGP peer (RFC 7606 §7.9, §7.10)."""
    settings = ps(asn=peer_as)
    ours = build_open(65001, "10.0.0.1", settings)
    theirs = their_open(FourOctetAsCapability(peer_as), asn=peer_as)
    neg = negotiate(ours, theirs, 65001, settings, peer_as)
    attrs = PathAttributes(
        origin=0,
        as_path=((2, (peer_as,)),) if peer_as != 65001 else (),
        next_hop=IPv4Address("10.0.0.2"),
        originator_id=IPv4Address("10.0.0.9"),
        cluster_list=(IPv4Address("10.0.0.254"),),
    )
    nlri = [Prefix.from_str("10.9.0.0/24").nlri()]
    msg = decode_message(encode_announce(attrs, V4, nlri, CodecContext(as4=True))[0], neg.ctx)
    assert isinstance(msg, Update) and msg.attrs is not None
    assert [str(p) for p in msg.announced] == ["10.9.0.0/24"]
    assert (msg.attrs.originator_id is not None) is kept
    assert bool(msg.attrs.cluster_list) is kept
    assert msg.action == (Action.NONE if kept else Action.ATTRIBUTE_DISCARD)


def test_long_lived_gr_offered_with_graceful_restart_and_capped_by_ours() -> None:
    from bgp.wire.capabilities import LongLivedGracefulRestartCapability as Llgr

    ours = build_open(65001, "10.0.0.1", ps(graceful_restart=True, long_lived_stale_time=600,
                                             restarting=True, families=(V4,)))  # fmt: skip
    (cap,) = ours.find(Llgr)
    assert cap.entries == ((1, 1, 0x80, 600),)  # type: ignore[attr-defined]  # F set: restarting
    # Not offered without graceful restart, nor with a long-lived time of 0.
    assert not build_open(65001, "10.0.0.1", ps(long_lived_stale_time=600)).find(Llgr)
    assert not build_open(65001, "10.0.0.1", ps(graceful_restart=True)).find(Llgr)

    theirs = their_open(
        MultiprotocolCapability(1, 1),
        GracefulRestartCapability(0),
        Llgr(((1, 1, 0x80, 86400), (2, 1, 0, 10))),  # IPv6 not negotiated: ignored
    )
    neg = negotiate(ours, theirs, 65001, ps(graceful_restart=True, long_lived_stale_time=600,
                                            families=(V4,)), 65002)  # fmt: skip
    assert [(ll.family, ll.stale_time, ll.forwarding) for ll in neg.long_lived] == [(V4, 600, True)]
    assert neg.as_dict()["long_lived_graceful_restart"] == {"ipv4_unicast": 600}
    # We do not do graceful restart with this peer: nothing long-lived.
    plain = negotiate(ours, theirs, 65001, ps(families=(V4,)), 65002)
    assert plain.long_lived == ()
    # Ours 0: the peer's capability is still known (it may be sent LLGR_STALE routes).
    heard = negotiate(ours, theirs, 65001, ps(graceful_restart=True, families=(V4,)), 65002)
    assert [ll.stale_time for ll in heard.long_lived] == [0]
    # RFC 9494 §4.1: LLGR comes with GR; without the peer's GR capability it is ignored.
    alone = their_open(MultiprotocolCapability(1, 1), Llgr(((1, 1, 0x80, 86400),)))
    bare = negotiate(ours, alone, 65001, ps(graceful_restart=True, long_lived_stale_time=600,
                                            families=(V4,)), 65002)  # fmt: skip
    assert bare.long_lived == ()


def test_one_add_path_enum_for_the_wire_field_and_the_settings() -> None:
    from bgp.wire.capabilities import AddPathMode as WireMode

    assert AddPathMode is WireMode  # RFC 7911 §4's Send/Receive field, OFF = no capability
    assert [(m.receive, m.send) for m in AddPathMode] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]
