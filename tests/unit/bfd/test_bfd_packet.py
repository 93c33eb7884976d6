"""The BFD Control packet codec (RFC 5880 §4.1) and its stateless checks (§6.8.6)."""

from __future__ import annotations

import struct

import pytest

from bfd.packet import (
    BfdPacketError,
    ControlPacket,
    Diag,
    State,
    decode_control,
    encode_control,
)

PKT = ControlPacket(
    state=State.UP,
    my_discriminator=0x01020304,
    your_discriminator=0x0A0B0C0D,
    detect_mult=3,
    desired_min_tx=300_000,
    required_min_rx=300_000,
    diag=Diag.NONE,
    poll=True,
)


def test_golden_bytes() -> None:
    # Version 1, diag 0 | state Up (3<<6) + P | mult 3 | length 24 | discriminators | intervals
    expected = bytes.fromhex("20e00318010203040a0b0c0d000493e0000493e000000000")
    assert encode_control(PKT) == expected
    assert decode_control(expected) == PKT


def test_flags_and_diag_round_trip() -> None:
    p = ControlPacket(
        State.DOWN, 7, 0, 5, 1_000_000, 0, 50_000, Diag.CONTROL_DETECTION_TIME_EXPIRED,
        final=True, control_plane_independent=True, demand=True,
    )  # fmt: skip
    raw = encode_control(p)
    assert raw[0] == 0x21 and raw[1] == (1 << 6) | 0x10 | 0x08 | 0x02
    assert decode_control(raw) == p


def test_trailing_bytes_beyond_length_are_ignored() -> None:
    assert decode_control(encode_control(PKT) + b"\0" * 8) == PKT


def _mutate(offset: int, value: int) -> bytes:
    raw = bytearray(encode_control(PKT))
    raw[offset] = value
    return bytes(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (encode_control(PKT)[:23], "shorter"),
        (_mutate(0, 0x40), "version 2"),
        (_mutate(0, 0x00), "version 0"),
        (_mutate(1, 0xC4), "authenticated"),
        (_mutate(1, 0xC1), "multipoint"),
        (_mutate(1, 0xF0), "poll and final"),
        (_mutate(2, 0), "multiplier is zero"),
        (_mutate(3, 23), "below 24"),
        (_mutate(3, 25), "exceeds"),
        (encode_control(PKT)[:4] + b"\0\0\0\0" + encode_control(PKT)[8:], "my discriminator"),
    ],
)
def test_discarded_packets_name_their_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BfdPacketError, match=reason):
        decode_control(raw)


def test_unknown_diag_is_kept_as_a_number() -> None:
    raw = bytes([0x20 | 30]) + encode_control(PKT)[1:]
    assert decode_control(raw).diag == 30


def test_memoryview_input() -> None:
    assert decode_control(memoryview(encode_control(PKT))) == PKT


def test_bad_values_do_not_encode_silently() -> None:
    with pytest.raises(struct.error):
        encode_control(ControlPacket(State.UP, 1 << 32, 0, 3, 1, 1))
