"""Stops and resets over real loopback sockets: RFC 8538 on the wire, restart stops, no damping
for operator resets, session events in the log, and a stop that meets a reset connection."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time

import pytest

from bgp.errors import CeaseSubcode
from bgp.fsm import BgpFsm
from bgp.negotiate import build_open
from bgp.restart import StopKind
from bgp.session import Session
from bgp.settings import PeerSettings
from bgp.wire.context import CodecContext
from bgp.wire.messages import Notification, encode_message
from podbgp.logs import JsonFormatter

from .support import Node, make_node, peer

A_IP, B_IP = "127.0.0.1", "127.0.0.2"
GR = {"graceful_restart": True}


async def pair(a_kw: dict | None = None, b_kw: dict | None = None) -> tuple[Node, Node]:
    a = await make_node(65001, "10.0.0.1", A_IP)
    b = await make_node(65002, "10.0.0.2", B_IP)
    b_kw = GR if b_kw is None else b_kw
    a_kw = GR if a_kw is None else a_kw
    b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, passive=True, **b_kw))
    a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, **a_kw))
    await a.wait(lambda: a.sink.ups and b.sink.ups)
    return a, b


async def stop(*nodes: Node) -> None:
    for n in nodes:
        await n.speaker.stop()


@pytest.mark.parametrize(
    ("b_kw", "code", "subcode", "graceful"),
    [
        (GR, 6, CeaseSubcode.ADMINISTRATIVE_RESET, True),  # N both: soft Cease (RFC 8538)
        ({**GR, "graceful_notification": False}, 0, 0, True),  # GR, no N: no NOTIFICATION
        ({}, 6, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, False),  # no GR: Cease as ever
    ],
    ids=["n-bit", "gr-without-n", "no-gr"],
)
async def test_restart_stop_leaves_the_peer_our_routes_where_it_can(
    b_kw: dict, code: int, subcode: int, graceful: bool
) -> None:
    a, b = await pair(b_kw=b_kw)
    try:
        await a.speaker.stop("podbgp restarting", StopKind.RESTART)
        await b.wait(lambda: b.sink.downs)
        down = b.sink.downs[0][1]
        assert (down.code, down.subcode, down.graceful) == (code, subcode, graceful), down
        if code:
            assert down.message == "podbgp restarting"
    finally:
        await stop(b)


async def test_shutdown_stop_sends_a_hard_reset_with_n() -> None:
    a, b = await pair()
    try:
        await a.speaker.stop("decommissioned", StopKind.SHUTDOWN)
        await b.wait(lambda: b.sink.downs)
        down = b.sink.downs[0][1]
        assert (down.code, down.subcode, down.inner) == (6, 9, (6, 2))
        assert not down.graceful and down.message == "decommissioned"
    finally:
        await stop(b)


async def test_reset_of_a_young_session_is_back_at_once_and_not_a_flap() -> None:
    a, b = await pair()
    try:
        pa, pb = a.speaker.peer(B_IP), b.speaker.peer(A_IP)
        assert pa is not None and pb is not None
        for n in range(2, 5):  # the old code damped the 2nd reset by 10 s, the 3rd by 32 s
            t0 = time.monotonic()
            pa.reset("clear", by="test")
            assert pa.expected_back() == 0.0
            await a.wait(lambda n=n: len(a.sink.ups) == n and len(b.sink.ups) == n, timeout=10)
            assert time.monotonic() - t0 < 2.0
        assert pa.flaps == 0  # an operator's reset is not a flap on our side
        assert all(d.graceful for _, d in a.sink.downs + b.sink.downs)  # soft: routes kept
    finally:
        await stop(a, b)


async def test_hard_reset_flushes_on_both_ends() -> None:
    a, b = await pair()
    try:
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.reset("flush", hard=True, by="test")
        await a.wait(lambda: len(a.sink.ups) == 2 and len(b.sink.ups) == 2, timeout=10)
        ours, theirs = a.sink.downs[0][1], b.sink.downs[0][1]
        assert (ours.code, ours.subcode, ours.inner) == (6, 9, (6, 4))
        assert not ours.graceful and not theirs.graceful
        pb = b.speaker.peer(A_IP)
        assert pb is not None and pb.last_error is not None and pa.last_error is not None
        assert pb.last_error["notification"] == pa.last_error["notification"] == "Cease/Hard Reset"
        assert pb.last_error["inner_notification"] == "Cease/Administrative Reset"
        assert pb.last_error["reason"] == pa.last_error["reason"]
        assert (pa.last_error["direction"], pb.last_error["direction"]) == ("sent", "received")
    finally:
        await stop(a, b)


async def test_bring_down_is_a_flap_and_reconnects() -> None:
    a, b = await pair()
    try:
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.bring_down("BFD session down")
        await b.wait(lambda: b.sink.downs)
        assert (b.sink.downs[0][1].code, b.sink.downs[0][1].subcode) == (6, 10)
        assert pa.flaps == 1
        await a.wait(lambda: len(a.sink.ups) == 2, timeout=15)
    finally:
        await stop(a, b)


async def test_session_events_are_logged_with_names_and_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bgp.speaker")
    a, b = await pair()
    try:
        pa = a.speaker.peer(B_IP)
        assert pa is not None
        pa.shutdown("maintenance window, back at 3", by="control API")
        await b.wait(lambda: b.sink.downs)
    finally:
        await stop(a, b)
    lines = [r.getMessage() for r in caplog.records]
    assert any(ln.startswith(f"{B_IP}: session Established (AS 65002") for ln in lines), lines
    assert f"{B_IP}: shutdown by control API: 'maintenance window, back at 3'" in lines
    sent = (
        f"{B_IP}: session down: NOTIFICATION sent Cease/Hard Reset "
        "(Cease/Administrative Shutdown): 'maintenance window, back at 3'"
    )
    received = sent.replace(B_IP, A_IP).replace("sent", "received")
    assert sent in lines and received in lines, lines
    rec = next(r for r in caplog.records if r.getMessage() == received)
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["peer"] == A_IP and doc["event"] == "down" and doc["direction"] == "received"
    assert (doc["code"], doc["subcode"], doc["inner_code"], doc["inner_subcode"]) == (6, 9, 6, 2)
    assert doc["shutdown_message"] == "maintenance window, back at 3"
    assert doc["level"] == "info"


async def test_stop_after_the_peer_reset_the_connection_raises_nothing() -> None:
    """Issue 12 item 9: write_eof() on a connection the peer has just reset (ENOTCONN)."""
    loop = asyncio.get_running_loop()
    server = socket.socket()
    server.bind((A_IP, 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    accepted.setblocking(False)
    fsm = BgpFsm(65001, "10.0.0.1", PeerSettings(address=A_IP, asn=65002, passive=True))

    class Owner:
        def fsm_event(self, session: Session, event: object) -> None: ...

        def updates(self, session: Session, updates: object) -> None: ...

        def dial_socket(self, session: Session) -> tuple[socket.socket, tuple[str, int]]:
            raise OSError("no dialling here")

    session = Session(fsm, Owner())
    fsm.start(loop.time(), passive=True)
    await session.attach(accepted)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST
    time.sleep(0.2)  # the RST arrives while the loop is busy: no connection_lost yet
    session.close("restarting")  # nothing to flush, so write_eof() -> shutdown(): ENOTCONN
    session.discard()
    await asyncio.sleep(0.1)
    server.close()


async def test_a_crossing_dial_dumped_by_the_peer_does_not_end_our_session() -> None:
    """After a restart both sides dial; the peer's dial that was already under way when our
    session came up arrives with an OPEN (graceful restart) and is then closed by the peer
    itself with Cease 7 (RFC 4271 §6.8). That is no restart of the peer (RFC 4724 §4.2):
    the session we have stays up, and its routes are never marked stale."""
    a, b = await pair()
    try:
        loop = asyncio.get_running_loop()
        ours = build_open(65002, "10.0.0.2", PeerSettings(A_IP, 65001, graceful_restart=True))
        raw = socket.socket()
        raw.bind((B_IP, 0))
        raw.setblocking(False)
        await loop.sock_connect(raw, (A_IP, a.speaker.ports[0]))
        await loop.sock_sendall(raw, encode_message(ours, CodecContext()))
        got = b""
        while len(got) < 19 + 19:  # A's OPEN and, in OpenConfirm, its KEEPALIVE
            chunk = await asyncio.wait_for(loop.sock_recv(raw, 4096), 5)
            assert chunk, "A closed the crossing connection at once"
            got += chunk
        cease7 = Notification(6, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        await loop.sock_sendall(raw, encode_message(cease7, CodecContext()))
        raw.close()
        await asyncio.sleep(0.5)
        assert not a.sink.downs, a.sink.downs
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.established is not None and pa.extra is None
    finally:
        await stop(a, b)


@pytest.mark.parametrize("attempt", range(3))
async def test_crossing_dials_with_graceful_restart_end_in_one_session_without_a_flap(
    attempt: int,
) -> None:
    """Both sides dial at once, both with graceful restart: a dial that crosses the other's
    session coming up must not be taken for a restart of the peer (which cost both
    connections before): one session, up once on each side, never down."""
    a = await make_node(65001, "10.0.0.1", A_IP)
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, **GR))
        a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, **GR))
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        await asyncio.sleep(1.0)  # any second connection is settled by now
        assert (len(a.sink.ups), len(b.sink.ups)) == (1, 1)
        assert not a.sink.downs and not b.sink.downs
    finally:
        await stop(a, b)
