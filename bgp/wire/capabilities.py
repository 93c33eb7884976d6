"""OPEN capabilities (RFC 5492) and the negotiation of codec facts from them.

Decoded: multiprotocol (RFC 4760 §8), route refresh (RFC 2918), enhanced route
refresh (RFC 7313), 4-octet AS (RFC 6793), graceful restart (RFC 4724, N bit
RFC 8538), ADD-PATH (RFC 7911 §4), extended next hop (RFC 8950 §3), extended
message (RFC 8654), long-lived graceful restart (RFC 9494) and FQDN
(draft-walton-bgp-hostname-capability). Anything else, and a known capability
whose value does not parse, is kept as ``UnknownCapability`` with raw bytes, so
an odd capability never fails an OPEN.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from bgp.wire.constants import Family

__all__ = [
    "AddPathCapability",
    "CapCode",
    "Capability",
    "EnhancedRouteRefreshCapability",
    "ExtendedMessageCapability",
    "ExtendedNextHopCapability",
    "FourOctetAsCapability",
    "FqdnCapability",
    "GracefulRestartCapability",
    "LongLivedGracefulRestartCapability",
    "MultiprotocolCapability",
    "RouteRefreshCapability",
    "UnknownCapability",
    "decode_capability",
    "encode_capability",
]


class CapCode(IntEnum):
    """Capability codes (IANA "Capability Codes" registry)."""

    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    EXTENDED_NEXT_HOP = 5
    EXTENDED_MESSAGE = 6
    GRACEFUL_RESTART = 64
    FOUR_OCTET_AS = 65
    ADD_PATH = 69
    ENHANCED_ROUTE_REFRESH = 70
    LONG_LIVED_GRACEFUL_RESTART = 71
    FQDN = 73


class Capability:
    """Base of all capabilities; ``CODE`` is the capability code."""

    __slots__ = ()
    CODE: ClassVar[int] = 0

    @property
    def code(self) -> int:
        """The capability code."""
        return self.CODE

    def value(self) -> bytes:
        """The capability value octets."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class MultiprotocolCapability(Capability):
    """Multiprotocol extensions for one AFI/SAFI (RFC 4760 §8)."""

    CODE: ClassVar[int] = CapCode.MULTIPROTOCOL
    afi: int
    safi: int

    @classmethod
    def for_family(cls, family: Family) -> MultiprotocolCapability:
        """The capability announcing ``family``."""
        return cls(family.afi, family.safi)

    def value(self) -> bytes:
        return struct.pack("!HBB", self.afi, 0, self.safi)


@dataclass(frozen=True, slots=True)
class RouteRefreshCapability(Capability):
    """Route refresh (RFC 2918 §2)."""

    CODE: ClassVar[int] = CapCode.ROUTE_REFRESH

    def value(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefreshCapability(Capability):
    """Enhanced route refresh: BoRR/EoRR demarcation (RFC 7313 §3)."""

    CODE: ClassVar[int] = CapCode.ENHANCED_ROUTE_REFRESH

    def value(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class ExtendedMessageCapability(Capability):
    """Messages up to 65535 octets (RFC 8654 §3)."""

    CODE: ClassVar[int] = CapCode.EXTENDED_MESSAGE

    def value(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class FourOctetAsCapability(Capability):
    """Support for 4-octet AS numbers, carrying the speaker's AS (RFC 6793 §3)."""

    CODE: ClassVar[int] = CapCode.FOUR_OCTET_AS
    asn: int

    def value(self) -> bytes:
        return self.asn.to_bytes(4, "big")


# RFC 4724 §3 and RFC 9494 §3: the F bit of a family's flags, forwarding state preserved.
FORWARDING_STATE = 0x80


@dataclass(frozen=True, slots=True)
class GracefulRestartCapability(Capability):
    """Graceful restart (RFC 4724 §3; N bit RFC 8538 §2).

    ``families`` holds ``(afi, safi, forwarding_preserved)``.
    """

    CODE: ClassVar[int] = CapCode.GRACEFUL_RESTART
    restart_time: int
    restarting: bool = False
    notification: bool = False
    families: tuple[tuple[int, int, bool], ...] = ()

    def value(self) -> bytes:
        flags = (0x8 if self.restarting else 0) | (0x4 if self.notification else 0)
        out = struct.pack("!H", (flags << 12) | (self.restart_time & 0x0FFF))
        for afi, safi, fwd in self.families:
            out += struct.pack("!HBB", afi, safi, FORWARDING_STATE if fwd else 0)
        return out


class AddPathMode(IntEnum):
    """ADD-PATH Send/Receive field (RFC 7911 §4); the one enum for it, also the direction a
    peer's settings offer (``bgp.settings``), where ``OFF`` (no capability) is 0."""

    OFF = 0
    RECEIVE = 1
    SEND = 2
    BOTH = 3

    @property
    def receive(self) -> bool:
        return bool(self & AddPathMode.RECEIVE)

    @property
    def send(self) -> bool:
        return bool(self & AddPathMode.SEND)


@dataclass(frozen=True, slots=True)
class AddPathCapability(Capability):
    """ADD-PATH, ``entries`` of ``(afi, safi, mode)`` (RFC 7911 §4)."""

    CODE: ClassVar[int] = CapCode.ADD_PATH
    entries: tuple[tuple[int, int, int], ...]

    def value(self) -> bytes:
        return b"".join(struct.pack("!HBB", a, s, m) for a, s, m in self.entries)

    def mode(self, family: Family) -> int:
        """The Send/Receive value announced for ``family`` (0 if none)."""
        for afi, safi, mode in self.entries:
            if (afi, safi) == (family.afi, family.safi):
                return mode
        return 0


@dataclass(frozen=True, slots=True)
class ExtendedNextHopCapability(Capability):
    """Extended next hop, ``entries`` of ``(nlri_afi, nlri_safi, nexthop_afi)`` (RFC 8950 §3)."""

    CODE: ClassVar[int] = CapCode.EXTENDED_NEXT_HOP
    entries: tuple[tuple[int, int, int], ...]

    def value(self) -> bytes:
        return b"".join(struct.pack("!HHH", a, s, n) for a, s, n in self.entries)


@dataclass(frozen=True, slots=True)
class LongLivedGracefulRestartCapability(Capability):
    """Long-lived GR, ``entries`` of ``(afi, safi, flags, stale_time)`` (RFC 9494 §3)."""

    CODE: ClassVar[int] = CapCode.LONG_LIVED_GRACEFUL_RESTART
    entries: tuple[tuple[int, int, int, int], ...]

    def value(self) -> bytes:
        return b"".join(
            struct.pack("!HBB", a, s, f) + t.to_bytes(3, "big") for a, s, f, t in self.entries
        )


@dataclass(frozen=True, slots=True)
class FqdnCapability(Capability):
    """Host and domain name (draft-walton-bgp-hostname-capability §3), UTF-8."""

    CODE: ClassVar[int] = CapCode.FQDN
    hostname: str
    domain: str = ""

    def value(self) -> bytes:
        h = self.hostname.encode()
        d = self.domain.encode()
        return bytes((len(h),)) + h + bytes((len(d),)) + d


@dataclass(frozen=True, slots=True)
class UnknownCapability(Capability):
    """A capability kept as raw bytes (unknown code, or a value that did not parse)."""

    CODE: ClassVar[int] = 0
    cap_code: int
    data: bytes

    @property
    def code(self) -> int:
        return self.cap_code

    def value(self) -> bytes:
        return self.data


class _Bad(ValueError):
    pass


def _need(cond: bool) -> None:
    if not cond:
        raise _Bad


def _gr(v: bytes) -> Capability:
    _need(len(v) >= 2 and (len(v) - 2) % 4 == 0)
    word = int.from_bytes(v[:2], "big")
    fams = tuple(
        (int.from_bytes(v[i : i + 2], "big"), v[i + 2], bool(v[i + 3] & FORWARDING_STATE))
        for i in range(2, len(v), 4)
    )
    return GracefulRestartCapability(word & 0x0FFF, bool(word & 0x8000), bool(word & 0x4000), fams)


def _addpath(v: bytes) -> Capability:
    _need(len(v) % 4 == 0)
    return AddPathCapability(
        tuple(
            (int.from_bytes(v[i : i + 2], "big"), v[i + 2], v[i + 3]) for i in range(0, len(v), 4)
        )
    )


def _enh(v: bytes) -> Capability:
    _need(len(v) % 6 == 0)
    return ExtendedNextHopCapability(
        tuple(struct.unpack("!HHH", v[i : i + 6]) for i in range(0, len(v), 6))
    )


def _llgr(v: bytes) -> Capability:
    _need(len(v) % 7 == 0)
    return LongLivedGracefulRestartCapability(
        tuple(
            (
                int.from_bytes(v[i : i + 2], "big"),
                v[i + 2],
                v[i + 3],
                int.from_bytes(v[i + 4 : i + 7], "big"),
            )
            for i in range(0, len(v), 7)
        )
    )


def _fqdn(v: bytes) -> Capability:
    _need(len(v) >= 1)
    hl = v[0]
    _need(len(v) >= 2 + hl)
    dl = v[1 + hl]
    _need(len(v) == 2 + hl + dl)
    return FqdnCapability(v[1 : 1 + hl].decode(), v[2 + hl : 2 + hl + dl].decode())


def _empty(cls: type[Capability]) -> object:
    def dec(v: bytes) -> Capability:
        _need(not v)
        return cls()

    return dec


def _mp(v: bytes) -> Capability:
    _need(len(v) == 4)
    return MultiprotocolCapability(int.from_bytes(v[:2], "big"), v[3])


def _as4(v: bytes) -> Capability:
    _need(len(v) == 4)
    return FourOctetAsCapability(int.from_bytes(v, "big"))


_DECODERS = {
    CapCode.MULTIPROTOCOL: _mp,
    CapCode.ROUTE_REFRESH: _empty(RouteRefreshCapability),
    CapCode.EXTENDED_NEXT_HOP: _enh,
    CapCode.EXTENDED_MESSAGE: _empty(ExtendedMessageCapability),
    CapCode.GRACEFUL_RESTART: _gr,
    CapCode.FOUR_OCTET_AS: _as4,
    CapCode.ADD_PATH: _addpath,
    CapCode.ENHANCED_ROUTE_REFRESH: _empty(EnhancedRouteRefreshCapability),
    CapCode.LONG_LIVED_GRACEFUL_RESTART: _llgr,
    CapCode.FQDN: _fqdn,
}


def decode_capability(code: int, value: bytes) -> Capability:
    """The capability object for one (code, value) pair; never raises."""
    dec = _DECODERS.get(code)  # type: ignore[call-overload]
    if dec is not None:
        try:
            cap: Capability = dec(value)
            return cap
        except (_Bad, UnicodeDecodeError):
            pass
    return UnknownCapability(code, bytes(value))


def encode_capability(cap: Capability) -> bytes:
    """Code, length, value (RFC 5492 §4)."""
    v = cap.value()
    if len(v) > 255:
        raise ValueError(f"capability {cap.code} value longer than 255 octets")
    return bytes((cap.code, len(v))) + v
