"""The BFD runner on real UDP sockets over loopback: two runners bring a session Up,
a silenced peer is detected, TTL and source checks drop packets, AdminDown on removal."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bfd.packet import ControlPacket, Diag, State, encode_control
from bfd.runner import SOURCE_PORTS, BfdRunner, SessionSpec
from bfd.session import BfdSettings, StateChanged

IP_RECVTTL = 12  # linux/in.h; the socket module does not name it

FAST = BfdSettings(desired_min_tx=0.05, required_min_rx=0.05, detect_mult=3)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Side:
    def __init__(self) -> None:
        self.port = free_udp_port()
        self.events: list[tuple[str, StateChanged]] = []
        self.changed = threading.Condition()
        self.runner = BfdRunner(self._notify, listen_port=self.port)

    def _notify(self, key: str, ev: StateChanged) -> None:
        with self.changed:
            self.events.append((key, ev))
            self.changed.notify_all()

    def wait_for(self, state: State, timeout: float = 10.0) -> StateChanged:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for _, ev in self.events:
                    if ev.new is state:
                        return ev
                left = deadline - time.monotonic()
                assert left > 0, f"no {state.name} within {timeout} s: {self.events}"
                self.changed.wait(left)


@pytest.fixture
def pair() -> Iterator[tuple[Side, Side]]:
    a, b = Side(), Side()
    a.runner.start()
    b.runner.start()
    try:
        yield a, b
    finally:
        a.runner.stop()
        b.runner.stop()


def _connect(a: Side, b: Side, settings: BfdSettings = FAST) -> None:
    a.runner.add(SessionSpec("b", "127.0.0.1", settings, port=b.port))
    b.runner.add(SessionSpec("a", "127.0.0.1", settings, port=a.port))


def test_session_comes_up_and_reports_through_notify(pair: tuple[Side, Side]) -> None:
    a, b = pair
    _connect(a, b)
    a.wait_for(State.UP)
    b.wait_for(State.UP)
    st = a.runner.stats()["b"]
    assert (
        st["state"] == "up"
        and st["remote_discriminator"] == b.runner.stats()["a"]["local_discriminator"]
    )
    # Once both Poll Sequences are over, both ends run at 50 ms (§6.8.3).
    _wait(lambda: a.runner.stats()["b"]["detection_time_ms"] == 150.0)
    assert a.runner.stats()["b"]["tx_interval_ms"] == 50.0


def test_silenced_peer_is_detected_down(pair: tuple[Side, Side]) -> None:
    a, b = pair
    _connect(a, b)
    a.wait_for(State.UP)
    b.runner.stop()  # sends AdminDown; then a stays Down with diag 3
    ev = a.wait_for(State.DOWN)
    assert ev.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN and ev.remote_state is State.ADMIN_DOWN


def test_lost_packets_expire_the_detection_time(pair: tuple[Side, Side]) -> None:
    a, b = pair
    _connect(a, b)
    a.wait_for(State.UP)
    # Replacing b's session drops the old one silently; the new one sends elsewhere.
    b.runner.add(SessionSpec("a", "127.0.0.1", FAST, port=free_udp_port()))
    ev = a.wait_for(State.DOWN)
    assert ev.diag is Diag.CONTROL_DETECTION_TIME_EXPIRED
    assert a.runner.stats()["b"]["flaps"] == 1


def test_source_port_and_ttl_on_the_wire(pair: tuple[Side, Side]) -> None:
    """RFC 5881 §4/§5: source port 49152-65535 and TTL 255, seen by a plain receiver."""
    a, _ = pair
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    a.runner.add(SessionSpec("x", "127.0.0.1", FAST, port=rx.getsockname()[1]))
    data, anc, _, addr = rx.recvmsg(512, socket.CMSG_SPACE(4))
    rx.close()
    assert SOURCE_PORTS[0] <= addr[1] <= SOURCE_PORTS[1]
    assert [int.from_bytes(d[:4], "little") for lvl, k, d in anc if k == socket.IP_TTL] == [255]
    assert len(data) == 24


def _inject(port: int, pkt: bytes, ttl: int, source: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        s.bind((source, 0))
        s.sendto(pkt, ("127.0.0.1", port))


def _wait(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_ttl_below_255_and_foreign_source_are_dropped(pair: tuple[Side, Side]) -> None:
    a, _ = pair
    a.runner.add(SessionSpec("x", "127.0.0.1", FAST, port=free_udp_port()))
    down = encode_control(ControlPacket(State.DOWN, 77, 0, 3, 1_000_000, 50_000))
    _wait(lambda: "x" in a.runner.stats())
    _inject(a.port, down, ttl=64)
    _wait(lambda: a.runner.stats()["x"]["dropped"].get("ttl") == 1)
    _inject(a.port, down, ttl=255, source="127.0.0.2")
    _wait(lambda: a.runner.unknown_source == 1)
    assert a.runner.stats()["x"]["state"] == "down"
    _inject(a.port, down, ttl=255)
    _wait(lambda: a.runner.stats()["x"]["state"] == "init")
