"""The real kernel: raw rtnetlink for routes, links, devices, neighbours and the FDB.

Routes go through a raw NETLINK_ROUTE socket with messages built by
`fib.wire`: thousands of RTM_NEWROUTE/RTM_DELROUTE messages per `sendmsg`,
none of them asking for an ACK. The kernel answers a request that fails with
an NLMSG_ERROR whether or not an ACK was asked for (netlink_rcv_skb), so
failures still come back, carrying the failed request's sequence number,
which maps straight to its route. After the last chunk one NLMSG_NOOP with
NLM_F_ACK acts as a barrier: rtnetlink handles a socket's messages in order,
so once its ACK is read every error of the batch has been read too. If error
replies overflow the receive buffer the socket reports ENOBUFS; the batch's
outcome is then unknown and `KernelError` tells the reconciler to resync.
NETLINK_CAP_ACK trims each error to the failed message's header, and the
buffers are enlarged (SO_*BUFFORCE, root) so that does not happen in practice.

Nexthop objects (RTM_NEWNEXTHOP/RTM_DELNEXTHOP) go through the same writer,
matched back to their object the same way, and are dumped with
RTM_GETNEXTHOP; a kernel without them (< 5.3) refuses the dump with
EOPNOTSUPP (or EINVAL), reported as `Unsupported`.

Dumps ask the kernel to filter by table (NETLINK_GET_STRICT_CHK) and parse the
replies with `fib.wire`. Events come from a second socket subscribed to the
link and route multicast groups.

Our own echoes: the kernel multicasts a notification for every route and
nexthop object we write, stamped with the writing socket's port id in
`nlmsg_pid` (rtmsg_fib, inet6_rt_notify and nexthop_notify pass the
requester's port id). They tell the reconciler nothing it did not record when
the write succeeded, yet reading and decoding one per route cost more CPU than
the write itself. So the event socket carries a classic BPF filter that drops
any message whose `nlmsg_pid` is the route socket's port id before it is
queued (each notification is an skb of its own, so the filter sees its
header at offset 0); should the kernel refuse the filter, `read_events` skips
them by the same test before decoding anything. Changes made by anyone else,
and by the kernel itself (port id 0), still arrive.

Namespaces: given `netns`, the raw sockets are opened with `fib.netns.in_netns`,
from a short-lived thread that first joins the namespace with setns(2) (a
thread's namespace is its own, and a socket stays in the namespace it was
created in; the thread then exits, so no other code ever runs in the namespace).

Devices (the VXLAN and IP-in-IP tunnels), their addresses, neighbour and FDB
entries and the underlay's route look-ups are a handful of requests, each
answered, over a third socket (`Requests`, opened on first use; messages by
`fib.rtnl`). pyroute2 did this before; its import alone was a fifth of an idle
node's memory (docs/benchmarks.md, goal 3), so the daemon no longer loads it.

Underlay detection (`podbgp.underlay`) reads addresses, asks for route
look-ups and follows address changes through `link_addresses`,
`route_source` and `AddressWatch` at the end: small and synchronous, for a
thread of their own.

Size (over ~600 lines, one concern): this is the one module that talks to
the kernel — raw rtnetlink sockets, the echo filter, dumps, the batched
writer, the device requests and the underlay reads — so everything that needs root, a
namespace or a real kernel is here and everything else in ``fib`` is
testable without one. Message encoding and decoding is ``fib.wire``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from fib import rtnl, wire
from fib.kernel import (
    Event,
    KernelError,
    LinkEvent,
    NexthopEvent,
    NexthopFailure,
    NexthopOp,
    Overrun,
    RouteBatch,
    RouteEvent,
    RouteFailure,
    RouteOp,
    Unsupported,
)
from fib.model import (
    FdbEntry,
    IpipSpec,
    KernelRoute,
    LinkAddress,
    Neighbour,
    NexthopObject,
    VxlanSpec,
    family_of,
    pack_addr,
    unpack_addr,
)
from fib.netns import in_netns

T = TypeVar("T")
R = TypeVar("R")

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_GET_STRICT_CHK = 12
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR = 20
RTM_DELADDR = 21
IFF_UP = 0x1
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
RTNLGRP_NEXTHOP = 32  # past the 32-bit bind mask's reach: joined with NETLINK_ADD_MEMBERSHIP
NETLINK_ADD_MEMBERSHIP = 1
RTM_GETLINK = 18
IFLA_MTU = 4
NUD_PERMANENT = 0x80
NTF_SELF = 0x2
AF_BRIDGE = 7

SEND_CHUNK = 256 * 1024  # bytes per sendmsg: ~4,000 route messages
SNDBUF = 4 * 1024 * 1024
RCVBUF = 32 * 1024 * 1024
RECV_SIZE = 1 << 20


def open_route_socket(groups: int = 0, extra_groups: Sequence[int] = ()) -> socket.socket:
    """A NETLINK_ROUTE socket with large buffers, trimmed error replies and strict dumps."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    for force, plain, size in ((SO_SNDBUFFORCE, SO_SNDBUF, SNDBUF),
                               (SO_RCVBUFFORCE, SO_RCVBUF, RCVBUF)):  # fmt: skip
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except PermissionError:  # not root: the kernel's limits apply
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    except OSError:
        pass  # older kernel: dumps are filtered in Python instead
    sock.bind((0, groups))
    for group in extra_groups:
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        except OSError:
            pass  # a kernel without that group: resyncs still catch what events would
    return sock


def port_id(sock: socket.socket) -> int:
    """The netlink port id the kernel gave a bound socket (the `nlmsg_pid` it stamps on
    notifications caused by that socket's requests)."""
    portid: int = sock.getsockname()[0]
    return portid


# Classic BPF (linux/filter.h): load the 32-bit word at offset 12 of the message (its
# nlmsg_pid; BPF_ABS loads are big-endian), drop the message if it equals our port id.
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_RET_K = 0x06
_SOCK_FILTER = struct.Struct("=HBBI")
_NLMSG_PID_OFFSET = 12


def echo_filter(own_port: int) -> bytes:
    """The filter program (an array of `struct sock_filter`) that drops our echoes."""
    swapped = int.from_bytes(struct.pack("=I", own_port), "big")
    return b"".join((
        _SOCK_FILTER.pack(_BPF_LD_W_ABS, 0, 0, _NLMSG_PID_OFFSET),
        _SOCK_FILTER.pack(_BPF_JEQ_K, 0, 1, swapped),
        _SOCK_FILTER.pack(_BPF_RET_K, 0, 0, 0),  # ours: drop
        _SOCK_FILTER.pack(_BPF_RET_K, 0, 0, 0xFFFFFFFF),  # anyone else's: keep all of it
    ))  # fmt: skip


def attach_echo_filter(sock: socket.socket, own_port: int) -> bool:
    """Drop `own_port`'s notifications in the kernel; False if the kernel refused."""
    program = ctypes.create_string_buffer(echo_filter(own_port))
    fprog = struct.pack("@HP", len(program.raw) // _SOCK_FILTER.size, ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def skip_own(data: bytes, own_port: int) -> bytes | list[tuple[int, int, int, int, int]]:
    """The messages of one datagram that `own_port` did not cause, by their header alone.

    Returns `data` itself when nothing is ours (the common case with the kernel
    filter on), else the (type, flags, seq, start, end) of the others."""
    unpack = wire.NLMSGHDR.unpack_from
    offset, end = 0, len(data)
    kept: list[tuple[int, int, int, int, int]] = []
    mine = False
    while offset + 16 <= end:
        length, msg_type, flags, seq, pid = unpack(data, offset)
        if length < 16 or offset + length > end:
            break
        if pid == own_port and own_port:
            mine = True
        else:
            kept.append((msg_type, flags, seq, offset + 16, offset + length))
        offset += (length + 3) & ~3
    return kept if mine else data


class Requests:
    """One request at a time on a NETLINK_ROUTE socket of its own, each one answered: the
    occasional device, address, neighbour, FDB and route look-up calls (`fib.rtnl`), never
    on the route writer's socket. A refusal raises `OSError` with the kernel's errno."""

    TIMEOUT = 10.0  # the kernel answers at once; a stuck socket must not hang the caller

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(self.TIMEOUT)
        self._seq = 0
        self._lock = threading.Lock()  # one exchange at a time, whichever thread asks

    def ask(self, build: Callable[[int], bytes]) -> list[tuple[bytes, int, int, int]]:
        """Send `build(seq)`; its replies (datagram, type, start, end) up to the ACK
        (a request with NLM_F_ACK) or NLMSG_DONE (a dump), retried if a dump was torn."""
        with self._lock:
            for _attempt in range(5):
                try:
                    return self._exchange(build)
                except InterruptedError:
                    continue
        raise KernelError("dump kept being interrupted")

    def _exchange(self, build: Callable[[int], bytes]) -> list[tuple[bytes, int, int, int]]:
        self._seq = (self._seq % 0x7FFFFFFF) + 1
        seq = self._seq
        self.sock.send(build(seq))
        out: list[tuple[bytes, int, int, int]] = []
        while True:
            data = self.sock.recv(RECV_SIZE)
            for msg_type, flags, mseq, start, end in wire.iter_messages(data):
                if mseq != seq:
                    continue
                if msg_type in (wire.NLMSG_DONE, wire.NLMSG_ERROR):
                    # Both carry an int: a dump's error, or the request's (0: the ACK).
                    err = -wire.ERRMSG.unpack_from(data, start)[0] if end - start >= 4 else 0
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                if flags & wire.NLM_F_DUMP_INTR:
                    raise InterruptedError("dump interrupted by a concurrent change")
                out.append((data, msg_type, start, end))

    def close(self) -> None:
        self.sock.close()


def _get_link(req: Requests, name: str) -> rtnl.Link | None:
    try:
        replies = req.ask(lambda seq: rtnl.encode_link_get(name, seq))
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise
    for data, msg_type, start, end in replies:
        if msg_type == wire.RTM_NEWLINK:
            return rtnl.decode_link(data, start, end)
    return None


def _links(req: Requests) -> list[rtnl.Link]:
    replies = req.ask(rtnl.encode_link_dump)
    return [rtnl.decode_link(d, s, e) for d, t, s, e in replies if t == wire.RTM_NEWLINK]


def _addresses(req: Requests) -> list[rtnl.Address]:
    found = (rtnl.decode_addr(d, s, e) for d, t, s, e in req.ask(rtnl.encode_addr_dump)
             if t == RTM_NEWADDR)  # fmt: skip
    return [a for a in found if a is not None]


def _vxlan_matches(link: rtnl.Link, spec: VxlanSpec, underlay: int) -> bool:
    """Do the attributes that can only be set at creation match the spec?"""
    info = rtnl.vxlan_info(link)
    return info is not None and info == rtnl.VxlanInfo(spec.vni, spec.port, 0, underlay, spec.local)


def ensure_vxlan(req: Requests, spec: VxlanSpec, underlay: int) -> bool:
    """Create `vxlan.podbgp` or correct it (RFC 7348: VNI, UDP port; learning off)."""
    changed = False
    link = _get_link(req, spec.name)
    if link is not None and not _vxlan_matches(link, spec, underlay):
        index = link.index  # VNI, port, local, learning: fixed at creation
        req.ask(lambda seq: rtnl.encode_link_del(index, seq))
        link = None
    if link is None:
        create = rtnl.VxlanCreate(spec.name, spec.vni, spec.port, spec.local, underlay,
                                  spec.mac, spec.mtu)  # fmt: skip
        req.ask(lambda seq: rtnl.encode_vxlan_add(create, seq))
        link = _get_link(req, spec.name)
        changed = True
    if link is None:
        raise KernelError(f"{spec.name} is gone right after it was created")
    return _ensure_link_state(req, link, spec.mtu, spec.address, spec.mac) or changed


def ensure_ipip(req: Requests, spec: IpipSpec) -> bool:
    """`tunl0`: the ipip module's fallback device (RFC 2003); Unsupported if there is no ipip."""
    link = _get_link(req, spec.name)
    changed = False
    if link is None:
        try:
            req.ask(lambda seq: rtnl.encode_kind_add(spec.name, "ipip", seq))
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
                raise Unsupported(
                    f"kernel has no IP-in-IP (creating {spec.name} failed: {exc}; "
                    "CONFIG_NET_IPIP unset or ipip module missing)"
                ) from exc
            raise
        link = _get_link(req, spec.name)
        changed = True
    if link is None:
        raise KernelError(f"{spec.name} is gone right after it was created")
    return _ensure_link_state(req, link, spec.mtu, spec.address, None) or changed


def _ensure_link_state(
    req: Requests, link: rtnl.Link, mtu: int, address: bytes, mac: str | None
) -> bool:
    """MTU, MAC, up, and the device's own address as a host route (/32 or /128)."""
    new_mtu = mtu if link.mtu != mtu else None
    new_mac = mac if mac is not None and link.mac != mac.lower() else None
    changed = new_mtu is not None or new_mac is not None or not link.up
    if changed:
        req.ask(lambda seq: rtnl.encode_link_set(link.index, seq, new_mtu, new_mac, not link.up))
    if not address:
        return changed
    if address not in {a.address for a in _addresses(req) if a.index == link.index}:
        req.ask(lambda seq: rtnl.encode_addr_add(link.index, address, seq))
        return True
    return changed


class DumpFailed(KernelError):
    """The kernel answered a dump request with an error."""

    def __init__(self, err: int) -> None:
        super().__init__(f"dump failed: {os.strerror(err)}")
        self.errno = err


class LinkTable:
    """Device names ↔ indexes (and MTUs), refreshed from link dumps and events."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.name: dict[int, str] = {}
        self.mtu: dict[str, int] = {}

    def load(self, links: list[tuple[int, str, int]]) -> None:
        self.index = {n: i for i, n, _ in links}
        self.name = {i: n for i, n, _ in links}
        self.mtu = {n: m for _, n, m in links}


def _decode_link_mtu(buf: bytes, offset: int, end: int) -> tuple[int, str, int]:
    index, name = wire.decode_link(buf, offset, end)
    pos = offset + wire.IFINFOMSG.size
    mtu = 0
    while pos + 4 <= end:
        alen, akind = wire.RTATTR.unpack_from(buf, pos)
        if alen < 4:
            break
        if akind == IFLA_MTU:
            mtu = struct.unpack_from("=I", buf, pos + 4)[0]
        pos += (alen + 3) & ~3
    return index, name, mtu


class RouteSocket:
    """Batched route writes and dumps over one raw socket (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seq = 1

    def _next_seq(self, count: int = 1) -> int:
        first = self.seq
        self.seq = (self.seq + count) % 0xFFFF0000 or 1
        return first

    def write(self, ops: Sequence[RouteOp], ifindex: dict[str, int]) -> list[RouteFailure]:
        """Send every op; return the refused ones (matched by sequence number)."""
        refused = self._batch(ops, wire.encode_route, ifindex)
        return [RouteFailure(ops[i][0], ops[i][1], err) for i, err in refused]

    def write_batch(self, batch: RouteBatch, ifindex: dict[str, int]) -> list[RouteFailure]:
        """`write(batch.ops())`, encoded from the batch's keys and shapes in bulk."""
        base = self._next_seq(len(batch) + 1)
        messages, refused = wire.encode_route_batch(batch, base, ifindex)
        self._send_all(messages, len(batch), base, refused)
        return [RouteFailure(batch.op, batch.route(i), err) for i, err in refused]

    def write_nexthops(
        self, ops: Sequence[NexthopOp], ifindex: dict[str, int]
    ) -> list[NexthopFailure]:
        refused = self._batch(ops, wire.encode_nexthop, ifindex)
        return [NexthopFailure(ops[i][0], ops[i][1], err) for i, err in refused]

    def _batch(
        self, ops: Sequence[tuple[int, T]], encode: wire.Encoder[T], ifindex: dict[str, int]
    ) -> list[tuple[int, int]]:
        """Encode and send `ops`; (op index, errno) of the refused ones."""
        base = self._next_seq(len(ops) + 1)
        messages, refused = wire.encode_ops(ops, encode, base, ifindex)
        self._send_all(messages, len(ops), base, refused)
        return refused

    def _send_all(
        self, messages: list[bytes], count: int, base: int, refused: list[tuple[int, int]]
    ) -> None:
        """Send `messages` (requests `base` .. `base + count - 1`, less those refused before
        sending) about SEND_CHUNK bytes per sendmsg, reading error replies in between so
        they never pile up, then one ACK barrier; adds (op index, errno) of each refusal."""
        step = max(1, SEND_CHUNK // max(map(len, messages), default=1))
        start = 0
        while len(messages) - start > step:
            self._send(messages[start : start + step])
            self._collect(count, base, refused, barrier=None)
            start += step
        barrier = base + count
        chunk = messages[start:]
        chunk.append(wire.NLMSGHDR.pack(16, wire.NLMSG_NOOP, wire.NLM_F_REQUEST | wire.NLM_F_ACK,
                                        barrier, 0))  # fmt: skip
        self._send(chunk)
        self._collect(count, base, refused, barrier=barrier)

    def _send(self, chunk: list[bytes]) -> None:
        try:
            self.sock.sendmsg([b"".join(chunk)])
        except OSError as exc:
            raise KernelError(f"netlink sendmsg: {exc}") from exc

    def _collect(
        self, count: int, base: int, refused: list[tuple[int, int]], barrier: int | None
    ) -> None:
        """Read error replies; with a barrier, block until its ACK arrives."""
        while True:
            try:
                data = self.sock.recv(RECV_SIZE, 0 if barrier is not None else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: replies were dropped, outcome unknown
                raise KernelError(f"netlink replies lost: {exc}") from exc
            for msg_type, _flags, _seq, start, _end in wire.iter_messages(data):
                if msg_type != wire.NLMSG_ERROR:
                    continue
                err, seq = wire.decode_error(data, start)
                if barrier is not None and seq == barrier:
                    return
                index = seq - base
                if err and 0 <= index < count:
                    refused.append((index, err))

    def _dump(self, request: bytes, seq: int) -> Iterator[tuple[bytes, int, int, int]]:
        """Yield (datagram, type, payload start, payload end) until NLMSG_DONE."""
        self.sock.send(request)
        while True:
            data = self.sock.recv(RECV_SIZE)
            for msg_type, flags, mseq, start, end in wire.iter_messages(data):
                if mseq != seq:
                    continue
                if msg_type == wire.NLMSG_DONE:
                    return
                if msg_type == wire.NLMSG_ERROR:
                    err, _ = wire.decode_error(data, start)
                    raise DumpFailed(err)
                if flags & wire.NLM_F_DUMP_INTR:
                    raise InterruptedError("dump interrupted by a concurrent change")
                yield data, msg_type, start, end

    def dump_routes(self, family: int, table: int, links: LinkTable) -> list[KernelRoute]:
        """All routes of one family in `table` (retried if the kernel flags a torn dump)."""
        for _attempt in range(5):
            seq = self._next_seq()
            out: list[KernelRoute] = []
            decode = wire.decode_route
            names = links.name
            try:
                for data, msg_type, start, end in self._dump(
                    wire.encode_dump_request(family, table, seq), seq
                ):
                    if msg_type == wire.RTM_NEWROUTE:
                        route = decode(data, start, end, names)
                        if route is not None and route.table == table:
                            out.append(route)
            except InterruptedError:
                continue
            return out
        raise KernelError("route dump kept being interrupted")

    def dump_nexthops(self, links: LinkTable) -> list[NexthopObject]:
        """Every nexthop object (retried if the kernel flags a torn dump)."""
        for _attempt in range(5):
            seq = self._next_seq()
            out: list[NexthopObject] = []
            try:
                for data, msg_type, start, end in self._dump(
                    wire.encode_nexthop_dump_request(seq), seq
                ):
                    if msg_type == wire.RTM_NEWNEXTHOP:
                        obj = wire.decode_nexthop(data, start, end, links.name)
                        if obj is not None:
                            out.append(obj)
            except InterruptedError:
                continue
            except DumpFailed as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise Unsupported(f"kernel has no nexthop objects: {exc}") from exc
                raise
            return out
        raise KernelError("nexthop dump kept being interrupted")

    def dump_links(self) -> list[tuple[int, str, int]]:
        seq = self._next_seq()
        request = wire.NLMSGHDR.pack(16 + wire.IFINFOMSG.size, RTM_GETLINK,
                                     wire.NLM_F_REQUEST | wire.NLM_F_DUMP, seq, 0)  # fmt: skip
        request += wire.IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        links = []
        for data, msg_type, start, end in self._dump(request, seq):
            if msg_type == wire.RTM_NEWLINK:
                links.append(_decode_link_mtu(data, start, end))
        return links


class NetlinkKernel:
    """`fib.kernel.Kernel` on the running kernel (optionally inside a named namespace)."""

    def __init__(self, netns: str | None = None, watch: bool = True) -> None:
        self.netns = netns
        self.routes = RouteSocket(in_netns(netns, open_route_socket))
        groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
        self.events: socket.socket | None = None
        self.own_port = port_id(self.routes.sock)
        self.echo_filtered = False  # True once the kernel drops our echoes itself
        if watch:
            self.events = in_netns(netns, lambda: open_route_socket(groups, (RTNLGRP_NEXTHOP,)))
            self.events.setblocking(False)
            self.echo_filtered = attach_echo_filter(self.events, self.own_port)
        self.links = LinkTable()
        self.refresh_links()
        self._requests: Requests | None = None

    # -- links -----------------------------------------------------------------------------
    def refresh_links(self) -> None:
        self.links.load(self.routes.dump_links())

    def link_mtu(self, name: str) -> int | None:
        if name not in self.links.mtu:
            self.refresh_links()
        return self.links.mtu.get(name)

    def _index(self, name: str) -> int:
        if name not in self.links.index:
            self.refresh_links()
        if name not in self.links.index:
            raise KernelError(f"no device {name}")
        return self.links.index[name]

    # -- routes ----------------------------------------------------------------------------
    def dump_routes(self, table: int) -> list[KernelRoute]:
        self.refresh_links()
        out = self.routes.dump_routes(socket.AF_INET, table, self.links)
        out += self.routes.dump_routes(socket.AF_INET6, table, self.links)
        return out

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        if not ops:
            return []
        failures = self.routes.write(ops, self.links.index)
        if any(f.errno == errno.ENODEV for f in failures):
            self.refresh_links()  # a device may have been renumbered since the last dump
        return failures

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        if not len(batch):
            return []
        failures = self.routes.write_batch(batch, self.links.index)
        if any(f.errno == errno.ENODEV for f in failures):
            self.refresh_links()
        return failures

    # -- nexthop objects ----------------------------------------------------------------------
    def dump_nexthops(self) -> list[NexthopObject]:
        self.refresh_links()
        return self.routes.dump_nexthops(self.links)

    def write_nexthops(self, ops: Sequence[NexthopOp]) -> list[NexthopFailure]:
        if not ops:
            return []
        failures = self.routes.write_nexthops(ops, self.links.index)
        if any(f.errno == errno.ENODEV for f in failures):
            self.refresh_links()
        return failures

    # -- devices, neighbours, FDB (`fib.rtnl` over a request socket of their own) -----------
    @property
    def requests(self) -> Requests:
        if self._requests is None:
            self._requests = Requests(in_netns(self.netns, open_route_socket))
        return self._requests

    def _ask(self, what: str, build: Callable[[int], bytes]) -> list[tuple[bytes, int, int, int]]:
        try:
            return self.requests.ask(build)
        except OSError as exc:
            raise KernelError(f"{what}: {exc.strerror or exc}") from exc

    def ensure_vxlan(self, spec: VxlanSpec) -> bool:
        try:
            changed = ensure_vxlan(self.requests, spec, self._index(spec.underlay))
        except OSError as exc:
            raise KernelError(f"{spec.name}: {exc.strerror or exc}") from exc
        self.refresh_links()
        return changed

    def ensure_ipip(self, spec: IpipSpec) -> bool:
        try:
            changed = ensure_ipip(self.requests, spec)
        except OSError as exc:
            raise KernelError(f"{spec.name}: {exc.strerror or exc}") from exc
        self.refresh_links()
        return changed

    def _neigh_dump(self, family: int, dev: str) -> Iterator[rtnl.NeighEntry]:
        """`dev`'s permanent entries of `family` (AF_UNSPEC: ARP and NDP; AF_BRIDGE: FDB)."""
        index = self.links.index[dev]  # filtered here: strict dumps refuse ndm_ifindex
        for data, msg_type, start, end in self._ask(
            f"neighbour dump of {dev}", lambda seq: rtnl.encode_neigh_dump(family, seq)
        ):
            entry = rtnl.decode_neigh(data, start, end) if msg_type == rtnl.RTM_NEWNEIGH else None
            if entry and entry.ifindex == index and entry.state & NUD_PERMANENT:
                yield entry

    def dump_neighbours(self, dev: str) -> set[Neighbour]:
        if dev not in self.links.index:
            return set()
        return {Neighbour(dev, e.dst, e.lladdr) for e in self._neigh_dump(socket.AF_UNSPEC, dev)}

    def write_neighbours(self, add: Sequence[Neighbour], remove: Sequence[Neighbour]) -> None:
        for n in remove:
            self._neigh(rtnl.RTM_DELNEIGH, family_of(n.address), n.dev, n.address, None)
        for n in add:
            self._neigh(rtnl.RTM_NEWNEIGH, family_of(n.address), n.dev, n.address, n.mac)

    def dump_fdb(self, dev: str) -> set[FdbEntry]:
        if dev not in self.links.index:
            return set()
        return {FdbEntry(dev, e.lladdr, e.dst) for e in self._neigh_dump(AF_BRIDGE, dev)}

    def write_fdb(self, add: Sequence[FdbEntry], remove: Sequence[FdbEntry]) -> None:
        for e in remove:
            self._neigh(rtnl.RTM_DELNEIGH, AF_BRIDGE, e.dev, e.dst, e.mac, NTF_SELF)
        for e in add:
            self._neigh(rtnl.RTM_NEWNEIGH, AF_BRIDGE, e.dev, e.dst, e.mac, NTF_SELF)

    def _neigh(
        self, msg_type: int, family: int, dev: str, dst: bytes, mac: str | None, ntf: int = 0
    ) -> None:
        index = self._index(dev)
        verb = "replace" if msg_type == rtnl.RTM_NEWNEIGH else "del"
        what = "fdb" if family == AF_BRIDGE else "neigh"
        self._ask(f"{what} {verb} {unpack_addr(dst)} on {dev}",
                  lambda seq: rtnl.encode_neigh(msg_type, family, index, dst, mac, seq, ntf))  # fmt: skip

    # -- events ----------------------------------------------------------------------------
    def event_fd(self) -> int | None:
        return self.events.fileno() if self.events is not None else None

    def read_events(self) -> list[Event]:
        if self.events is None:
            return []
        out: list[Event] = []
        while True:
            try:
                data = self.events.recv(RECV_SIZE)
            except BlockingIOError:
                return out
            except OSError as exc:
                out.append(Overrun(f"event socket: {exc}"))
                return out
            self._parse_events(data, out)

    def _parse_events(self, data: bytes, out: list[Event]) -> None:
        others = skip_own(data, self.own_port)
        messages = others if isinstance(others, list) else wire.iter_messages(data)
        for msg_type, _flags, _seq, start, end in messages:
            if msg_type in (wire.RTM_NEWROUTE, wire.RTM_DELROUTE):
                route = wire.decode_route(data, start, end, self.links.name)
                if route is not None:
                    out.append(RouteEvent(msg_type == wire.RTM_DELROUTE, route))
            elif msg_type in (wire.RTM_NEWNEXTHOP, wire.RTM_DELNEXTHOP):
                obj = wire.decode_nexthop(data, start, end, self.links.name)
                if obj is not None:
                    out.append(NexthopEvent(msg_type == wire.RTM_DELNEXTHOP, obj))
            elif msg_type in (wire.RTM_NEWLINK, wire.RTM_DELLINK):
                index, name, mtu = _decode_link_mtu(data, start, end)
                if msg_type == wire.RTM_DELLINK:
                    self.links.index.pop(name, None)
                    self.links.name.pop(index, None)
                    self.links.mtu.pop(name, None)
                elif name:
                    self.links.index[name] = index
                    self.links.name[index] = name
                    self.links.mtu[name] = mtu
                out.append(LinkEvent(msg_type == wire.RTM_DELLINK, name))

    def close(self) -> None:
        self.routes.sock.close()
        if self.events is not None:
            self.events.close()
        if self._requests is not None:
            self._requests.close()
            self._requests = None


# -- the underlay: addresses, route look-ups and their changes (`podbgp.underlay`) ----------
# Each call opens a request socket in the calling thread's namespace and closes it.


def link_addresses() -> list[LinkAddress]:
    """Every address of every link in this namespace, links in index order."""
    req = Requests(open_route_socket())
    try:
        links = {link.index: link for link in _links(req)}
        addrs = _addresses(req)
    finally:
        req.close()
    out: list[LinkAddress] = []
    for a in addrs:
        link = links.get(a.index)
        if link is None:
            continue
        out.append(LinkAddress(
            a.index, link.name, link.up, link.mtu or 0, f"{unpack_addr(a.local)}/{a.prefixlen}",
            a.scope, bool(a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)),
        ))  # fmt: skip
    out.sort(key=lambda a: a.ifindex)  # stable: each link's addresses keep the kernel's order
    return out


def route_source(destination: str) -> tuple[str, str] | None:
    """(source address, outgoing interface) the kernel's route look-up picks for
    `destination` (RTM_GETROUTE: no packet is sent); None if it is unreachable."""
    req = Requests(open_route_socket())
    try:
        try:
            answer = req.ask(lambda seq: rtnl.encode_route_get(pack_addr(destination), seq))
        except OSError:
            return None  # ENETUNREACH, EHOSTUNREACH...
        for data, msg_type, start, end in answer:
            found = (
                rtnl.decode_route_source(data, start, end)
                if msg_type == wire.RTM_NEWROUTE
                else None
            )
            if found is not None:
                src, oif = found
                name = next((link.name for link in _links(req) if link.index == oif), "")
                return unpack_addr(src), name
    finally:
        req.close()
    return None


class AddressWatch:
    """A readable socket that carries every address and link change in this namespace.

    Only whether something changed matters (the reader re-reads `link_addresses`), so
    messages are counted, not decoded. Open it inside a namespace with `fib.netns.in_netns`.
    """

    def __init__(self) -> None:
        self.sock = open_route_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> int:
        """Read what is queued; how many address or link messages it held (an overrun
        counts as a change, the caller re-reads everything anyway)."""
        changes = 0
        while True:
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return changes
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    return changes + 1  # a broken socket: re-read once, never spin
                changes += 1  # the queue overflowed: changes were lost, and more may follow
                continue
            kinds = (RTM_NEWADDR, RTM_DELADDR, wire.RTM_NEWLINK, wire.RTM_DELLINK)
            changes += sum(1 for m in wire.iter_messages(data) if m[0] in kinds)

    def close(self) -> None:
        self.sock.close()


__all__ = [
    "AddressWatch",
    "NetlinkKernel",
    "Unsupported",
    "attach_echo_filter",
    "echo_filter",
    "link_addresses",
    "open_route_socket",
    "port_id",
    "route_source",
    "skip_own",
]
