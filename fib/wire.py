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

Kernel nexthop objects (linux/nexthop.h, kernel >= 5.3) have their own
messages: an 8-byte `nhmsg` then `NHA_*` attributes; a group is an array of
8-byte `nexthop_grp` records (member id, weight - 1). A route that uses one
carries `RTA_NH_ID` instead of `RTA_GATEWAY`/`RTA_OIF`/`RTA_MULTIPATH`; the
kernel still dumps the expanded hops next to it (net.ipv4.nexthop_compat_mode,
on by default), which `decode_route` reads too, for humans.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import count, repeat
from operator import add, itemgetter
from typing import Any, TypeVar

from fib.kernel import DELETE, REPLACE, RouteBatch
from fib.model import (
    DEST4_MAX,
    RT_SCOPE_UNIVERSE,
    KernelRoute,
    Nexthop,
    NexthopObject,
    NexthopSpec,
)
from fib.table import Shape

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
RTA_VIA = 18  # struct rtvia: a gateway of another family (an IPv6 one on an IPv4 route)
RTA_NH_ID = 30
RTNH_F_ONLINK = 4
RT_SCOPE_NOWHERE = 255
RT_TABLE_UNSPEC = 0
IFLA_IFNAME = 3

# linux/nexthop.h
RTM_NEWNEXTHOP = 104
RTM_DELNEXTHOP = 105
RTM_GETNEXTHOP = 106
NHA_ID = 1
NHA_GROUP = 2
NHA_GROUP_TYPE = 3
NHA_BLACKHOLE = 4
NHA_OIF = 5
NHA_GATEWAY = 6
NHA_ENCAP_TYPE = 7
NHA_FDB = 11
NEXTHOP_GRP_TYPE_MPATH = 0

NLMSGHDR = struct.Struct("=IHHII")
RTMSG = struct.Struct("=BBBBBBBBI")
RTATTR = struct.Struct("=HH")
RTNEXTHOP = struct.Struct("=HBBi")
VIA_FAMILY = struct.Struct("=H")  # struct rtvia's rtvia_family
IFINFOMSG = struct.Struct("=BxHiII")
U32_ATTR = struct.Struct("=HHI")
ERRMSG = struct.Struct("=i")
HDR_LEN = NLMSGHDR.size + RTMSG.size  # 28
NHMSG = struct.Struct("=BBBBI")
NEXTHOP_GRP = struct.Struct("=IBBH")
NH_HDR_LEN = NLMSGHDR.size + NHMSG.size  # 24


_NEW_FLAGS = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
# nlmsghdr + rtmsg + RTA_TABLE + RTA_DST (IPv4) [+ RTA_NH_ID]: the messages of a BGP feed
_DEL4 = struct.Struct("=IHHII BBBBBBBBI HHI HH4s")
_NEW4_NH = struct.Struct("=IHHII BBBBBBBBI HHI HH4s HHI")


class UnknownDevice(LookupError):
    """A route names a device the kernel does not have (reported as ENODEV)."""


def attr(kind: int, value: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(value)
    return RTATTR.pack(length, kind) + value + b"\0" * (-length & 3)


def _u32(kind: int, value: int) -> bytes:
    return U32_ATTR.pack(8, kind, value)


def _gateway(addr_len: int, gateway: bytes) -> bytes:
    """RTA_GATEWAY for a gateway of the route's own family, else RTA_VIA: an IPv4
    route through an IPv6 next hop (RFC 8950 in the kernel: `via inet6 ADDR`)."""
    if len(gateway) == addr_len:
        return attr(RTA_GATEWAY, gateway)
    family = socket.AF_INET6 if len(gateway) == 16 else socket.AF_INET
    return attr(RTA_VIA, VIA_FAMILY.pack(family) + gateway)


def _multipath(hops: tuple[Nexthop, ...], ifindex: Mapping[str, int], addr_len: int) -> bytes:
    out = []
    for hop in hops:
        gw = _gateway(addr_len, hop.gateway) if hop.gateway else b""
        oif = _oif(hop.dev, ifindex) if hop.dev else 0
        flags = RTNH_F_ONLINK if hop.onlink else 0
        out.append(RTNEXTHOP.pack(RTNEXTHOP.size + len(gw), flags, hop.weight - 1, oif) + gw)
    return attr(RTA_MULTIPATH, b"".join(out))


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

    The two shapes a BGP feed writes by the hundred thousand, an IPv4 route
    naming a nexthop object and an IPv4 delete, are packed with one struct call
    each; they are byte for byte what `encode_route_generic` builds (tested).
    """
    dst, table = route.dst, route.table
    if len(dst) == 4 and route.dst_len and not route.priority and not flags and table < 256:
        if op == DELETE:
            return _DEL4.pack(_DEL4.size, RTM_DELROUTE, NLM_F_REQUEST, seq, 0,
                              socket.AF_INET, route.dst_len, 0, 0, table, route.protocol,
                              RT_SCOPE_NOWHERE, 0, 0, 8, RTA_TABLE, table, 8, RTA_DST, dst)  # fmt: skip
        if route.nh_id:
            return _NEW4_NH.pack(_NEW4_NH.size, RTM_NEWROUTE, _NEW_FLAGS, seq, 0,
                                 socket.AF_INET, route.dst_len, 0, 0, table, route.protocol,
                                 route.scope, route.kind, 0, 8, RTA_TABLE, table,
                                 8, RTA_DST, dst, 8, RTA_NH_ID, route.nh_id)  # fmt: skip
    return encode_route_generic(op, route, seq, ifindex, flags)


def encode_route_generic(
    op: int, route: KernelRoute, seq: int, ifindex: Mapping[str, int], flags: int = 0
) -> bytes:
    """`encode_route` for every shape, attribute by attribute."""
    family = socket.AF_INET if len(route.dst) == 4 else socket.AF_INET6
    table = route.table
    attrs = [_u32(RTA_TABLE, table)]
    if route.dst_len:
        attrs.append(attr(RTA_DST, route.dst))
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
        if route.nh_id:  # the object holds the hops; the route only names it
            attrs.append(_u32(RTA_NH_ID, route.nh_id))
        elif len(hops) == 1:
            hop = hops[0]
            if hop.gateway:
                attrs.append(_gateway(len(route.dst), hop.gateway))
            if hop.dev:
                attrs.append(_u32(RTA_OIF, _oif(hop.dev, ifindex)))
            if hop.onlink:
                rtm_flags = RTNH_F_ONLINK
        elif hops:
            attrs.append(_multipath(hops, ifindex, len(route.dst)))
    body = b"".join(attrs)
    rtm_table = table if table < 256 else RT_TABLE_UNSPEC
    return (
        NLMSGHDR.pack(HDR_LEN + len(body), msg_type, nl_flags, seq, 0)
        + RTMSG.pack(family, route.dst_len, 0, 0, rtm_table, route.protocol, scope, kind, rtm_flags)
        + body
    )


T = TypeVar("T")
Encoder = Callable[[int, T, int, Mapping[str, int]], bytes]


def encode_ops(
    ops: Sequence[tuple[int, T]], encode: Encoder[T], base: int, ifindex: Mapping[str, int]
) -> tuple[list[bytes], list[tuple[int, int]]]:
    """Op `i` encoded with sequence number `base + i`, one by one: the messages of the ops
    that encode, and (index, ENODEV) for those naming a device the kernel lacks."""
    messages: list[bytes] = []
    refused: list[tuple[int, int]] = []
    for i, (op, item) in enumerate(ops):
        try:
            messages.append(encode(op, item, base + i, ifindex))
        except UnknownDevice:
            refused.append((i, errno.ENODEV))
    return messages, refused


def encode_route_batch(
    batch: RouteBatch, base: int, ifindex: Mapping[str, int]
) -> tuple[list[bytes], list[tuple[int, int]]]:
    """`encode_ops(batch.ops(), encode_route, base, ifindex)`, without a route per key.

    A route message is the same for every route of one shape but for three
    fields: the sequence number, `rtm_dst_len` and the destination's bytes. So
    each distinct shape is encoded once, by `encode_route` itself, for a
    stand-in destination; the pieces around those fields are cut out of it
    (`_pieces`), and every route's message is one struct call over them, mapped
    over the batch in C. That makes it byte for byte the per-op encoding (tested).
    A batch of two families, with a key that has a metric, a default route (no
    RTA_DST) or naming an unknown device is encoded op by op."""
    keys, shapes = batch.keys, batch.shapes
    sizes = set(map(len, keys)) if set(map(type, keys)) == {bytes} else set()
    if not sizes or not (max(sizes) <= DEST4_MAX or min(sizes) > DEST4_MAX):
        return encode_ops(batch.ops(), encode_route, base, ifindex)  # both families, metrics
    dst_lens = list(map(_FIRST, keys))  # a dest's length octet
    if 0 in dst_lens:
        return encode_ops(batch.ops(), encode_route, base, ifindex)
    width = 4 if max(sizes) <= DEST4_MAX else 16
    # a dest's address bytes; an IPv4 one has only those its length covers, and the
    # struct's `4s` pads it with zeros as `dest_addr` does
    dsts = map(_AFTER_LENGTH, keys)
    distinct = dict(zip(map(id, shapes), shapes, strict=True))
    try:
        cut = {i: _pieces(batch.op, s, width, ifindex) for i, s in distinct.items()}
    except UnknownDevice:
        return encode_ops(batch.ops(), encode_route, base, ifindex)
    ids = list(map(id, shapes)) if len(cut) > 1 else []
    heads, middles, tails = ([p[n] for p in cut.values()] for n in range(3))
    args: list[Iterator[Any] | list[Any]] = [
        _same_or_each(heads, cut, 0, ids), count(base), repeat(0),
        repeat(socket.AF_INET if width == 4 else socket.AF_INET6), dst_lens,
        _same_or_each(middles, cut, 1, ids), dsts,
    ]  # fmt: skip
    tail_lens = set(map(len, tails))
    tail_len = tail_lens.pop() if len(tail_lens) == 1 else -1
    if tail_len == 0:  # nothing after the destination (a delete)
        return list(map(_batch_struct(width, 0).pack, *args)), []
    if tail_len > 0:  # one length for every shape's tail: the struct's last field
        args.append(_same_or_each(tails, cut, 2, ids))
        return list(map(_batch_struct(width, tail_len).pack, *args)), []
    tail_of = _same_or_each(tails, cut, 2, ids)
    return list(map(add, map(_batch_struct(width, 0).pack, *args), tail_of)), []


def _pieces(op: int, shape: Shape, width: int, ifindex: Mapping[str, int]) -> tuple[bytes, ...]:
    """`encode_route`'s message for a route of `shape` cut around its per-route fields:
    (nlmsghdr's length, type and flags; rtmsg after `rtm_dst_len`, RTA_TABLE and RTA_DST's
    header; the attributes after the destination). The stand-in destination has length 1,
    so the message has its RTA_DST like every route the batch encoder handles."""
    msg = encode_route(op, _new(KernelRoute, (bytes(width), 1, *shape)), 0, ifindex)
    return msg[:8], msg[18:40], msg[40 + width :]


def _same_or_each(
    values: list[bytes], cut: dict[int, tuple[bytes, ...]], n: int, ids: list[int]
) -> Iterator[bytes]:
    """One piece for every route: repeated if all shapes share it, else looked up by shape."""
    if len(set(values)) == 1:
        return repeat(values[0])
    piece = {i: p[n] for i, p in cut.items()}
    return map(piece.__getitem__, ids)


def _batch_struct(width: int, tail: int) -> struct.Struct:
    """head (8 bytes), seq, pid, family, dst_len, the rest up to the address, the address
    [, the attributes after it]."""
    fmt = f"=8sIIBB22s{width}s" + (f"{tail}s" if tail else "")
    found = _BATCH_STRUCTS.get(fmt)
    if found is None:
        found = _BATCH_STRUCTS[fmt] = struct.Struct(fmt)
    return found


_BATCH_STRUCTS: dict[str, struct.Struct] = {}
_FIRST, _AFTER_LENGTH = itemgetter(0), itemgetter(slice(1, None))


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
            elif akind == RTA_VIA:
                gateway = bytes(buf[pos + 6 : pos + alen])
            pos += (alen + 3) & ~3
        dev = ifname.get(oif, f"if{oif}") if oif else ""
        hops.append(Nexthop(gateway, dev, bool(flags & RTNH_F_ONLINK), weight + 1))
        offset += (length + 3) & ~3
    return tuple(hops)


def decode_route(
    buf: bytes | memoryview, offset: int, end: int, ifname: Mapping[int, str]
) -> KernelRoute | None:
    """An RTM_NEWROUTE/RTM_DELROUTE payload as a KernelRoute (None for families we ignore)."""
    size = end - offset
    if size == 44 or size == 52:  # IPv4 `DST [nhid N] via GW dev OIF`: one struct call
        fast = _decode_via4(buf, offset, size, ifname)
        if fast is not None:
            return fast
    family, dst_len, _src, _tos, table, proto, scope, kind, flags = RTMSG.unpack_from(buf, offset)
    if family == socket.AF_INET:
        dst = b"\0\0\0\0"
    elif family == socket.AF_INET6:
        dst = bytes(16)
    else:
        return None
    gateway = b""
    oif = priority = nh_id = 0
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
        elif akind == RTA_VIA:
            gateway = bytes(buf[pos + 6 : pos + alen])  # after rtvia_family
        elif akind == RTA_OIF:
            oif = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == RTA_TABLE:
            table = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == RTA_PRIORITY:
            priority = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == RTA_MULTIPATH:
            multipath = _parse_multipath(buf, pos + 4, pos + alen, ifname)
        elif akind == RTA_NH_ID:
            nh_id = U32_ATTR.unpack_from(buf, pos)[2]
        pos += (alen + 3) & ~3
    hops: tuple[Nexthop, ...]
    if multipath:
        hops = multipath
    elif gateway or oif:
        hops = _hop(gateway, oif, flags, ifname)
    else:
        hops = ()
    # tuple.__new__ skips NamedTuple's Python-level __new__ (3x faster for large dumps)
    return _new(KernelRoute, (dst, dst_len, kind, hops, scope, proto, table, priority, nh_id))


def _decode_via4(
    buf: bytes | memoryview, offset: int, size: int, ifname: Mapping[int, str]
) -> KernelRoute | None:
    """The common IPv4 shapes, as the kernel dumps them: TABLE, DST, [NH_ID,] GATEWAY, OIF."""
    if size == 44:
        f = _VIA4.unpack_from(buf, offset)
        if f[0] != socket.AF_INET or f[10:20:3] != _VIA4_TYPES:
            return None
        gw, oif, nh_id = f[17], f[20], 0
    else:
        f = _NH4.unpack_from(buf, offset)
        if f[0] != socket.AF_INET or f[10:23:3] != _NH4_TYPES:
            return None
        gw, oif, nh_id = f[20], f[23], f[17]
    one = _HOPS.get((gw, oif, f[8] & RTNH_F_ONLINK))
    if one is None or one[0].dev != ifname.get(oif):
        one = _hop(gw, oif, f[8], ifname)
    return _new(KernelRoute, (f[14], f[1], f[7], one, f[6], f[5], f[11], 0, nh_id))


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
# the same with RTA_NH_ID before the (compat-mode) expanded hop
_NH4 = struct.Struct("=BBBBBBBBI HHI HH4s HHI HH4s HHI")
_NH4_TYPES = (RTA_TABLE, RTA_DST, RTA_NH_ID, RTA_GATEWAY, RTA_OIF)


def encode_nexthop(
    op: int, obj: NexthopObject, seq: int, ifindex: Mapping[str, int], flags: int = 0
) -> bytes:
    """One RTM_NEWNEXTHOP (create-or-replace) or RTM_DELNEXTHOP message.

    A single hop is NHA_GATEWAY + NHA_OIF (the kernel requires a device) with
    RTNH_F_ONLINK in `nh_flags`; a group is NHA_GROUP with AF_UNSPEC, as the
    kernel demands for groups. `nh_protocol` marks the object as podbgp's."""
    attrs = [_u32(NHA_ID, obj.id)]
    if op == DELETE:
        return _nh_message(RTM_DELNEXTHOP, NLM_F_REQUEST | flags, seq, socket.AF_UNSPEC, 0, 0,
                           attrs)  # fmt: skip
    nh_flags = 0
    hop = obj.spec.hop
    if hop is not None:
        family = socket.AF_INET if len(hop.gateway) == 4 else socket.AF_INET6
        attrs.append(_u32(NHA_OIF, _oif(hop.dev, ifindex)))
        attrs.append(attr(NHA_GATEWAY, hop.gateway))
        nh_flags = RTNH_F_ONLINK if hop.onlink else 0
    else:
        family = socket.AF_UNSPEC
        members = b"".join(NEXTHOP_GRP.pack(i, w - 1, 0, 0) for i, w in obj.spec.group)
        attrs.append(attr(NHA_GROUP, members))
    nl_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | flags
    return _nh_message(RTM_NEWNEXTHOP, nl_flags, seq, family, obj.protocol, nh_flags, attrs)


def _nh_message(
    msg_type: int, nl_flags: int, seq: int, family: int, protocol: int, nh_flags: int,
    attrs: list[bytes],
) -> bytes:  # fmt: skip
    body = b"".join(attrs)
    return (
        NLMSGHDR.pack(NH_HDR_LEN + len(body), msg_type, nl_flags, seq, 0)
        + NHMSG.pack(family, 0, protocol, 0, nh_flags)
        + body
    )


def encode_nexthop_dump_request(seq: int) -> bytes:
    """RTM_GETNEXTHOP dump of every nexthop object (all protocols; callers filter)."""
    return _nh_message(RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP, seq, socket.AF_UNSPEC, 0, 0,
                       [])  # fmt: skip


def decode_nexthop(
    buf: bytes | memoryview, offset: int, end: int, ifname: Mapping[int, str]
) -> NexthopObject | None:
    """An RTM_NEWNEXTHOP/RTM_DELNEXTHOP payload; None for kinds podbgp never makes
    (blackhole, FDB and encapsulating nexthops) and for a message without an id."""
    _family, _scope, protocol, _resvd, nh_flags = NHMSG.unpack_from(buf, offset)
    nh_id = oif = 0
    gateway = b""
    group: list[tuple[int, int]] = []
    pos = offset + NHMSG.size
    while pos + 4 <= end:
        alen, akind = RTATTR.unpack_from(buf, pos)
        if alen < 4:
            break
        if akind == NHA_ID:
            nh_id = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == NHA_OIF:
            oif = U32_ATTR.unpack_from(buf, pos)[2]
        elif akind == NHA_GATEWAY:
            gateway = bytes(buf[pos + 4 : pos + alen])
        elif akind == NHA_GROUP:
            for at in range(pos + 4, pos + alen - 7, NEXTHOP_GRP.size):
                member, weight, high, _r = NEXTHOP_GRP.unpack_from(buf, at)
                group.append((member, (high << 8 | weight) + 1))
        elif akind in (NHA_BLACKHOLE, NHA_FDB, NHA_ENCAP_TYPE):
            return None
        pos += (alen + 3) & ~3
    if not nh_id:
        return None
    if group:
        return NexthopObject(nh_id, NexthopSpec(None, tuple(sorted(group))), protocol)
    dev = ifname.get(oif, f"if{oif}") if oif else ""
    hop = Nexthop(gateway, dev, bool(nh_flags & RTNH_F_ONLINK))
    return NexthopObject(nh_id, NexthopSpec(hop), protocol)


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
    (plain `via NODE`) accepts whatever device the kernel resolved it to. A route
    through a nexthop object matches when it names the same object: the hops it
    shows are the object's, checked against the nexthop table separately."""
    if want == have:
        return True
    if want.nh_id or have.nh_id:
        return want.nh_id == have.nh_id and want[:3] == have[:3] and want[4:8] == have[4:8]
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
    "decode_nexthop",
    "decode_route",
    "encode_nexthop",
    "encode_nexthop_dump_request",
    "encode_ops",
    "encode_route",
    "encode_route_batch",
    "iter_messages",
    "same_route",
]
