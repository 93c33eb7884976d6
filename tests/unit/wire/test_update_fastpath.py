"""``plain_withdrawal(s)``: the receive loop's shortcut for UPDATEs that only withdraw.

It must agree with ``decode_update`` wherever it answers (same keys, same
error), and step aside (None) for everything else.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import BGPError
from bgp.wire import CodecContext, Family
from bgp.wire.prefix import parse_v4_fields
from bgp.wire.update import decode_update, plain_withdrawal, plain_withdrawals

from .build import BASE, mp_unreach, update, v4, v6

V4 = Family.IPV4_UNICAST
CTX = CodecContext(as4=True)


def test_plain_withdrawal_gives_the_decoders_keys() -> None:
    raw = update(withdrawn=v4("10.0.0.0/24") + v4("10.1.0.0/16") + v4("0.0.0.0/0"))
    keys = plain_withdrawal(raw, CTX)
    assert keys == decode_update(raw, CTX).unreach[V4]
    assert keys == [b"\x18\x0a\x00\x00", b"\x10\x0a\x01", b"\x00"]


def test_host_bits_are_cleared_as_the_decoder_does() -> None:
    raw = update(withdrawn=b"\x17\x0a\x00\x01")  # 10.0.1.0/23: the last bit is a host bit
    assert (
        plain_withdrawal(raw, CTX) == decode_update(raw, CTX).unreach[V4] == [b"\x17\x0a\x00\x00"]
    )


@pytest.mark.parametrize(
    "raw",
    [
        update(),  # IPv4 End-of-RIB
        update(withdrawn=v4("10.0.0.0/24"), attrs=BASE),
        update(withdrawn=v4("10.0.0.0/24"), attrs=BASE, nlri=v4("10.2.0.0/16")),
        update(attrs=mp_unreach(2, 1, v6("2001:db8::/32"))),
    ],
    ids=["eor", "with-attributes", "with-nlri", "mp-unreach"],
)
def test_other_updates_are_left_to_the_decoder(raw: bytes) -> None:
    assert plain_withdrawal(raw, CTX) is None


def test_add_path_is_left_to_the_decoder() -> None:
    raw = update(withdrawn=b"\x00\x00\x00\x01" + v4("10.0.0.0/24"))
    assert plain_withdrawal(raw, CodecContext(as4=True, add_path_ipv4=True)) is None


def test_a_malformed_field_raises_what_the_decoder_raises() -> None:
    raw = update(withdrawn=v4("10.0.0.0/24") + b"\x21\x0a")  # /33, and truncated
    with pytest.raises(BGPError) as fast:
        plain_withdrawal(raw, CTX)
    with pytest.raises(BGPError) as slow:
        decode_update(raw, CTX)
    assert (fast.value.code, fast.value.subcode) == (slow.value.code, slow.value.subcode)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=8), st.binary(max_size=8))
def test_agrees_with_the_decoder_on_arbitrary_fields(wd: bytes, attrs: bytes, nlri: bytes) -> None:
    raw = update(withdrawn=wd, attrs=attrs, nlri=nlri)
    try:
        fast = plain_withdrawal(raw, CTX)
    except BGPError as exc:
        with pytest.raises(BGPError) as slow:
            decode_update(raw, CTX)
        assert (exc.code, exc.subcode) == (slow.value.code, slow.value.subcode)
        return
    if fast is not None:
        assert not attrs and not nlri and wd
        assert decode_update(raw, CTX).unreach[V4] == fast


# ------------------------------------------------------------ a run parsed in one pass


def test_a_run_of_plain_withdrawals_gives_every_frames_keys_in_order() -> None:
    frames = [
        update(withdrawn=v4("10.0.0.0/24") + v4("10.1.0.0/16")),
        update(withdrawn=b"\x17\x0a\x00\x01"),  # a host bit, cleared
        update(withdrawn=v4("0.0.0.0/0") + v4("192.0.2.1/32")),
    ]
    keys, ok, err = plain_withdrawals(frames, CTX)
    assert err is None and ok == 3
    assert keys == [k for f in frames for k in plain_withdrawal(f, CTX) or []]


def test_a_prefix_cut_by_a_frame_boundary_is_the_error_of_that_frame() -> None:
    # Frame 1 ends with a /24 missing its last octet; frame 2's first octet would
    # complete it if the fields were simply joined.
    frames = [
        update(withdrawn=v4("10.0.0.0/24")),
        update(withdrawn=v4("10.9.0.0/16") + b"\x18\x0a\x02"),
        update(withdrawn=b"\x00" + v4("10.3.0.0/24")),
    ]
    keys, ok, err = plain_withdrawals(frames, CTX)
    assert ok == 1 and keys == [b"\x18\x0a\x00\x00"]
    with pytest.raises(BGPError) as slow:
        decode_update(frames[1], CTX)
    assert err is not None and (err.code, err.subcode) == (slow.value.code, slow.value.subcode)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=6))
def test_a_run_agrees_with_one_frame_at_a_time(fields: list[bytes]) -> None:
    frames = [update(withdrawn=f) for f in fields]
    want: list[bytes] = []
    bad: BGPError | None = None
    good = 0
    for f in frames:
        try:
            want += plain_withdrawal(f, CTX) or []
        except BGPError as exc:
            bad = exc
            break
        good += 1
    keys, ok, err = plain_withdrawals(frames, CTX)
    assert (keys, ok) == (want, good)
    assert (err is None) == (bad is None)
    if err is not None and bad is not None:
        assert (err.code, err.subcode) == (bad.code, bad.subcode)


def test_fields_parse_within_their_own_bounds() -> None:
    a, b = v4("10.0.0.0/24") + v4("10.1.0.0/16"), b"\x17\x0a\x00\x01"  # b: a host bit
    assert parse_v4_fields(a + b, [len(a), len(a) + len(b)]) == [
        b"\x18\x0a\x00\x00",
        b"\x10\x0a\x01",
        b"\x17\x0a\x00\x00",
    ]
    # The same bytes cut elsewhere: the first field ends inside a prefix.
    assert parse_v4_fields(a + b, [len(a) - 1, len(a) + len(b)]) is None
    assert parse_v4_fields(b"\x21\x0a\x00\x00\x00\x00", [6]) is None  # /33
