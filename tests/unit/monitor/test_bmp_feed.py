"""podbgp.bmp.BmpFeed with a real RIB and a real station connection (a loopback
listener), the BMP stream split by its common header: Peer Up with both OPENs,
pre-policy Route Monitoring as received, post-policy as the RIB holds it (a route the
import policy rejects is a withdrawal, and counted), a station that connects later gets
the RFC 7854 §5 opening, Peer Down carries the NOTIFICATION. And the Peer Down reasons
as a table."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address

from bmplisten import Listener, until
from ribkit import V4, attrs, key, make_rib

from bgp.errors import CeaseSubcode, ErrorCode
from bgp.events import SessionDown
from bgp.monitor.bmp import MessageType, PeerDownReason, PeerFlag
from bgp.negotiate import Negotiated
from bgp.wire.capabilities import FourOctetAsCapability
from bgp.wire.context import CodecContext
from bgp.wire.messages import Notification, Open, encode_message, encode_open
from bgp.wire.update import Update, decode_update, encode_announce
from podbgp.bmp import BmpFeed, _down_reason
from podbgp.config import BMPStation, RouteMonitoring
from rib.adapter import PeerHandles, RibAdapter
from rib.policy import Policy
from rib.settings import PeerPolicy

PEER = "192.0.2.9"
CTX = CodecContext(as4=True, ebgp=True, local_as=65000, peer_as=65009)


@dataclass
class Handle:
    key: str
    prefixes_in: int = 0
    prefixes_out: int = 0
    local_address: IPv4Address | None = None

    def wake(self) -> None:
        pass


def _neg() -> Negotiated:
    ours = Open.build(65000, 90, "10.0.0.1", (FourOctetAsCapability(65000),))
    theirs = Open.build(65009, 90, "10.0.0.9", (FourOctetAsCapability(65009),))
    return Negotiated(
        peer_as=65009, peer_router_id=IPv4Address("10.0.0.9"), hold_time=90, keepalive=30,
        families=frozenset({V4}), ctx=CTX, route_refresh=True, enhanced_route_refresh=False,
        peer_restart=None, add_path_rx=frozenset(), add_path_tx=frozenset(),
        sent_open=ours, received_open=theirs,
    )  # fmt: skip


def _messages(data: bytes) -> list[tuple[MessageType, bytes]]:
    """(type, body) of each whole BMP message (RFC 7854 §4.1 common header)."""
    out, i = [], 0
    while i + 6 <= len(data):
        version, length, mtype = struct.unpack_from("!BIB", data, i)
        assert version == 3
        if i + length > len(data):
            break
        out.append((MessageType(mtype), data[i + 6 : i + length]))
        i += length
    return out


def _routes(msgs: list[tuple[MessageType, bytes]], post: bool) -> list[Update]:
    """The UPDATEs of Route Monitoring messages with (or without) the L flag."""
    return [
        decode_update(body[42:], CTX)
        for t, body in msgs
        if t is MessageType.ROUTE_MONITORING and bool(body[1] & PeerFlag.POST_POLICY) == post
    ]


async def test_feed_over_a_real_connection() -> None:
    reject = Policy.from_data({"name": "no-2", "default_action": "accept",
                               "rule": [{"match": {"prefix": "10.2.0.0/24"}, "action": "reject"}]})  # fmt: skip
    handles = PeerHandles()
    rib = make_rib(handles)
    adapter = RibAdapter(rib, handles)
    rib.add_peer(PeerPolicy(ip_address(PEER), 65009, import_policy=reject))
    listener = Listener()
    await listener.start()
    feed = BmpFeed(rib, [BMPStation(ip_address("127.0.0.1"), listener.port, RouteMonitoring.BOTH,
                                    statistics_interval=0)], "n1", "podbgp test")  # fmt: skip
    feed.start()
    h = Handle(PEER)
    try:
        await until(lambda: feed.targets[0].conn.open)
        neg = _neg()
        adapter.peer_up(h, neg)
        feed.peer_up(h, neg)
        blob = encode_announce(attrs((65009,), "192.0.2.9"), V4, [key("10.1.0.0/24"),
                               key("10.2.0.0/24")], CTX)[0]  # fmt: skip
        updates = [decode_update(blob, CTX)]
        adapter.updates_received(h, updates)
        feed.updates_received(h, updates)
        await until(lambda: len(_routes(_messages(bytes(listener.conns[0])), True)) >= 2)
        msgs = _messages(bytes(listener.conns[0]))
        assert [t for t, _ in msgs][:2] == [MessageType.INITIATION, MessageType.PEER_UP]
        up = msgs[1][1]
        assert up[42 + 20 :].startswith(encode_open(neg.sent_open))  # type: ignore[arg-type]
        assert up.endswith(encode_open(neg.received_open))  # type: ignore[arg-type]
        (pre,) = _routes(msgs, False)
        assert sorted(map(str, pre.announced)) == ["10.1.0.0/24", "10.2.0.0/24"]
        post = _routes(msgs, True)
        assert [str(p) for u in post for p in u.announced] == ["10.1.0.0/24"]
        assert [str(p) for u in post for p in u.withdrawn] == ["10.2.0.0/24"]
        assert feed.sessions[PEER].rejected == 1
        # A second station connecting now gets the opening: Initiation, Peer Up, the
        # table (after policy: nothing was kept before it) and End-of-RIB.
        late = Listener()
        await late.start()
        feed2 = BmpFeed(rib, [BMPStation(ip_address("127.0.0.1"), late.port,
                                         RouteMonitoring.PRE_POLICY, statistics_interval=0)],
                        "n1", "podbgp test")  # fmt: skip
        feed2.sessions = feed.sessions
        feed2.start()
        await until(lambda: len(_messages(bytes(late.conns[0]) if late.conns else b"")) >= 4)
        msgs2 = _messages(bytes(late.conns[0]))
        assert [t for t, _ in msgs2] == [MessageType.INITIATION, MessageType.PEER_UP,
                                         MessageType.ROUTE_MONITORING,
                                         MessageType.ROUTE_MONITORING]  # fmt: skip
        table, eor = _routes(msgs2, True)
        assert [str(p) for p in table.announced] == ["10.1.0.0/24"]
        assert eor.end_of_rib is V4
        await feed2.stop()
        await late.close()
        # The session ends with a NOTIFICATION we received: Peer Down, reason 3, with it.
        down = SessionDown(ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_RESET, "reset",
                           sent=False, was_established=True)  # fmt: skip
        adapter.peer_down(h, down)
        feed.peer_down(h, down)
        await until(lambda: _messages(bytes(listener.conns[0]))[-1][0] is MessageType.PEER_DOWN)
        body = _messages(bytes(listener.conns[0]))[-1][1]
        assert body[42] == PeerDownReason.REMOTE_NOTIFICATION
        assert body[43:] == encode_message(Notification(6, 4), CodecContext())
    finally:
        await feed.stop()
        await listener.close()
    assert _messages(bytes(listener.conns[0]))[-1][0] is MessageType.TERMINATION


def test_peer_down_reasons() -> None:
    def down(**kw: object) -> tuple[PeerDownReason, bytes]:
        args = {"code": 0, "subcode": 0, "reason": "", "sent": None, "was_established": True}
        return _down_reason(SessionDown(**{**args, **kw}))  # type: ignore[arg-type]

    # A NOTIFICATION we sent, with its RFC 9003 shutdown communication.
    why, note = down(code=6, subcode=2, sent=True, message="maintenance")
    assert why is PeerDownReason.LOCAL_NOTIFICATION
    assert note == encode_message(Notification.shutdown("maintenance"), CodecContext())
    # A Hard Reset carries the inner code and subcode (RFC 8538 §3).
    why, note = down(code=6, subcode=9, sent=False, inner=(4, 0))
    assert why is PeerDownReason.REMOTE_NOTIFICATION and note.endswith(b"\x06\x09\x04\x00")
    # No NOTIFICATION: our own stop, or the peer closed the connection.
    assert down(operator=True) == (PeerDownReason.LOCAL_NO_NOTIFICATION, b"")
    assert down() == (PeerDownReason.REMOTE_NO_NOTIFICATION, b"")


def test_no_route_monitoring_without_a_session() -> None:
    """UPDATEs of a session the feed never saw come up are not reported (no Peer Up
    before them, RFC 7854 §4.6)."""
    feed = BmpFeed(make_rib(), [], "n1", "d")
    feed.updates_received(Handle(PEER), [Update()])
    assert feed.sessions == {}
    asyncio.run(feed.stop())
