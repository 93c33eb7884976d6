"""Hand-built wire bytes for tests, written from the RFC layouts without the codec."""

from __future__ import annotations

import struct

MARKER = b"\xff" * 16


def msg(mtype: int, body: bytes) -> bytes:
    """Header (RFC 4271 §4.1) + body."""
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def attr(flags: int, code: int, value: bytes) -> bytes:
    """One path attribute (RFC 4271 §4.3); Extended Length when flags ask or needed."""
    if flags & 0x10 or len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def update(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    """An UPDATE message (RFC 4271 §4.3)."""
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
    return msg(2, body + nlri)


def v4(text: str) -> bytes:
    """NLRI encoding of an IPv4 prefix such as "10.0.0.0/24"."""
    addr, ln = text.split("/")
    n = int(ln)
    octets = bytes(int(x) for x in addr.split("."))
    return bytes((n,)) + octets[: (n + 7) // 8]


def v6(text: str) -> bytes:
    """NLRI encoding of an IPv6 prefix."""
    import ipaddress

    net = ipaddress.IPv6Network(text)
    n = net.prefixlen
    return bytes((n,)) + net.network_address.packed[: (n + 7) // 8]


ORIGIN_IGP = attr(0x40, 1, b"\x00")


def as_path4(*asns: int) -> bytes:
    """AS_PATH with one AS_SEQUENCE of 4-octet ASNs."""
    if not asns:
        return attr(0x40, 2, b"")
    return attr(0x40, 2, bytes((2, len(asns))) + b"".join(a.to_bytes(4, "big") for a in asns))


def next_hop(a: str) -> bytes:
    """NEXT_HOP attribute."""
    return attr(0x40, 3, bytes(int(x) for x in a.split(".")))


BASE = ORIGIN_IGP + as_path4(65001) + next_hop("192.0.2.1")


def mp_reach(afi: int, safi: int, nh: bytes, nlri: bytes, flags: int = 0x80) -> bytes:
    """MP_REACH_NLRI (RFC 4760 §3)."""
    value = struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri
    return attr(flags, 14, value)


def mp_unreach(afi: int, safi: int, nlri: bytes, flags: int = 0x80) -> bytes:
    """MP_UNREACH_NLRI (RFC 4760 §4)."""
    return attr(flags, 15, struct.pack("!HB", afi, safi) + nlri)
