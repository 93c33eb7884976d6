"""Typed values the FIB works with: its inputs and the kernel objects it plans.

Inputs (what the composition root hands the FIB) know nodes, pools' encapsulation
modes and pods; outputs are kernel routes, neighbour and FDB entries and devices.
Nothing here knows BGP or IPAM.

Addresses are kept as packed bytes (4 bytes for IPv4, 16 for IPv6): they go into
netlink messages as they are, compare and hash cheaply, and a table of 500,000
routes never builds an `ipaddress` object (DESIGN.md, performance rule 2).
`KernelRoute` and `Nexthop` are named tuples rather than dataclasses because a
dump of half a million routes constructs one per route and tuples are the
cheapest hashable record CPython has.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import NamedTuple

# rtnetlink route types and scopes (linux/rtnetlink.h).
RTN_UNICAST = 1
RTN_BLACKHOLE = 6
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253

VXLAN_DEVICE = "vxlan.podbgp"
IPIP_DEVICE = "tunl0"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
VXLAN6_OVERHEAD = 70  # the same over an IPv6 underlay: outer IPv6 40
IPIP_OVERHEAD = 20  # outer IPv4 header


class Encap(enum.Enum):
    """A pool's `ipip_mode` / `vxlan_mode` (CONFIG.md `[[ipam.pool]]`)."""

    NEVER = "Never"
    ALWAYS = "Always"
    CROSS_SUBNET = "CrossSubnet"


def pack_addr(text: str) -> bytes:
    """'10.0.0.1' or 'fd00::1' to 4 or 16 packed bytes."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_pton(family, text)


def unpack_addr(raw: bytes) -> str:
    """Packed 4 or 16 bytes back to text."""
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw)


def family_of(raw: bytes) -> int:
    return socket.AF_INET if len(raw) == 4 else socket.AF_INET6


def split_hop(hop: bytes) -> tuple[bytes, str]:
    """A next hop as the RIB hands it over: 4 or 16 address bytes, or a link-local
    IPv6 address followed by the name of its interface (a link-local address
    means something on one link only, RFC 4291 §2.5.6; the RIB appends the link
    of the session it was learned on). Returns (address, device or "")."""
    if len(hop) > 16:
        return hop[:16], hop[16:].decode()
    return hop, ""


def hop_text(hop: bytes) -> str:
    """A next hop for humans: '10.0.0.1', 'fe80::1%eth1'."""
    addr, dev = split_hop(hop)
    return f"{unpack_addr(addr)}%{dev}" if dev else unpack_addr(addr)


class Prefix(NamedTuple):
    """A destination prefix: packed network address and length (the readable form, at
    the FIB's edges: config, pods, own blocks, `podbgp explain`; tables use `Dest`)."""

    addr: bytes
    length: int

    @classmethod
    def parse(cls, text: str) -> Prefix:
        net = ipaddress.ip_network(text, strict=True)
        return cls(net.network_address.packed, net.prefixlen)

    @classmethod
    def of_dest(cls, dest: Dest) -> Prefix:
        return cls(dest_addr(dest), dest[0])

    @property
    def dest(self) -> Dest:
        return dest_of(self.addr, self.length)

    def __str__(self) -> str:
        return f"{unpack_addr(self.addr)}/{self.length}"


# A destination as the FIB's tables key it: one length octet, then the address. For
# IPv4 the address is the ceil(length / 8) bytes the length covers, which is the RIB's
# own key for the prefix (its NLRI form, RFC 4271 §4.3), so the very `bytes` object the
# RIB holds, its hash cached, goes from the RIB into the tables without a copy. For IPv6
# it is all 16 bytes (17 in all), so that an IPv6 destination is never mistaken for an
# IPv4 one (at most 5 bytes): the family is the length of the key.
Dest = bytes
DEST4_MAX = 5
_PAD4 = tuple(bytes(4 - n) for n in range(5))  # by the number of address bytes in a dest


def dest_of(addr: bytes, length: int) -> Dest:
    """The destination of `addr`/`length` (4 or 16 address bytes)."""
    if len(addr) == 4:
        return bytes((length,)) + addr[: (length + 7) >> 3]
    return bytes((length,)) + addr


def dest_addr(dest: Dest) -> bytes:
    """A destination's address, padded to 4 or 16 bytes."""
    if len(dest) <= DEST4_MAX:
        return dest[1:] + _PAD4[len(dest) - 1]
    return dest[1:]


def dest_len(dest: Dest) -> int:
    return dest[0]


def dest_text(dest: Dest) -> str:
    """'10.1.0.0/16', 'fd00::/64'."""
    return f"{unpack_addr(dest_addr(dest))}/{dest[0]}"


@dataclass(frozen=True, slots=True)
class LinkAddress:
    """One address on one interface, as an address dump reports it (`fib.netlink`)."""

    ifindex: int
    ifname: str
    up: bool  # the link is administratively up (IFF_UP)
    mtu: int
    address: str  # "10.0.0.1/24", "fd00::1/64"
    scope: int  # RT_SCOPE_*: 0 universe (global), 253 link, 254 host
    tentative: bool = False  # IPv6 duplicate address detection not finished (or failed)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """This node: its underlay address and subnet, the underlay device, its VTEP."""

    name: str
    address: bytes  # packed node address (BGP next hop, VTEP underlay)
    prefixlen: int  # its subnet, for CrossSubnet
    underlay: str = "eth0"  # interface carrying `address`; tunnels take their MTU from it
    vtep_address: bytes = b""  # address of vxlan.podbgp itself (from an own block), if VXLAN
    address6: bytes = b""  # a dual-stack node's IPv6 address (next hop of its IPv6 blocks)
    prefixlen6: int = 0  # and its IPv6 subnet, for CrossSubnet between IPv6 next hops
    # Configured tunnel MTUs ([fib] ipip_mtu / vxlan_mtu); 0 = the underlay's less overhead.
    ipip_mtu: int = 0
    vxlan_mtu: int = 0

    @classmethod
    def parse(
        cls, name: str, cidr: str, underlay: str = "eth0", vtep: str = "", cidr6: str = ""
    ) -> NodeInfo:
        iface = ipaddress.ip_interface(cidr)
        iface6 = ipaddress.ip_interface(cidr6) if cidr6 else None
        return cls(name, iface.ip.packed, iface.network.prefixlen, underlay,
                   pack_addr(vtep) if vtep else b"",
                   iface6.ip.packed if iface6 else b"",
                   iface6.network.prefixlen if iface6 else 0)  # fmt: skip

    def is_own(self, hop: bytes) -> bool:
        return hop == self.address or (bool(self.address6) and hop == self.address6)

    def same_subnet(self, other: bytes) -> bool:
        """Is `other` inside this node's subnet of its family (the CrossSubnet test)?"""
        if len(other) == len(self.address):
            address, prefixlen = self.address, self.prefixlen
        elif self.address6 and len(other) == 16:
            address, prefixlen = self.address6, self.prefixlen6
        else:
            return False
        shift = len(other) * 8 - prefixlen
        mine = int.from_bytes(address, "big") >> shift
        return bool(int.from_bytes(other, "big") >> shift == mine)


@dataclass(frozen=True, slots=True)
class Vtep:
    """A remote node's VXLAN endpoint: its VTEP address, VTEP MAC and underlay address."""

    node_address: bytes  # the underlay address (BGP next hop of its blocks)
    vtep_address: bytes  # the address on its vxlan.podbgp device (b"": none, IPv6 pods only)
    mac: str  # its vxlan.podbgp MAC, "aa:bb:cc:dd:ee:ff"
    node_address6: bytes = b""  # a dual-stack node's IPv6 address: next hop of IPv6 blocks

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The next hops this VTEP stands for: the underlay address, and the IPv6 one."""
        return (self.node_address, self.node_address6) if self.node_address6 else (
            self.node_address,)  # fmt: skip

    @property
    def link_local(self) -> bytes:
        """The IPv6 link-local address its vxlan.podbgp has by itself (`eui64_link_local`):
        the next hop of IPv6 pod routes through the tunnel, so no IPv6 VTEP address has to
        be allocated."""
        return eui64_link_local(self.mac)


def eui64_link_local(mac: str) -> bytes:
    """fe80::/64 with the modified EUI-64 interface identifier of `mac` (RFC 4291 §2.5.1
    and Appendix A, RFC 2464 §4-5): the universal/local bit flipped, ff:fe in the middle;
    what the kernel gives a device of that MAC (addr_gen_mode eui64, the default)."""
    b = bytes(int(x, 16) for x in mac.split(":"))
    return bytes.fromhex("fe80000000000000") + bytes([b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE,
                                                       b[3], b[4], b[5]])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reach:
    """How a remote prefix is reached: next hops (node addresses) and its pool's modes.

    Most prefixes share one of a handful of these, so the FIB keeps one object
    per distinct value (callers intern them) and plans once per value."""

    next_hops: tuple[bytes, ...]
    ipip: Encap = Encap.NEVER
    vxlan: Encap = Encap.NEVER


@dataclass(frozen=True, slots=True)
class RemoteRoute:
    """A route to a pod block on other nodes: prefix, next hops (node addresses), pool modes."""

    prefix: Prefix
    next_hops: tuple[bytes, ...]
    ipip: Encap = Encap.NEVER
    vxlan: Encap = Encap.NEVER

    @property
    def reach(self) -> Reach:
        return Reach(self.next_hops, self.ipip, self.vxlan)

    @classmethod
    def of(cls, prefix: Prefix, reach: Reach) -> RemoteRoute:
        return cls(prefix, reach.next_hops, reach.ipip, reach.vxlan)


class Nexthop(NamedTuple):
    """One kernel next hop. `dev == ""` lets the kernel choose the device (plain `via`)."""

    gateway: bytes  # b"" for a device route
    dev: str
    onlink: bool = False
    weight: int = 1


class KernelRoute(NamedTuple):
    """One kernel route, as planned or as dumped (IPv4 or IPv6, by the address length)."""

    dst: bytes
    dst_len: int
    kind: int  # RTN_UNICAST or RTN_BLACKHOLE (others are dumped as they are)
    nexthops: tuple[Nexthop, ...]
    scope: int = RT_SCOPE_UNIVERSE
    protocol: int = 0
    table: int = 254
    priority: int = 0
    nh_id: int = 0  # a kernel nexthop object (RTA_NH_ID) instead of inline next hops

    @property
    def key(self) -> RouteKey:
        """The kernel's identity of a route in one table: destination and metric (`route_key`)."""
        return route_key(self)

    def describe(self) -> str:
        """`ip route`-like text, for humans and `podbgp show fib`."""
        head = f"{unpack_addr(self.dst)}/{self.dst_len}"
        if self.nh_id:
            head += f" nhid {self.nh_id}"
        if self.kind == RTN_BLACKHOLE:
            return f"blackhole {head} proto {self.protocol}"
        hops = [describe_hop(h, len(self.dst)) for h in self.nexthops]
        if len(hops) == 1:
            return f"{head} {hops[0]} proto {self.protocol}"
        return f"{head} proto {self.protocol} " + " ".join(f"nexthop {h}" for h in hops)


# A route's identity in one table is its destination and metric (the kernel's own key).
# With the metric podbgp plans for every route of that family (`DEFAULT_METRIC`), the
# key is the route's `Dest` alone, so that the reconciler's tables are keyed by the
# very key objects of its inputs (for IPv4, the RIB's) instead of one more object per
# route; with any other metric (a route someone else added) it is (dest, metric).
RouteKey = Dest | tuple[Dest, int]
DEFAULT_METRIC = {4: 0, 16: 1024}  # by address length; 1024: the kernel's for IPv6 routes


def route_key(route: KernelRoute) -> RouteKey:
    """`KernelRoute.key`: the route's dest, or (dest, priority) for another metric."""
    dst, priority = route[0], route[7]
    dest = dest_of(dst, route[1])
    if priority == DEFAULT_METRIC.get(len(dst)):
        return dest
    return (dest, priority)


def key_dest(key: RouteKey) -> Dest:
    """The destination of a route key."""
    return key if isinstance(key, bytes) else key[0]


def key_order(key: RouteKey) -> tuple[bytes, int] | tuple[bytes, int, int]:
    """A key's place in `podbgp show fib`: by address, then length, then metric (a route
    of the default metric first), as (address, length[, metric]) tuples sort."""
    if isinstance(key, bytes):
        return (key[1:], key[0])
    dest, metric = key
    return (dest[1:], dest[0], metric)


class NexthopSpec(NamedTuple):
    """What a kernel nexthop object is, without its id: one hop, or a group of objects.

    A single object's `hop` carries weight 1 (weights belong to group members);
    a group's members are (object id, weight) pairs, in ascending id order."""

    hop: Nexthop | None
    group: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        if self.hop is not None:
            return describe_hop(self.hop)
        return "group " + "/".join(f"{i},{w}" if w != 1 else str(i) for i, w in self.group)


class NexthopObject(NamedTuple):
    """A kernel nexthop object (RTM_NEWNEXTHOP, kernel >= 5.3) as written or dumped."""

    id: int
    spec: NexthopSpec
    protocol: int = 0

    def describe(self) -> str:
        """`ip nexthop`-like text."""
        return f"id {self.id} {self.spec.describe()} proto {self.protocol}"


def describe_hop(hop: Nexthop, addr_len: int = 0) -> str:
    """`ip route`'s words for one hop; `addr_len` of the route's destination, so that an
    IPv6 gateway of an IPv4 route reads `via inet6 ADDR` as iproute2 prints it."""
    parts = []
    if addr_len == 4 and len(hop.gateway) == 16:
        parts.append(f"via inet6 {unpack_addr(hop.gateway)}")
    elif hop.gateway:
        parts.append(f"via {unpack_addr(hop.gateway)}")
    if hop.dev:
        parts.append(f"dev {hop.dev}")
    if hop.onlink:
        parts.append("onlink")
    if hop.weight != 1:
        parts.append(f"weight {hop.weight}")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A permanent neighbour entry: VTEP address → VTEP MAC on the VXLAN device."""

    dev: str
    address: bytes
    mac: str


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """A permanent FDB entry on the VXLAN device: VTEP MAC → remote underlay address."""

    dev: str
    mac: str
    dst: bytes


@dataclass(frozen=True, slots=True)
class VxlanSpec:
    """The VXLAN device podbgp keeps: `vxlan.podbgp`, VNI 4096, UDP 4789, learning off."""

    local: bytes
    underlay: str
    mac: str
    mtu: int
    address: bytes = b""  # the node's VTEP address, assigned as a /32 (/128)
    name: str = VXLAN_DEVICE
    vni: int = VXLAN_VNI
    port: int = VXLAN_PORT


@dataclass(frozen=True, slots=True)
class IpipSpec:
    """The IP-in-IP device: the kernel's fallback `tunl0` (it exists once ipip is loaded)."""

    mtu: int
    address: bytes = b""
    name: str = IPIP_DEVICE


@dataclass(slots=True)
class FibInputs:
    """Everything the planner needs, as the composition root last set it."""

    node: NodeInfo | None = None
    remote: dict[Dest, Reach] = field(default_factory=dict)  # values shared (interned)
    vteps: dict[bytes, Vtep] = field(default_factory=dict)  # by node (underlay) address
    local_pods: dict[Prefix, str] = field(default_factory=dict)  # prefix → host-side veth
    own_blocks: set[Prefix] = field(default_factory=set)


def vtep_mac(node_name: str) -> str:
    """A stable MAC for a node's VXLAN device, derived from its name.

    Every node computes every other node's MAC the same way, so no datastore
    round trip is needed. The locally administered bit is set and the multicast
    bit cleared (IEEE 802 §8.2.2) so it never collides with a vendor MAC.
    """
    digest = bytearray(hashlib.sha256(node_name.encode()).digest()[:6])
    digest[0] = (digest[0] | 0x02) & 0xFE
    return ":".join(f"{b:02x}" for b in digest)
