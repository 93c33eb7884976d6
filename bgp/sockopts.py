"""Socket options for BGP transport: TCP MD5, GTSM, TTL and source binding.

Python's ``socket`` module lacks the constants, so the Linux (x86_64 and
arm64 share them) values are defined here:

- TCP MD5 signatures (RFC 2385) are set with ``TCP_MD5SIG`` per peer address,
  or with ``TCP_MD5SIG_EXT`` and ``TCP_MD5SIG_FLAG_PREFIX`` for a whole listen
  range. ``struct tcp_md5sig`` is a 128-byte ``sockaddr_storage`` followed by
  flags (u8), prefix length (u8), key length (u16), ifindex (i32) and an
  80-byte key: 216 bytes. Keys set on a listening socket are inherited by the
  sockets it accepts; on an active socket they must be set before ``connect``.
- On a dual-stack ``AF_INET6`` socket an IPv4 peer's key must use the
  IPv4-mapped address ``::ffff:a.b.c.d`` (an ``AF_INET`` sockaddr gives
  EINVAL), and a mapped prefix key takes the IPv4 prefix length.
- GTSM (RFC 5082 §3): send with TTL / hop limit 255 and have the kernel drop
  anything that arrives with less than ``256 - hops`` (``IP_MINTTL`` /
  ``IPV6_MINHOPCOUNT``). On a dual-stack socket the ``IPPROTO_IP`` options
  apply to mapped IPv4 peers, so both are set.
- eBGP multihop sets the outgoing TTL only (RFC 4271 leaves it to the
  implementation; a directly connected eBGP peer gets TTL 1 by convention of
  other daemons, but podbgp keeps the kernel default unless told).

Every function takes a ready socket and raises ``OSError`` as the kernel does.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

__all__ = [
    "IPV6_MINHOPCOUNT",
    "IP_MINTTL",
    "TCP_MD5SIG",
    "TCP_MD5SIG_EXT",
    "md5sig_struct",
    "set_gtsm",
    "set_md5",
    "set_md5_prefix",
    "set_ttl",
    "socket_is_dual_stack",
]

TCP_MD5SIG = 14
TCP_MD5SIG_EXT = 32
TCP_MD5SIG_FLAG_PREFIX = 1
TCP_MD5SIG_FLAG_IFINDEX = 2
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
_SOCKADDR_STORAGE = 128

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


def _sockaddr(addr: _Addr) -> bytes:
    """A ``sockaddr_in`` / ``sockaddr_in6`` padded to ``sockaddr_storage``.

    The family is in host byte order, port and address in network order.
    """
    if isinstance(addr, ipaddress.IPv4Address):
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + addr.packed + bytes(8)
    else:
        raw = (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!HI", 0, 0)
            + addr.packed
            + struct.pack("=I", 0)
        )
    return raw.ljust(_SOCKADDR_STORAGE, b"\0")


def md5sig_struct(
    addr: _Addr, key: bytes, prefixlen: int | None = None, ifindex: int = 0
) -> tuple[int, bytes]:
    """The ``(optname, struct tcp_md5sig)`` pair for one key; an empty key deletes it."""
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} bytes")
    flags = (TCP_MD5SIG_FLAG_PREFIX if prefixlen is not None else 0) | (
        TCP_MD5SIG_FLAG_IFINDEX if ifindex else 0
    )
    tail = struct.pack("=BBHi", flags, prefixlen or 0, len(key), ifindex)
    buf = _sockaddr(addr) + tail + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")
    return (TCP_MD5SIG_EXT if flags else TCP_MD5SIG), buf


def socket_is_dual_stack(sock: socket.socket) -> bool:
    """True for an ``AF_INET6`` socket that also carries IPv4 (``IPV6_V6ONLY`` off)."""
    if sock.family != socket.AF_INET6:
        return False
    return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0


def _for_socket(sock: socket.socket, addr: _Addr) -> _Addr | None:
    """The address form the socket's family needs, or None if it cannot carry ``addr``."""
    if sock.family == socket.AF_INET:
        return addr if isinstance(addr, ipaddress.IPv4Address) else None
    if isinstance(addr, ipaddress.IPv6Address):
        return addr
    if not socket_is_dual_stack(sock):
        return None
    return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed)


def set_md5(sock: socket.socket, peer: str | _Addr, password: str | bytes | None) -> bool:
    """Set (or with ``None``/empty delete) the RFC 2385 key for one peer address.

    Returns False when the socket's family cannot carry that peer (an IPv4
    peer on a v6-only socket), so a caller may set keys on every listener.
    """
    addr = _for_socket(sock, ipaddress.ip_address(peer))
    if addr is None:
        return False
    key = password.encode() if isinstance(password, str) else (password or b"")
    sock.setsockopt(socket.IPPROTO_TCP, *md5sig_struct(addr, key))
    return True


def set_md5_prefix(
    sock: socket.socket,
    network: str | ipaddress.IPv4Network | ipaddress.IPv6Network,
    password: str | bytes | None,
) -> bool:
    """Set a prefix key for a listen range (``TCP_MD5SIG_EXT``, flag PREFIX).

    For an IPv4 range on a dual-stack socket the key uses the mapped network
    address with the IPv4 prefix length, which is what the kernel expects.
    """
    net = ipaddress.ip_network(network, strict=False)
    addr = _for_socket(sock, net.network_address)
    if addr is None:
        return False
    key = password.encode() if isinstance(password, str) else (password or b"")
    sock.setsockopt(socket.IPPROTO_TCP, *md5sig_struct(addr, key, prefixlen=net.prefixlen))
    return True


def _v4_options_apply(sock: socket.socket) -> bool:
    return sock.family == socket.AF_INET or socket_is_dual_stack(sock)


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """Outgoing TTL / hop limit (eBGP multihop, RFC 4271 §8.2.1.3 note)."""
    if _v4_options_apply(sock):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)


def set_gtsm(sock: socket.socket, hops: int = 1) -> None:
    """GTSM (RFC 5082 §3): send TTL 255, accept only TTL ≥ 256 - ``hops``."""
    if not 1 <= hops <= 255:
        raise ValueError("GTSM hops must be 1..255")
    min_ttl = 256 - hops
    set_ttl(sock, 255)
    if _v4_options_apply(sock):
        sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, min_ttl)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, min_ttl)
