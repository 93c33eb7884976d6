"""BFD codec properties: decode(encode(p)) == p; arbitrary bytes raise only BfdPacketError."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bfd.packet import BfdPacketError, ControlPacket, State, decode_control, encode_control

u32 = st.integers(0, 2**32 - 1)
packets = st.builds(
    ControlPacket,
    state=st.sampled_from(State),
    my_discriminator=st.integers(1, 2**32 - 1),
    your_discriminator=u32,
    detect_mult=st.integers(1, 255),
    desired_min_tx=u32,
    required_min_rx=u32,
    required_min_echo_rx=u32,
    diag=st.integers(0, 31),
    poll=st.booleans(),
    final=st.just(False),
    control_plane_independent=st.booleans(),
    demand=st.booleans(),
)


@given(packets)
def test_round_trip(p: ControlPacket) -> None:
    assert decode_control(encode_control(p)) == p


@given(st.binary(max_size=64))
def test_garbage_raises_only_the_typed_error(data: bytes) -> None:
    try:
        p = decode_control(data)
    except BfdPacketError:
        return
    assert decode_control(encode_control(p)) == p


@given(packets, st.integers(0, 23), st.integers(0, 255))
def test_one_corrupted_octet_is_decoded_or_refused(p: ControlPacket, at: int, value: int) -> None:
    raw = bytearray(encode_control(p))
    raw[at] = value
    try:
        decode_control(bytes(raw))
    except BfdPacketError:
        pass
