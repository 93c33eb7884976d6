"""BGP messages: header checks, OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH,
and the ``decode_message`` / ``encode_message`` entry points.

Header (RFC 4271 §4.1, §6.1): a marker that is not all ones is Connection Not
Synchronized (1/1); a length below 19, above the maximum, or wrong for the
type is Bad Message Length (1/2, data = the length field); an unknown type is
Bad Message Type (1/3, data = the type octet). OPEN and KEEPALIVE stay within
4096 octets even with extended messages (RFC 8654 §4).

OPEN (RFC 4271 §4.2, §6.2) with capabilities (RFC 5492) and extended optional
parameters (RFC 9072 §2: Optional Parameters Length 255 followed by a
Parameter Type of 255 announces 2-octet lengths, RFC 9072 §3 whatever the
Non-Ext OP Len value). NOTIFICATION (RFC 4271 §4.5)
with the shutdown communication of RFC 9003 §2 for Cease subcodes 2 and 4.
ROUTE-REFRESH (RFC 2918 §3) with the BoRR/EoRR subtypes of RFC 7313 §3; a
BoRR/EoRR of the wrong length is ROUTE-REFRESH Invalid Message Length (RFC
7313 §5), unknown subtypes are decoded for the session to ignore.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from bgp.errors import (
    BGPError,
    CeaseSubcode,
    ErrorCode,
    MessageHeaderError,
    MessageHeaderSubcode,
    OpenMessageError,
    OpenSubcode,
    RouteRefreshError,
    RouteRefreshSubcode,
    error_for,
)
from bgp.wire.capabilities import Capability, decode_capability, encode_capability
from bgp.wire.constants import (
    AS_TRANS,
    HEADER_LEN,
    MARKER,
    MAX_MESSAGE_LEN,
    MessageType,
    RouteRefreshSubtype,
)
from bgp.wire.context import CodecContext
from bgp.wire.update import Update, decode_update, encode_update

__all__ = [
    "Keepalive",
    "Message",
    "Notification",
    "Open",
    "RouteRefresh",
    "check_header",
    "decode_message",
    "encode_message",
]

_MIN_LEN: dict[int, int] = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
    MessageType.KEEPALIVE: 19,
    MessageType.ROUTE_REFRESH: 23,
}
_SMALL_ONLY = (MessageType.OPEN, MessageType.KEEPALIVE)
_HDR = struct.Struct("!16sHB")
_CAP_PARAM = 2  # Optional Parameter Type "Capabilities" (RFC 5492 §4)
_EXT_PARAM = 255  # RFC 9072 §2


@dataclass(frozen=True, slots=True)
class Open:
    """OPEN (RFC 4271 §4.2). ``asn`` is the 2-octet My AS field; the real AS of
    a 4-octet speaker is in its ``FourOctetAsCapability`` (see ``peer_as``)."""

    asn: int
    hold_time: int
    router_id: IPv4Address
    capabilities: tuple[Capability, ...] = ()
    version: int = 4

    @classmethod
    def build(
        cls,
        asn: int,
        hold_time: int,
        router_id: IPv4Address | str,
        capabilities: tuple[Capability, ...] = (),
    ) -> Open:
        """An OPEN for a speaker of AS ``asn``: AS_TRANS in My AS when it needs 4 octets."""
        return cls(
            asn if asn <= 0xFFFF else AS_TRANS, hold_time, IPv4Address(router_id), capabilities
        )

    @property
    def peer_as(self) -> int:
        """The sender's AS: the 4-octet AS capability if present, else My AS (RFC 6793 §4.1)."""
        from bgp.wire.capabilities import FourOctetAsCapability

        for cap in self.capabilities:
            if isinstance(cap, FourOctetAsCapability):
                return cap.asn
        return self.asn

    def find(self, cls: type[Capability]) -> list[Capability]:
        """All capabilities of a class, in order."""
        return [c for c in self.capabilities if isinstance(c, cls)]


@dataclass(frozen=True, slots=True)
class Notification:
    """NOTIFICATION (RFC 4271 §4.5). Data, not control flow: see ``bgp.errors``."""

    code: int
    subcode: int
    data: bytes = b""

    @classmethod
    def from_error(cls, err: BGPError) -> Notification:
        """The NOTIFICATION that reports ``err``."""
        return cls(err.code, err.subcode, err.data)

    @classmethod
    def shutdown(
        cls, message: str, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN
    ) -> Notification:
        """Cease with a shutdown communication (RFC 9003 §2): length octet + UTF-8, ≤ 255 octets."""
        raw = message.encode()
        if len(raw) > 255:
            raise ValueError("shutdown communication longer than 255 octets (RFC 9003 §2)")
        return cls(ErrorCode.CEASE, subcode, bytes((len(raw),)) + raw)

    @property
    def shutdown_message(self) -> str | None:
        """The RFC 9003 communication of Cease 2/4, or None if absent or malformed.

        Invalid UTF-8 is replaced rather than rejected: RFC 9003 §4 tells the
        receiver to log what it can and never to fail on it.
        """
        if self.code != ErrorCode.CEASE or self.subcode not in (
            CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
            CeaseSubcode.ADMINISTRATIVE_RESET,
        ):
            return None
        if not self.data or self.data[0] + 1 > len(self.data):
            return None
        return self.data[1 : 1 + self.data[0]].decode("utf-8", "replace")

    def error(self) -> BGPError:
        """The received error as a ``BGPError`` (typed by code)."""
        return error_for(self.code, self.subcode, self.data, "received NOTIFICATION")


@dataclass(frozen=True, slots=True)
class Keepalive:
    """KEEPALIVE (RFC 4271 §4.4): a header only."""


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    """ROUTE-REFRESH (RFC 2918 §3). ``subtype`` 0 normal, 1 BoRR, 2 EoRR (RFC 7313 §3);
    other values are decoded as they are and must be ignored (RFC 7313 §5)."""

    afi: int
    safi: int
    subtype: int = RouteRefreshSubtype.NORMAL


Message = Open | Update | Notification | Keepalive | RouteRefresh


# ------------------------------------------------------------------- header


def _bad_length(length: int, why: str) -> MessageHeaderError:
    return MessageHeaderError(
        MessageHeaderSubcode.BAD_MESSAGE_LENGTH, length.to_bytes(2, "big"), why
    )


def check_header(buf: bytes | bytearray | memoryview, offset: int, max_len: int) -> tuple[int, int]:
    """Validate the 19-octet header at ``offset``; return ``(length, type)``.

    ``max_len`` is the negotiated maximum for UPDATE/NOTIFICATION/ROUTE-REFRESH.
    Raises ``MessageHeaderError`` per RFC 4271 §6.1.
    """
    if buf[offset : offset + 16] != MARKER:
        raise MessageHeaderError(
            MessageHeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, reason="marker is not all ones"
        )
    length = buf[offset + 16] << 8 | buf[offset + 17]
    mtype = buf[offset + 18]
    if length < HEADER_LEN:
        raise _bad_length(length, "shorter than a header")
    if mtype < 1 or mtype > 5:
        raise MessageHeaderError(
            MessageHeaderSubcode.BAD_MESSAGE_TYPE, bytes((mtype,)), f"unknown type {mtype}"
        )
    limit = MAX_MESSAGE_LEN if mtype in (1, 4) else max_len
    if length > limit:
        raise _bad_length(length, f"longer than {limit}")
    if mtype == MessageType.KEEPALIVE and length != HEADER_LEN:
        raise _bad_length(length, "KEEPALIVE is not 19 octets")
    if length < _MIN_LEN[mtype] and mtype != MessageType.ROUTE_REFRESH:
        raise _bad_length(length, f"too short for {MessageType(mtype).name}")
    return length, mtype


# ------------------------------------------------------------------- decoders


def decode_message(data: bytes | bytearray | memoryview, ctx: CodecContext) -> Message:
    """Decode one whole message (header included).

    Returns ``Open | Update | Notification | Keepalive | RouteRefresh``; raises
    ``bgp.errors.BGPError`` when the RFCs require a NOTIFICATION.
    """
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n < HEADER_LEN:
        raise _bad_length(int.from_bytes(data[16:18], "big") if n >= 18 else n, "truncated header")
    length, mtype = check_header(data, 0, ctx.max_message_len)
    if length != n:
        raise _bad_length(length, f"length field {length} but {n} octets given")
    if mtype == 2:
        return decode_update(data, ctx)
    if mtype == 4:
        return Keepalive()
    if mtype == 1:
        return decode_open(data)
    if mtype == 3:
        return Notification(data[19], data[20], data[21:])
    return decode_route_refresh(data)


def decode_route_refresh(data: bytes) -> RouteRefresh:
    """ROUTE-REFRESH body: AFI(2) subtype(1) SAFI(1) (RFC 2918 §3, RFC 7313 §3).

    Length rules by subtype (RFC 7313 §5): BoRR/EoRR whose body is not 4
    octets → ROUTE-REFRESH Invalid Message Length with the whole message as
    data. A normal request (subtype 0) may carry ORF entries after the 4
    octets (RFC 5291 §4); podbgp does not do ORF and ignores them, and one too
    short to hold AFI/SAFI is Bad Message Length (RFC 4271 §6.1). Any other
    subtype is returned as it is, whatever its length, for the session to
    ignore.
    """
    n = len(data)
    subtype = data[21] if n > 21 else -1
    if subtype in (RouteRefreshSubtype.BORR, RouteRefreshSubtype.EORR) and n != 23:
        raise RouteRefreshError(
            RouteRefreshSubcode.INVALID_MESSAGE_LENGTH, data, "BoRR/EoRR body is not 4 octets"
        )
    if n < 23 and subtype <= RouteRefreshSubtype.NORMAL:
        raise _bad_length(n, "ROUTE-REFRESH shorter than 23 octets")
    return RouteRefresh(data[19] << 8 | data[20], data[22] if n > 22 else 0, subtype)


def decode_open(data: bytes) -> Open:
    """OPEN body (RFC 4271 §4.2, RFC 9072 §2), checked per RFC 4271 §6.2."""
    version = data[19]
    if version != 4:
        raise OpenMessageError(
            OpenSubcode.UNSUPPORTED_VERSION_NUMBER, b"\x00\x04", f"version {version}"
        )
    asn, hold = struct.unpack_from("!HH", data, 20)
    router_id = int.from_bytes(data[24:28], "big")
    if hold in (1, 2):
        raise OpenMessageError(OpenSubcode.UNACCEPTABLE_HOLD_TIME, reason=f"hold time {hold}")
    if router_id == 0:
        raise OpenMessageError(OpenSubcode.BAD_BGP_IDENTIFIER, reason="BGP identifier 0")
    caps = _decode_params(data, 28)
    return Open(asn, hold, IPv4Address(router_id), caps, version)


def _open_error(reason: str) -> OpenMessageError:
    return OpenMessageError(OpenSubcode.UNSPECIFIC, reason=reason)


def _decode_params(data: bytes, at: int) -> tuple[Capability, ...]:
    """Optional parameters, regular or RFC 9072 extended; capabilities flattened."""
    plen = data[at]
    i = at + 1
    # RFC 9072 §2/§3: a first parameter type of 255 announces the extended
    # encoding whatever the (non-zero) Non-Ext OP Len says; the receiver
    # decodes it that way rather than reading type 255 as a plain parameter.
    ext = plen != 0 and len(data) > i and data[i] == _EXT_PARAM
    if ext:
        if len(data) < i + 3:
            raise _open_error("truncated extended optional parameters length")
        plen = data[i + 1] << 8 | data[i + 2]
        i += 3
    end = i + plen
    if end != len(data):
        raise _open_error("Optional Parameters Length does not match the message")
    hdr = 3 if ext else 2
    caps: list[Capability] = []
    while i < end:
        if i + hdr > end:
            raise _open_error("truncated optional parameter")
        ptype = data[i]
        ln = (data[i + 1] << 8 | data[i + 2]) if ext else data[i + 1]
        vstart, vend = i + hdr, i + hdr + ln
        if vend > end:
            raise _open_error("optional parameter overruns the message")
        if ptype != _CAP_PARAM:
            raise OpenMessageError(
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, reason=f"parameter type {ptype}"
            )
        caps.extend(_decode_caps(data, vstart, vend))
        i = vend
    return tuple(caps)


def _decode_caps(data: bytes, i: int, end: int) -> list[Capability]:
    caps: list[Capability] = []
    while i < end:
        if i + 2 > end or i + 2 + data[i + 1] > end:
            raise _open_error("capability overruns its parameter")
        code, ln = data[i], data[i + 1]
        caps.append(decode_capability(code, data[i + 2 : i + 2 + ln]))
        i += 2 + ln
    return caps


# ------------------------------------------------------------------- encoders


def _frame(mtype: int, body: bytes) -> bytes:
    return _HDR.pack(MARKER, HEADER_LEN + len(body), mtype) + body


def encode_open(msg: Open) -> bytes:
    """OPEN with one Capabilities parameter per ≤255 octets of capabilities;
    RFC 9072 extended parameters when they exceed 255 octets in total."""
    encoded = [encode_capability(c) for c in msg.capabilities]
    groups: list[bytes] = []
    cur = b""
    for e in encoded:
        if cur and len(cur) + len(e) > 255:
            groups.append(cur)
            cur = b""
        cur += e
    if cur:
        groups.append(cur)
    params = b"".join(bytes((_CAP_PARAM, len(g))) + g for g in groups)
    if len(params) <= 255:
        opt = bytes((len(params),)) + params
    else:
        params = b"".join(struct.pack("!BH", _CAP_PARAM, len(g)) + g for g in groups)
        opt = struct.pack("!BBH", 255, _EXT_PARAM, len(params)) + params
    body = struct.pack("!BHH", msg.version, msg.asn, msg.hold_time) + msg.router_id.packed + opt
    if HEADER_LEN + len(body) > MAX_MESSAGE_LEN:
        raise ValueError("OPEN longer than 4096 octets")
    return _frame(MessageType.OPEN, body)


def encode_message(msg: Message, ctx: CodecContext) -> bytes:
    """Encode one message; ``ValueError`` if it cannot be represented or does not fit."""
    if isinstance(msg, Update):
        return encode_update(msg, ctx)
    if isinstance(msg, Keepalive):
        return _frame(MessageType.KEEPALIVE, b"")
    if isinstance(msg, Open):
        return encode_open(msg)
    if isinstance(msg, Notification):
        out = _frame(MessageType.NOTIFICATION, bytes((msg.code, msg.subcode)) + msg.data)
        if len(out) > ctx.max_message_len:
            raise ValueError("NOTIFICATION longer than the maximum message size")
        return out
    if isinstance(msg, RouteRefresh):
        return _frame(
            MessageType.ROUTE_REFRESH, struct.pack("!HBB", msg.afi, msg.subtype, msg.safi)
        )
    raise TypeError(f"not a BGP message: {msg!r}")
