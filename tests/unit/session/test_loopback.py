"""Two podbgp speakers in one process over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from bgp.errors import CeaseSubcode
from bgp.fsm import State
from bgp.negotiate import build_open
from bgp.settings import ListenRange, PeerSettings
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.messages import Keepalive, Notification, Open, decode_message, encode_message

from .support import V4, V6, Node, announce, make_node, peer

A_IP, B_IP = "127.0.0.1", "127.0.0.2"


async def pair(
    a_kw: dict | None = None,
    b_kw: dict | None = None,
    a_init: list[bytes] | None = None,
    b_init: list[bytes] | None = None,
) -> tuple[Node, Node]:
    a = await make_node(65001, "10.0.0.1", A_IP, initial=a_init)
    b = await make_node(65002, "10.0.0.2", B_IP, initial=b_init)
    b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, **(b_kw or {"passive": True})))
    a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, **(a_kw or {})))
    return a, b


async def stop(*nodes: Node) -> None:
    for n in nodes:
        await n.speaker.stop()


def state(node: Node, addr: str) -> str:
    p = node.speaker.peer(addr)
    assert p is not None
    return str(p.stats()["state"])


async def test_routes_exchanged_both_ways_with_attributes_intact() -> None:
    route_a = announce(
        "10.1.0.0/16",
        (65001, 4200000000),
        "192.0.2.1",
        med=50,
        communities=(65001 << 16 | 100,),
        large_communities=((65001, 1, 2),),
    ) + announce("fd00:1::/48", (65001,), "fd00::1", med=7)
    route_b = announce("10.2.0.0/16", (65002,), "192.0.2.2", communities=(65002 << 16 | 9,))
    a, b = await pair(a_init=route_a, b_init=route_b)
    try:
        await b.wait(lambda: len(b.sink.eors) == 2 and b.sink.announced())
        await a.wait(lambda: len(a.sink.eors) == 2 and a.sink.announced())
        got = b.sink.announced()
        attrs = got["10.1.0.0/16"]
        assert attrs is not None
        assert attrs.as_path == ((2, (65001, 4200000000)),)
        assert attrs.med == 50
        assert attrs.communities == (65001 << 16 | 100,)
        assert attrs.large_communities == ((65001, 1, 2),)
        v6 = got["fd00:1::/48"]
        assert v6 is not None and v6.med == 7 and str(v6.mp_next_hop[0]) == "fd00::1"
        assert set(a.sink.announced()) == {"10.2.0.0/16"}
        assert {f for _, f in b.sink.eors} == {V4, V6}
        sa = a.speaker.peer(B_IP)
        assert sa is not None
        st = sa.stats()
        assert st["state"] == "established" and st["router_id"] == "10.0.0.2"
        assert st["messages_out"]["update"] == 4 and st["messages_in"]["update"] == 3
        assert st["negotiated"]["families"] == ["ipv4_unicast", "ipv6_unicast"]
        assert st["remote"] == f"{B_IP}:{b.speaker.ports[0]}"
    finally:
        await stop(a, b)


async def test_ipv6_transport() -> None:
    a = await make_node(65001, "10.0.0.1", "::1")
    b = await make_node(65002, "10.0.0.2", "::1")
    try:
        b.speaker.add_peer(peer("::1", 65001, a.speaker.ports[0], "::1", passive=True))
        a.speaker.add_peer(peer("::1", 65002, b.speaker.ports[0], "::1"))
        await a.wait(lambda: a.sink.ups)
        await b.wait(lambda: b.sink.ups)
        assert a.sink.ups[0][1].peer_router_id.exploded == "10.0.0.2"
    finally:
        await stop(a, b)


async def test_both_sides_connecting_leaves_exactly_one_session() -> None:
    a, b = await pair(a_kw={"connect_retry": 0.05}, b_kw={"connect_retry": 0.05})
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        await asyncio.sleep(1.0)  # let any second connection finish its collision
        pa, pb = a.speaker.peer(B_IP), b.speaker.peer(A_IP)
        assert pa is not None and pb is not None
        assert pa.extra is None and pb.extra is None
        assert pa.established is not None and pb.established is not None
        # The same TCP connection on both ends.
        assert pa.established.sockname == pb.established.peername
        assert len(a.sink.ups) == 1 and len(b.sink.ups) == 1 and not a.sink.downs
    finally:
        await stop(a, b)


async def test_unknown_address_is_refused_without_an_open() -> None:
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True))
        reader, writer = await asyncio.open_connection(
            A_IP, a.speaker.ports[0], local_addr=("127.0.0.3", 0)
        )
        data = await asyncio.wait_for(reader.read(100), 5)
        assert data == b""  # closed, nothing sent
        writer.close()
        # Remembered: a passive side adding that peer now knows it is in its back-off.
        assert a.speaker.refused_within("127.0.0.3", 5.0)
        assert not a.speaker.refused_within(B_IP, 5.0)
        await asyncio.sleep(0.2)
        assert not a.speaker.refused_within("127.0.0.3", 0.1)
    finally:
        await stop(a)


async def test_admin_shutdown_message_reaches_the_peer_and_enable_restores() -> None:
    a, b = await pair()
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.shutdown("planned maintenance")
        await b.wait(lambda: b.sink.downs)
        down = b.sink.downs[0][1]
        assert (down.code, down.subcode, down.sent) == (
            6,
            CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
            False,
        )
        assert "planned maintenance" in down.reason
        pb = b.speaker.peer(A_IP)
        assert pb is not None and pb.last_error is not None
        assert pb.last_error["direction"] == "received"
        assert pa.stats()["admin"] == "down" and pa.stats()["state"] == "idle"
        await asyncio.sleep(0.5)
        assert len(b.sink.ups) == 1  # stays down
        pa.enable()
        await b.wait(lambda: len(b.sink.ups) == 2)
    finally:
        await stop(a, b)


async def test_reset_reconnects() -> None:
    a, b = await pair()
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.reset("clear")
        await a.wait(lambda: len(a.sink.ups) == 2, timeout=15)
        assert b.sink.downs[0][1].subcode == CeaseSubcode.ADMINISTRATIVE_RESET
    finally:
        await stop(a, b)


async def test_md5_right_key_establishes_wrong_key_never_does() -> None:
    a, b = await pair(a_kw={"password": "s3cret"}, b_kw={"password": "s3cret", "passive": True})
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
    finally:
        await stop(a, b)
    a, b = await pair(a_kw={"password": "s3cret"}, b_kw={"password": "other", "passive": True})
    try:
        await asyncio.sleep(2.0)
        assert not a.sink.ups and not b.sink.ups
        assert state(a, B_IP) in ("connect", "active")
    finally:
        await stop(a, b)


async def test_dynamic_neighbour_from_listen_range() -> None:
    template = PeerSettings(address="0.0.0.0", asn=0, hold_time=9, password="range-key")
    a = await make_node(
        65001, "10.0.0.1", A_IP, listen_ranges=(ListenRange("127.0.0.0/24", template),)
    )
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, password="range-key"))
        await a.wait(lambda: a.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.dynamic and pa.stats()["asn"] == 65002
        b.speaker.remove_peer(A_IP, "bye")
        await a.wait(lambda: a.sink.downs)
        await a.wait(lambda: a.speaker.peer(B_IP) is None)
    finally:
        await stop(a, b)


async def test_listen_range_limit_and_unmatched_addresses() -> None:
    template = PeerSettings(address="0.0.0.0", asn=0)
    a = await make_node(
        65001, "10.0.0.1", A_IP, listen_ranges=(ListenRange("127.0.0.2/32", template),)
    )
    try:
        reader, writer = await asyncio.open_connection(
            A_IP, a.speaker.ports[0], local_addr=("127.0.0.9", 0)
        )
        assert await asyncio.wait_for(reader.read(100), 5) == b""
        writer.close()
    finally:
        await stop(a)


class RawPeer:
    """A hand-driven BGP peer on a plain socket (for silence, flooding, not reading)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, asn: int = 65002, hold: int = 9) -> RawPeer:
        r, w = await asyncio.open_connection(A_IP, port, local_addr=(B_IP, 0))
        me = cls(r, w)
        ours = build_open(asn, "10.0.0.2", PeerSettings(address=A_IP, asn=65001, hold_time=hold))
        w.write(encode_message(ours, CodecContext()) + encode_message(Keepalive(), CodecContext()))
        msgs = [await me.message(), await me.message()]
        assert isinstance(msgs[0], Open) and isinstance(msgs[1], Keepalive)
        return me

    async def message(self) -> object:
        head = await self.reader.readexactly(19)
        (length,) = struct.unpack("!H", head[16:18])
        body = await self.reader.readexactly(length - 19)
        return decode_message(head + body, CodecContext())


async def test_silent_peer_is_declared_down_at_hold_expiry() -> None:
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True, hold_time=3))
        raw = await RawPeer.connect(a.speaker.ports[0], hold=3)
        await a.wait(lambda: a.sink.ups)
        t0 = asyncio.get_running_loop().time()
        await a.wait(lambda: a.sink.downs, timeout=10)
        elapsed = asyncio.get_running_loop().time() - t0
        down = a.sink.downs[0][1]
        assert (down.code, down.sent) == (4, True) and 2.0 < elapsed < 6.0
        msgs = []
        while True:
            m = await raw.message()
            msgs.append(m)
            if isinstance(m, Notification):
                break
        assert msgs[-1] == Notification(4, 0)
        # Keepalives kept flowing (every hold/3 = 1 s) until the hold timer fired.
        assert sum(isinstance(m, Keepalive) for m in msgs) >= 2
        raw.writer.close()
    finally:
        await stop(a)


async def test_large_input_is_processed_in_bounded_batches_and_keepalives_flow() -> None:
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True, hold_time=3))
        raw = await RawPeer.connect(a.speaker.ports[0], hold=3)
        await a.wait(lambda: a.sink.ups)
        blob = b"".join(
            announce(f"10.{i >> 8}.{i & 255}.0/24", (65002,), "192.0.2.2")[0] for i in range(20000)
        )
        raw.writer.write(blob)
        await raw.writer.drain()
        await a.wait(lambda: sum(len(b) for _, b in a.sink.batches) == 20000, timeout=60)
        sizes = [len(b) for _, b in a.sink.batches]
        per_msg = len(blob) // 20000
        assert len(sizes) > 1
        assert max(sizes) <= a.speaker.peer(B_IP).established.BATCH_BYTES // per_msg + 1  # type: ignore[union-attr]
        assert state(a, B_IP) == "established"
        raw.writer.close()
    finally:
        await stop(a)


async def test_slow_reader_bounds_what_is_pulled() -> None:
    """A peer that stops reading: the source is pulled only up to the socket's buffers."""
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True, hold_time=90))
        raw = await RawPeer.connect(a.speaker.ports[0], hold=90)
        await a.wait(lambda: a.sink.ups)
        src = a.sources[B_IP]
        one = announce("10.9.0.0/24", (65001,), "192.0.2.1")[0]
        src.endless = lambda: one
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.wake()
        await asyncio.sleep(0.5)
        first = src.pulled
        await asyncio.sleep(1.0)
        assert src.pulled == first  # writing stopped: nothing more encoded for this peer
        assert 0 < first < 64 * 1024 * 1024
        raw.writer.transport.abort()
    finally:
        await stop(a)


async def test_a_second_connection_in_one_read_gets_a_plain_cease() -> None:
    """RFC 4271 §6.8 against an Established session: the peer's second connection
    sends OPEN, KEEPALIVE and an UPDATE in one write. It is answered with our
    OPEN and Cease / Connection Collision Resolution only — never a KEEPALIVE —
    and the RIB sees nothing of it: the first session stays up, untouched."""
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True, hold_time=90))
        first = await RawPeer.connect(a.speaker.ports[0], hold=90)
        await a.wait(lambda: a.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        keepalives_out = pa.counters.msgs_out["keepalive"]
        r, w = await asyncio.open_connection(A_IP, a.speaker.ports[0], local_addr=(B_IP, 0))
        ours = build_open(65002, "10.0.0.2", PeerSettings(address=A_IP, asn=65001, hold_time=90))
        ctx = CodecContext()
        update = announce("10.7.0.0/16", (65002,), "192.0.2.2")[0]
        w.write(encode_message(ours, ctx) + encode_message(Keepalive(), ctx) + update)
        second = RawPeer(r, w)
        assert isinstance(await second.message(), Open)
        note = await second.message()
        assert note == Notification(6, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        assert await asyncio.wait_for(r.read(100), 5) == b""  # closed, nothing else sent
        assert pa.counters.msgs_out["keepalive"] == keepalives_out
        assert len(a.sink.ups) == 1 and not a.sink.downs and not a.sink.batches
        assert pa.established is not None and pa.extra is None and pa.last_error is None
        assert state(a, B_IP) == "established"
        w.close()
        first.writer.close()
    finally:
        await stop(a)


async def test_peer_times_are_on_the_loop_clock_and_shown_as_unix_time() -> None:
    """``established_at`` is the loop-clock instant of Established (the FSM's own),
    shown as the same Unix time on every call; ``uptime`` runs on the loop clock."""
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True, hold_time=90))
        raw = await RawPeer.connect(a.speaker.ports[0], hold=90)
        await a.wait(lambda: a.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.established is not None
        assert pa.established_at == pa.established.fsm.established_at
        first = pa.stats()
        await asyncio.sleep(0.3)
        second = pa.stats()
        assert first["established_at"] == second["established_at"]
        assert abs(first["established_at"] - time.time()) < 30
        assert 0.25 <= second["uptime"] - first["uptime"] < 5
        # The metrics server reads them from its own thread, where no loop runs.
        third = await asyncio.to_thread(pa.stats)
        assert third["established_at"] == first["established_at"] and third["uptime"] > 0
        raw.writer.close()
    finally:
        await stop(a)


async def test_a_second_incoming_connection_does_not_dial_again() -> None:
    """``connect_on_start`` dials once, on the operator's start (Event 4). The second
    connection of a collision is started by the peer's connection (Event 5,
    AutomaticStart_with_PassiveTcpEstablishment), so it must not dial as well."""
    listener = socket.socket()
    listener.bind((B_IP, 0))
    listener.listen(8)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    a = await make_node(65001, "10.0.0.1", A_IP)
    held: list[socket.socket] = []
    try:
        port = listener.getsockname()[1]
        a.speaker.add_peer(peer(B_IP, 65002, port, A_IP, passive=True, connect_on_start=True))
        first, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)  # the one dial
        held.append(first)
        r, w = await asyncio.open_connection(A_IP, a.speaker.ports[0], local_addr=(B_IP, 0))
        second = RawPeer(r, w)
        assert isinstance(await second.message(), Open)  # the second connection is served
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.extra is not None
        with pytest.raises(TimeoutError):
            held.append((await asyncio.wait_for(loop.sock_accept(listener), 1.0))[0])
        w.close()
    finally:
        for s in held:
            s.close()
        listener.close()
        await stop(a)


async def test_wrong_peer_as_is_an_open_error_for_the_peer() -> None:
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65099, 1, A_IP, passive=True))
        r, w = await asyncio.open_connection(A_IP, a.speaker.ports[0], local_addr=(B_IP, 0))
        ours = build_open(65002, "10.0.0.2", PeerSettings(address=A_IP, asn=65001))
        w.write(encode_message(ours, CodecContext()))
        raw = RawPeer(r, w)
        assert isinstance(await raw.message(), Open)
        note = await raw.message()
        assert note == Notification(2, 2)
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.last_error is not None
        assert (pa.last_error["code"], pa.last_error["subcode"], pa.last_error["direction"]) == (
            2,
            2,
            "sent",
        )
        w.close()
    finally:
        await stop(a)


async def test_a_passive_side_with_connect_delay_lets_the_active_side_connect_first() -> None:
    """Both sides add the pair at once (a reload on every node): the passive side's
    one dial waits, the active side's connection is the only one, nothing collides."""
    delayed = {"passive": True, "connect_on_start": True, "connect_delay": 1.0}
    a, b = await pair(b_kw=delayed)
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        await asyncio.sleep(1.5)  # past the delay: no dial of B's came after all
        pa, pb = a.speaker.peer(B_IP), b.speaker.peer(A_IP)
        assert pa is not None and pb is not None
        assert pa.established is not None and pb.established is not None
        assert pa.established.fsm.outgoing and not pb.established.fsm.outgoing
        assert pa.extra is None and pb.extra is None
        assert len(a.sink.ups) == 1 and len(b.sink.ups) == 1
        assert not a.sink.downs and not b.sink.downs
    finally:
        await stop(a, b)


async def test_a_refusal_is_forgotten_once_a_session_with_that_address_is_up() -> None:
    a = await make_node(65001, "10.0.0.1", A_IP)
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, connect_retry=0.2))
        await b.wait(lambda: a.speaker.refused_within(B_IP, 5.0))  # A has no peer B yet
        a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, passive=True))
        await a.wait(lambda: a.sink.ups and b.sink.ups, timeout=10)
        assert not a.speaker.refused_within(B_IP, 5.0)
    finally:
        await stop(a, b)


async def test_a_passive_side_with_connect_delay_still_dials_a_peer_that_does_not() -> None:
    delayed = {"passive": True, "connect_on_start": True, "connect_delay": 0.3}
    a, b = await pair(a_kw={"passive": True}, b_kw=delayed)
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pb = b.speaker.peer(A_IP)
        assert pb is not None and pb.established is not None and pb.established.fsm.outgoing
    finally:
        await stop(a, b)


async def test_connect_retry_reaches_a_late_listener() -> None:
    # Reserve a port, then start B on it only after A has been failing for a while.
    s = socket.socket()
    s.bind((B_IP, 0))
    port = s.getsockname()[1]
    s.close()
    a = await make_node(65001, "10.0.0.1", A_IP)
    try:
        a.speaker.add_peer(peer(B_IP, 65002, port, A_IP, connect_retry=0.2))
        await asyncio.sleep(0.8)
        assert not a.sink.ups
        b = await make_node(65002, "10.0.0.2", B_IP, port=port)
        try:
            b.speaker.add_peer(peer(A_IP, 65001, 1, B_IP, passive=True))
            await a.wait(lambda: a.sink.ups, timeout=15)
        finally:
            await stop(b)
    finally:
        await stop(a)


@pytest.mark.parametrize("family", [Family.IPV4_UNICAST])
async def test_route_refresh_round_trip(family: Family) -> None:
    a, b = await pair()
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.refresh(family)
        await b.wait(lambda: b.sink.refreshes)
        assert b.sink.refreshes == [(A_IP, family, 0)]
    finally:
        await stop(a, b)


async def test_established_state_enum_matches_stats() -> None:
    a, b = await pair()
    try:
        await a.wait(lambda: a.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.established is not None
        assert pa.established.fsm.state is State.ESTABLISHED
        assert [s["address"] for s in a.speaker.stats()] == [B_IP]
    finally:
        await stop(a, b)


async def test_dual_stack_listener_with_md5_for_an_ipv4_peer() -> None:
    """A lone "::" listener is dual-stack: the IPv4 peer's key is set IPv4-mapped."""
    a = await make_node(65001, "10.0.0.1", "::")
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        assert a.speaker._listeners[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        a.speaker.add_peer(peer(B_IP, 65002, 1, A_IP, passive=True, password="k3y"))
        b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, password="k3y"))
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.stats()["remote"].startswith(("::ffff:127.0.0.2", B_IP))
    finally:
        await stop(a, b)


async def test_configured_shutdown_message_is_the_default() -> None:
    a, b = await pair(a_kw={"shutdown_message": "configured goodbye"})
    try:
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.shutdown()
        await b.wait(lambda: b.sink.downs)
        assert "configured goodbye" in b.sink.downs[0][1].reason
    finally:
        await stop(a, b)
