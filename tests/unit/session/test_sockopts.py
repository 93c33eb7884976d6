"""TCP MD5 (RFC 2385), GTSM (RFC 5082) and TTL options on real loopback sockets."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from bgp import sockopts


def _listener(family: int, host: str, dual: bool = False) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
    s.bind((host, 0))
    s.listen(4)
    return s


def _try_connect(family: int, host: str, port: int, key: bytes | None) -> bool:
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(0.6)
    try:
        if key is not None:
            sockopts.set_md5(c, host if family == socket.AF_INET else "::1", key)
        c.connect((host, port))
        return True
    except (TimeoutError, OSError):
        return False
    finally:
        c.close()


def test_struct_layout_is_216_bytes_with_fields_in_place() -> None:
    opt, buf = sockopts.md5sig_struct(ipaddress.IPv4Address("10.1.2.3"), b"secret")
    assert opt == sockopts.TCP_MD5SIG
    assert len(buf) == 216
    assert struct.unpack_from("=H", buf, 0)[0] == socket.AF_INET
    assert buf[4:8] == bytes([10, 1, 2, 3])
    flags, plen, klen, ifindex = struct.unpack_from("=BBHi", buf, 128)
    assert (flags, plen, klen, ifindex) == (0, 0, 6, 0)
    assert buf[136:142] == b"secret"


def test_prefix_key_uses_ext_option_and_prefix_flag() -> None:
    opt, buf = sockopts.md5sig_struct(ipaddress.IPv6Address("fd00::"), b"k", prefixlen=64)
    assert opt == sockopts.TCP_MD5SIG_EXT
    assert struct.unpack_from("=BB", buf, 128) == (1, 64)
    assert buf[8:24] == ipaddress.IPv6Address("fd00::").packed


def test_key_longer_than_80_bytes_is_rejected() -> None:
    with pytest.raises(ValueError):
        sockopts.md5sig_struct(ipaddress.IPv4Address("10.0.0.1"), b"x" * 81)


def test_matching_md5_keys_connect_and_wrong_key_never_does() -> None:
    srv = _listener(socket.AF_INET, "127.0.0.1")
    try:
        assert sockopts.set_md5(srv, "127.0.0.1", "s3cret")
        port = srv.getsockname()[1]
        assert _try_connect(socket.AF_INET, "127.0.0.1", port, b"s3cret")
        assert not _try_connect(socket.AF_INET, "127.0.0.1", port, b"wrong")
        assert not _try_connect(socket.AF_INET, "127.0.0.1", port, None)
    finally:
        srv.close()


def test_dual_stack_listener_takes_ipv4_mapped_key_and_prefix_key() -> None:
    srv = _listener(socket.AF_INET6, "::", dual=True)
    try:
        assert sockopts.socket_is_dual_stack(srv)
        # An AF_INET sockaddr would be EINVAL here; the module maps it.
        assert sockopts.set_md5(srv, "127.0.0.1", "s3cret")
        assert sockopts.set_md5_prefix(srv, "10.0.0.0/8", "range")
        assert sockopts.set_md5_prefix(srv, "fd00::/64", "range6")
        port = srv.getsockname()[1]
        assert _try_connect(socket.AF_INET, "127.0.0.1", port, b"s3cret")
        assert not _try_connect(socket.AF_INET, "127.0.0.1", port, b"other")
    finally:
        srv.close()


def test_v6_only_socket_declines_ipv4_peer() -> None:
    srv = _listener(socket.AF_INET6, "::1")
    try:
        assert not sockopts.set_md5(srv, "192.0.2.1", "k")
        assert not sockopts.set_md5_prefix(srv, "192.0.2.0/24", "k")
        assert sockopts.set_md5(srv, "::1", "k")
    finally:
        srv.close()


def test_deleting_a_key_restores_plain_connections() -> None:
    srv = _listener(socket.AF_INET, "127.0.0.1")
    try:
        sockopts.set_md5(srv, "127.0.0.1", "s3cret")
        sockopts.set_md5(srv, "127.0.0.1", None)
        assert _try_connect(socket.AF_INET, "127.0.0.1", srv.getsockname()[1], None)
    finally:
        srv.close()


def test_gtsm_sets_ttl_255_and_min_ttl() -> None:
    s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sockopts.set_gtsm(s4, 1)
        assert s4.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
        assert s4.getsockopt(socket.IPPROTO_IP, sockopts.IP_MINTTL) == 255
        sockopts.set_gtsm(s6, 2)
        assert s6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS) == 255
        assert s6.getsockopt(socket.IPPROTO_IPV6, sockopts.IPV6_MINHOPCOUNT) == 254
        # Dual-stack: the IPv4 option applies to mapped peers, so it is set too.
        assert s6.getsockopt(socket.IPPROTO_IP, sockopts.IP_MINTTL) == 254
        with pytest.raises(ValueError):
            sockopts.set_gtsm(s4, 0)
    finally:
        s4.close()
        s6.close()


def test_multihop_ttl() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sockopts.set_ttl(s, 5)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 5
    finally:
        s.close()
