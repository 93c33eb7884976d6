"""The asyncio shell of ``bgp.ndp.Finder``: one raw ICMPv6 socket per unnumbered link.

``open_link_socket(interface)`` makes the socket (root or CAP_NET_RAW): bound to
the device (SO_BINDTODEVICE), multicast out of it, hop limit 255 on everything
sent (RFC 4861 §6.1.2 and §7.1 make receivers drop ND messages with less), the
received hop limit reported (IPV6_RECVHOPLIMIT, RFC 3542 §6.3), our own
multicast not looped back, an ICMP6_FILTER passing only the types the finder
reads (RFC 3542 §3.2), and all-routers joined so Router Solicitations arrive.

``LinkWatch`` feeds what the socket receives to the finder, writes what the
finder wants sent, keeps one timer armed for ``Finder.get_timer()`` and calls
``on_neighbour(address)`` with each ``NeighbourHeard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv6Address

from bgp.ndp import ALL_ROUTERS, Discovery, Finder, IcmpType

__all__ = ["LinkWatch", "global_addresses", "link_local_addresses", "open_link_socket"]

log = logging.getLogger("bgp.ndp")

ICMP6_FILTER = 1  # linux/icmpv6.h, level IPPROTO_ICMPV6
SIOCGIFHWADDR = 0x8927
_PASS = (
    IcmpType.ECHO_REPLY,
    IcmpType.ROUTER_SOLICITATION,
    IcmpType.ROUTER_ADVERTISEMENT,
    IcmpType.NEIGHBOUR_SOLICITATION,
    IcmpType.NEIGHBOUR_ADVERTISEMENT,
)


def _filter() -> bytes:
    """ICMP6_FILTER: a bit set blocks that type (RFC 3542 §3.2)."""
    words = [0xFFFFFFFF] * 8
    for t in _PASS:
        words[t >> 5] &= ~(1 << (t & 31))
    return struct.pack("=8I", *words)


def open_link_socket(interface: str) -> socket.socket:
    """The raw ICMPv6 socket of ``interface`` (module docstring); OSError if impossible."""
    index = socket.if_nametoindex(interface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _filter())
        mreq = ALL_ROUTERS.packed + struct.pack("=I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _addresses(interface: str) -> list[IPv6Address]:
    """The interface's IPv6 addresses (/proc/net/if_inet6, this thread's namespace)."""
    out = []
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 6 and fields[5] == interface:
                    out.append(IPv6Address(bytes.fromhex(fields[0])))
    except OSError:
        return []
    return out


def link_local_addresses(interface: str) -> frozenset[IPv6Address]:
    """The interface's IPv6 link-local addresses."""
    return frozenset(a for a in _addresses(interface) if a.is_link_local)


def global_addresses(interface: str) -> frozenset[IPv6Address]:
    """The interface's global (not link-local, not loopback) IPv6 addresses."""
    return frozenset(a for a in _addresses(interface) if not (a.is_link_local or a.is_loopback))


def hardware_address(sock: socket.socket, interface: str) -> bytes:
    """The interface's MAC (SIOCGIFHWADDR), b"" if it has none of 6 octets."""
    try:
        raw = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("256s", interface.encode()))
    except OSError:
        return b""
    mac = raw[18:24]
    return mac if any(mac) else b""


class LinkWatch:
    """Finds the neighbour on one link; see the module docstring."""

    def __init__(
        self,
        interface: str,
        mode: Discovery,
        interval: float,
        on_neighbour: Callable[[IPv6Address], None],
        sock: socket.socket | None = None,
    ) -> None:
        self.interface = interface
        self.on_neighbour = on_neighbour
        self.sock = sock if sock is not None else open_link_socket(interface)
        self.index = socket.if_nametoindex(interface)
        own = link_local_addresses(interface)
        self.finder = Finder(mode, own, interval, hardware_address(self.sock, interface))
        self.loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def neighbour(self) -> IPv6Address | None:
        return self.finder.neighbour

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self._read)
        self.finder.start(self.loop.time())
        self._service()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _read(self) -> None:
        for _ in range(64):  # bounded: other work gets the loop between bursts
            try:
                data, anc, _flags, addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("%s: neighbour discovery socket: %s", self.interface, exc)
                break
            hop = -1
            for level, kind, value in anc:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                    hop = struct.unpack("=i", value[:4])[0]
            source = IPv6Address(addr[0].split("%")[0])
            self.finder.receive(data, source, hop, self.loop.time())
        self._service()

    def _on_timer(self) -> None:
        self._timer = None
        self.finder.handle_timer(self.loop.time())
        self._service()

    def _service(self) -> None:
        for pkt in self.finder.packets_to_send():
            try:
                self.sock.sendto(pkt.data, (str(pkt.dest), 0, 0, self.index))
            except OSError as exc:  # the link may be down: the next interval tries again
                log.debug("%s: sending to %s: %s", self.interface, pkt.dest, exc)
        while (ev := self.finder.next_event()) is not None:
            log.info("%s: neighbour %s found (%s)", self.interface, ev.address,
                     self.finder.mode.value)  # fmt: skip
            self.on_neighbour(ev.address)
        at = self.finder.get_timer()
        if at is not None and self._timer is None:
            self._timer = self.loop.call_at(at, self._on_timer)
