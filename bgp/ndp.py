"""Finding the neighbour of an unnumbered link: ICMPv6 codec and a sans-IO finder.

An unnumbered BGP session (``[[bgp.peer]] interface = "eth1"``) runs between the
two ends' IPv6 link-local addresses. When the peer's address is not configured,
it is learned from the link itself, one of two ways (``Discovery``):

- ``RA``: each side announces itself with Router Advertisements (RFC 4861 §4.2)
  and takes the sender of the other side's as its neighbour. This is what FRR's
  ``neighbor eth1 interface`` expects: its zebra learns the neighbour from our
  RAs, and sends its own. Ours say router lifetime 0, so no host makes us its
  default router (§4.2: "not a default router"), and carry no prefix, so
  nobody autoconfigures an address from them. One goes out at start, then every
  ``interval`` seconds, and at once after a Router Solicitation (§6.2.6); we
  send an RS at start so that a peer's RA comes without waiting its interval.
- ``ND``: no advertisements; an ICMPv6 Echo Request to all-nodes (ff02::1,
  RFC 4443 §4.1) every ``interval`` until someone answers, and the neighbour is
  the link-local source of what comes back: the Echo Reply, or the Neighbour
  Solicitation / Advertisement that resolving our address makes the peer send
  (RFC 4861 §7.2). For peers that send no RAs (BIRD, GoBGP).

Received ND messages are validated as RFC 4861 §6.1.2 and §7.1.1/§7.1.2 ask
(hop limit 255, code 0, a link-local source, well-formed options) so that
nothing from off the link can name a neighbour. Our own packets, which come
back through multicast loopback, are never a neighbour.

The codec (``decode``/``encode``) is pure; ``Finder`` is the state machine:
``start(now)``, ``receive(data, source, hop_limit, now)``, ``handle_timer(now)``,
``get_timer()``, ``packets_to_send()`` and ``next_event()``, as ``bgp.fsm`` does
for a session. The raw socket lives in ``bgp.ndp_socket``. The kernel fills in
and checks the ICMPv6 checksum of a raw ICMPv6 socket (RFC 3542 §3.1), so
``encode`` leaves it 0; ``checksum`` computes it (RFC 4443 §2.3) for tests and
captures.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass
from ipaddress import IPv6Address

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "Discovery",
    "EchoReply",
    "EchoRequest",
    "Finder",
    "IcmpType",
    "NeighbourAdvertisement",
    "NeighbourHeard",
    "NeighbourSolicitation",
    "Packet",
    "RouterAdvertisement",
    "RouterSolicitation",
    "checksum",
    "decode",
    "encode",
]

ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
ND_HOP_LIMIT = 255  # RFC 4861 §6.1.2, §7.1.1: off-link senders cannot reach 255
OPT_SOURCE_LLADDR = 1  # RFC 4861 §4.6.1
OPT_TARGET_LLADDR = 2


class Discovery(enum.StrEnum):
    """How an unnumbered peer's address is found (module docstring)."""

    RA = "ra"
    ND = "nd"


class IcmpType(enum.IntEnum):
    """The ICMPv6 types used here (RFC 4443 §4, RFC 4861 §4)."""

    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOUR_SOLICITATION = 135
    NEIGHBOUR_ADVERTISEMENT = 136


@dataclass(frozen=True, slots=True)
class RouterSolicitation:
    """RFC 4861 §4.1: reserved, options (source link-layer address)."""

    source_lladdr: bytes = b""


@dataclass(frozen=True, slots=True)
class RouterAdvertisement:
    """RFC 4861 §4.2. ``lifetime`` 0: not a default router."""

    hop_limit: int = 0
    flags: int = 0
    lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    source_lladdr: bytes = b""


@dataclass(frozen=True, slots=True)
class NeighbourSolicitation:
    """RFC 4861 §4.3."""

    target: IPv6Address
    source_lladdr: bytes = b""


@dataclass(frozen=True, slots=True)
class NeighbourAdvertisement:
    """RFC 4861 §4.4: flags are R (0x80), S (0x40), O (0x20)."""

    target: IPv6Address
    flags: int = 0
    target_lladdr: bytes = b""


@dataclass(frozen=True, slots=True)
class EchoRequest:
    """RFC 4443 §4.1."""

    ident: int
    seq: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class EchoReply:
    """RFC 4443 §4.2."""

    ident: int
    seq: int
    data: bytes = b""


Packet = (
    RouterSolicitation
    | RouterAdvertisement
    | NeighbourSolicitation
    | NeighbourAdvertisement
    | EchoRequest
    | EchoReply
)

_HDR = struct.Struct("!BBH")  # type, code, checksum
_RA = struct.Struct("!BBHII")  # cur hop limit, flags, router lifetime, reachable, retrans
_ECHO = struct.Struct("!HH")


# ------------------------------------------------------------------ codec


def _options(data: bytes) -> dict[int, bytes] | None:
    """RFC 4861 §4.6: type, length in units of 8 octets (0 is invalid), value.
    None if malformed (§6.1.2, §7.1.1: the packet is then silently discarded)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data) or data[pos + 1] == 0:
            return None
        end = pos + 8 * data[pos + 1]
        if end > len(data):
            return None
        out.setdefault(data[pos], data[pos + 2 : end])
        pos = end
    return out


def _lladdr(opts: dict[int, bytes], kind: int) -> bytes:
    """A link-layer address option's address: 6 octets on Ethernet (RFC 2464 §6),
    the padding after it dropped."""
    value = opts.get(kind, b"")
    return value[:6]


def _option(kind: int, lladdr: bytes) -> bytes:
    if not lladdr:
        return b""
    body = bytes((kind, 0)) + lladdr
    body += b"\0" * (-len(body) % 8)
    return bytes((kind, len(body) // 8)) + body[2:]


def decode(data: bytes) -> Packet | None:
    """One ICMPv6 message as a raw ICMPv6 socket hands it over (no IPv6 header), or None
    for a type not used here or a malformed message (dropped, never an exception)."""
    if len(data) < 8 or data[1] != 0:  # §6.1.1, §6.1.2, §7.1: ICMP code is 0
        return None
    kind = data[0]
    if kind in (IcmpType.ECHO_REQUEST, IcmpType.ECHO_REPLY):
        ident, seq = _ECHO.unpack_from(data, 4)
        cls = EchoRequest if kind == IcmpType.ECHO_REQUEST else EchoReply
        return cls(ident, seq, bytes(data[8:]))
    if kind == IcmpType.ROUTER_SOLICITATION:
        opts = _options(data[8:])
        return None if opts is None else RouterSolicitation(_lladdr(opts, OPT_SOURCE_LLADDR))
    if kind == IcmpType.ROUTER_ADVERTISEMENT:
        return _decode_ra(data)
    if kind in (IcmpType.NEIGHBOUR_SOLICITATION, IcmpType.NEIGHBOUR_ADVERTISEMENT):
        return _decode_ns_na(data)
    return None


def _decode_ra(data: bytes) -> RouterAdvertisement | None:
    if len(data) < 16:  # §6.1.2: ICMP length is 16 or more octets
        return None
    opts = _options(data[16:])
    if opts is None:
        return None
    hop, flags, life, reach, retrans = _RA.unpack_from(data, 4)
    return RouterAdvertisement(hop, flags, life, reach, retrans, _lladdr(opts, OPT_SOURCE_LLADDR))


def _decode_ns_na(data: bytes) -> NeighbourSolicitation | NeighbourAdvertisement | None:
    if len(data) < 24:  # §7.1.1, §7.1.2: 24 or more octets
        return None
    target = IPv6Address(bytes(data[8:24]))
    opts = _options(data[24:])
    if opts is None or target.is_multicast:
        return None
    if data[0] == IcmpType.NEIGHBOUR_SOLICITATION:
        return NeighbourSolicitation(target, _lladdr(opts, OPT_SOURCE_LLADDR))
    return NeighbourAdvertisement(target, data[4], _lladdr(opts, OPT_TARGET_LLADDR))


def encode(msg: Packet) -> bytes:
    """The ICMPv6 message (checksum 0: the kernel fills it in on a raw ICMPv6 socket)."""
    if isinstance(msg, EchoRequest | EchoReply):
        kind = IcmpType.ECHO_REQUEST if isinstance(msg, EchoRequest) else IcmpType.ECHO_REPLY
        return _HDR.pack(kind, 0, 0) + _ECHO.pack(msg.ident, msg.seq) + msg.data
    if isinstance(msg, RouterSolicitation):
        return (
            _HDR.pack(IcmpType.ROUTER_SOLICITATION, 0, 0)
            + bytes(4)
            + _option(OPT_SOURCE_LLADDR, msg.source_lladdr)
        )
    if isinstance(msg, RouterAdvertisement):
        body = _RA.pack(msg.hop_limit, msg.flags, msg.lifetime, msg.reachable_time,
                        msg.retrans_timer)  # fmt: skip
        head = _HDR.pack(IcmpType.ROUTER_ADVERTISEMENT, 0, 0)
        return head + body + _option(OPT_SOURCE_LLADDR, msg.source_lladdr)
    if isinstance(msg, NeighbourSolicitation):
        head = _HDR.pack(IcmpType.NEIGHBOUR_SOLICITATION, 0, 0) + bytes(4)
        return head + msg.target.packed + _option(OPT_SOURCE_LLADDR, msg.source_lladdr)
    head = _HDR.pack(IcmpType.NEIGHBOUR_ADVERTISEMENT, 0, 0) + bytes((msg.flags, 0, 0, 0))
    return head + msg.target.packed + _option(OPT_TARGET_LLADDR, msg.target_lladdr)


def checksum(source: IPv6Address, dest: IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum over the IPv6 pseudo-header and ``message`` with its own
    checksum field taken as 0 (RFC 4443 §2.3, RFC 8200 §8.1)."""
    msg = message[:2] + b"\0\0" + message[4:]
    pseudo = source.packed + dest.packed + struct.pack("!I3xB", len(msg), 58)
    data = pseudo + msg + b"\0" * (len(msg) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


# ------------------------------------------------------------------ the finder


@dataclass(frozen=True, slots=True)
class NeighbourHeard:
    """A link-local neighbour spoke (its first packet, or a new address)."""

    address: IPv6Address


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An ICMPv6 message for ``dest`` (sent with hop limit 255)."""

    dest: IPv6Address
    data: bytes


_ND_TYPES = frozenset(
    (
        IcmpType.ROUTER_SOLICITATION,
        IcmpType.ROUTER_ADVERTISEMENT,
        IcmpType.NEIGHBOUR_SOLICITATION,
        IcmpType.NEIGHBOUR_ADVERTISEMENT,
    )
)


class Finder:
    """The neighbour of one link (module docstring). Time is passed in, never read."""

    def __init__(
        self,
        mode: Discovery,
        own: frozenset[IPv6Address],
        interval: float = 10.0,
        lladdr: bytes = b"",
        ident: int = 0x5042,
    ) -> None:
        self.mode = mode
        self.own = own  # our link-local addresses on the link: never the neighbour
        self.interval = interval
        self.lladdr = lladdr  # our MAC, for the source link-layer address option
        self.ident = ident
        self.neighbour: IPv6Address | None = None
        self._seq = 0
        self._next: float | None = None
        self._out: list[Outgoing] = []
        self._events: deque[NeighbourHeard] = deque()

    def start(self, now: float) -> None:
        """First packets at once: an RS and an RA (``RA``) or an Echo Request (``ND``)."""
        if self.mode is Discovery.RA:
            self._send(ALL_ROUTERS, RouterSolicitation(self.lladdr))
        self._announce()
        self._next = now + self.interval

    def handle_timer(self, now: float) -> None:
        if self._next is None or now < self._next:
            return
        if self.mode is Discovery.RA or self.neighbour is None:
            self._announce()
        self._next = now + self.interval

    def get_timer(self) -> float | None:
        return self._next

    def receive(self, data: bytes, source: IPv6Address, hop_limit: int, now: float) -> None:
        """One ICMPv6 message from ``source`` (unscoped), as received on the link."""
        msg = decode(data)
        if msg is None or not source.is_link_local or source in self.own:
            return
        nd = data[0] in _ND_TYPES
        if nd and hop_limit != ND_HOP_LIMIT:
            return  # RFC 4861 §6.1, §7.1: maybe from off the link
        if isinstance(msg, RouterSolicitation) and self.mode is Discovery.RA:
            self._announce()  # RFC 4861 §6.2.6: answer a solicitation
        if self._names_neighbour(msg):
            self._heard(source)

    def _names_neighbour(self, msg: Packet) -> bool:
        if self.mode is Discovery.RA:
            return isinstance(msg, RouterAdvertisement)
        if isinstance(msg, NeighbourSolicitation):
            # Resolving one of our addresses; a DAD probe comes from :: and never here.
            return msg.target in self.own
        if isinstance(msg, EchoReply):
            return msg.ident == self.ident
        return isinstance(msg, NeighbourAdvertisement | RouterAdvertisement | RouterSolicitation)

    def _heard(self, source: IPv6Address) -> None:
        if source != self.neighbour:
            self.neighbour = source
            self._events.append(NeighbourHeard(source))

    def _announce(self) -> None:
        if self.mode is Discovery.RA:
            self._send(ALL_NODES, RouterAdvertisement(source_lladdr=self.lladdr))
        else:
            self._seq = (self._seq + 1) & 0xFFFF
            self._send(ALL_NODES, EchoRequest(self.ident, self._seq, b"podbgp"))

    def _send(self, dest: IPv6Address, msg: Packet) -> None:
        self._out.append(Outgoing(dest, encode(msg)))

    def packets_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> NeighbourHeard | None:
        return self._events.popleft() if self._events else None
