"""Hypothesis: decode(encode(m)) == m for every message type (bgp.wire)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.wire import (
    AddPathCapability,
    CodecContext,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    Family,
    FourOctetAsCapability,
    FqdnCapability,
    GracefulRestartCapability,
    Keepalive,
    LongLivedGracefulRestartCapability,
    MultiprotocolCapability,
    Notification,
    Open,
    PathAttributes,
    RouteRefresh,
    RouteRefreshCapability,
    UnknownAttribute,
    UnknownCapability,
    Update,
    announce_head,
    decode_message,
    encode_announce,
    encode_message,
    encode_withdraw,
    join_path_id,
    update_header,
)
from bgp.wire.attributes import ATTRS, is_martian_v4
from bgp.wire.capabilities import CapCode

V4, V6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST
u32 = st.integers(1, 2**32 - 1)
asn2 = st.integers(1, 65535)


def _key(bits: int) -> st.SearchStrategy[bytes]:
    def build(ln: int, addr: int) -> bytes:
        nb = (ln + 7) // 8
        raw = addr.to_bytes(bits // 8, "big")[:nb]
        if ln % 8:
            raw = raw[:-1] + bytes((raw[-1] & (0xFF << (8 - ln % 8)) & 0xFF,))
        return bytes((ln,)) + raw

    return st.builds(build, st.integers(0, bits), st.integers(0, 2**bits - 1))


host_v4 = st.integers(1, 2**32 - 1).filter(lambda a: not is_martian_v4(a)).map(IPv4Address)
host_v6 = st.integers(2**125, 2**126).map(IPv6Address)  # inside 2000::/3
link_local = st.integers(0, 2**64 - 1).map(lambda x: IPv6Address((0xFE80 << 112) | x))


def _segments(
    as4: bool, confed: bool
) -> st.SearchStrategy[tuple[tuple[int, tuple[int, ...]], ...]]:
    asn = u32 if as4 else st.one_of(asn2, u32)
    seg = st.tuples(st.sampled_from([1, 2]), st.lists(asn, min_size=1, max_size=6).map(tuple))
    # Confederation segments come only from a confederation peer (RFC 5065 §5) and only
    # lead the path (§5.1); on a 2-octet session they cannot carry 4-octet ASNs
    # (AS4_PATH omits them, RFC 6793 §4.2.2).
    casn = u32 if as4 else asn2
    lead = st.tuples(st.sampled_from([3, 4]), st.lists(casn, min_size=1, max_size=3).map(tuple))
    return st.builds(
        lambda c, s: tuple(c + s),
        st.lists(lead, max_size=1 if confed else 0),
        st.lists(seg, max_size=4),
    )


_unknown_codes = st.integers(1, 255).filter(lambda c: c not in ATTRS and c not in (14, 15))
unknown_attrs = st.lists(
    st.builds(
        lambda code, v: UnknownAttribute(0xE0, code, v), _unknown_codes, st.binary(max_size=300)
    ),
    max_size=2,
    unique_by=lambda u: u.code,
).map(tuple)


def attributes(
    as4: bool, next_hop: bool, mp: bool, confed: bool = False
) -> st.SearchStrategy[PathAttributes]:
    return st.builds(
        PathAttributes,
        origin=st.integers(0, 2),
        as_path=_segments(as4, confed),
        next_hop=host_v4 if next_hop else st.none(),
        med=st.none() | st.integers(0, 2**32 - 1),
        local_pref=st.none() | st.integers(0, 2**32 - 1),
        atomic_aggregate=st.booleans(),
        aggregator=st.none() | st.tuples(u32, st.integers(0, 2**32 - 1).map(IPv4Address)),
        communities=st.lists(st.integers(0, 2**32 - 1), max_size=5).map(tuple),
        ext_communities=st.lists(st.integers(0, 2**64 - 1), max_size=3).map(tuple),
        # RFC 8092 §3: a speaker never sends (and a receiver removes) duplicates.
        large_communities=st.lists(
            st.tuples(*[st.integers(0, 2**32 - 1)] * 3), max_size=3, unique=True
        ).map(tuple),
        originator_id=st.none() | st.integers(0, 2**32 - 1).map(IPv4Address),
        cluster_list=st.lists(st.integers(0, 2**32 - 1).map(IPv4Address), max_size=3).map(tuple),
        mp_next_hop=(st.tuples(host_v6) | st.tuples(host_v6, link_local)) if mp else st.just(()),
        unknown=unknown_attrs,
    )


def _nlri(bits: int, add_path: bool, max_size: int = 20) -> st.SearchStrategy[list[bytes]]:
    item = _key(bits)
    if add_path:
        item = st.builds(join_path_id, st.integers(0, 2**32 - 1), item)
    return st.lists(item, max_size=max_size)


contexts = st.builds(
    lambda as4, ap4, ap6, confed: CodecContext(
        as4=as4,
        add_path_ipv4=ap4,
        add_path_ipv6=ap6,
        add_path_send_ipv4=ap4,
        add_path_send_ipv6=ap6,
        confed_peer=confed,
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@st.composite
def updates(draw: st.DrawFn, ctx: CodecContext) -> Update:
    r4 = draw(_nlri(32, ctx.add_path_ipv4))
    r6 = draw(_nlri(128, ctx.add_path_ipv6))
    w4 = draw(_nlri(32, ctx.add_path_ipv4))
    w6 = draw(st.none() | _nlri(128, ctx.add_path_ipv6))
    with_attrs = bool(r4 or r6) or draw(st.booleans())
    attrs = (
        draw(attributes(ctx.as4, bool(r4) or not r6, bool(r6), ctx.confed_peer))
        if with_attrs
        else None
    )
    reach = {f: v for f, v in ((V4, r4), (V6, r6)) if v}
    unreach: dict[Family, list[bytes]] = {V4: w4} if w4 else {}
    if w6 is not None:
        unreach[V6] = w6
    aps = frozenset(f for f in (V4, V6) if ctx.add_path_rx(f))
    return Update(attrs, reach, unreach, add_path=aps)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_update_round_trip(data: st.DataObject) -> None:
    ctx = data.draw(contexts)
    msg = data.draw(updates(ctx))
    raw = encode_message(msg, ctx)
    assert decode_message(raw, ctx) == msg


@settings(max_examples=40, deadline=None)
@given(contexts, st.data())
def test_bulk_encoders_round_trip(ctx: CodecContext, data: st.DataObject) -> None:
    family = data.draw(st.sampled_from([V4, V6]))
    bits = 32 if family is V4 else 128
    nlri = data.draw(_nlri(bits, ctx.add_path_tx(family), max_size=400))
    attrs = data.draw(attributes(ctx.as4, family is V4, family is V6, ctx.confed_peer))
    got: list[bytes] = []
    for raw in encode_announce(attrs, family, nlri, ctx):
        assert len(raw) <= 4096
        msg = decode_message(raw, ctx)
        assert isinstance(msg, Update) and msg.attrs == attrs and not msg.errors
        got.extend(msg.reach.get(family, []))
    assert got == nlri
    back: list[bytes] = []
    for raw in encode_withdraw(family, nlri, ctx):
        msg = decode_message(raw, ctx)
        assert isinstance(msg, Update)
        back.extend(msg.unreach.get(family, []))
    assert back == nlri


@settings(max_examples=60, deadline=None)
@given(contexts, st.data())
def test_ipv4_routes_with_ipv6_next_hop_round_trip(ctx: CodecContext, data: st.DataObject) -> None:
    """RFC 8950 §3: IPv4 NLRI in MP_REACH_NLRI with a 16- or 32-octet IPv6 next hop,
    once extended next hop is negotiated: one UPDATE and the bulk encoders."""
    ctx = replace(ctx, extended_nexthop_ipv4=True)
    nlri = data.draw(_nlri(32, ctx.add_path_tx(V4), max_size=200).filter(bool))
    attrs = data.draw(attributes(ctx.as4, False, True, ctx.confed_peer))
    assert announce_head(attrs, V4, ctx) is None  # no NEXT_HOP: never the NLRI field
    got: list[bytes] = []
    for raw in encode_announce(attrs, V4, nlri, ctx):
        msg = decode_message(raw, ctx)
        assert isinstance(msg, Update) and msg.attrs == attrs and not msg.errors
        got.extend(msg.reach.get(V4, []))
    assert got == nlri
    one = Update(attrs, {V4: nlri[:20]}, {}, add_path=_aps(ctx))
    assert decode_message(encode_message(one, ctx), ctx) == one


def _aps(ctx: CodecContext) -> frozenset[Family]:
    return frozenset(f for f in (V4, V6) if ctx.add_path_rx(f))


@settings(max_examples=60, deadline=None)
@given(contexts, st.data())
def test_announce_head_frames_what_encode_announce_sends(
    ctx: CodecContext, data: st.DataObject
) -> None:
    """A head kept per attribute set + a header per message is byte for byte the
    single message ``encode_announce`` builds, whenever the NLRI fit in one."""
    family = data.draw(st.sampled_from([V4, V6]))
    bits = 32 if family is V4 else 128
    nlri = data.draw(_nlri(bits, ctx.add_path_tx(family), max_size=60))
    attrs = data.draw(attributes(ctx.as4, family is V4, family is V6, ctx.confed_peer))
    head = announce_head(attrs, family, ctx)
    if family is V6 or attrs.next_hop is None:
        assert head is None
        return
    assert head is not None
    blob = b"".join(nlri)
    msgs = encode_announce(attrs, family, nlri, ctx)
    if len(blob) <= head[1]:
        assert msgs == ([update_header(len(head[0]) + len(blob)) + head[0] + blob] if blob else [])
    else:
        assert len(msgs) > 1


afi_safi = st.tuples(st.integers(0, 65535), st.integers(0, 255))
capabilities = st.one_of(
    st.builds(MultiprotocolCapability, st.integers(0, 65535), st.integers(0, 255)),
    st.just(RouteRefreshCapability()),
    st.just(EnhancedRouteRefreshCapability()),
    st.just(ExtendedMessageCapability()),
    st.builds(FourOctetAsCapability, st.integers(0, 2**32 - 1)),
    st.builds(
        GracefulRestartCapability,
        st.integers(0, 4095),
        st.booleans(),
        st.booleans(),
        st.lists(
            st.tuples(st.integers(0, 65535), st.integers(0, 255), st.booleans()), max_size=4
        ).map(tuple),
    ),
    st.builds(
        AddPathCapability,
        st.lists(
            st.tuples(st.integers(0, 65535), st.integers(0, 255), st.integers(0, 255)), max_size=4
        ).map(tuple),
    ),
    st.builds(
        ExtendedNextHopCapability,
        st.lists(st.tuples(*[st.integers(0, 65535)] * 3), max_size=4).map(tuple),
    ),
    st.builds(
        LongLivedGracefulRestartCapability,
        st.lists(
            st.tuples(
                st.integers(0, 65535),
                st.integers(0, 255),
                st.integers(0, 255),
                st.integers(0, 2**24 - 1),
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(FqdnCapability, st.text(max_size=30), st.text(max_size=30)).filter(
        lambda c: len(c.value()) <= 255
    ),
    st.builds(
        UnknownCapability,
        st.integers(0, 255).filter(lambda c: c not in set(CapCode)),
        st.binary(max_size=255),
    ),
)


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Open,
        st.integers(0, 65535),
        st.just(0) | st.integers(3, 65535),
        st.integers(1, 2**32 - 1).map(IPv4Address),
        st.lists(capabilities, max_size=12).map(tuple),
    )
)
def test_open_round_trip(msg: Open) -> None:
    ctx = CodecContext()
    assert decode_message(encode_message(msg, ctx), ctx) == msg


@given(st.builds(Notification, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=200)))
def test_notification_round_trip(msg: Notification) -> None:
    ctx = CodecContext()
    assert decode_message(encode_message(msg, ctx), ctx) == msg


@given(st.builds(RouteRefresh, st.integers(0, 65535), st.integers(0, 255), st.integers(0, 255)))
def test_route_refresh_round_trip(msg: RouteRefresh) -> None:
    ctx = CodecContext()
    assert decode_message(encode_message(msg, ctx), ctx) == msg


def test_keepalive_round_trip() -> None:
    ctx = CodecContext()
    assert decode_message(encode_message(Keepalive(), ctx), ctx) == Keepalive()
