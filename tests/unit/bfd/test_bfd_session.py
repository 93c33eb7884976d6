"""The BFD session state machine (RFC 5880 §6) with a fake clock, no sockets."""

from __future__ import annotations

import itertools
import random

import pytest

from bfd.packet import ControlPacket, Diag, State, decode_control, encode_control
from bfd.session import SLOW_TX, TRANSITIONS, BfdSession, BfdSettings, Input, StateChanged

FAST = BfdSettings(desired_min_tx=0.3, required_min_rx=0.3, detect_mult=3)


class Link:
    """Two sessions wired back to back; ``run_until`` advances a shared fake clock."""

    def __init__(self, a: BfdSettings = FAST, b: BfdSettings = FAST) -> None:
        self.now = 0.0
        self.a = BfdSession(a, 0x11, self.now, random.Random(1))
        self.b = BfdSession(b, 0x22, self.now, random.Random(2))
        self.cut = False
        self.events: dict[str, list[StateChanged]] = {"a": [], "b": []}
        self.sent: dict[str, list[tuple[float, ControlPacket]]] = {"a": [], "b": []}

    def step(self) -> None:
        self.now = min(t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None)
        for s in (self.a, self.b):
            s.handle_timer(self.now)
        self.pump()

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                for d in src.datagrams_to_send():
                    moved = True
                    self.sent[name].append((self.now, decode_control(d)))
                    if not self.cut:
                        dst.receive(d, self.now)
                while (ev := src.next_event()) is not None:
                    self.events[name].append(ev)

    def run_until(self, t: float) -> None:
        while True:
            nxt = min(x for x in (self.a.get_timer(), self.b.get_timer()) if x is not None)
            if nxt > t:
                self.now = t
                return
            self.step()


def up_link() -> Link:
    link = Link()
    link.run_until(5.0)
    assert link.a.state is State.UP and link.b.state is State.UP
    return link


def test_three_way_handshake_comes_up() -> None:
    link = Link()
    link.run_until(5.0)
    assert link.events["a"][-1].new is State.UP
    assert link.a.remote_discr == 0x22 and link.b.remote_discr == 0x11
    assert link.a.counters.up_transitions == 1


def test_slow_rate_while_not_up_then_fast_after_poll() -> None:
    link = Link()
    first = link.a.datagrams_to_send()
    assert first == [] and link.a.get_timer() == 0.0
    link.run_until(5.0)
    down_pkts = [p for t, p in link.sent["a"] if p.state is not State.UP]
    assert all(p.desired_min_tx == SLOW_TX * 1e6 for p in down_pkts)  # §6.8.3
    up_pkts = [(t, p) for t, p in link.sent["a"] if p.state is State.UP]
    assert up_pkts[0][1].poll and up_pkts[0][1].desired_min_tx == 300_000  # §6.8.3 / §6.5
    # The remote answered the Poll with a Final, which ended the sequence.
    assert any(p.final for _, p in link.sent["b"])
    assert not any(p.poll for _, p in link.sent["a"][-3:])  # the sequence ended
    # Periodic packets at 300 ms less 0-25 % jitter (§6.8.7).
    times = [t for t, p in up_pkts if not p.final][-10:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.225 - 1e-9 <= g <= 0.3 + 1e-9 for g in gaps), gaps


def test_detection_time_expiry_goes_down_with_diag_1() -> None:
    link = up_link()
    assert link.a.detection_time == pytest.approx(0.9)  # remote mult 3 x max(300 ms, 300 ms)
    cut_at = link.now
    link.cut = True
    link.run_until(cut_at + 2.0)
    down = [e for e in link.events["a"] if e.new is State.DOWN]
    assert down and down[0].diag is Diag.CONTROL_DETECTION_TIME_EXPIRED
    assert cut_at + 0.6 <= down[0].at <= cut_at + 0.9 + 1e-9
    assert link.a.remote_discr == 0  # §6.8.1
    assert link.a.counters.down_transitions == 1


def test_session_comes_back_after_the_path_heals() -> None:
    link = up_link()
    link.cut = True
    link.run_until(link.now + 2.0)
    link.cut = False
    link.run_until(link.now + 5.0)
    assert link.a.state is State.UP and link.b.state is State.UP


def test_detection_uses_the_remote_multiplier_and_slower_interval() -> None:
    link = Link(a=FAST, b=BfdSettings(desired_min_tx=0.5, required_min_rx=0.1, detect_mult=5))
    link.run_until(5.0)
    # a: remote mult 5 x max(a's rx 0.3, b's tx 0.5) = 2.5 s; b: 3 x max(0.1, 0.3) = 0.9 s
    assert link.a.detection_time == pytest.approx(2.5)
    assert link.b.detection_time == pytest.approx(0.9)
    # a sends no faster than b's required min rx allows, b no faster than a's
    assert link.a.tx_interval == pytest.approx(0.3) and link.b.tx_interval == pytest.approx(0.5)


def test_admin_down_is_signalled_and_neighbor_goes_down_with_diag_3() -> None:
    link = up_link()
    link.a.admin_down(link.now)
    link.run_until(link.now + 2.0)
    assert link.a.state is State.ADMIN_DOWN and link.a.local_diag is Diag.ADMINISTRATIVELY_DOWN
    ev = next(e for e in link.events["b"] if e.new is State.DOWN)
    assert ev.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN and ev.remote_state is State.ADMIN_DOWN
    assert link.b.state is State.DOWN  # and stays: the remote keeps saying AdminDown
    link.a.admin_up(link.now)
    link.run_until(link.now + 5.0)
    assert link.a.state is State.UP and link.b.state is State.UP


def test_admin_down_session_ignores_packets_and_has_no_detection() -> None:
    link = up_link()
    link.a.admin_down(link.now)
    link.pump()
    link.cut = True
    link.run_until(link.now + 10.0)
    assert link.a.state is State.ADMIN_DOWN
    assert not [e for e in link.events["a"] if e.new is State.DOWN]


def test_poll_is_answered_with_final_at_once() -> None:
    s = BfdSession(FAST, 5, 0.0)
    s.handle_timer(0.0)
    s.datagrams_to_send()
    poll = ControlPacket(State.DOWN, 9, 0, 3, 1_000_000, 300_000, poll=True)
    s.receive(encode_control(poll), 0.1)
    out = [decode_control(d) for d in s.datagrams_to_send()]
    # The Final first, then the change to Init that the packet caused.
    assert out[0].final and not out[0].poll and out[0].your_discriminator == 9
    assert [p.state for p in out] == [State.DOWN, State.INIT] and not out[1].final


def test_wrong_your_discriminator_is_dropped() -> None:
    link = up_link()
    stray = ControlPacket(State.DOWN, 0x22, 0x99, 3, 300_000, 300_000)
    link.a.receive(encode_control(stray), link.now)
    assert link.a.state is State.UP
    assert link.a.counters.dropped == {"your_discriminator": 1}


def test_zero_your_discriminator_only_in_down_or_admin_down() -> None:
    s = BfdSession(FAST, 5, 0.0)
    s.receive(encode_control(ControlPacket(State.UP, 9, 0, 3, 1, 1)), 0.0)
    s.receive(encode_control(ControlPacket(State.INIT, 9, 0, 3, 1, 1)), 0.0)
    assert s.counters.dropped == {"zero_your_discriminator": 2} and s.state is State.DOWN
    s.receive(encode_control(ControlPacket(State.DOWN, 9, 0, 3, 1, 1)), 0.0)
    assert s.state is State.INIT


@pytest.mark.parametrize("ttl", [0, 1, 64, 254])
def test_ttl_below_255_is_dropped(ttl: int) -> None:
    s = BfdSession(FAST, 5, 0.0)
    s.receive(encode_control(ControlPacket(State.DOWN, 9, 0, 3, 1, 1)), 0.0, ttl=ttl)
    assert s.state is State.DOWN and s.counters.dropped == {"ttl": 1} and s.counters.rx == 0


def test_multihop_min_ttl_accepts_lower_ttl() -> None:
    s = BfdSession(BfdSettings(min_ttl=250), 5, 0.0)
    s.receive(encode_control(ControlPacket(State.DOWN, 9, 0, 3, 1, 1)), 0.0, ttl=252)
    assert s.state is State.INIT


def test_garbage_is_counted_not_raised() -> None:
    s = BfdSession(FAST, 5, 0.0)
    for junk in (b"", b"\xff" * 24, b"\x20" * 30):
        s.receive(junk, 0.0)
    assert s.counters.dropped == {"malformed": 3}


def test_neighbor_restart_with_new_discriminator_takes_session_down() -> None:
    link = up_link()
    fresh = ControlPacket(State.DOWN, 0x77, 0, 3, 1_000_000, 300_000)
    link.a.receive(encode_control(fresh), link.now)
    assert link.a.state is State.DOWN and link.a.local_diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN


def test_remote_required_min_rx_zero_stops_transmission() -> None:
    s = BfdSession(FAST, 5, 0.0)
    s.receive(encode_control(ControlPacket(State.DOWN, 9, 0, 3, 1_000_000, 0)), 0.0)
    assert s.state is State.INIT and s.datagrams_to_send() == []
    assert s.get_timer() == pytest.approx(3.0)  # only the detection time (3 x 1 s) is left


def test_increased_tx_waits_for_the_final_while_up() -> None:
    """§6.8.3: a slower remote RequiredMinRx is obeyed at once; our own increase waits."""
    link = up_link()
    # The remote asks for slower packets: our interval follows its RequiredMinRx at once.
    link.b.settings = BfdSettings(desired_min_tx=0.3, required_min_rx=0.6, detect_mult=3)
    link.run_until(link.now + 2.0)
    assert link.a.tx_interval == pytest.approx(0.6)


@pytest.mark.parametrize(("cell", "result"), sorted(TRANSITIONS.items()))
def test_table_cells_match_rfc_5880(cell: tuple[State, Input], result: tuple[State, Diag]) -> None:
    """Every cell of the table drives a session the way RFC 5880 §6.8.6 describes."""
    state, inp = cell
    s = BfdSession(FAST, 5, 0.0)
    _force(s, state)
    while s.next_event():
        pass
    if inp in (Input.ADMIN_DOWN, Input.ADMIN_UP, Input.DETECTION_TIMEOUT):
        {Input.ADMIN_DOWN: s.admin_down, Input.ADMIN_UP: s.admin_up}.get(
            inp, lambda now: s.handle_timer(now + 100)
        )(1.0)
    else:
        s.receive(encode_control(ControlPacket(State(inp), 9, 5, 3, 300_000, 300_000)), 1.0)
    assert (s.state, s.local_diag) == result
    ev = s.next_event()
    assert ev is not None and (ev.old, ev.new) == (state, result[0])


def test_cells_missing_from_the_table_change_nothing() -> None:
    for state in State:
        for inp in (Input.RECV_DOWN, Input.RECV_INIT, Input.RECV_UP, Input.RECV_ADMIN_DOWN):
            if (state, inp) in TRANSITIONS:
                continue
            s = BfdSession(FAST, 5, 0.0)
            _force(s, state)
            while s.next_event():
                pass
            s.receive(encode_control(ControlPacket(State(inp), 9, 5, 3, 300_000, 300_000)), 1.0)
            assert s.state is state and s.next_event() is None


def _force(s: BfdSession, state: State) -> None:
    """Drive a fresh session into ``state`` through its public inputs."""

    def pkt(st: State) -> bytes:
        return encode_control(
            ControlPacket(st, 9, 5 if st is not State.DOWN else 0, 3, 300_000, 300_000)
        )

    if state is State.ADMIN_DOWN:
        s.admin_down(0.0)
    elif state is State.INIT:
        s.receive(pkt(State.DOWN), 0.0)
    elif state is State.UP:
        s.receive(pkt(State.DOWN), 0.0)
        s.receive(pkt(State.UP), 0.0)
    assert s.state is state
