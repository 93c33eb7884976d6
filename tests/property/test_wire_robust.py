"""Hypothesis: arbitrary and mutated bytes never raise anything but BGPError (bgp.wire)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import BGPError
from bgp.wire import CodecContext, Framer, Update, decode_message, encode_message

CONTEXTS = st.builds(
    CodecContext,
    as4=st.booleans(),
    add_path_ipv4=st.booleans(),
    add_path_ipv6=st.booleans(),
    extended_message=st.booleans(),
    extended_nexthop_ipv4=st.booleans(),
    ebgp=st.booleans(),
    peer_as=st.sampled_from([0, 65001]),
    confed_peer=st.booleans(),
)
HDR = b"\xff" * 16
VALID = [
    bytes.fromhex(h)
    for h in (
        # IPv4 UPDATE with ORIGIN, AS_PATH, NEXT_HOP, MED, COMMUNITIES, LARGE_COMMUNITY
        "ffffffffffffffffffffffffffffffff0051020000003640010100500200060201fa56ea014003040a6301018004040000000ac00808fde90001fde90002c0200cfa56ea010000000100000002180ac900",
        # IPv6 UPDATE with MP_REACH_NLRI (16-octet next hop)
        "ffffffffffffffffffffffffffffffff0054020000003d400101024002060201fa56ea03800e1e00020110fd9900020000000000000000000000030040fd00020300000000c0200c000000010000000200000003",
        # MP_UNREACH_NLRI
        "ffffffffffffffffffffffffffffffff0025020000000e800f0b00020138fd000203000100",
        # OPEN with capabilities
        "ffffffffffffffffffffffffffffffff003b01045ba000090a6302031e021c0200490402766d000104000100014104fa56ea030506000100010002",
        # NOTIFICATION Cease/2 with shutdown communication
        "ffffffffffffffffffffffffffffffff00340306021e706f6462677020636170747572653a20476f4247502073687574646f776e",
    )
]


def consume(data: bytes, ctx: CodecContext) -> None:
    try:
        msg = decode_message(data, ctx)
    except BGPError:
        return
    if isinstance(msg, Update):
        [str(p) for p in msg.announced + msg.withdrawn]
        if msg.attrs is not None:
            hash(msg.attrs)
    try:
        raw = encode_message(msg, ctx)
    except ValueError as exc:
        assert "exceeds" in str(exc)
        return
    decode_message(raw, ctx)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), CONTEXTS)
def test_arbitrary_bytes(data: bytes, ctx: CodecContext) -> None:
    consume(data, ctx)


@settings(max_examples=1000, deadline=None)
@given(st.integers(1, 5), st.binary(max_size=400), CONTEXTS)
def test_arbitrary_body_behind_a_valid_header(mtype: int, body: bytes, ctx: CodecContext) -> None:
    consume(HDR + (19 + len(body)).to_bytes(2, "big") + bytes((mtype,)) + body, ctx)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(16, 200), st.integers(0, 255)), min_size=1, max_size=4),
    CONTEXTS,
)
def test_mutated_valid_messages(
    base: bytes, edits: list[tuple[int, int]], ctx: CodecContext
) -> None:
    data = bytearray(base)
    for pos, val in edits:
        if pos < len(data):
            data[pos] = val
    consume(bytes(data), ctx)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8))
def test_framer_never_raises_anything_else(chunks: list[bytes]) -> None:
    f = Framer()
    try:
        for c in chunks:
            f.feed(c)
            while f.next_frame() is not None:
                pass
    except BGPError:
        pass
