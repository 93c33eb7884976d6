"""rtnetlink messages for devices, addresses, neighbours, the FDB and route look-ups.

`fib.wire` encodes the route and nexthop messages the FIB writes by the
thousand; this module the few others a node sends now and then: get, create
(VXLAN, RFC 7348; IP-in-IP, RFC 2003), change and delete a link
(RTM_*LINK, struct ifinfomsg with IFLA_LINKINFO for the kind), list and add
addresses (RTM_*ADDR, struct ifaddrmsg), dump, replace and delete neighbour
and FDB entries (RTM_*NEIGH, struct ndmsg; the FDB is the AF_BRIDGE family
with NTF_SELF, the device's own table), and one route look-up (RTM_GETROUTE
without NLM_F_DUMP: the route the kernel would pick, no packet sent).

Sans-IO: every function builds or parses bytes; `fib.netlink` owns the
socket. It replaces pyroute2 in the daemon, whose import alone (163 modules)
was a fifth of an idle node's memory (docs/benchmarks.md, goal 3).
Layouts are the kernel's uapi headers (linux/rtnetlink.h, if_link.h,
if_addr.h, neighbour.h).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from fib.wire import (
    IFINFOMSG,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSGHDR,
    RTA_DST,
    RTA_OIF,
    RTATTR,
    RTM_DELLINK,
    RTM_GETROUTE,
    RTM_NEWLINK,
    RTMSG,
    attr,
)

RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30
NLM_F_EXCL = 0x200
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_VXLAN_ID = 1
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_LEARNING = 7
IFLA_VXLAN_PORT = 15  # __be16
IFLA_VXLAN_LOCAL6 = 17
IFF_UP = 0x1

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index

NDA_DST = 1
NDA_LLADDR = 2
NDMSG = struct.Struct("=BBHiHBB")  # family, pad1, pad2, ifindex, state, flags, type
NUD_PERMANENT = 0x80
NTF_SELF = 0x2
AF_BRIDGE = 7

RTA_PREFSRC = 7

_U32 = struct.Struct("=I")
_BE16 = struct.Struct(">H")


# -- attributes -------------------------------------------------------------------------------
def attrs(buf: bytes | memoryview, start: int, end: int) -> dict[int, bytes]:
    """The rtattrs in buf[start:end] by type (flags masked off); the last of a type wins."""
    out: dict[int, bytes] = {}
    while start + RTATTR.size <= end:
        size, kind = RTATTR.unpack_from(buf, start)
        if size < RTATTR.size or start + size > end:
            break
        out[kind & NLA_TYPE_MASK] = bytes(buf[start + RTATTR.size : start + size])
        start += (size + 3) & ~3
    return out


def _cstr(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode() if raw else ""


def _u32(raw: bytes | None) -> int | None:
    return _U32.unpack(raw[:4])[0] if raw and len(raw) >= 4 else None


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def request(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | flags, seq, 0) + body


# -- links ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Link:
    """What a node asks about a device (RTM_NEWLINK)."""

    index: int
    name: str
    flags: int
    mtu: int | None
    mac: str | None
    kind: str | None = None
    info: dict[int, bytes] = field(default_factory=dict)  # IFLA_INFO_DATA by attribute

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


def encode_link_get(name: str, seq: int) -> bytes:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
    return request(RTM_GETLINK, NLM_F_ACK, seq, body)


def encode_link_dump(seq: int) -> bytes:
    return request(RTM_GETLINK, NLM_F_DUMP, seq, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def decode_link(buf: bytes | memoryview, start: int, end: int) -> Link:
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(buf, start)
    a = attrs(buf, start + IFINFOMSG.size, end)
    kind, info = None, {}
    if IFLA_LINKINFO in a:
        li = a[IFLA_LINKINFO]
        nested = attrs(li, 0, len(li))
        kind = _cstr(nested.get(IFLA_INFO_KIND)) or None
        data = nested.get(IFLA_INFO_DATA, b"")
        info = attrs(data, 0, len(data))
    mac = mac_text(a[IFLA_ADDRESS]) if IFLA_ADDRESS in a else None
    return Link(index, _cstr(a.get(IFLA_IFNAME)), flags, _u32(a.get(IFLA_MTU)), mac, kind, info)


@dataclass(frozen=True, slots=True)
class VxlanInfo:
    """The attributes of a VXLAN device fixed at its creation."""

    vni: int | None
    port: int | None
    learning: int | None
    underlay: int | None
    local: bytes | None


def vxlan_info(link: Link) -> VxlanInfo | None:
    if link.kind != "vxlan":
        return None
    i = link.info
    port = i.get(IFLA_VXLAN_PORT)
    learning = i.get(IFLA_VXLAN_LEARNING)
    return VxlanInfo(
        _u32(i.get(IFLA_VXLAN_ID)),
        _BE16.unpack(port[:2])[0] if port and len(port) >= 2 else None,
        learning[0] if learning else None,
        _u32(i.get(IFLA_VXLAN_LINK)),
        i.get(IFLA_VXLAN_LOCAL) or i.get(IFLA_VXLAN_LOCAL6),
    )


def _linkinfo(kind: str, data: bytes = b"") -> bytes:
    inner = attr(IFLA_INFO_KIND, kind.encode())
    if data:
        inner += attr(IFLA_INFO_DATA, data)
    return attr(IFLA_LINKINFO, inner)


@dataclass(frozen=True, slots=True)
class VxlanCreate:
    """A new VXLAN device (RFC 7348): its VNI, UDP port, local VTEP address and underlay."""

    name: str
    vni: int
    port: int
    local: bytes
    underlay: int
    mac: str
    mtu: int


def encode_vxlan_add(v: VxlanCreate, seq: int) -> bytes:
    local = attr(IFLA_VXLAN_LOCAL6 if len(v.local) == 16 else IFLA_VXLAN_LOCAL, v.local)
    data = (
        attr(IFLA_VXLAN_ID, _U32.pack(v.vni))
        + attr(IFLA_VXLAN_PORT, _BE16.pack(v.port))
        + attr(IFLA_VXLAN_LINK, _U32.pack(v.underlay))
        + attr(IFLA_VXLAN_LEARNING, b"\0")
        + local
    )
    body = (
        IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        + attr(IFLA_IFNAME, v.name.encode() + b"\0")
        + attr(IFLA_ADDRESS, mac_bytes(v.mac))
        + attr(IFLA_MTU, _U32.pack(v.mtu))
        + _linkinfo("vxlan", data)
    )
    return request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def encode_kind_add(name: str, kind: str, seq: int) -> bytes:
    """A device of `kind` with the kernel's defaults (``ipip``: the fallback ``tunl0``)."""
    body = (
        IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        + attr(IFLA_IFNAME, name.encode() + b"\0")
        + _linkinfo(kind)
    )
    return request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def encode_link_set(
    index: int, seq: int, mtu: int | None = None, mac: str | None = None, up: bool = False
) -> bytes:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)
    if mtu is not None:
        body += attr(IFLA_MTU, _U32.pack(mtu))
    if mac is not None:
        body += attr(IFLA_ADDRESS, mac_bytes(mac))
    return request(RTM_NEWLINK, NLM_F_ACK, seq, body)


def encode_link_del(index: int, seq: int) -> bytes:
    return request(RTM_DELLINK, NLM_F_ACK, seq, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))


# -- addresses --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Address:
    index: int
    family: int
    prefixlen: int
    scope: int
    flags: int
    local: bytes  # IFA_LOCAL, else IFA_ADDRESS
    address: bytes  # IFA_ADDRESS (the peer's on a point-to-point link)


def encode_addr_dump(seq: int) -> bytes:
    return request(RTM_GETADDR, NLM_F_DUMP, seq, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def decode_addr(buf: bytes | memoryview, start: int, end: int) -> Address | None:
    family, plen, flags, scope, index = IFADDRMSG.unpack_from(buf, start)
    a = attrs(buf, start + IFADDRMSG.size, end)
    address = a.get(IFA_ADDRESS) or a.get(IFA_LOCAL)
    if address is None:
        return None
    wide = _u32(a.get(IFA_FLAGS))  # IFA_FLAGS holds all 32 bits; ifa_flags only the low 8
    return Address(index, family, plen, scope, flags if wide is None else wide,
                   a.get(IFA_LOCAL) or address, address)  # fmt: skip


def encode_addr_add(index: int, address: bytes, seq: int) -> bytes:
    """`address` as a host address (/32 or /128) on device `index`."""
    family = socket.AF_INET6 if len(address) == 16 else socket.AF_INET
    body = IFADDRMSG.pack(family, 8 * len(address), 0, 0, index)
    if family == socket.AF_INET:
        body += attr(IFA_LOCAL, address)
    body += attr(IFA_ADDRESS, address)
    return request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


# -- neighbours and the FDB -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NeighEntry:
    family: int
    ifindex: int
    state: int
    flags: int
    dst: bytes
    lladdr: str


def encode_neigh_dump(family: int, seq: int) -> bytes:
    """Every entry of `family` (AF_UNSPEC: ARP and NDP; AF_BRIDGE: the FDB)."""
    return request(RTM_GETNEIGH, NLM_F_DUMP, seq, NDMSG.pack(family, 0, 0, 0, 0, 0, 0))


def decode_neigh(buf: bytes | memoryview, start: int, end: int) -> NeighEntry | None:
    family, _p1, _p2, ifindex, state, flags, _type = NDMSG.unpack_from(buf, start)
    a = attrs(buf, start + NDMSG.size, end)
    dst, mac = a.get(NDA_DST), a.get(NDA_LLADDR)
    if not dst or not mac:
        return None
    return NeighEntry(family, ifindex, state, flags, dst, mac_text(mac))


def encode_neigh(
    msg_type: int, family: int, ifindex: int, dst: bytes, mac: str | None, seq: int,
    ntf: int = 0,
) -> bytes:  # fmt: skip
    """RTM_NEWNEIGH (create or replace, permanent) or RTM_DELNEIGH of one entry."""
    flags = NLM_F_ACK | (NLM_F_CREATE | NLM_F_REPLACE if msg_type == RTM_NEWNEIGH else 0)
    state = NUD_PERMANENT if msg_type == RTM_NEWNEIGH else 0
    body = NDMSG.pack(family, 0, 0, ifindex, state, ntf, 0) + attr(NDA_DST, dst)
    if mac is not None:
        body += attr(NDA_LLADDR, mac_bytes(mac))
    return request(msg_type, flags, seq, body)


# -- route look-up ----------------------------------------------------------------------------
def encode_route_get(destination: bytes, seq: int) -> bytes:
    family = socket.AF_INET6 if len(destination) == 16 else socket.AF_INET
    body = RTMSG.pack(family, 8 * len(destination), 0, 0, 0, 0, 0, 0, 0)
    return request(RTM_GETROUTE, NLM_F_ACK, seq, body + attr(RTA_DST, destination))


def decode_route_source(buf: bytes | memoryview, start: int, end: int) -> tuple[bytes, int] | None:
    """(preferred source, outgoing interface index) of a route look-up's answer."""
    a = attrs(buf, start + RTMSG.size, end)
    src, oif = a.get(RTA_PREFSRC), _u32(a.get(RTA_OIF))
    return (src, oif) if src and oif else None
