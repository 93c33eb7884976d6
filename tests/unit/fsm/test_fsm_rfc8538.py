"""RFC 8538 (N bit, Hard Reset) and reconnect damping, as tables over two FSMs with a fake clock.

Each row sets up two speakers with graceful restart (and the N bit or not), ends
their session one way, and checks what went on the wire, whether each side keeps
the other's routes as stale (``SessionDown.graceful``), and how soon each side
starts again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bgp.errors import CeaseSubcode, ErrorCode
from bgp.events import ConnectRequested, DisconnectRequested, SessionDown
from bgp.fsm import STABLE_AFTER, BgpFsm, State, Timer
from bgp.restart import (
    HARD_SUBCODES,
    damped,
    graceful_end,
    hard_reset,
    inner_of,
    notification_name,
    outgoing,
    restart_stop,
)
from bgp.wire.context import CodecContext
from bgp.wire.messages import Notification, decode_message

from .helpers import Pair, settings

CEASE, HARD = ErrorCode.CEASE, CeaseSubcode.HARD_RESET


def gr_pair(a_n: bool = True, b_n: bool = True, gr: bool = True) -> Pair:
    a = settings("10.0.0.2", 65002, graceful_restart=gr, graceful_notification=a_n)
    b = settings("10.0.0.1", 65001, passive=True, graceful_restart=gr, graceful_notification=b_n)
    p = Pair(a, b)
    p.connect()
    assert p.a.fsm.state is State.ESTABLISHED and p.b.fsm.state is State.ESTABLISHED
    return p


def last_down(events: list[object]) -> SessionDown:
    downs = [e for e in events if isinstance(e, SessionDown)]
    assert downs, "no SessionDown"
    return downs[-1]


def wire_of(p: Pair) -> Notification:
    """The NOTIFICATION A queued (decoded), delivered to B afterwards."""
    raw = p.a.fsm.data_to_send()
    note = decode_message(raw, CodecContext())
    assert isinstance(note, Notification)
    p.b.fsm.receive_data(raw, p.now)
    p.b.drain()
    p.a.drain()
    return note


# ----------------------------------------------------------------- the rules as tables


@pytest.mark.parametrize(
    ("code", "subcode", "n_bit", "hard", "sent"),
    [
        (CEASE, CeaseSubcode.MAXIMUM_PREFIXES_REACHED, True, None, (CEASE, HARD)),
        (CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, True, None, (CEASE, HARD)),
        (CEASE, CeaseSubcode.PEER_DECONFIGURED, True, None, (CEASE, HARD)),
        (CEASE, CeaseSubcode.ADMINISTRATIVE_RESET, True, None, (CEASE, 4)),
        (CEASE, CeaseSubcode.ADMINISTRATIVE_RESET, True, True, (CEASE, HARD)),
        (CEASE, CeaseSubcode.OTHER_CONFIGURATION_CHANGE, True, True, (CEASE, HARD)),
        (CEASE, CeaseSubcode.OTHER_CONFIGURATION_CHANGE, True, None, (CEASE, 6)),
        (CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, True, None, (CEASE, 7)),
        (CEASE, CeaseSubcode.BFD_DOWN, True, None, (CEASE, 10)),
        (ErrorCode.HOLD_TIMER_EXPIRED, 0, True, None, (4, 0)),
        (ErrorCode.UPDATE_MESSAGE, 1, True, None, (3, 1)),
        # Without N there is no Hard Reset: the plain NOTIFICATION ends everything already.
        (CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, False, None, (CEASE, 2)),
        (CEASE, CeaseSubcode.ADMINISTRATIVE_RESET, False, True, (CEASE, 4)),
    ],
)
def test_outgoing_applies_rfc8538_section_5_1(
    code: int, subcode: int, n_bit: bool, hard: bool | None, sent: tuple[int, int]
) -> None:
    note = Notification(code, subcode, b"\x03bye")
    wire = outgoing(note, n_bit, hard)
    assert (wire.code, wire.subcode) == sent
    if sent == (CEASE, HARD) and (code, subcode) != (CEASE, HARD):
        assert wire.data == bytes((code, subcode)) + b"\x03bye"  # §3: the original inside
        assert inner_of(wire) == note


def test_hard_subcodes_are_the_musts_of_section_5_1() -> None:
    assert {int(s) for s in HARD_SUBCODES} == {1, 2, 3, 9}
    assert hard_reset(Notification(CEASE, HARD, b"\x06\x02")) == Notification(
        CEASE, HARD, b"\x06\x02"
    )
    assert inner_of(Notification(CEASE, HARD, b"\x06")) is None  # too short to carry one
    assert inner_of(Notification(CEASE, 2)) is None


@pytest.mark.parametrize(
    ("gr", "n_bit", "code", "subcode", "graceful"),
    [
        (True, False, 0, 0, True),  # RFC 4724 §4.2: TCP loss
        (True, True, 0, 0, True),
        (False, False, 0, 0, False),  # no graceful restart, nothing is kept
        (True, False, CEASE, 4, False),  # RFC 4724: a NOTIFICATION ends GR without N
        (True, True, CEASE, 4, True),  # RFC 8538 §4
        (True, True, CEASE, 2, True),  # (a plain Cease 2 with N is graceful, if one came)
        (True, True, ErrorCode.HOLD_TIMER_EXPIRED, 0, True),
        (True, True, ErrorCode.UPDATE_MESSAGE, 3, True),
        (True, True, CEASE, HARD, False),  # Hard Reset ends everything
        (False, True, CEASE, 4, False),
    ],
)
def test_graceful_end_table(gr: bool, n_bit: bool, code: int, subcode: int, graceful: bool) -> None:
    assert graceful_end(gr, n_bit, code, subcode) is graceful


@pytest.mark.parametrize(
    ("code", "subcode", "graceful", "operator", "sent", "expected"),
    [
        (CEASE, 4, False, True, True, False),  # our operator's reset
        (CEASE, 2, False, True, True, False),  # our operator's shutdown (then enable)
        (0, 0, True, False, None, False),  # the peer restarted (TCP loss, GR)
        (CEASE, 4, True, False, False, False),  # the peer's soft reset with N
        (CEASE, 4, False, False, False, False),  # RFC 4486 §4 does not damp Admin Reset
        (CEASE, 2, False, False, False, True),  # ... but does Admin Shutdown
        (CEASE, 3, False, False, False, True),
        (CEASE, 5, False, False, False, True),
        (CEASE, 8, False, False, False, True),
        (CEASE, HARD, False, False, False, True),
        (0, 0, False, False, None, True),  # a TCP loss without GR is a flap
        (ErrorCode.HOLD_TIMER_EXPIRED, 0, False, False, True, True),
        (CEASE, 10, False, False, True, True),  # BFD down: a real failure
    ],
)
def test_damping_table(
    code: int, subcode: int, graceful: bool, operator: bool, sent: bool | None, expected: bool
) -> None:
    assert damped(code, subcode, graceful, operator, sent) is expected


@pytest.mark.parametrize(("inner", "expected"), [((6, 4), False), ((6, 2), True), ((6, 1), True)])
def test_a_received_hard_reset_is_damped_as_what_it_carries(
    inner: tuple[int, int], expected: bool
) -> None:
    assert damped(CEASE, HARD, False, False, False, inner) is expected


@pytest.mark.parametrize(
    ("established", "gr", "n_bit", "notify", "subcode", "hard"),
    [
        (True, True, True, True, CeaseSubcode.ADMINISTRATIVE_RESET, False),
        (True, True, False, False, CeaseSubcode.ADMINISTRATIVE_RESET, None),  # silent close
        (True, False, False, True, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, None),
        (False, False, False, True, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, None),
    ],
)
def test_restart_stop_table(
    established: bool, gr: bool, n_bit: bool, notify: bool, subcode: int, hard: bool | None
) -> None:
    how = restart_stop(established, gr, n_bit)
    assert (how.notify, how.subcode, how.hard) == (notify, subcode, hard)


def test_names_are_the_rfc_names() -> None:
    assert notification_name(6, 2) == "Cease/Administrative Shutdown"
    assert notification_name(6, 9) == "Cease/Hard Reset"
    assert notification_name(6, 10) == "Cease/BFD Down"
    assert notification_name(4, 0) == "Hold Timer Expired/Unspecific"
    assert notification_name(5, 1) == "FSM/Unexpected Message In OpenSent"
    assert notification_name(6, 77) == "Cease/subcode 77"
    assert notification_name(42, 1) == "code 42/subcode 1"


# ----------------------------------------------------------------- two FSMs


def test_both_set_the_n_bit_and_negotiate_it() -> None:
    p = gr_pair()
    for side in (p.a, p.b):
        neg = side.fsm.negotiated
        assert neg is not None and neg.peer_restart is not None
        assert neg.peer_restart.notification and neg.graceful_notification
    one_sided = gr_pair(b_n=False)
    assert one_sided.a.fsm.negotiated is not None
    assert not one_sided.a.fsm.negotiated.graceful_notification
    assert one_sided.b.fsm.negotiated is not None
    assert not one_sided.b.fsm.negotiated.graceful_notification


@dataclass(frozen=True)
class Row:
    """One way to end a session between A and B, and what must follow."""

    name: str
    a_n: bool
    b_n: bool
    subcode: int
    hard: bool | None
    wire: tuple[int, int]
    graceful: bool  # both sides keep the other's routes
    inner: tuple[int, int] | None = None


ROWS = [
    Row("soft reset, N both", True, True, 4, None, (6, 4), True),
    Row("shutdown, N both", True, True, 2, None, (6, 9), False, (6, 2)),
    Row("max prefixes, N both", True, True, 1, None, (6, 9), False, (6, 1)),
    Row("hard reset, N both", True, True, 4, True, (6, 9), False, (6, 4)),
    Row("config change, must flush", True, True, 6, True, (6, 9), False, (6, 6)),
    Row("soft reset, N only ours", True, False, 4, None, (6, 4), False),
    Row("soft reset, N only theirs", False, True, 4, None, (6, 4), False),
    Row("shutdown, no N", False, False, 2, None, (6, 2), False),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_cease_table(row: Row) -> None:
    p = gr_pair(row.a_n, row.b_n)
    p.a.fsm.stop(p.now, "bye", row.subcode, restart=True, hard=row.hard)
    note = wire_of(p)
    assert (note.code, note.subcode) == row.wire
    ours, theirs = last_down(p.a.events), last_down(p.b.events)
    assert (ours.sent, theirs.sent) == (True, False)
    assert ours.graceful is theirs.graceful is row.graceful  # RFC 8538 §4: sender too
    assert ours.inner == theirs.inner == row.inner
    assert (ours.code, ours.subcode) == (theirs.code, theirs.subcode) == row.wire
    assert ours.reason == theirs.reason  # one text on both ends
    # RFC 9003 communications ride on Administrative Shutdown and Reset only.
    assert ours.message == theirs.message == ("bye" if row.subcode in (2, 4) else "")


def test_hold_timer_expiry_with_n_keeps_routes_on_both_sides() -> None:
    p = gr_pair()
    p.b.fsm.receive_data = lambda data, now: None  # type: ignore[method-assign]  # B goes deaf
    p.a.fsm.receive_data = lambda data, now: None  # type: ignore[method-assign]
    p.advance(10)
    down = last_down(p.a.events)
    assert down.code == ErrorCode.HOLD_TIMER_EXPIRED and down.graceful


def test_tcp_loss_is_graceful_only_with_graceful_restart() -> None:
    p = gr_pair(a_n=False, b_n=False)
    p.a.fsm.connection_lost(p.now, "reset")
    assert last_down(p.a.drain()).graceful
    q = gr_pair(gr=False)
    q.a.fsm.connection_lost(q.now, "reset")
    assert not last_down(q.a.drain()).graceful


def test_received_hard_reset_names_the_inner_notification() -> None:
    p = gr_pair()
    p.a.fsm.stop(p.now, "maintenance window")
    wire_of(p)
    down = last_down(p.b.events)
    assert down.reason == ("Cease/Hard Reset (Cease/Administrative Shutdown): 'maintenance window'")
    assert down.message == "maintenance window" and not down.graceful


# ----------------------------------------------------------------- damping and starts


def young_reset(p: Pair, hard: bool | None = None) -> None:
    """A session younger than STABLE_AFTER reset by A's operator."""
    p.advance(1)
    p.a.fsm.stop(p.now, "", CeaseSubcode.ADMINISTRATIVE_RESET, restart=True, hard=hard)
    wire_of(p)


@pytest.mark.parametrize("hard", [None, True])
def test_operator_reset_of_a_young_session_is_not_damped(hard: bool | None) -> None:
    p = gr_pair()
    young_reset(p, hard)
    assert p.a.fsm.deadline(Timer.IDLE_HOLD) == p.now  # starts again at once
    # The peer that received Administrative Reset is not damped either (RFC 4486 §4).
    assert p.b.fsm.deadline(Timer.IDLE_HOLD) == p.now
    assert not last_down(p.a.events).was_established or last_down(p.a.events).operator
    p.a.events.clear()
    p.advance(0.5)
    assert ConnectRequested() in p.a.events and p.a.fsm.state is State.CONNECT
    assert p.a.fsm.deadline(Timer.CONNECT_RETRY) == pytest.approx(p.now - 0.5 + 1.0, abs=0.5)


def test_repeated_operator_resets_never_grow_the_delay() -> None:
    p = gr_pair()
    for _ in range(4):
        young_reset(p)
        assert p.a.fsm.deadline(Timer.IDLE_HOLD) == p.now
        p.a.fsm.handle_timer(p.now)
        p.a.drain()
        p.connect_again()


def test_a_real_flap_of_a_young_session_is_still_damped() -> None:
    p = gr_pair(gr=False)
    p.advance(1)
    p.a.fsm.connection_lost(p.now, "reset by peer")
    hold = p.a.fsm.deadline(Timer.IDLE_HOLD)
    assert hold is not None and hold > p.now  # damped
    assert STABLE_AFTER == 30.0


def test_graceful_end_restarts_at_once_even_when_young() -> None:
    p = gr_pair()
    p.advance(1)
    p.a.fsm.connection_lost(p.now, "peer restarting")
    assert last_down(p.a.drain()).graceful
    assert p.a.fsm.deadline(Timer.IDLE_HOLD) == p.now


def test_operator_reset_of_an_idle_holding_session_fires_now() -> None:
    fsm = BgpFsm(65001, "10.0.0.1", settings("10.0.0.2", 65002, connect_retry=4.0))
    fsm.start(0.0)
    fsm.connection_made(0.0, outgoing=True)
    fsm.connection_lost(0.0, "flap")  # damped: IdleHold in the future
    hold = fsm.deadline(Timer.IDLE_HOLD)
    assert hold is not None and hold > 0.0
    fsm.stop(1.0, restart=True)
    assert fsm.deadline(Timer.IDLE_HOLD) == 1.0


@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_passive_peer_with_connect_on_start_dials_once(delay: float) -> None:
    """At once, or after ``connect_delay`` in Active when nobody connected meanwhile."""
    ps = settings("10.0.0.2", 65002, passive=True, connect_on_start=True, connect_retry=2.0,
                  connect_delay=delay)  # fmt: skip
    fsm = BgpFsm(65001, "10.0.0.1", ps)
    fsm.start(0.0)
    if delay:
        assert fsm.state is State.ACTIVE and fsm.next_event() is None
        assert fsm.deadline(Timer.CONNECT_RETRY) == delay
        fsm.handle_timer(delay)
    assert fsm.state is State.CONNECT and fsm.next_event() == ConnectRequested()
    fsm.connection_lost(delay + 0.1, "connect: refused")  # nobody listens yet
    while fsm.next_event():
        pass
    fsm.handle_timer(delay + 0.1)  # IdleHold 0: back to waiting, no second dial
    assert fsm.state is State.ACTIVE
    assert fsm.next_event() is None and fsm.get_timer() is None


def test_passive_dial_that_hangs_is_given_up_after_connect_retry() -> None:
    ps = settings("10.0.0.2", 65002, passive=True, connect_on_start=True, connect_retry=2.0)
    fsm = BgpFsm(65001, "10.0.0.1", ps)
    fsm.start(0.0)
    fsm.next_event()
    fsm.handle_timer(2.0)
    assert fsm.state is State.ACTIVE
    assert fsm.next_event() == DisconnectRequested() and fsm.get_timer() is None


def test_passive_dial_with_connect_delay_is_dropped_when_the_peer_connects_first() -> None:
    ps = settings("10.0.0.2", 65002, passive=True, connect_on_start=True, connect_delay=2.0)
    fsm = BgpFsm(65001, "10.0.0.1", ps)
    fsm.start(0.0)
    fsm.connection_made(0.5, outgoing=False)  # the active side's connection came first
    assert fsm.state is State.OPEN_SENT and fsm.deadline(Timer.CONNECT_RETRY) is None
    while (ev := fsm.next_event()) is not None:
        assert ev != ConnectRequested()


def test_incoming_start_of_a_passive_peer_does_not_dial() -> None:
    ps = settings("10.0.0.2", 65002, passive=True, connect_on_start=True)
    fsm = BgpFsm(65001, "10.0.0.1", ps)
    fsm.start_for_incoming(0.0)
    assert fsm.state is State.ACTIVE and fsm.next_event() is None
