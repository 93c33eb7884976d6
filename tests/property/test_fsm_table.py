"""Every (state, event) pair either moves legally or ends in Idle with a NOTIFICATION queued.

Hypothesis drives a machine into each state and then through random event
sequences; after every step the move must be one RFC 4271 §8.2.2 allows
(``bgp.fsm.LEGAL``), and a pair missing from the table must leave the machine
in Idle, with an FSM Error NOTIFICATION (RFC 6608 subcode) queued when it had
a connection past the OPEN.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import (
    ErrorCode,
    FsmSubcode,
    MessageHeaderError,
    OpenMessageError,
    UpdateMessageError,
)
from bgp.fsm import LEGAL, PAYLOAD, TABLE, BgpFsm, Event, ManualStop, State, TcpFailed
from bgp.negotiate import build_open
from bgp.settings import PeerSettings
from bgp.wire.context import CodecContext
from bgp.wire.messages import Keepalive, Notification, RouteRefresh, decode_message, encode_message
from bgp.wire.update import Update

PEER = PeerSettings(address="10.0.0.2", asn=65002, hold_time=9, connect_retry=1.0)
THEIR_OPEN = build_open(65002, "10.0.0.2", PeerSettings(address="10.0.0.1", asn=65001, hold_time=9))
RAW_OPEN = encode_message(THEIR_OPEN, CodecContext())
RAW_KEEPALIVE = encode_message(Keepalive(), CodecContext())

ARGS: dict[Event, Any] = {
    Event.MANUAL_STOP: ManualStop("bye"),
    Event.TCP_CONNECTION_FAILS: TcpFailed("gone"),
    Event.BGP_OPEN: THEIR_OPEN,
    Event.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING: THEIR_OPEN,
    Event.BGP_HEADER_ERR: MessageHeaderError(1),
    Event.BGP_OPEN_MSG_ERR: OpenMessageError(2),
    Event.NOTIF_MSG_VER_ERR: Notification(2, 1, b"\x00\x04"),
    Event.NOTIF_MSG: Notification(6, 2),
    Event.UPDATE_MSG: Update(),
    Event.UPDATE_MSG_ERR: UpdateMessageError(1),
    Event.KEEPALIVE_MSG: Keepalive(),
    Event.ROUTE_REFRESH_MSG: RouteRefresh(1, 1),
}


def machine(state: State, passive: bool) -> BgpFsm:
    fsm = BgpFsm(65001, "10.0.0.1", PEER)
    if state is State.IDLE:
        return fsm
    fsm.start(0.0, passive=passive or state is State.ACTIVE)
    if state in (State.CONNECT, State.ACTIVE):
        return fsm
    fsm.connection_made(0.0, outgoing=not passive)
    if state is not State.OPEN_SENT:
        fsm.receive_data(RAW_OPEN, 0.0)
        fsm.resume(0.0)  # the shell found no collision
    if state is State.ESTABLISHED:
        fsm.receive_data(RAW_KEEPALIVE, 0.0)
    assert fsm.state is state
    fsm.data_to_send()
    while fsm.next_event():
        pass
    return fsm


def check_step(fsm: BgpFsm, event: Event, now: float) -> None:
    old, had_conn = fsm.state, fsm.connected
    in_table = (old, event) in TABLE
    fsm.dispatch(event, now, ARGS.get(event))
    new = fsm.state
    assert new in LEGAL[old], f"{old.name} --{event.name}--> {new.name}"
    out = fsm.data_to_send()
    if in_table or old is State.IDLE:
        return
    assert new is State.IDLE, f"missing cell {old.name}/{event.name} left {new.name}"
    if had_conn and old in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED):
        note = decode_message(out, CodecContext())
        assert isinstance(note, Notification) and note.code == ErrorCode.FSM
        assert (
            note.subcode
            == {
                State.OPEN_SENT: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT,
                State.OPEN_CONFIRM: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
                State.ESTABLISHED: FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED,
            }[old]
        )


def test_each_event_is_given_its_payload() -> None:
    for event in Event:
        assert isinstance(ARGS.get(event), PAYLOAD[event]), event


def test_every_pair_once() -> None:
    """Exhaustive: each state x each event, from a fresh machine."""
    for state in State:
        for event in Event:
            for passive in (False, True):
                fsm = machine(state, passive)
                check_step(fsm, event, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from(list(State)),
    passive=st.booleans(),
    events=st.lists(st.tuples(st.sampled_from(list(Event)), st.floats(0, 300)), max_size=25),
)
def test_random_walks_stay_legal(
    start: State, passive: bool, events: list[tuple[Event, float]]
) -> None:
    fsm = machine(start, passive)
    now = 1.0
    for event, dt in events:
        now += dt
        check_step(fsm, event, now)
        while fsm.next_event():
            pass
        # Timers are real deadlines: firing them is also a legal move.
        old = fsm.state
        fsm.handle_timer(now)
        assert fsm.state in LEGAL[old] or fsm.state is State.IDLE
        fsm.data_to_send()
        while fsm.next_event():
            pass
