"""Nexthop object messages and routes that name an object (RTA_NH_ID), no kernel needed."""

from __future__ import annotations

import socket
import struct

import pytest

from fib import wire
from fib.kernel import DELETE, REPLACE
from fib.model import (
    RTN_UNICAST,
    KernelRoute,
    Nexthop,
    NexthopObject,
    NexthopSpec,
    pack_addr,
)

IFINDEX = {"eth0": 2, "vxlan.podbgp": 9}
IFNAME = {v: k for k, v in IFINDEX.items()}
V4 = pack_addr("10.244.1.0")
GW = pack_addr("10.0.0.2")
GW6 = pack_addr("fd00::2")
NH = 0x50000001

OBJECTS = [
    NexthopObject(NH, NexthopSpec(Nexthop(GW, "eth0")), 80),
    NexthopObject(NH, NexthopSpec(Nexthop(pack_addr("10.244.3.0"), "vxlan.podbgp", True)), 80),
    NexthopObject(NH, NexthopSpec(Nexthop(GW6, "eth0")), 80),
    NexthopObject(NH + 9, NexthopSpec(None, ((NH, 1), (NH + 1, 3), (NH + 2, 256))), 80),
]


def one_message(msg: bytes) -> tuple[int, int, int, int, int]:
    [(kind, flags, seq, start, end)] = list(wire.iter_messages(msg))
    assert end == len(msg) and len(msg) % 4 == 0
    return kind, flags, seq, start, end


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.describe())
def test_nexthop_encode_then_decode_is_identity(obj: NexthopObject) -> None:
    msg = wire.encode_nexthop(REPLACE, obj, 7, IFINDEX)
    kind, flags, seq, start, end = one_message(msg)
    assert (kind, seq) == (wire.RTM_NEWNEXTHOP, 7)
    assert flags == wire.NLM_F_REQUEST | wire.NLM_F_CREATE | wire.NLM_F_REPLACE
    assert wire.decode_nexthop(msg, start, end, IFNAME) == obj


def test_nexthop_header_fields_the_kernel_checks() -> None:
    single = wire.encode_nexthop(REPLACE, OBJECTS[1], 1, IFINDEX)
    family, _scope, protocol, _r, flags = wire.NHMSG.unpack_from(single, 16)
    assert (family, protocol, flags) == (socket.AF_INET, 80, wire.RTNH_F_ONLINK)
    six = wire.encode_nexthop(REPLACE, OBJECTS[2], 1, IFINDEX)
    assert wire.NHMSG.unpack_from(six, 16)[0] == socket.AF_INET6
    group = wire.encode_nexthop(REPLACE, OBJECTS[3], 1, IFINDEX)
    assert wire.NHMSG.unpack_from(group, 16)[0] == socket.AF_UNSPEC  # groups must be AF_UNSPEC
    # NHA_GROUP: nexthop_grp records, weight stored minus one
    assert struct.pack("=IBBH", NH + 1, 2, 0, 0) in group


def test_nexthop_delete_names_only_the_id() -> None:
    msg = wire.encode_nexthop(DELETE, OBJECTS[3], 5, IFINDEX)
    kind, flags, _seq, start, end = one_message(msg)
    assert (kind, flags) == (wire.RTM_DELNEXTHOP, wire.NLM_F_REQUEST)
    assert end - start == wire.NHMSG.size + 8  # nhmsg + NHA_ID
    assert struct.unpack_from("=HHI", msg, start + wire.NHMSG.size) == (
        8,
        wire.NHA_ID,
        OBJECTS[3].id,
    )


def test_nexthop_on_unknown_device_is_refused_before_sending() -> None:
    obj = NexthopObject(NH, NexthopSpec(Nexthop(GW, "cali9")), 80)
    with pytest.raises(wire.UnknownDevice):
        wire.encode_nexthop(REPLACE, obj, 1, IFINDEX)


def test_nexthop_kinds_podbgp_never_makes_decode_to_none() -> None:
    body = wire.NHMSG.pack(socket.AF_INET, 0, 4, 0, 0)
    body += struct.pack("=HHI", 8, wire.NHA_ID, 3) + struct.pack("=HH", 4, wire.NHA_BLACKHOLE)
    assert wire.decode_nexthop(body, 0, len(body), IFNAME) is None
    no_id = wire.NHMSG.pack(socket.AF_INET, 0, 4, 0, 0)
    assert wire.decode_nexthop(no_id, 0, len(no_id), IFNAME) is None


def test_dump_request_is_a_bare_nhmsg() -> None:
    msg = wire.encode_nexthop_dump_request(11)
    kind, flags, seq, start, end = one_message(msg)
    assert (kind, flags & wire.NLM_F_DUMP, seq, end - start) == (
        wire.RTM_GETNEXTHOP, wire.NLM_F_DUMP, 11, wire.NHMSG.size)  # fmt: skip


def route_message(route: KernelRoute) -> tuple[bytes, int, int]:
    msg = wire.encode_route(REPLACE, route, 3, IFINDEX)
    _kind, _flags, _seq, start, end = one_message(msg)
    return msg, start, end


def test_route_through_an_object_carries_only_its_id() -> None:
    route = KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "eth0"),), protocol=80, nh_id=NH)
    msg, start, end = route_message(route)
    assert struct.pack("=HHI", 8, wire.RTA_NH_ID, NH) in msg
    assert GW not in msg[start:end]  # no RTA_GATEWAY: the kernel refuses both at once
    decoded = wire.decode_route(msg, start, end, IFNAME)
    assert decoded == route._replace(nexthops=())


def kernel_dump_of(route: KernelRoute, hop: Nexthop) -> bytes:
    """What the kernel dumps for a route through an object in compat mode: TABLE, DST,
    NH_ID, then the object's hop as GATEWAY and OIF (net/ipv4/fib_semantics.c order)."""
    rtm = wire.RTMSG.pack(socket.AF_INET, route.dst_len, 0, 0, 254, route.protocol, 0,
                          RTN_UNICAST, wire.RTNH_F_ONLINK if hop.onlink else 0)  # fmt: skip
    attrs = struct.pack("=HHI", 8, wire.RTA_TABLE, 254)
    attrs += struct.pack("=HH4s", 8, wire.RTA_DST, route.dst)
    attrs += struct.pack("=HHI", 8, wire.RTA_NH_ID, route.nh_id)
    attrs += struct.pack("=HH4s", 8, wire.RTA_GATEWAY, hop.gateway)
    attrs += struct.pack("=HHI", 8, wire.RTA_OIF, IFINDEX[hop.dev])
    return rtm + attrs


@pytest.mark.parametrize("onlink", [False, True])
def test_dumped_route_through_an_object_decodes_with_its_hop(onlink: bool) -> None:
    hop = Nexthop(GW, "vxlan.podbgp" if onlink else "eth0", onlink)
    route = KernelRoute(V4, 26, RTN_UNICAST, (hop,), protocol=80, nh_id=NH)
    payload = kernel_dump_of(route, hop)
    assert len(payload) == 52  # the one-struct fast path
    assert wire.decode_route(payload, 0, len(payload), IFNAME) == route
    padded = payload + struct.pack("=HHI", 8, wire.RTA_PRIORITY, 0)  # the general parser
    assert wire.decode_route(padded, 0, len(padded), IFNAME) == route


def test_same_route_compares_objects_by_id_not_by_the_hops_shown() -> None:
    want = KernelRoute(V4, 26, RTN_UNICAST, (Nexthop(GW, "eth0"),), protocol=80, nh_id=NH)
    shown = want._replace(nexthops=(Nexthop(pack_addr("10.0.0.9"), "eth0"),))
    assert wire.same_route(want, shown)  # the object's content is checked on its own
    assert not wire.same_route(want, want._replace(nh_id=NH + 1))
    assert not wire.same_route(want, want._replace(nh_id=0))  # inline hops: rewrite
    assert not wire.same_route(want._replace(nh_id=0), want)
    assert not wire.same_route(want, want._replace(protocol=4))
