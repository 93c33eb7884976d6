"""The BFD helper process: two of them on loopback bring a session Up and report changes
through the daemon-side reader; a stop sends AdminDown; a dead daemon does too."""

from __future__ import annotations

import socket
import threading
import time

from bfd.packet import Diag, State
from bfd.process import BfdProcess
from bfd.runner import SessionSpec
from bfd.session import BfdSettings, StateChanged

FAST = BfdSettings(desired_min_tx=0.05, required_min_rx=0.05, detect_mult=3)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Side:
    def __init__(self) -> None:
        self.port = free_udp_port()
        self.events: list[StateChanged] = []
        self.cond = threading.Condition()
        self.proc = BfdProcess(self._notify, listen_port=self.port)

    def _notify(self, key: str, ev: StateChanged) -> None:
        with self.cond:
            self.events.append(ev)
            self.cond.notify_all()

    def wait_for(self, state: State, timeout: float = 15.0) -> StateChanged:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hit = [e for e in self.events if e.new is state]
                if hit:
                    return hit[0]
                left = deadline - time.monotonic()
                assert left > 0, f"no {state.name}: {self.events}"
                self.cond.wait(left)


def test_two_helpers_come_up_and_a_stop_sends_admin_down() -> None:
    a, b = Side(), Side()
    a.proc.start()
    b.proc.start()
    try:
        a.proc.add(SessionSpec("b", "127.0.0.1", FAST, port=b.port))
        b.proc.add(SessionSpec("a", "127.0.0.1", FAST, port=a.port))
        assert a.wait_for(State.UP).old in (State.DOWN, State.INIT)
        deadline = time.monotonic() + 10
        while a.proc.stats().get("b", {}).get("state") != "up":  # pushed once a change
            assert time.monotonic() < deadline
            time.sleep(0.05)
        b.proc.stop()
        ev = a.wait_for(State.DOWN)
        assert (
            ev.remote_state is State.ADMIN_DOWN and ev.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN
        )
    finally:
        a.proc.stop()
        b.proc.stop()


def test_helper_sends_admin_down_when_the_daemon_side_vanishes() -> None:
    a, b = Side(), Side()
    a.proc.start()
    b.proc.start()
    try:
        a.proc.add(SessionSpec("b", "127.0.0.1", FAST, port=b.port))
        b.proc.add(SessionSpec("a", "127.0.0.1", FAST, port=a.port))
        a.wait_for(State.UP)
        assert b.proc._sock is not None
        b.proc._sock.close()  # as if the daemon died: the child reads EOF
        ev = a.wait_for(State.DOWN)
        assert ev.remote_state is State.ADMIN_DOWN
        assert b.proc._proc is not None and b.proc._proc.wait(10) == 0
    finally:
        a.proc.stop()
        b.proc.stop()


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        p = BfdProcess(lambda k, e: None, listen_port=busy.getsockname()[1])
        try:
            p.start()
        except OSError as exc:
            assert "Address already in use" in str(exc)
        else:
            p.stop()
            raise AssertionError("the helper started on a busy port")
