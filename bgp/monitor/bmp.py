"""BMP messages (RFC 7854), encoded: a monitored router's side of the protocol.

Every message starts with the common header (§4.1: version 3, total length,
type). All but Initiation and Termination then carry the per-peer header
(§4.2), which names the monitored session: peer type, flags, distinguisher,
address, AS, BGP identifier and a timestamp.

- Initiation (§4.3) and Termination (§4.5): information TLVs (§4.4).
- Peer Up (§4.10): our address and both ports, then the OPEN we sent and the
  OPEN we received, whole, so a station can decode the session's UPDATEs.
- Peer Down (§4.9): a reason code and, for reasons 1 and 3, the NOTIFICATION
  PDU; for reason 2 the FSM event that ended the session.
- Route Monitoring (§4.6): one whole BGP UPDATE PDU. The L flag marks
  post-policy routes; the A flag says its AS_PATH has 2-octet ASNs (the
  session did not negotiate 4-octet AS, RFC 6793).
- Statistics Report (§4.8): counters (32 bits) and gauges (64 bits), with
  the per-AFI/SAFI gauges carrying AFI and SAFI before the value.
- Loc-RIB (RFC 9069 §4): peer type 3, address zero, our AS and identifier.

Timestamps are arguments (seconds since the epoch, as a float): the encoder
reads no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from ipaddress import IPv4Address, IPv6Address

from bgp.wire.constants import Family

__all__ = [
    "VERSION",
    "InfoType",
    "MessageType",
    "PeerDownReason",
    "PeerFlag",
    "PeerHeader",
    "PeerType",
    "Stat",
    "StatType",
    "TerminationReason",
    "encode_initiation",
    "encode_peer_down",
    "encode_peer_up",
    "encode_route_monitoring",
    "encode_statistics",
    "encode_termination",
]

Address = IPv4Address | IPv6Address

VERSION = 3  # RFC 7854 §4.1
_COMMON = struct.Struct("!BIB")
_PEER = struct.Struct("!BBQ16sIIII")
_TLV = struct.Struct("!HH")


class MessageType(IntEnum):
    """RFC 7854 §4.1."""

    ROUTE_MONITORING = 0
    STATISTICS_REPORT = 1
    PEER_DOWN = 2
    PEER_UP = 3
    INITIATION = 4
    TERMINATION = 5


class PeerType(IntEnum):
    """RFC 7854 §4.2; LOC_RIB from RFC 9069 §4.1."""

    GLOBAL = 0
    RD = 1
    LOCAL = 2
    LOC_RIB = 3


class PeerFlag(IntFlag):
    """Per-peer header flags (RFC 7854 §4.2). For a Loc-RIB peer the top bit is
    RFC 9069's F (filtered) flag instead of V."""

    NONE = 0
    IPV6 = 0x80
    POST_POLICY = 0x40
    AS2 = 0x20


class InfoType(IntEnum):
    """Information TLV types of Initiation (RFC 7854 §4.4)."""

    STRING = 0
    SYS_DESCR = 1
    SYS_NAME = 2


class TerminationType(IntEnum):
    """Information TLV types of Termination (RFC 7854 §4.5)."""

    STRING = 0
    REASON = 1


class TerminationReason(IntEnum):
    """RFC 7854 §4.5."""

    ADMIN_CLOSE = 0
    UNSPECIFIED = 1
    OUT_OF_RESOURCES = 2
    REDUNDANT_CONNECTION = 3
    PERMANENTLY_CLOSED = 4


class PeerDownReason(IntEnum):
    """RFC 7854 §4.9."""

    LOCAL_NOTIFICATION = 1
    LOCAL_NO_NOTIFICATION = 2
    REMOTE_NOTIFICATION = 3
    REMOTE_NO_NOTIFICATION = 4
    DECONFIGURED = 5


class StatType(IntEnum):
    """Statistics types (RFC 7854 §4.8): 0-6 are 32-bit counters, 7-10 64-bit gauges."""

    REJECTED_BY_POLICY = 0
    DUPLICATE_PREFIX = 1
    DUPLICATE_WITHDRAW = 2
    CLUSTER_LIST_LOOP = 3
    AS_PATH_LOOP = 4
    ORIGINATOR_ID_LOOP = 5
    CONFED_LOOP = 6
    ADJ_RIB_IN = 7
    LOC_RIB = 8
    ADJ_RIB_IN_FAMILY = 9
    LOC_RIB_FAMILY = 10


_GAUGES = frozenset({StatType.ADJ_RIB_IN, StatType.LOC_RIB})
_FAMILY_GAUGES = frozenset({StatType.ADJ_RIB_IN_FAMILY, StatType.LOC_RIB_FAMILY})


@dataclass(frozen=True, slots=True)
class PeerHeader:
    """The per-peer header (RFC 7854 §4.2).

    ``address`` None is the zero address of a Loc-RIB peer (RFC 9069 §4.1).
    ``post_policy`` sets L; ``as2`` sets A (the UPDATEs carry 2-octet AS_PATHs).
    """

    address: Address | None
    asn: int
    bgp_id: IPv4Address
    timestamp: float
    peer_type: PeerType = PeerType.GLOBAL
    post_policy: bool = False
    as2: bool = False
    filtered: bool = False
    distinguisher: int = 0

    def flags(self) -> PeerFlag:
        f = PeerFlag.NONE
        if self.peer_type is PeerType.LOC_RIB:
            # RFC 9069 §4.2: only F is defined; V, L and A mean nothing here.
            return PeerFlag.IPV6 if self.filtered else f
        if isinstance(self.address, IPv6Address):
            f |= PeerFlag.IPV6
        if self.post_policy:
            f |= PeerFlag.POST_POLICY
        if self.as2:
            f |= PeerFlag.AS2
        return f

    def encode(self) -> bytes:
        secs = int(self.timestamp)
        micros = min(round((self.timestamp - secs) * 1e6), 999_999)
        return _PEER.pack(
            self.peer_type,
            self.flags(),
            self.distinguisher,
            _addr16(self.address),
            self.asn,
            int(self.bgp_id),
            secs,
            micros,
        )


def _addr16(addr: Address | None) -> bytes:
    """A 16-octet address field: IPv4 in the last four octets (RFC 7854 §4.2)."""
    if addr is None:
        return bytes(16)
    return addr.packed.rjust(16, b"\0")


def _message(mtype: MessageType, body: bytes) -> bytes:
    return _COMMON.pack(VERSION, _COMMON.size + len(body), mtype) + body


def _tlv(code: int, value: bytes) -> bytes:
    return _TLV.pack(code, len(value)) + value


def encode_initiation(sys_name: str, sys_descr: str, strings: Sequence[str] = ()) -> bytes:
    """Initiation (§4.3): sysName and sysDescr are both required (§4.4)."""
    body = _tlv(InfoType.SYS_DESCR, sys_descr.encode()) + _tlv(InfoType.SYS_NAME, sys_name.encode())
    body += b"".join(_tlv(InfoType.STRING, s.encode()) for s in strings)
    return _message(MessageType.INITIATION, body)


def encode_termination(reason: TerminationReason, text: str = "") -> bytes:
    """Termination (§4.5): the reason TLV, and a free-form string when given."""
    body = _tlv(TerminationType.STRING, text.encode()) if text else b""
    body += _tlv(TerminationType.REASON, struct.pack("!H", reason))
    return _message(MessageType.TERMINATION, body)


def encode_peer_up(
    peer: PeerHeader,
    local_address: Address | None,
    local_port: int,
    remote_port: int,
    sent_open: bytes,
    received_open: bytes,
    strings: Sequence[str] = (),
) -> bytes:
    """Peer Up (§4.10). The OPENs are whole BGP messages, header included."""
    body = (
        peer.encode()
        + _addr16(local_address)
        + struct.pack("!HH", local_port, remote_port)
        + sent_open
        + received_open
        + b"".join(_tlv(InfoType.STRING, s.encode()) for s in strings)
    )
    return _message(MessageType.PEER_UP, body)


def encode_peer_down(
    peer: PeerHeader, reason: PeerDownReason, notification: bytes = b"", fsm_event: int = 0
) -> bytes:
    """Peer Down (§4.9): reasons 1 and 3 carry the NOTIFICATION PDU, reason 2 the
    FSM event code (0: none applies), 4 and 5 nothing."""
    data = b""
    if reason in (PeerDownReason.LOCAL_NOTIFICATION, PeerDownReason.REMOTE_NOTIFICATION):
        if not notification:
            raise ValueError(f"Peer Down reason {reason.name} needs the NOTIFICATION PDU")
        data = notification
    elif reason is PeerDownReason.LOCAL_NO_NOTIFICATION:
        data = struct.pack("!H", fsm_event)
    return _message(MessageType.PEER_DOWN, peer.encode() + bytes((reason,)) + data)


def encode_route_monitoring(peer: PeerHeader, update: bytes) -> bytes:
    """Route Monitoring (§4.6): the per-peer header and one whole UPDATE message."""
    return _message(MessageType.ROUTE_MONITORING, peer.encode() + update)


@dataclass(frozen=True, slots=True)
class Stat:
    """One statistic; ``family`` only (and always) for the per-AFI/SAFI gauges."""

    kind: StatType
    value: int
    family: Family | None = None

    def encode(self) -> bytes:
        if self.kind in _FAMILY_GAUGES:
            if self.family is None:
                raise ValueError(f"{self.kind.name} needs a family")
            value = struct.pack("!HBQ", self.family.afi, self.family.safi, self.value)
        elif self.kind in _GAUGES:
            value = struct.pack("!Q", self.value)
        else:
            value = struct.pack("!I", self.value & 0xFFFFFFFF)  # counters wrap (§4.8)
        return _tlv(self.kind, value)


def encode_statistics(peer: PeerHeader, stats: Sequence[Stat]) -> bytes:
    """Statistics Report (§4.8): a count, then each statistic as a TLV."""
    body = peer.encode() + struct.pack("!I", len(stats)) + b"".join(s.encode() for s in stats)
    return _message(MessageType.STATISTICS_REPORT, body)
