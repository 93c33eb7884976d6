"""The BFD Control packet (RFC 5880 §4.1), pure: bytes in, a typed value out, and back.

``decode_control(data)`` applies the checks of RFC 5880 §6.8.6 that need no
session state (version, length, detect multiplier, multipoint bit, My
Discriminator, authentication we do not use) and raises ``BfdPacketError``
for anything else: whatever bytes arrive, nothing but that typed error comes
out. The checks that need a session (Your Discriminator lookup, the zero
Your Discriminator rule) live in ``bfd.session``.

Intervals are in microseconds on the wire and here, as the RFC writes them;
the session converts to seconds at its edge.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "HEADER",
    "VERSION",
    "BfdPacketError",
    "ControlPacket",
    "Diag",
    "State",
    "decode_control",
    "encode_control",
]

VERSION = 1  # RFC 5880 §4.1
HEADER = 24  # the mandatory section: 24 octets
_FMT = struct.Struct("!BBBBIIIII")

# Flag bits in the second octet (after the 2-bit state), RFC 5880 §4.1.
_P, _F, _C, _A, _D, _M = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01


class State(IntEnum):
    """Session states (RFC 5880 §4.1 "Sta", §6.2)."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(IntEnum):
    """Diagnostic codes (RFC 5880 §4.1 "Diag")."""

    NONE = 0
    CONTROL_DETECTION_TIME_EXPIRED = 1
    ECHO_FUNCTION_FAILED = 2
    NEIGHBOR_SIGNALED_SESSION_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


class BfdPacketError(ValueError):
    """A Control packet that RFC 5880 §6.8.6 says to discard; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """One BFD Control packet without authentication (RFC 5880 §4.1).

    ``desired_min_tx``, ``required_min_rx`` and ``required_min_echo_rx`` are
    microseconds. ``diag`` may be a code this version does not name (§4.1
    leaves 9-31 reserved), so it is an int; known values compare equal to ``Diag``.
    """

    state: State
    my_discriminator: int
    your_discriminator: int
    detect_mult: int
    desired_min_tx: int
    required_min_rx: int
    required_min_echo_rx: int = 0
    diag: int = Diag.NONE
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    demand: bool = False


def encode_control(p: ControlPacket) -> bytes:
    """The 24-octet packet; the A and M bits are always clear (no auth, RFC 5880 §4.1)."""
    flags = (p.state << 6) | (_P if p.poll else 0) | (_F if p.final else 0)
    flags |= (_C if p.control_plane_independent else 0) | (_D if p.demand else 0)
    return _FMT.pack(
        (VERSION << 5) | (p.diag & 0x1F),
        flags,
        p.detect_mult,
        HEADER,
        p.my_discriminator,
        p.your_discriminator,
        p.desired_min_tx,
        p.required_min_rx,
        p.required_min_echo_rx,
    )


def decode_control(data: bytes | bytearray | memoryview) -> ControlPacket:
    """Parse and check a received packet (RFC 5880 §6.8.6, the stateless checks).

    ``data`` is the UDP payload. Raises ``BfdPacketError`` for anything the
    RFC says to discard, including authenticated packets: no authentication
    is configured here, and §6.8.6 discards a packet whose A bit disagrees.
    """
    if len(data) < HEADER:
        raise BfdPacketError(f"{len(data)} octets, shorter than a Control packet")
    vd, flags, mult, length, mine, yours, tx, rx, echo = _FMT.unpack_from(data)
    if vd >> 5 != VERSION:
        raise BfdPacketError(f"version {vd >> 5}, not {VERSION}")
    if flags & _A:
        raise BfdPacketError("authenticated packet, but no authentication is configured")
    if length < HEADER:
        raise BfdPacketError(f"length field {length} is below {HEADER}")
    if length > len(data):
        raise BfdPacketError(f"length field {length} exceeds the {len(data)} octets received")
    if mult == 0:
        raise BfdPacketError("detect multiplier is zero")
    if flags & _M:
        raise BfdPacketError("multipoint bit set")
    if mine == 0:
        raise BfdPacketError("my discriminator is zero")
    if flags & _P and flags & _F:
        # §4.1 (P and F): a packet MUST NOT carry both; such a sender is broken.
        raise BfdPacketError("poll and final bits both set")
    return ControlPacket(
        state=State(flags >> 6),
        my_discriminator=mine,
        your_discriminator=yours,
        detect_mult=mult,
        desired_min_tx=tx,
        required_min_rx=rx,
        required_min_echo_rx=echo,
        diag=vd & 0x1F,
        poll=bool(flags & _P),
        final=bool(flags & _F),
        control_plane_independent=bool(flags & _C),
        demand=bool(flags & _D),
    )
