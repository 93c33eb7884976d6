"""Header framing, OPEN (RFC 9072), NOTIFICATION (RFC 9003), KEEPALIVE, ROUTE-REFRESH (RFC 7313)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from bgp.errors import (
    BGPError,
    CeaseSubcode,
    ErrorCode,
    MessageHeaderError,
    OpenSubcode,
    UpdateMessageError,
    error_for,
)
from bgp.wire import (
    AddPathCapability,
    CodecContext,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
    FqdnCapability,
    Framer,
    GracefulRestartCapability,
    Keepalive,
    LongLivedGracefulRestartCapability,
    MultiprotocolCapability,
    Notification,
    Open,
    RouteRefresh,
    UnknownCapability,
    decode_message,
    encode_message,
)

from .build import BASE, msg, update, v4

CTX = CodecContext()
KEEPALIVE = b"\xff" * 16 + b"\x00\x13\x04"


def header_error(raw: bytes, ctx: CodecContext = CTX) -> BGPError:
    with pytest.raises(BGPError) as info:
        decode_message(raw, ctx)
    return info.value


def test_bad_marker_is_connection_not_synchronized() -> None:
    err = header_error(b"\xff" * 15 + b"\xfe" + b"\x00\x13\x04")
    assert (err.code, err.subcode) == (1, 1)


def test_bad_length_carries_the_length() -> None:
    err = header_error(b"\xff" * 16 + b"\x00\x12\x04")
    assert (err.code, err.subcode, err.data) == (1, 2, b"\x00\x12")
    err = header_error(b"\xff" * 16 + b"\x00\x14\x04" + b"\x00")  # KEEPALIVE of 20
    assert (err.code, err.subcode, err.data) == (1, 2, b"\x00\x14")
    big = update(attrs=BASE, nlri=v4("10.0.0.0/24") * 1100)
    err = header_error(big)
    assert (err.code, err.subcode) == (1, 2)
    assert err.data == big[16:18]


@pytest.mark.parametrize(
    ("mtype", "length"),
    [(1, 28), (2, 22), (3, 20), (4, 20)],
    ids=["open<29", "update<23", "notification<21", "keepalive!=19"],
)
def test_type_specific_lengths_are_bad_message_length(mtype: int, length: int) -> None:
    # RFC 4271 §6.1: below the type's minimum (KEEPALIVE: not 19) → 1/2, data = length.
    raw = b"\xff" * 16 + struct.pack("!HB", length, mtype) + bytes(length - 19)
    err = header_error(raw)
    assert (err.code, err.subcode, err.data) == (1, 2, length.to_bytes(2, "big"))


def test_extended_message_allows_big_updates_only() -> None:
    big = update(attrs=BASE, nlri=v4("10.0.0.0/24") * 1100)
    ext = CodecContext(extended_message=True)
    assert len(decode_message(big, ext).reach) == 1  # type: ignore[union-attr]
    body = struct.pack("!BHH", 4, 65001, 90) + b"\x01\x02\x03\x04" + b"\xff\x00"  # OPEN > 4096
    err = header_error(msg(1, body + b"\x00" * 4100), ext)
    assert (err.code, err.subcode) == (1, 2)


def test_bad_type_carries_the_type() -> None:
    err = header_error(b"\xff" * 16 + b"\x00\x13\x07")
    assert (err.code, err.subcode, err.data) == (1, 3, b"\x07")


def test_length_field_must_match_the_frame() -> None:
    err = header_error(KEEPALIVE + b"\x00")
    assert (err.code, err.subcode) == (1, 2)


def test_framer_handles_partial_reads_and_several_messages() -> None:
    stream = KEEPALIVE + update(attrs=BASE, nlri=v4("10.0.0.0/24")) + KEEPALIVE
    f = Framer()
    got: list[bytes] = []
    for i in range(len(stream)):
        f.feed(stream[i : i + 1])
        while (frame := f.next_frame()) is not None:
            got.append(frame)
    assert b"".join(got) == stream and len(got) == 3
    assert f.pending == 0


def test_framer_returns_good_frames_before_raising() -> None:
    f = Framer()
    f.feed(KEEPALIVE + b"\x00" * 19)
    assert f.next_frame() == KEEPALIVE
    with pytest.raises(MessageHeaderError) as info:
        f.next_frame()
    assert info.value.subcode == 1


def test_framer_update_frames_takes_only_a_run_of_whole_valid_updates() -> None:
    u1 = update(attrs=BASE, nlri=v4("10.0.0.0/24"))
    u2 = update(withdrawn=v4("10.1.0.0/16"))
    f = Framer()
    f.feed(u1 + u2 + KEEPALIVE + u1 + u2[:25])
    assert f.update_frames() == [u1, u2]
    assert f.update_frames() == []  # a KEEPALIVE is next: next_frame's business
    assert f.next_frame() == KEEPALIVE
    assert f.update_frames() == [u1]  # the partial UPDATE waits for its bytes
    f.feed(u2[25:])
    assert f.update_frames() == [u2]
    assert f.pending == 0


def test_framer_update_frames_leaves_bad_headers_to_next_frame() -> None:
    u1 = update(attrs=BASE, nlri=v4("10.0.0.0/24"))
    bad_marker = b"\x00" + u1[1:]
    short = b"\xff" * 16 + b"\x00\x16\x02" + b"\x00\x00\x00"  # UPDATE of 22 < 23
    long = update(attrs=BASE, nlri=v4("10.0.0.0/24") * 1100)  # > 4096 without RFC 8654
    for bad, subcode in ((bad_marker, 1), (short, 2), (long, 2)):
        f = Framer()
        f.feed(u1 + bad)
        assert f.update_frames() == [u1]
        assert f.update_frames() == []
        with pytest.raises(MessageHeaderError) as info:
            f.next_frame()
        assert info.value.subcode == subcode


def test_framer_rejects_unknown_type_before_body_arrives() -> None:
    f = Framer()
    f.feed(b"\xff" * 16 + b"\x00\x30\x09")
    with pytest.raises(MessageHeaderError) as info:
        f.next_frame()
    assert (info.value.subcode, info.value.data) == (3, b"\x09")


CAPS = (
    MultiprotocolCapability(1, 1),
    MultiprotocolCapability(2, 1),
    FourOctetAsCapability(4200000001),
    GracefulRestartCapability(
        120, restarting=True, notification=True, families=((1, 1, True), (2, 1, False))
    ),
    AddPathCapability(((1, 1, 3), (2, 1, 1))),
    ExtendedNextHopCapability(((1, 1, 2),)),
    ExtendedMessageCapability(),
    LongLivedGracefulRestartCapability(((1, 1, 0x80, 3600),)),
    FqdnCapability("node-1", "example.net"),
    UnknownCapability(128, b""),
)


def test_open_round_trip_with_every_capability() -> None:
    o = Open.build(4200000001, 90, "10.0.0.1", CAPS)
    raw = encode_message(o, CTX)
    assert raw[20:22] == b"\x5b\xa0"  # AS_TRANS in My AS (RFC 6793 §4.1)
    back = decode_message(raw, CTX)
    assert back == o
    assert isinstance(back, Open) and back.peer_as == 4200000001


def test_open_extended_optional_parameters_rfc9072() -> None:
    caps = tuple(UnknownCapability(200 + i, bytes(200)) for i in range(3))
    o = Open.build(65001, 90, "10.0.0.1", caps)
    raw = encode_message(o, CTX)
    assert raw[28] == 255 and raw[29] == 255  # non-extended length 255, type 255
    assert decode_message(raw, CTX) == o


def test_open_hand_built_extended_parameters_decode() -> None:
    cap = b"\x41\x04" + (65001).to_bytes(4, "big")
    params = b"\x02" + struct.pack("!H", len(cap)) + cap
    body = (
        struct.pack("!BHH", 4, 65001, 90)
        + b"\x0a\x00\x00\x01"
        + b"\xff\xff"
        + struct.pack("!H", len(params))
        + params
    )
    o = decode_message(msg(1, body), CTX)
    assert isinstance(o, Open) and o.capabilities == (FourOctetAsCapability(65001),)


@pytest.mark.parametrize("non_ext_len", [255, 1, 17])
def test_open_parameter_type_255_means_extended_whatever_the_length(non_ext_len: int) -> None:
    # RFC 9072 §3: Non-Ext OP Len other than 255 with a first type of 255 is
    # still the extended encoding.
    cap = b"\x41\x04" + (65001).to_bytes(4, "big")
    params = b"\x02" + struct.pack("!H", len(cap)) + cap
    body = (
        struct.pack("!BHH", 4, 65001, 90)
        + b"\x0a\x00\x00\x01"
        + bytes((non_ext_len, 255))
        + struct.pack("!H", len(params))
        + params
    )
    o = decode_message(msg(1, body), CTX)
    assert isinstance(o, Open) and o.capabilities == (FourOctetAsCapability(65001),)


@pytest.mark.parametrize(
    ("body", "subcode"),
    [
        (
            struct.pack("!BHH", 3, 65001, 90) + b"\x0a\x00\x00\x01\x00",
            OpenSubcode.UNSUPPORTED_VERSION_NUMBER,
        ),
        (
            struct.pack("!BHH", 4, 65001, 2) + b"\x0a\x00\x00\x01\x00",
            OpenSubcode.UNACCEPTABLE_HOLD_TIME,
        ),
        (
            struct.pack("!BHH", 4, 65001, 90) + b"\x00\x00\x00\x00\x00",
            OpenSubcode.BAD_BGP_IDENTIFIER,
        ),
        (
            struct.pack("!BHH", 4, 65001, 90) + b"\x0a\x00\x00\x01\x03\x01\x01\x00",
            OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
        ),
        (
            struct.pack("!BHH", 4, 65001, 90) + b"\x0a\x00\x00\x01\x05\x02\x03\x01\x04\x00",
            OpenSubcode.UNSPECIFIC,
        ),
    ],
)
def test_open_errors(body: bytes, subcode: int) -> None:
    err = header_error(msg(1, body))
    assert (err.code, err.subcode) == (2, subcode)
    if subcode == OpenSubcode.UNSUPPORTED_VERSION_NUMBER:
        assert err.data == b"\x00\x04"


def test_malformed_known_capability_is_kept_raw() -> None:
    body = struct.pack("!BHH", 4, 65001, 90) + b"\x0a\x00\x00\x01" + b"\x05\x02\x03\x01\x01\x00"
    o = decode_message(msg(1, body), CTX)
    assert isinstance(o, Open) and o.capabilities == (UnknownCapability(1, b"\x00"),)


def test_notification_shutdown_communication_rfc9003() -> None:
    n = Notification.shutdown("maintenance — back at 10:00")
    raw = encode_message(n, CTX)
    back = decode_message(raw, CTX)
    assert isinstance(back, Notification)
    assert back.shutdown_message == "maintenance — back at 10:00"
    assert (back.code, back.subcode) == (ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
    assert Notification.shutdown("x" * 255).data[0] == 255
    with pytest.raises(ValueError):
        Notification.shutdown("é" * 128)  # 256 octets of UTF-8
    bad = Notification(6, 2, b"\x05\xff\xfe")  # length past the data: no message
    assert bad.shutdown_message is None
    assert Notification(6, 4, b"\x02\xc3\x28").shutdown_message == "\ufffd("


def test_notification_from_error_and_back() -> None:
    err = UpdateMessageError(3, b"\x01", "missing")
    n = Notification.from_error(err)
    assert (n.code, n.subcode, n.data) == (3, 3, b"\x01")
    assert isinstance(n.error(), UpdateMessageError)
    assert error_for(99, 1).code == 99


def test_keepalive_and_route_refresh() -> None:
    assert decode_message(KEEPALIVE, CTX) == Keepalive()
    assert encode_message(Keepalive(), CTX) == KEEPALIVE
    for subtype in (0, 1, 2):
        rr = RouteRefresh(2, 1, subtype)
        raw = encode_message(rr, CTX)
        assert raw[19:] == bytes((0, 2, subtype, 1))
        assert decode_message(raw, CTX) == rr
    assert decode_message(msg(5, b"\x00\x01\x07\x01"), CTX) == RouteRefresh(1, 1, 7)


def test_route_refresh_bad_length_is_rfc7313_error() -> None:
    for body in (b"\x00\x01\x01\x01\x00", b"\x00\x01\x02\x01\x00\x00", b"\x00\x01\x02"):
        raw = msg(5, body)  # BoRR/EoRR whose body is not 4 octets (RFC 7313 §5)
        err = header_error(raw)
        assert (err.code, err.subcode, err.data) == (7, 1, raw)


def test_route_refresh_unknown_subtype_is_ignored_whatever_its_length() -> None:
    # RFC 7313 §5: subtypes other than 0, 1, 2 are ignored, not errors.
    assert decode_message(msg(5, b"\x00\x01\x07\x01\xaa\xbb"), CTX) == RouteRefresh(1, 1, 7)
    assert decode_message(msg(5, b"\x00\x01\xff"), CTX) == RouteRefresh(1, 0, 255)


def test_route_refresh_normal_with_orf_entries_is_a_refresh() -> None:
    # RFC 5291 §4: ORF entries may follow a subtype-0 request; podbgp ignores them.
    raw = msg(5, b"\x00\x02\x00\x01" + b"\x01\x40\x00\x00")
    assert decode_message(raw, CTX) == RouteRefresh(2, 1, 0)


def test_route_refresh_too_short_is_bad_message_length() -> None:
    for body in (b"", b"\x00\x01", b"\x00\x01\x00"):
        err = header_error(msg(5, body))
        assert (err.code, err.subcode, err.data) == (1, 2, (19 + len(body)).to_bytes(2, "big"))


def test_open_router_id_type() -> None:
    o = Open(65001, 90, IPv4Address("10.0.0.1"))
    assert decode_message(encode_message(o, CTX), CTX) == o
