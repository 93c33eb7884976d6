"""rtnetlink route messages packed and parsed with `struct` (pure: bytes in, bytes out).

The layouts are the kernel's UAPI (linux/netlink.h, linux/rtnetlink.h; the
netlink framing is also described in RFC 3549 §2.3): a 16-byte `nlmsghdr`, a
12-byte `rtmsg`, then 4-byte-aligned `rtattr` TLVs. Multipath next hops are
`rtnexthop` records inside `RTA_MULTIPATH`, each followed by its own
attributes. This module builds RTM_NEWROUTE / RTM_DELROUTE messages for many
routes at a time and parses dumps, events and NLMSG_ERROR replies, so the
socket code in `fib.netlink` stays a thin loop. No pyroute2 here: building
messages by hand is what lets a batch of 100,000 routes go out in a handful of
`sendmsg` calls.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator, Mapping

from fib.kernel import DELETE, REPLACE
from fib.model import RT_SCOPE_UNIVERSE, KernelRoute, Nexthop

# linux/netlink.h
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400

# linux/rtnetlink.h
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTNH_F_ONLINK = 4
RT_SCOPE_NOWHERE = 255
RT_TABLE_UNSPEC = 0
IFLA_IFNAME = 3

NLMSGHDR = struct.Struct("=IHHII")
RTMSG = struct.Struct("=BBBBBBBBI")
RTATTR = struct.Struct("=HH")
RTNEXTHOP = struct.Struct("=HBBi")
IFINFOMSG = struct.Struct("=BxHiII")
U32_ATTR = struct.Struct("=HHI")
ERRMSG = struct.Struct("=i")
HDR_LEN = NLMSGHDR.size + RTMSG.size  # 28


class UnknownDevice(LookupError):
    """A route names a device the kernel does not have (reported as ENODEV)."""


def _attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return RTATTR.pack(length, kind) + value + b"\0" * (-length & 3)


def _u32(kind: int, value: int) -> bytes:
    return U32_ATTR.pack(8, kind, value)


def _multipath(hops: tuple[Nexthop, ...], ifindex: Mapping[str, int]) -> bytes:
    out = []
    for hop in hops:
        gw = _attr(RTA_GATEWAY, hop.gateway) if hop.gateway else b""
        oif = _oif(hop.dev, ifindex) if hop.dev else 0
        flags = RTNH_F_ONLINK if hop.onlink else 0
        out.append(RTNEXTHOP.pack(RTNEXTHOP.size + len(gw), flags, hop.weight - 1, oif) + gw)
    return _attr(RTA_MULTIPATH, b"".join(out))


def _oif(dev: str, ifindex: Mapping[str, int]) -> int:
    index = ifindex.get(dev)
    if index is None:
        raise UnknownDevice(dev)
    return index


def encode_route(
    op: int, route: KernelRoute, seq: int, ifindex: Mapping[str, int], flags: int = 0
) -> bytes:
    """One RTM_NEWROUTE (create-or-replace) or RTM_DELROUTE message.

    Deletes carry the route's protocol and scope RT_SCOPE_NOWHERE: the kernel
    then removes the route only if its protocol matches (fib_table_delete), so
    a delete can never take out a route someone else installed on that prefix.
    """
    family = socket.AF_INET if len(route.dst) == 4 else socket.AF_INET6
    table = route.table
    attrs = [_u32(RTA_TABLE, table)]
    if route.dst_len:
        attrs.append(_attr(RTA_DST, route.dst))
    if route.priority:
        attrs.append(_u32(RTA_PRIORITY, route.priority))
    rtm_flags = 0
    if op == DELETE:
        msg_type, nl_flags = RTM_DELROUTE, NLM_F_REQUEST | flags
        scope, kind = RT_SCOPE_NOWHERE, 0
    else:
        msg_type = RTM_NEWROUTE
        nl_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | flags
        scope, kind = route.scope, route.kind
        hops = route.nexthops
        if len(hops) == 1:
            hop = hops[0]
            if hop.gateway:
                attrs.append(_attr(RTA_GATEWAY, hop.gateway))
            if hop.dev:
                attrs.append(_u32(RTA_OIF, _oif(hop.dev, ifindex)))
            if hop.onlink:
                rtm_flags = RTNH_F_ONLINK
        elif hops:
            attrs.append(_multipath(hops, ifindex))
    body = b"".join(attrs)
    rtm_table = table if table < 256 else RT_TABLE_UNSPEC
    return (
        NLMSGHDR.pack(HDR_LEN + len(body), msg_type, nl_flags, seq, 0)
        + RTMSG.pack(family, route.dst_len, 0, 0, rtm_table, route.protocol, scope, kind, rtm_flags)
        + body
    )


def encode_dump_request(family: int, table: int, seq: int) -> bytes:
    """RTM_GETROUTE dump of one family; with NETLINK_GET_STRICT_CHK the kernel filters the table."""
    body = _u32(RTA_TABLE, table)
    rtm_table = table if table < 256 else RT_TABLE_UNSPEC
    return (
        NLMSGHDR.pack(HDR_LEN + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + RTMSG.pack(family, 0, 0, 0, rtm_table, 0, 0, 0, 0)
        + body
    )


def iter_messages(buf: bytes | memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, payload offset, payload end) for each message in one datagram."""
    offset = 0
    end = len(buf)
    unpack = NLMSGHDR.unpack_from
    while offset + 16 <= end:
        length, msg_type, flags, seq, _pid = unpack(buf, offset)
        if length < 16 or offset + length > end:
            return
        yield msg_type, flags, seq, offset + 16, offset + length
        offset += (length + 3) & ~3


def decode_error(buf: bytes | memoryview, offset: int) -> tuple[int, int]:
    """NLMSG_ERROR payload: (errno, sequence number of the request it answers); errno 0 = ACK."""
    (err,) = ERRMSG.unpack_from(buf, offset)
    _len, _type, _flags, seq, _pid = NLMSGHDR.unpack_from(buf, offset + 4)
    return -err, seq


def _parse_multipath(
    buf: bytes | memoryview, offset: int, end: int, ifname: Mapping[int, str]
) -> tuple[Nexthop, ...]:
    hops = []
    while offset + 8 <= end:
        length, flags, weight, oif = RTNEXTHOP.unpack_from(buf, offset)
        if length < 8:
            break
        gateway = b""
        pos, stop = offset + 8, offset + length
        while pos + 4 <= stop:
            alen, akind = RTATTR.unpack_from(buf, pos)
            if alen < 4:
                break
            if akind == RTA_GATEWAY:
                gateway = bytes(buf[pos + 4 : pos + alen])
            pos += (alen + 3) & ~3
        dev = ifname.get(oif, f"if{oif}") if oif else ""
        hops.append(Nexthop(gateway, dev, bool(flags & RTNH_F_ONLINK), weight + 1))
        offset += (length + 3) & ~3
    return tuple(hops)


def decode_route(
    buf: bytes | memoryview, offset: int, end: int, ifname: Mapping[int, str]
) -> KernelRoute | None:
    """An RTM_NEWROUTE/RTM_DELROUTE payload as a KernelRoute (None for families we ignore)."""
    if end - offset == 44:  # the common shape: IPv4 `DST via GW dev OIF`, one struct call
        f = _VIA4.unpack_from(buf, offset)
        if f[0] == socket.AF_INET and f[10:20:3] == _VIA4_TYPES:
            oif = f[20]
            one = _HOPS.get((f[17], oif, f[8] & RTNH_F_ONLINK))
            if one is None or one[0].dev != ifname.get(oif):
                one = _hop(f[17], oif, f[8], ifname)
            return _new(KernelRoute, (f[14], f[1], f[7], one, f[6], f[5], f[11], 0))
    family, dst_len, _src, _tos, table, proto, scope, kind, flags = RTMSG.unpack_from(buf, offset)
    if family == socket.AF_INET:
        dst = b"\0\0\0\0"
    elif family == socket.AF_INET6:
        dst = bytes(16)
    else:
        return None
    gateway = b""
    oif = priority = 0
    multipath: tuple[Nexthop, ...] = ()
    pos = offset + 12
    unpack = RTATTR.unpack_from
    while pos + 4 <= end:
        alen, akind = unpack(buf, pos)
        if alen < 4:
            break
        if akind == RTA_DST:
            dst = bytes(buf[pos + 4 : pos + alen])
        elif akind == RTA_GATEWAY:
            gateway = bytes(buf[pos + 4 : pos + alen])
        elif akind == RTA_OIF:
            oif = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == RTA_TABLE:
            table = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == RTA_PRIORITY:
            priority = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == RTA_MULTIPATH:
            multipath = _parse_multipath(buf, pos + 4, pos + alen, ifname)
        pos += (alen + 3) & ~3
    hops: tuple[Nexthop, ...]
    if multipath:
        hops = multipath
    elif gateway or oif:
        hops = _hop(gateway, oif, flags, ifname)
    else:
        hops = ()
    # tuple.__new__ skips NamedTuple's Python-level __new__ (3x faster for large dumps)
    return _new(KernelRoute, (dst, dst_len, kind, hops, scope, proto, table, priority))


def _hop(gateway: bytes, oif: int, flags: int, ifname: Mapping[int, str]) -> tuple[Nexthop]:
    """One single-hop tuple per distinct hop: most routes of a table share a handful of
    next hops, and sharing makes comparing them an identity check."""
    dev = ifname.get(oif, f"if{oif}") if oif else ""
    hops = (Nexthop(gateway, dev, bool(flags & RTNH_F_ONLINK)),)
    if len(_HOPS) < 4096:
        _HOPS[(gateway, oif, flags & RTNH_F_ONLINK)] = hops
    return hops


_new = tuple.__new__
_HOPS: dict[tuple[bytes, int, int], tuple[Nexthop]] = {}
# rtmsg + RTA_TABLE + RTA_DST + RTA_GATEWAY + RTA_OIF, as the kernel dumps an IPv4 gateway route
_VIA4 = struct.Struct("=BBBBBBBBI HHI HH4s HH4s HHI")
_VIA4_TYPES = (RTA_TABLE, RTA_DST, RTA_GATEWAY, RTA_OIF)


def decode_link(buf: bytes | memoryview, offset: int, end: int) -> tuple[int, str]:
    """(ifindex, name) from an RTM_NEWLINK/RTM_DELLINK payload."""
    _family, _type, index, _flags, _change = IFINFOMSG.unpack_from(buf, offset)
    pos = offset + IFINFOMSG.size
    while pos + 4 <= end:
        alen, akind = RTATTR.unpack_from(buf, pos)
        if alen < 4:
            break
        if akind == IFLA_IFNAME:
            return index, bytes(buf[pos + 4 : pos + alen]).rstrip(b"\0").decode()
        pos += (alen + 3) & ~3
    return index, ""


def same_route(want: KernelRoute, have: KernelRoute) -> bool:
    """Does the kernel's route match the planned one? A planned hop with no device
    (plain `via NODE`) accepts whatever device the kernel resolved it to."""
    if want == have:
        return True
    if want[:3] != have[:3] or want[4:] != have[4:] or len(want.nexthops) != len(have.nexthops):
        return False
    for w, h in zip(want.nexthops, have.nexthops, strict=True):
        if w.dev == "" and w._replace(dev=h.dev) == h:
            continue
        if w != h:
            return False
    return True


__all__ = [
    "DELETE",
    "REPLACE",
    "RT_SCOPE_UNIVERSE",
    "UnknownDevice",
    "decode_error",
    "decode_route",
    "encode_route",
    "iter_messages",
    "same_route",
]
