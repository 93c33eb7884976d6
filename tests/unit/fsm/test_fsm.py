"""The sans-IO FSM with a fake clock: establishment, timers, errors, shutdown, collisions."""

from __future__ import annotations

from ipaddress import ip_address

from bgp.errors import CeaseSubcode, ErrorCode, FsmSubcode, OpenSubcode
from bgp.events import (
    ConnectRequested,
    DisconnectRequested,
    EndOfRib,
    OpenReceived,
    RouteRefreshReceived,
    SessionDown,
    SessionEstablished,
    UpdatesReceived,
)
from bgp.fsm import BgpFsm, Counters, State, Timer, keep_outgoing
from bgp.wire.constants import Family, RouteRefreshSubtype
from bgp.wire.context import CodecContext
from bgp.wire.messages import Keepalive, Notification, decode_message, encode_message
from bgp.wire.update import encode_end_of_rib

from .helpers import Pair, settings

KEEPALIVE = encode_message(Keepalive(), CodecContext())


def _down(side_events: list[object]) -> SessionDown:
    downs = [e for e in side_events if isinstance(e, SessionDown)]
    assert downs, "no SessionDown"
    return downs[-1]


def test_active_start_requests_a_connection_and_arms_connect_retry() -> None:
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002, connect_retry=5.0))
    fsm.start(100.0)
    assert fsm.state is State.CONNECT
    assert isinstance(fsm.next_event(), ConnectRequested)
    assert fsm.get_timer() == 105.0


def test_passive_start_waits_in_active_without_dialling() -> None:
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002, passive=True))
    fsm.start(100.0)
    assert fsm.state is State.ACTIVE
    assert fsm.next_event() is None
    assert fsm.get_timer() is None


def test_connect_retry_backs_off_and_redials() -> None:
    fsm = BgpFsm(
        65001, "10.0.0.1", settings("10.0.0.2", 65002, connect_retry=2.0, connect_retry_max=10.0)
    )
    fsm.start(0.0)
    fsm.next_event()
    deadlines = []
    now = 0.0
    for _ in range(5):
        deadline = fsm.get_timer()
        assert deadline is not None
        deadlines.append(deadline - now)
        now = deadline
        fsm.handle_timer(now)
        assert isinstance(fsm.next_event(), ConnectRequested)
        assert fsm.state is State.CONNECT
    assert deadlines == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_failed_connect_goes_active_then_redials_at_connect_retry() -> None:
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002, connect_retry=3.0))
    fsm.start(0.0)
    fsm.next_event()
    fsm.connection_lost(0.5, "refused")
    assert fsm.state is State.ACTIVE
    down = fsm.next_event()
    assert isinstance(down, SessionDown) and down.sent is None and not down.was_established
    deadline = fsm.get_timer()
    assert deadline is not None
    fsm.handle_timer(deadline)
    assert fsm.state is State.CONNECT
    assert isinstance(fsm.next_event(), ConnectRequested)


def test_two_fsms_reach_established_and_negotiate() -> None:
    p = Pair()
    p.connect()
    assert p.a.fsm.state is State.ESTABLISHED
    assert p.b.fsm.state is State.ESTABLISHED
    est = p.a.of(SessionEstablished)[0]
    assert isinstance(est, SessionEstablished)
    neg = est.negotiated
    assert neg.peer_as == 65002 and est.peer_router_id == "10.0.0.2"
    assert neg.hold_time == 9 and neg.keepalive == 3
    assert neg.families == {Family.IPV4_UNICAST, Family.IPV6_UNICAST}
    assert neg.ctx.as4 and neg.ctx.ebgp and neg.ctx.extended_message
    assert neg.route_refresh and neg.enhanced_route_refresh
    assert p.a.fsm.counters.msgs_out["open"] == 1
    assert p.a.fsm.counters.msgs_in["keepalive"] == 1
    opens = p.b.of(OpenReceived)
    assert opens == [OpenReceived(int.from_bytes(bytes([10, 0, 0, 1]), "big"), 65001)]


def test_hold_time_is_the_smaller_one_and_keepalive_a_third() -> None:
    p = Pair(
        a=settings("10.0.0.2", 65002, hold_time=30),
        b=settings("10.0.0.1", 65001, hold_time=12, passive=True),
    )
    p.connect()
    assert p.a.fsm.negotiated is not None
    assert (p.a.fsm.negotiated.hold_time, p.a.fsm.negotiated.keepalive) == (12, 4)


def test_configured_keepalive_below_a_third_is_used() -> None:
    p = Pair(a=settings("10.0.0.2", 65002, hold_time=30, keepalive=2))
    p.connect()
    assert p.a.fsm.negotiated is not None and p.a.fsm.negotiated.keepalive == 2


def test_hold_time_zero_sends_no_keepalives_and_never_expires() -> None:
    p = Pair(
        a=settings("10.0.0.2", 65002, hold_time=0),
        b=settings("10.0.0.1", 65001, hold_time=0, passive=True),
    )
    p.connect()
    assert p.a.fsm.state is State.ESTABLISHED
    before = p.a.fsm.counters.msgs_out["keepalive"]
    assert p.a.fsm.get_timer() is None
    p.advance(1000, step=100)
    assert p.a.fsm.state is State.ESTABLISHED
    assert p.a.fsm.counters.msgs_out["keepalive"] == before


def test_keepalive_cadence_keeps_session_up() -> None:
    p = Pair()
    p.connect()
    before = p.a.fsm.counters.msgs_out["keepalive"]
    p.advance(30)
    assert p.a.fsm.state is State.ESTABLISHED and p.b.fsm.state is State.ESTABLISHED
    assert p.a.fsm.counters.msgs_out["keepalive"] - before == 10  # every 3 s for 30 s


def test_update_sent_restarts_keepalive_timer() -> None:
    p = Pair()
    p.connect()
    fsm = p.a.fsm
    first = fsm.deadline(Timer.KEEPALIVE)
    assert fsm.send_update_bytes(encode_end_of_rib(Family.IPV4_UNICAST), p.now + 2)
    assert fsm.deadline(Timer.KEEPALIVE) == p.now + 2 + 3 != first


def test_hold_timer_expiry_sends_code_4_and_goes_idle() -> None:
    p = Pair()
    p.connect()
    fsm = p.a.fsm
    # B falls silent: only A's clock runs.
    deadline = fsm.deadline(Timer.HOLD)
    assert deadline == p.now + 9
    fsm.handle_timer(deadline - 0.01)
    assert fsm.state is State.ESTABLISHED
    fsm.data_to_send()
    fsm.handle_timer(deadline)
    assert fsm.state is State.IDLE
    note = decode_message(fsm.data_to_send(), CodecContext())
    assert note == Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0)
    p.a.drain()
    down = _down(p.a.events)
    assert (down.code, down.sent, down.was_established) == (4, True, True)
    assert DisconnectRequested() in p.a.events


def test_received_keepalive_restarts_hold_timer() -> None:
    p = Pair()
    p.connect()
    fsm = p.a.fsm
    fsm.receive_data(KEEPALIVE, p.now + 8)
    assert fsm.deadline(Timer.HOLD) == p.now + 8 + 9


def test_hold_timer_in_opensent_is_large() -> None:
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002))
    fsm.start(0.0)
    fsm.connection_made(0.0, outgoing=True)
    assert fsm.state is State.OPEN_SENT
    assert fsm.deadline(Timer.HOLD) == 240.0


def test_updates_eor_and_route_refresh_are_reported() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.send_update_bytes(encode_end_of_rib(Family.IPV6_UNICAST), p.now)
    p.a.fsm.send_route_refresh(Family.IPV4_UNICAST, RouteRefreshSubtype.NORMAL, p.now)
    p.pump()
    assert p.b.of(EndOfRib) == [EndOfRib(Family.IPV6_UNICAST)]
    assert p.b.of(RouteRefreshReceived) == [RouteRefreshReceived(Family.IPV4_UNICAST, 0)]
    assert p.b.fsm.counters.msgs_in["update"] == 1
    assert p.b.fsm.counters.msgs_in["route_refresh"] == 1


def test_updates_are_decoded_with_the_negotiated_context() -> None:
    from bgp.wire.attributes import PathAttributes
    from bgp.wire.prefix import Prefix
    from bgp.wire.update import encode_announce

    p = Pair()
    p.connect()
    ctx = p.a.fsm.ctx
    assert ctx.as4
    attrs = PathAttributes(origin=0, as_path=((2, (65001, 4200000000)),), next_hop=None)
    blob = b"".join(
        encode_announce(
            attrs.with_next_hop(Family.IPV4_UNICAST, ip_address("10.0.0.1")),
            Family.IPV4_UNICAST,
            [Prefix.from_str("10.1.0.0/16").nlri()],
            ctx,
        )
    )
    p.a.fsm.send_update_bytes(blob, p.now)
    p.pump()
    ups = p.b.of(UpdatesReceived)
    assert len(ups) == 1
    assert len(ups[0].updates) == 1  # type: ignore[union-attr]
    upd = ups[0].updates[0]  # type: ignore[union-attr]
    assert [str(x) for x in upd.announced] == ["10.1.0.0/16"]
    assert upd.attrs.as_path == ((2, (65001, 4200000000)),)


def test_admin_shutdown_carries_rfc9003_message() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.stop(p.now, "maintenance window")
    assert p.a.fsm.state is State.IDLE
    assert p.a.fsm.get_timer() is None  # no automatic restart after a shutdown
    p.pump()
    down = _down(p.b.events)
    assert (down.code, down.subcode, down.sent) == (6, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, False)
    assert "maintenance window" in down.reason
    assert p.b.fsm.state is State.IDLE


def test_admin_reset_restarts_after_idle_hold() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.stop(p.now, "reset", subcode=CeaseSubcode.ADMINISTRATIVE_RESET, restart=True)
    assert p.a.fsm.state is State.IDLE and p.a.fsm.deadline(Timer.IDLE_HOLD) is not None
    p.a.events.clear()
    p.advance(2)
    assert p.a.fsm.state is State.CONNECT
    assert ConnectRequested() in p.a.events


def test_long_shutdown_message_is_cut_to_255_octets() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.stop(p.now, "é" * 200)
    raw = p.a.fsm.data_to_send()
    note = decode_message(raw, CodecContext())
    assert isinstance(note, Notification)
    assert note.data[0] <= 255 and note.shutdown_message == "é" * 127


def test_open_errors() -> None:
    cases = [
        # (A's view of B: settings, B's AS, B's id) -> subcode A sends
        (settings("10.0.0.2", 65099), 65002, "10.0.0.2", OpenSubcode.BAD_PEER_AS),
        (settings("10.0.0.2", 65001), 65001, "10.0.0.1", OpenSubcode.BAD_BGP_IDENTIFIER),
        (settings("10.0.0.2", 65002, families=(Family.IPV6_UNICAST,)), 65002, "10.0.0.2", None),
    ]
    for a_settings, b_as, b_id, expected in cases:
        b = settings("10.0.0.1", 65001, passive=True, families=(Family.IPV4_UNICAST,))
        p = Pair(a=a_settings, b=b, b_as=b_as, b_id=b_id)
        p.connect()
        assert p.a.fsm.state is State.IDLE
        down = _down(p.a.events)
        assert down.code == ErrorCode.OPEN_MESSAGE and down.sent is True
        assert down.subcode == (expected or OpenSubcode.UNSUPPORTED_CAPABILITY)
        peer_down = _down(p.b.events)
        # B hears the error (or, for a shared identifier, finds the same fault itself).
        assert (peer_down.code, peer_down.subcode) == (2, down.subcode)
        assert p.b.fsm.state is State.IDLE


def test_open_with_4_octet_as_and_as_trans() -> None:
    p = Pair(a=settings("10.0.0.2", 4200000002), b_as=4200000002)
    p.connect()
    assert p.a.fsm.state is State.ESTABLISHED
    assert p.a.fsm.negotiated is not None and p.a.fsm.negotiated.peer_as == 4200000002


def test_open_version_hold_and_identifier_errors_from_raw_bytes() -> None:
    import struct

    def raw_open(version: int, asn: int, hold: int, rid: bytes) -> bytes:
        body = struct.pack("!BHH", version, asn, hold) + rid + b"\x00"
        return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body

    for raw, subcode in [
        (raw_open(3, 65002, 9, bytes([10, 0, 0, 2])), OpenSubcode.UNSUPPORTED_VERSION_NUMBER),
        (raw_open(4, 65002, 2, bytes([10, 0, 0, 2])), OpenSubcode.UNACCEPTABLE_HOLD_TIME),
        (raw_open(4, 65002, 9, bytes(4)), OpenSubcode.BAD_BGP_IDENTIFIER),
        (raw_open(4, 65002, 9, bytes([10, 0, 0, 2]))[:-1] + b"\x04\x07\x02abcde"[:1], None),
    ]:
        fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002))
        fsm.start(0.0)
        fsm.connection_made(0.0, outgoing=True)
        fsm.data_to_send()
        if subcode is None:
            # optional parameter type 7 (not capabilities)
            body = struct.pack("!BHH", 4, 65002, 9) + bytes([10, 0, 0, 2]) + b"\x03\x07\x01\x00"
            raw = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body
            subcode = OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER
        fsm.receive_data(raw, 0.1)
        assert fsm.state is State.IDLE
        note = decode_message(fsm.data_to_send(), CodecContext())
        assert isinstance(note, Notification)
        assert (note.code, note.subcode) == (ErrorCode.OPEN_MESSAGE, subcode)


def test_unexpected_message_is_fsm_error_with_rfc6608_subcode() -> None:
    # A KEEPALIVE while in OpenSent (before the peer's OPEN) is unexpected.
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002))
    fsm.start(0.0)
    fsm.connection_made(0.0, outgoing=True)
    fsm.data_to_send()
    fsm.receive_data(KEEPALIVE, 0.1)
    note = decode_message(fsm.data_to_send(), CodecContext())
    assert note == Notification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT)
    assert fsm.state is State.IDLE


def test_second_open_in_established_is_fsm_error() -> None:
    p = Pair()
    p.connect()
    from bgp.negotiate import build_open

    raw = encode_message(build_open(65002, "10.0.0.2", settings("10.0.0.1", 65001)), CodecContext())
    p.a.fsm.receive_data(raw, p.now)
    note = decode_message(p.a.fsm.data_to_send(), CodecContext())
    assert note == Notification(ErrorCode.FSM, FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED)


def test_header_error_is_reported_as_message_header_error() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.receive_data(b"\x00" * 19, p.now)
    note = decode_message(p.a.fsm.data_to_send(), CodecContext())
    assert isinstance(note, Notification) and (note.code, note.subcode) == (1, 1)


def test_tcp_loss_in_established_reports_peer_down_and_idle_hold() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.connection_lost(p.now, "reset by peer")
    down = _down(p.a.drain())
    assert down.was_established and down.sent is None
    assert p.a.fsm.state is State.IDLE and p.a.fsm.deadline(Timer.IDLE_HOLD) is not None


def test_flapping_session_backs_off_idle_hold() -> None:
    fsm = BgpFsm(
        65001, "10.0.0.1", settings("10.0.0.2", 65002, connect_retry=1.0, connect_retry_max=8.0)
    )
    now = 0.0
    delays = []
    for _ in range(4):
        fsm.start(now)
        fsm.connection_made(now, outgoing=True)
        fsm.connection_lost(now, "flap")
        deadline = fsm.deadline(Timer.IDLE_HOLD)
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
        fsm.handle_timer(now)
        assert fsm.state is State.CONNECT
        fsm.handle_timer(now)
        while fsm.next_event():
            pass
        fsm.stop(now, restart=True)
    assert delays[0] < delays[1] <= 8.0
    assert delays[2] == delays[3] == 8.0  # capped at connect_retry_max


def test_delay_open_waits_then_sends_open() -> None:
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002, delay_open=2.0))
    fsm.start(0.0)
    fsm.connection_made(0.0, outgoing=True)
    assert fsm.state is State.CONNECT and fsm.data_to_send() == b""
    fsm.handle_timer(2.0)
    assert fsm.state is State.OPEN_SENT
    assert fsm.counters.msgs_out["open"] == 1


def test_delay_open_answers_an_early_open_at_once() -> None:
    a = settings("10.0.0.2", 65002, delay_open=5.0)
    p = Pair(a=a)
    p.connect()
    assert p.a.fsm.state is State.ESTABLISHED and p.now == 1000.0


def test_collision_dump_sends_cease_7() -> None:
    p = Pair()
    p.connect()
    p.a.fsm.collision_dump(p.now)
    note = decode_message(p.a.fsm.data_to_send(), CodecContext())
    assert note == Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
    assert p.a.fsm.state is State.IDLE and p.a.fsm.get_timer() is None


def test_collision_resolution_rule_both_ways() -> None:
    ip = lambda s: int.from_bytes(bytes(map(int, s.split("."))), "big")  # noqa: E731
    # RFC 4271 §6.8: the higher identifier keeps the connection it initiated.
    assert keep_outgoing(ip("10.0.0.2"), ip("10.0.0.1"), 65001, 65002)
    assert not keep_outgoing(ip("10.0.0.1"), ip("10.0.0.2"), 65001, 65002)
    # RFC 6286 §2.3: equal identifiers, the larger AS keeps its connection.
    assert keep_outgoing(ip("10.0.0.1"), ip("10.0.0.1"), 65002, 65001)
    assert not keep_outgoing(ip("10.0.0.1"), ip("10.0.0.1"), 65001, 65002)


def _ip(text: str) -> int:
    return int.from_bytes(bytes(map(int, text.split("."))), "big")


def _exchange(pipes: list[tuple[BgpFsm, BgpFsm]], now: float) -> None:
    for _ in range(3):
        for x, y in pipes:
            y.receive_data(x.data_to_send(), now)
            x.receive_data(y.data_to_send(), now)


def _resolve(first: BgpFsm, second: BgpFsm, keeps_out: bool, now: float) -> BgpFsm:
    """What ``bgp.speaker.Peer`` does: ``first`` heard no collision and resumed; on
    ``second``'s OPEN the identifiers decide (§6.8); the loser is dumped, the
    winner resumed. Returns the loser."""
    first.resume(now)
    assert first.state is State.OPEN_CONFIRM and second.paused
    loser = second if second.outgoing != keeps_out else first
    loser.collision_dump(now)
    (first if loser is second else second).resume(now)
    return loser


def test_collision_two_connections_leave_one_session() -> None:
    """Both sides dial at once; each side resolves by identifier and the same connection survives."""
    a_id, b_id = "10.0.0.1", "10.0.0.2"
    sa = settings("10.0.0.2", 65002)
    sb = settings("10.0.0.1", 65001)
    # conn1: A -> B ; conn2: B -> A
    a_out, b_in = BgpFsm(65001, a_id, sa), BgpFsm(65002, b_id, sb)
    b_out, a_in = BgpFsm(65002, b_id, sb), BgpFsm(65001, a_id, sa)
    now = 0.0
    for f, out in ((a_out, True), (b_out, True), (b_in, False), (a_in, False)):
        f.start(now, passive=not out)
        f.connection_made(now, outgoing=out)
    pipes = [(a_out, b_in), (b_out, a_in)]
    _exchange(pipes, now)
    # Every connection has the peer's OPEN and waits for its shell's decision.
    for f in (a_out, a_in, b_out, b_in):
        assert f.state is State.OPEN_SENT and f.paused
        assert OpenReceived in [type(e) for e in iter(f.next_event, None)]
    a_keeps_out = keep_outgoing(_ip(a_id), _ip(b_id), 65001, 65002)
    b_keeps_out = keep_outgoing(_ip(b_id), _ip(a_id), 65002, 65001)
    assert a_keeps_out != b_keeps_out  # both pick the same physical connection
    a_lost = _resolve(a_out, a_in, a_keeps_out, now)
    b_lost = _resolve(b_in, b_out, b_keeps_out, now)
    assert (a_lost, b_lost) == (a_out, b_in)  # A's id is lower: B's connection wins
    _exchange(pipes, now)
    assert (b_out.state, a_in.state) == (State.ESTABLISHED, State.ESTABLISHED)
    assert (a_out.state, b_in.state) == (State.IDLE, State.IDLE)


def test_lost_collision_is_a_plain_cease_with_nothing_taken_back() -> None:
    """The peer's OPEN, KEEPALIVE and an UPDATE arrive in one read; the shell then
    dumps the connection (§6.8). It sends exactly our OPEN and a Cease 7, never a
    KEEPALIVE; the shell saw only OpenReceived and the end, never Established;
    no input past the OPEN was consumed; counters only ever went up."""
    p = Pair()
    p.a.fsm.start(p.now)
    p.b.fsm.start(p.now)
    p.a.fsm.connection_made(p.now, outgoing=True)
    p.b.fsm.connection_made(p.now, outgoing=False)
    p.b.fsm.receive_data(p.a.fsm.data_to_send(), p.now)
    p.b.fsm.resume(p.now)  # B answers: OPEN + KEEPALIVE queued for A
    p.a.drain()
    a = p.a.fsm
    sent_open = a.data_to_send()
    assert sent_open == b""  # A's OPEN went out with connection_made
    from_b = p.b.fsm.data_to_send() + KEEPALIVE  # OPEN, KEEPALIVE and one more
    a.receive_data(from_b, p.now)
    assert a.state is State.OPEN_SENT and a.paused
    assert [type(e) for e in p.a.drain()] == [ConnectRequested, OpenReceived]
    assert a.data_to_send() == b""  # no KEEPALIVE queued while the shell decides
    assert (a.counters.msgs_in["open"], a.counters.msgs_in["keepalive"]) == (1, 0)
    before_out = dict(a.counters.msgs_out)
    a.collision_dump(p.now)
    note = decode_message(a.data_to_send(), CodecContext())
    assert note == Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
    after = [type(e) for e in p.a.drain()[2:]]
    assert after == [DisconnectRequested, SessionDown]
    down = _down(p.a.events)
    assert down.sent is True and not down.was_established
    assert a.counters.msgs_out == {**before_out, "notification": before_out["notification"] + 1}
    assert a.counters.msgs_in["keepalive"] == 0  # the rest of the read is dropped, not used
    assert a.state is State.IDLE and not a.auto_restart and a.get_timer() is None
    a.resume(p.now)  # a late resume is a no-op
    assert a.state is State.IDLE and a.data_to_send() == b""


def test_resume_after_open_goes_on_with_the_input_held_back() -> None:
    """Without a collision the shell resumes: KEEPALIVE sent, OpenConfirm, and the
    KEEPALIVE read in the same chunk takes the session to Established."""
    p = Pair()
    p.a.fsm.start(p.now)
    p.b.fsm.start(p.now)
    p.a.fsm.connection_made(p.now, outgoing=True)
    p.b.fsm.connection_made(p.now, outgoing=False)
    p.b.fsm.receive_data(p.a.fsm.data_to_send(), p.now)
    p.b.fsm.resume(p.now)
    a = p.a.fsm
    a.receive_data(p.b.fsm.data_to_send(), p.now)
    assert a.paused and a.deadline(Timer.KEEPALIVE) is None
    a.resume(p.now)
    assert not a.paused and a.state is State.ESTABLISHED
    assert decode_message(a.data_to_send(), CodecContext()) == Keepalive()
    assert [type(e) for e in p.a.drain()] == [ConnectRequested, OpenReceived, SessionEstablished]


def test_counters_are_shared_between_connections() -> None:
    c = Counters()
    f1 = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002), c)
    f2 = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002), c)
    for f in (f1, f2):
        f.start(0.0)
        f.connection_made(0.0, outgoing=True)
    assert c.msgs_out["open"] == 2
