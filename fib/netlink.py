"""The real kernel: raw rtnetlink for routes and links, pyroute2 for devices, neighbours, FDB.

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
created in; the thread then exits, so no other code ever runs in the namespace). pyroute2 is opened
with `IPRoute(netns=NAME, flags=0)`, which forks a helper to open its socket
there; `flags=0` stops it from silently creating a misspelt namespace
(DESIGN.md, pyroute2 pitfalls). pyroute2 is opened lazily: a node without
tunnels never forks it.

Underlay detection (`podbgp.underlay`) reads addresses, asks for route
look-ups and follows address changes through `link_addresses`,
`route_source` and `AddressWatch` at the end: small and synchronous, for a
thread of their own.

Size (over ~600 lines, one concern): this is the one module that talks to
the kernel — raw rtnetlink sockets, the echo filter, dumps, the batched
writer, pyroute2 for devices and the underlay reads — so everything that needs root, a
namespace or a real kernel is here and everything else in ``fib`` is
testable without one. Message encoding and decoding is ``fib.wire``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fib import wire
from fib.kernel import (
    Event,
    KernelError,
    LinkEvent,
    NexthopEvent,
    NexthopFailure,
    NexthopOp,
    Overrun,
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


def _link(ipr: Any, name: str) -> Any | None:
    found = ipr.link_lookup(ifname=name)
    return next(iter(ipr.get_links(found[0]))) if found else None


def _vxlan_matches(link: Any, spec: VxlanSpec, underlay: int) -> bool:
    """Do the attributes that can only be set at creation match the spec?"""
    info = link.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return False
    data = info.get_attr("IFLA_INFO_DATA")
    local = data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6")
    return bool(
        data.get("IFLA_VXLAN_ID") == spec.vni
        and data.get("IFLA_VXLAN_PORT") == spec.port
        and data.get("IFLA_VXLAN_LEARNING") == 0
        and data.get("IFLA_VXLAN_LINK") == underlay
        and local == unpack_addr(spec.local)
    )


def ensure_vxlan(ipr: Any, spec: VxlanSpec, underlay: int) -> bool:
    """Create `vxlan.podbgp` or correct it (RFC 7348: VNI, UDP port; learning off)."""
    changed = False
    link = _link(ipr, spec.name)
    if link is not None and not _vxlan_matches(link, spec, underlay):
        ipr.link("del", index=link["index"])  # VNI, port, local, learning: fixed at creation
        link = None
    if link is None:
        local = {
            "vxlan_local6" if len(spec.local) == 16 else "vxlan_local": unpack_addr(spec.local)
        }
        ipr.link("add", ifname=spec.name, kind="vxlan", vxlan_id=spec.vni, vxlan_port=spec.port,
                 vxlan_link=underlay, vxlan_learning=0, address=spec.mac, mtu=spec.mtu, **local)  # fmt: skip
        link = _link(ipr, spec.name)
        changed = True
    return _ensure_link_state(ipr, link, spec.mtu, spec.address, spec.mac) or changed


def ensure_ipip(ipr: Any, spec: IpipSpec) -> bool:
    """`tunl0`: the ipip module's fallback device (RFC 2003); Unsupported if there is no ipip."""
    from pyroute2.netlink.exceptions import NetlinkError

    link = _link(ipr, spec.name)
    changed = False
    if link is None:
        try:
            ipr.link("add", ifname=spec.name, kind="ipip")
        except NetlinkError as exc:
            if exc.code in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
                raise Unsupported(
                    f"kernel has no IP-in-IP (creating {spec.name} failed: {exc}; "
                    "CONFIG_NET_IPIP unset or ipip module missing)"
                ) from exc
            raise
        link = _link(ipr, spec.name)
        changed = True
    return _ensure_link_state(ipr, link, spec.mtu, spec.address, None) or changed


def _ensure_link_state(ipr: Any, link: Any, mtu: int, address: bytes, mac: str | None) -> bool:
    """MTU, MAC, up, and the device's own address as a host route (/32 or /128)."""
    index = link["index"]
    changes: dict[str, Any] = {}
    if link.get("IFLA_MTU") != mtu:
        changes["mtu"] = mtu
    if mac is not None and link.get("IFLA_ADDRESS") != mac:
        changes["address"] = mac
    if not link["flags"] & 1:  # IFF_UP
        changes["state"] = "up"
    if changes:
        ipr.link("set", index=index, **changes)
    if not address:
        return bool(changes)
    text, plen = unpack_addr(address), 8 * len(address)
    have = {a.get("IFA_ADDRESS") for a in ipr.get_addr(index=index)}
    if text not in have:
        ipr.addr("add", index=index, address=text, prefixlen=plen)
        return True
    return bool(changes)


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

    def write_nexthops(
        self, ops: Sequence[NexthopOp], ifindex: dict[str, int]
    ) -> list[NexthopFailure]:
        refused = self._batch(ops, wire.encode_nexthop, ifindex)
        return [NexthopFailure(ops[i][0], ops[i][1], err) for i, err in refused]

    def _batch(
        self,
        ops: Sequence[tuple[int, Any]],
        encode: Callable[[int, Any, int, Mapping[str, int]], bytes],
        ifindex: dict[str, int],
    ) -> list[tuple[int, int]]:
        """Encode and send `ops` in chunks with one ACK barrier; (op index, errno) refused."""
        base = self._next_seq(len(ops) + 1)
        refused: list[tuple[int, int]] = []
        chunk: list[bytes] = []
        size = 0
        for i, (op, item) in enumerate(ops):
            try:
                msg = encode(op, item, base + i, ifindex)
            except wire.UnknownDevice:
                refused.append((i, errno.ENODEV))
                continue
            chunk.append(msg)
            size += len(msg)
            if size >= SEND_CHUNK:
                self._send(chunk)
                self._collect(len(ops), base, refused, barrier=None)
                chunk, size = [], 0
        barrier = base + len(ops)
        chunk.append(wire.NLMSGHDR.pack(16, wire.NLMSG_NOOP, wire.NLM_F_REQUEST | wire.NLM_F_ACK,
                                        barrier, 0))  # fmt: skip
        self._send(chunk)
        self._collect(len(ops), base, refused, barrier=barrier)
        return refused

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
        self._ipr: Any = None
        self._pool: ThreadPoolExecutor | None = None

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

    # -- devices, neighbours, FDB (pyroute2) -------------------------------------------------
    # pyroute2's synchronous IPRoute drives an asyncio loop of its own and refuses to
    # run on a thread whose loop is already running (the daemon's). Every pyroute2 call
    # therefore runs on one dedicated thread, which also owns the IPRoute object.
    def _call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pyroute2")
        return self._pool.submit(fn, *args, **kwargs).result()

    @property
    def ipr(self) -> Any:
        if self._ipr is None:

            def open_ipr() -> Any:
                from pyroute2 import IPRoute

                return IPRoute(netns=self.netns, flags=0) if self.netns else IPRoute()

            self._ipr = self._call(open_ipr)
        return self._ipr

    def ensure_vxlan(self, spec: VxlanSpec) -> bool:
        changed = self._call(ensure_vxlan, self.ipr, spec, self._index(spec.underlay))
        self.refresh_links()
        return changed

    def ensure_ipip(self, spec: IpipSpec) -> bool:
        changed = self._call(ensure_ipip, self.ipr, spec)
        self.refresh_links()
        return changed

    def dump_neighbours(self, dev: str) -> set[Neighbour]:
        if dev not in self.links.index:
            return set()
        out = set()
        ipr, index = self.ipr, self.links.index[dev]
        for msg in self._call(lambda: list(ipr.neigh("dump", ifindex=index))):
            dst, mac = msg.get("NDA_DST"), msg.get("NDA_LLADDR")
            if dst and mac and msg["state"] & NUD_PERMANENT:
                out.add(Neighbour(dev, pack_addr(dst), mac))
        return out

    def write_neighbours(self, add: Sequence[Neighbour], remove: Sequence[Neighbour]) -> None:
        for n in remove:
            self._pyroute2(
                self.ipr.neigh, "del", dst=unpack_addr(n.address), ifindex=self._index(n.dev)
            )
        for n in add:
            self._pyroute2(self.ipr.neigh, "replace", dst=unpack_addr(n.address), lladdr=n.mac,
                           ifindex=self._index(n.dev), state=NUD_PERMANENT)  # fmt: skip

    def dump_fdb(self, dev: str) -> set[FdbEntry]:
        if dev not in self.links.index:
            return set()
        out = set()
        ipr, index = self.ipr, self.links.index[dev]
        for msg in self._call(lambda: list(ipr.fdb("dump", ifindex=index))):
            dst, mac = msg.get("NDA_DST"), msg.get("NDA_LLADDR")
            if (
                dst
                and mac
                and msg["state"] & NUD_PERMANENT
                and msg["ifindex"] == self.links.index[dev]
            ):
                out.add(FdbEntry(dev, mac, pack_addr(dst)))
        return out

    def write_fdb(self, add: Sequence[FdbEntry], remove: Sequence[FdbEntry]) -> None:
        for e in remove:
            self._pyroute2(self.ipr.fdb, "del", family=AF_BRIDGE, flags=NTF_SELF, lladdr=e.mac,
                           dst=unpack_addr(e.dst), ifindex=self._index(e.dev))  # fmt: skip
        for e in add:
            self._pyroute2(self.ipr.fdb, "replace", family=AF_BRIDGE, flags=NTF_SELF, lladdr=e.mac,
                           dst=unpack_addr(e.dst), ifindex=self._index(e.dev),
                           state=NUD_PERMANENT)  # fmt: skip

    def _pyroute2(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._call(fn, *args, **kwargs)
        except NetlinkError as exc:
            raise KernelError(f"{fn.__name__} {args[0]}: {exc}") from exc

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
        if self._ipr is not None:
            self._call(self._ipr.close)
            self._ipr = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


# -- the underlay: addresses, route look-ups and their changes (`podbgp.underlay`) ----------
# pyroute2's IPRoute runs its own event loop: call these off the daemon's loop thread.


def link_addresses() -> list[LinkAddress]:
    """Every address of every link in this namespace, links in index order."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {int(m["index"]): m for m in ipr.get_links()}
        addrs = list(ipr.get_addr())
    out: list[LinkAddress] = []
    for m in addrs:
        link = links.get(int(m["index"]))
        local = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
        if link is None or local is None:
            continue
        flags = int(m.get_attr("IFA_FLAGS") or m["flags"])
        out.append(LinkAddress(
            int(m["index"]), str(link.get_attr("IFLA_IFNAME")), bool(link["flags"] & IFF_UP),
            int(link.get_attr("IFLA_MTU") or 0), f"{local}/{m['prefixlen']}", int(m["scope"]),
            bool(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)),
        ))  # fmt: skip
    out.sort(key=lambda a: a.ifindex)  # stable: each link's addresses keep the kernel's order
    return out


def route_source(destination: str) -> tuple[str, str] | None:
    """(source address, outgoing interface) the kernel's route look-up picks for
    `destination` (RTM_GETROUTE: no packet is sent); None if it is unreachable."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            answer = list(ipr.route("get", dst=destination))
        except NetlinkError:
            return None  # ENETUNREACH, EHOSTUNREACH...
        for m in answer:
            src, oif = m.get_attr("RTA_PREFSRC"), m.get_attr("RTA_OIF")
            if src and oif:
                link = list(ipr.get_links(int(oif)))
                return str(src), str(link[0].get_attr("IFLA_IFNAME")) if link else ""
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
