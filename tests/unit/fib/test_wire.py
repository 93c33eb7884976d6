"""rtnetlink route messages: packing, parsing back, errors (no kernel needed)."""

from __future__ import annotations

import socket
import struct

import pytest

from fib import wire
from fib.kernel import DELETE, REPLACE
from fib.model import (
    RT_SCOPE_LINK,
    RTN_BLACKHOLE,
    RTN_UNICAST,
    KernelRoute,
    Nexthop,
    pack_addr,
)

IFINDEX = {"eth0": 2, "tunl0": 7, "vxlan.podbgp": 9, "cali1": 11}
IFNAME = {v: k for k, v in IFINDEX.items()}


def roundtrip(route: KernelRoute) -> KernelRoute:
    msg = wire.encode_route(REPLACE, route, 42, IFINDEX)
    [(kind, flags, seq, start, end)] = list(wire.iter_messages(msg))
    assert kind == wire.RTM_NEWROUTE and seq == 42
    assert flags == wire.NLM_F_REQUEST | wire.NLM_F_CREATE | wire.NLM_F_REPLACE
    assert end == len(msg) and len(msg) % 4 == 0
    decoded = wire.decode_route(msg, start, end, IFNAME)
    assert decoded is not None
    return decoded


V4 = pack_addr("10.244.1.0")
GW = pack_addr("10.0.0.2")
GW2 = pack_addr("10.0.0.3")
LL = pack_addr("fe80::2")

ROUTES = [
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "eth0"),), protocol=80),
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "tunl0", True),), protocol=80),  # IP-in-IP
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "vxlan.podbgp", True),), protocol=80),
    KernelRoute(V4, 26, RTN_BLACKHOLE, (), protocol=80),
    KernelRoute(pack_addr("10.244.1.5"), 32, RTN_UNICAST, (Nexthop(b"", "cali1"),),
                RT_SCOPE_LINK, 80),
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "eth0"), Nexthop(GW2, "tunl0", True, 3)),
                protocol=80),
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "eth0"),), protocol=80, table=1000),
    KernelRoute(pack_addr("fd10::"), 122, RTN_UNICAST, (Nexthop(pack_addr("fd00::2"), "eth0"),),
                protocol=80, priority=1024),
    KernelRoute(bytes(4), 0, RTN_UNICAST, (Nexthop(GW, "eth0"),), protocol=80),  # default route
    # RFC 8950 next hops: an IPv4 route via an IPv6 (link-local) gateway, RTA_VIA.
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(LL, "eth0"),), protocol=80),
    KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(LL, "eth0"), Nexthop(LL, "tunl0")), protocol=80),
]  # fmt: skip


def test_ipv6_gateway_of_an_ipv4_route_is_rta_via() -> None:
    """`via inet6 fe80::2 dev eth0`: struct rtvia (family AF_INET6, 16 address bytes)."""
    msg = wire.encode_route(REPLACE, ROUTES[-2], 1, IFINDEX)
    assert struct.pack("=HHH", 22, wire.RTA_VIA, socket.AF_INET6) + LL + b"\0\0" in msg[28:]
    assert struct.pack("=HH", 8, wire.RTA_GATEWAY) not in msg[28:]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.describe())
def test_encode_then_decode_is_identity(route: KernelRoute) -> None:
    assert roundtrip(route) == route


def test_ipip_route_bytes() -> None:
    """`via GW dev tunl0 onlink`: rtm_flags carries RTNH_F_ONLINK, RTA_OIF the tunnel."""
    msg = wire.encode_route(REPLACE, ROUTES[1], 1, IFINDEX)
    rtm = wire.RTMSG.unpack_from(msg, 16)
    assert rtm == (socket.AF_INET, 26, 0, 0, 254, 80, 0, RTN_UNICAST, wire.RTNH_F_ONLINK)
    attrs = msg[28:]
    assert struct.pack("=HHI", 8, wire.RTA_OIF, 7) in attrs
    assert struct.pack("=HH", 8, wire.RTA_GATEWAY) + GW in attrs


def test_delete_names_protocol_and_matches_any_scope_and_type() -> None:
    msg = wire.encode_route(DELETE, ROUTES[0], 5, IFINDEX)
    _len, kind, flags, seq, _pid = wire.NLMSGHDR.unpack_from(msg)
    assert (kind, flags, seq) == (wire.RTM_DELROUTE, wire.NLM_F_REQUEST, 5)
    rtm = wire.RTMSG.unpack_from(msg, 16)
    assert rtm[5] == 80 and rtm[6] == wire.RT_SCOPE_NOWHERE and rtm[7] == 0
    assert struct.pack("=HH", 8, wire.RTA_GATEWAY) not in msg[28:]


def test_large_table_ids_go_in_rta_table_only() -> None:
    msg = wire.encode_route(REPLACE, ROUTES[6], 1, IFINDEX)
    assert wire.RTMSG.unpack_from(msg, 16)[4] == wire.RT_TABLE_UNSPEC
    assert struct.pack("=HHI", 8, wire.RTA_TABLE, 1000) in msg


def test_unknown_device_raises() -> None:
    route = KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "nope"),))
    with pytest.raises(wire.UnknownDevice):
        wire.encode_route(REPLACE, route, 1, IFINDEX)


def test_error_reply_matches_sequence_number() -> None:
    request = wire.encode_route(REPLACE, ROUTES[0], 77, IFINDEX)
    reply_body = struct.pack("=i", -19) + request[:16]  # NETLINK_CAP_ACK: header only
    reply = wire.NLMSGHDR.pack(16 + len(reply_body), wire.NLMSG_ERROR, 0, 77, 0) + reply_body
    ack = wire.NLMSGHDR.pack(36, wire.NLMSG_ERROR, 0, 78, 0) + struct.pack("=i", 0) + bytes(16)
    msgs = list(wire.iter_messages(reply + ack))
    assert [m[0] for m in msgs] == [wire.NLMSG_ERROR, wire.NLMSG_ERROR]
    assert wire.decode_error(reply + ack, msgs[0][3]) == (19, 77)
    assert wire.decode_error(reply + ack, msgs[1][3])[0] == 0


def test_iter_messages_stops_at_truncation() -> None:
    msg = wire.encode_route(REPLACE, ROUTES[0], 1, IFINDEX)
    assert list(wire.iter_messages(msg[:-4])) == []
    assert len(list(wire.iter_messages(msg + msg[:10]))) == 1


def test_dump_request_filters_table() -> None:
    req = wire.encode_dump_request(socket.AF_INET, 254, 9)
    _len, kind, flags, seq, _ = wire.NLMSGHDR.unpack_from(req)
    assert (kind, flags & wire.NLM_F_DUMP, seq) == (wire.RTM_GETROUTE, wire.NLM_F_DUMP, 9)
    assert struct.pack("=HHI", 8, wire.RTA_TABLE, 254) in req


def test_decode_link() -> None:
    name = b"vxlan.podbgp\0"
    attr = struct.pack("=HH", 4 + len(name), wire.IFLA_IFNAME) + name + b"\0" * (-len(name) & 3)
    body = wire.IFINFOMSG.pack(0, 1, 9, 0, 0) + attr
    assert wire.decode_link(body, 0, len(body)) == (9, "vxlan.podbgp")


def test_same_route_accepts_kernel_chosen_device() -> None:
    want = KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, ""),), protocol=80)
    have = want._replace(nexthops=(Nexthop(GW, "eth0"),))
    assert wire.same_route(want, have)
    assert not wire.same_route(want, have._replace(nexthops=(Nexthop(GW2, "eth0"),)))
    assert not wire.same_route(want, have._replace(protocol=81))
    assert not wire.same_route(ROUTES[0], ROUTES[1])


def test_fast_path_shape_agrees_with_generic_parser() -> None:
    """The 44-byte IPv4 `via GW dev OIF` shape has a one-struct fast path; same result."""
    route = ROUTES[0]
    msg = wire.encode_route(REPLACE, route, 1, IFINDEX)
    assert len(msg) - 16 == 44
    fast = wire.decode_route(msg, 16, len(msg), IFNAME)
    padded = msg + wire.RTATTR.pack(4, 200)  # an unknown empty attribute forces the generic path
    generic = wire.decode_route(padded, 16, len(padded), IFNAME)
    assert fast == generic == route
    onlink = wire.encode_route(REPLACE, ROUTES[2], 1, IFINDEX)
    assert wire.decode_route(onlink, 16, len(onlink), IFNAME) == ROUTES[2]


@pytest.mark.parametrize("op", [REPLACE, DELETE])
@pytest.mark.parametrize(
    "route",
    [
        KernelRoute(
            pack_addr("10.1.2.0"),
            24,
            RTN_UNICAST,
            (Nexthop(pack_addr("10.0.0.2"), "eth0"),),
            protocol=80,
            nh_id=0x50000001,
        ),
        KernelRoute(
            pack_addr("10.1.2.0"),
            24,
            RTN_UNICAST,
            (Nexthop(pack_addr("10.0.0.2"), "eth0"),),
            protocol=80,
        ),
        KernelRoute(pack_addr("10.1.2.0"), 24, RTN_BLACKHOLE, (), protocol=80, table=100),
        KernelRoute(pack_addr("10.1.2.0"), 24, RTN_UNICAST, (), protocol=80, table=1000, nh_id=7),
        KernelRoute(pack_addr("10.1.2.0"), 24, RTN_UNICAST, (), protocol=80, priority=5, nh_id=7),
        KernelRoute(pack_addr("0.0.0.0"), 0, RTN_UNICAST, (), protocol=80, nh_id=7),
        KernelRoute(pack_addr("fd00::"), 64, RTN_UNICAST, (), protocol=80, priority=1024, nh_id=7),
        KernelRoute(
            pack_addr("10.9.0.5"), 32, RTN_UNICAST, (Nexthop(b"", "cali1"),), RT_SCOPE_LINK, 80
        ),
    ],
)
def test_one_struct_shapes_pack_as_the_generic_encoder(op: int, route: KernelRoute) -> None:
    assert wire.encode_route(op, route, 77, IFINDEX) == wire.encode_route_generic(
        op, route, 77, IFINDEX
    )
