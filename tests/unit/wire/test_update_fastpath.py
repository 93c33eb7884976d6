"""``plain_withdrawal``: the receive loop's shortcut for UPDATEs that only withdraw.

It must agree with ``decode_update`` wherever it answers (same keys, same
error), and step aside (None) for everything else.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import BGPError
from bgp.wire import CodecContext, Family
from bgp.wire.update import decode_update, plain_withdrawal

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
