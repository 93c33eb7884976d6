"""Our own route echoes are skipped by the sender's port id, before anything is decoded."""

from __future__ import annotations

import struct

from fib import wire
from fib.kernel import DELETE, REPLACE, RouteEvent
from fib.model import RTN_UNICAST, KernelRoute, Nexthop, pack_addr
from fib.netlink import NetlinkKernel, echo_filter, skip_own

IFINDEX = {"eth0": 2}
IFNAME = {2: "eth0"}
OURS, THEIRS = 0x1234, 0x99


def _route(i: int) -> KernelRoute:
    return KernelRoute(pack_addr(f"10.1.{i}.0"), 24, RTN_UNICAST,
                       (Nexthop(pack_addr("10.0.0.2"), "eth0"),), protocol=80)  # fmt: skip


def _stamped(op: int, route: KernelRoute, pid: int) -> bytes:
    """A notification as the kernel sends it: the request's header with the writer's port id."""
    msg = bytearray(wire.encode_route(op, route, 7, IFINDEX))
    struct.pack_into("=I", msg, 12, pid)
    return bytes(msg)


def test_only_ours_skipped_in_a_mixed_datagram() -> None:
    data = (_stamped(REPLACE, _route(1), OURS) + _stamped(REPLACE, _route(2), THEIRS)
            + _stamped(DELETE, _route(3), 0) + _stamped(DELETE, _route(4), OURS))  # fmt: skip
    kept = skip_own(data, OURS)
    assert isinstance(kept, list)
    decoded = [wire.decode_route(data, start, end, IFNAME) for _t, _f, _s, start, end in kept]
    assert [r.dst for r in decoded if r is not None] == [_route(2).dst, _route(3).dst]


def test_nothing_ours_returns_the_datagram_itself() -> None:
    data = _stamped(REPLACE, _route(1), THEIRS) + _stamped(REPLACE, _route(2), 0)
    assert skip_own(data, OURS) is data


def test_port_zero_is_the_kernel_never_us() -> None:
    data = _stamped(DELETE, _route(1), 0)
    assert skip_own(data, 0) is data


def test_truncated_message_stops_the_scan() -> None:
    data = _stamped(REPLACE, _route(1), OURS) + _stamped(REPLACE, _route(2), THEIRS)
    assert skip_own(data[:-4], OURS) == []


def test_events_from_a_datagram_skip_ours() -> None:
    """`read_events`' parser without a socket: only the other writers' routes come out."""
    kernel = NetlinkKernel.__new__(NetlinkKernel)
    kernel.own_port = OURS
    kernel.links = type("L", (), {"name": IFNAME, "index": IFINDEX, "mtu": {}})()
    out: list[object] = []
    data = _stamped(REPLACE, _route(1), OURS) + _stamped(REPLACE, _route(2), THEIRS)
    kernel._parse_events(data, out)  # type: ignore[arg-type]
    assert out == [RouteEvent(False, _route(2))]


def test_filter_compares_the_pid_word_as_bpf_loads_it() -> None:
    """BPF_ABS loads are big-endian: the constant is the port id's host bytes read that way."""
    prog = echo_filter(OURS)
    insns = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    assert insns[0] == (0x20, 0, 0, 12)  # ld [12]: nlmsg_pid
    code, jt, jf, k = insns[1]
    assert (code, jt, jf) == (0x15, 0, 1)
    assert k.to_bytes(4, "big") == struct.pack("=I", OURS)
    assert insns[2] == (0x06, 0, 0, 0) and insns[3] == (0x06, 0, 0, 0xFFFFFFFF)
