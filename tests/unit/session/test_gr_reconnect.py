"""RFC 4724 §4.2 on loopback: a restarted peer re-peers at once, its routes kept stale meanwhile.

Speaker A "crashes" without a word — its sockets stay open but silent, as
when a host loses power, so B's old session stays Established — and a new
speaker with A's identity connects. With graceful restart on both sides B
ends the old session as a TCP loss (no NOTIFICATION, routes kept stale) and
goes on with the new connection; without it B refuses the newcomer with
Cease 7 (RFC 4271 §6.8) as before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bgp.errors import CeaseSubcode
from bgp.events import PeerHandle, SessionDown
from bgp.negotiate import Negotiated, build_open
from bgp.settings import PeerSettings
from bgp.speaker import Speaker
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.messages import Keepalive, Notification, Open, decode_message, encode_message
from bgp.wire.update import Update

from .support import Node, Sink, announce, make_node, peer

A_IP, B_IP = "127.0.0.1", "127.0.0.2"
HOLD = 60  # long: re-peering must not wait for it


@dataclass
class GrSink(Sink):
    """The RIB's graceful-restart helper duty, reduced to one table of prefixes.

    A session that ends without a NOTIFICATION (``code == 0``) from a peer
    that negotiated graceful restart keeps its routes, marked stale; routes
    sent again are fresh; End-of-RIB sweeps what is still stale. Any other
    end flushes the table. ``at_up`` snapshots (table, stale) at each peer_up.
    """

    table: dict[str, object] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)
    gr: bool = False
    at_up: list[tuple[set[str], set[str]]] = field(default_factory=list)

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        self.gr = negotiated.peer_restart is not None
        self.at_up.append((set(self.table), set(self.stale)))
        super().peer_up(peer, negotiated)

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        for u in updates:
            for p in u.withdrawn:
                self.table.pop(str(p), None)
                self.stale.discard(str(p))
            for p in u.announced:
                self.table[str(p)] = u.attrs
                self.stale.discard(str(p))
        super().updates_received(peer, updates)

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        v6 = family is Family.IPV6_UNICAST
        for p in [p for p in self.stale if (":" in p) == v6]:
            self.stale.discard(p)
            del self.table[p]
        super().end_of_rib(peer, family)

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        if reason.code == 0 and self.gr:
            self.stale |= set(self.table)
        else:
            self.table.clear()
            self.stale.clear()
        super().peer_down(peer, reason)


def crash(node: Node) -> list[asyncio.Transport]:
    """Silence a speaker at once: no NOTIFICATION, no FIN, no more reads or timers.

    Returns the still-open transports so the test can reset them at the end.
    """
    held: list[asyncio.Transport] = []
    sp = node.speaker
    for task in sp._tasks:
        task.cancel()
    for sock in sp._listeners:
        sock.close()
    for p in sp.peers.values():
        for s in p._sessions():
            s.discarded = True
            if s._timer is not None:
                s._timer.cancel()
            link, s._link = s._link, None
            if link is not None and link.transport is not None:
                link.transport.pause_reading()
                held.append(link.transport)
    return held


async def restart_scenario(gr: bool) -> tuple[Node, Node, Node, list[asyncio.Transport]]:
    """A (routes 10.1/16, 10.2/16) peers with B; A crashes; A2 (only 10.1/16) comes up."""
    routes = announce("10.1.0.0/16", (65001,), "192.0.2.1") + announce(
        "10.2.0.0/16", (65001,), "192.0.2.1"
    )
    b = await make_node(65002, "10.0.0.2", B_IP)
    b.sink = GrSink()
    b.speaker.sink = b.sink
    a = await make_node(65001, "10.0.0.1", A_IP, initial=routes)
    opts = {"hold_time": HOLD, "graceful_restart": gr, "families": (Family.IPV4_UNICAST,)}
    b.speaker.add_peer(peer(A_IP, 65001, 1, B_IP, passive=True, **opts))
    a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, **opts))
    await b.wait(lambda: b.sink.eors and len(b.sink.announced()) == 2)
    held = crash(a)
    a2 = await make_node(
        65001, "10.0.0.1", A_IP, initial=announce("10.1.0.0/16", (65001,), "192.0.2.1")
    )
    a2.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, **opts))
    return a, a2, b, held


async def finish(held: list[asyncio.Transport], *nodes: Node) -> None:
    for t in held:
        t.abort()
    for n in nodes:
        await n.speaker.stop()


def _session(sp: Speaker, addr: str) -> object:
    p = sp.peer(addr)
    assert p is not None
    return p.established


async def test_restarted_peer_with_graceful_restart_repeers_at_once() -> None:
    a, a2, b, held = await restart_scenario(gr=True)
    sink = b.sink
    assert isinstance(sink, GrSink)
    try:
        old = _session(b.speaker, A_IP)
        t0 = asyncio.get_running_loop().time()
        await b.wait(lambda: len(sink.ups) == 2 and len(sink.eors) == 2, timeout=10)
        took = asyncio.get_running_loop().time() - t0
        assert took < HOLD / 4  # at once, not at hold expiry
        # The old session ended like a TCP loss: no NOTIFICATION either way.
        assert len(sink.downs) == 1
        down = sink.downs[0][1]
        assert (down.code, down.subcode, down.sent, down.was_established) == (0, 0, None, True)
        assert "restarted" in down.reason
        assert not a2.sink.downs  # the newcomer was not refused
        # When the new session came up both routes were still there, stale.
        assert sink.at_up[1] == ({"10.1.0.0/16", "10.2.0.0/16"}, {"10.1.0.0/16", "10.2.0.0/16"})
        # A2's routes refreshed 10.1/16; its End-of-RIB swept 10.2/16.
        assert set(sink.table) == {"10.1.0.0/16"} and not sink.stale
        pb = b.speaker.peer(A_IP)
        assert pb is not None and pb.extra is None and pb.main is pb.established
        assert pb.established is not old and pb.stats()["state"] == "established"
        assert pb.flaps == 1 and pb.last_error is not None and pb.last_error["code"] == 0
        assert _session(a2.speaker, B_IP) is not None
    finally:
        await finish(held, a, a2, b)


async def test_without_graceful_restart_the_newcomer_gets_cease_7() -> None:
    a, a2, b, held = await restart_scenario(gr=False)
    sink = b.sink
    assert isinstance(sink, GrSink)
    try:
        old = _session(b.speaker, A_IP)
        await a2.wait(lambda: a2.speaker.peers[B_IP].counters.msgs_in["notification"] >= 2)
        # Refused on its OPEN, before any KEEPALIVE: it never came up, not even briefly.
        assert not a2.sink.ups and a2.speaker.peers[B_IP].counters.msgs_in["keepalive"] == 0
        # B keeps the old session (it has no reason to think A is gone) and its routes.
        assert _session(b.speaker, A_IP) is old and not sink.downs
        assert set(sink.table) == {"10.1.0.0/16", "10.2.0.0/16"}
    finally:
        await finish(held, a, a2, b)


async def test_refusal_is_open_then_cease_7_without_keepalive() -> None:
    """The newcomer's OPEN and KEEPALIVE in one segment: B answers OPEN, then Cease 7."""
    a, a2, b, held = await restart_scenario(gr=False)
    await a2.speaker.stop()
    try:
        r, w = await asyncio.open_connection(B_IP, b.speaker.ports[0], local_addr=(A_IP, 0))
        ours = build_open(65001, "10.0.0.1", PeerSettings(address=B_IP, asn=65002, hold_time=HOLD))
        ctx = CodecContext()
        w.write(encode_message(ours, ctx) + encode_message(Keepalive(), ctx))
        got = []
        while not got or not isinstance(got[-1], Notification):
            head = await asyncio.wait_for(r.readexactly(19), 5)
            body = await r.readexactly(int.from_bytes(head[16:18], "big") - 19)
            got.append(decode_message(head + body, ctx))
        assert [type(m) for m in got] == [Open, Notification]
        assert got[-1] == Notification(6, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        w.close()
    finally:
        await finish(held, a, b)
