"""An `InputGate` paces an established session's input and never stalls it
(two speakers over loopback; the receiver's gate is driven by the test)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bgp.session import Session

from .support import Node, announce, make_node, peer

A_IP, B_IP = "127.0.0.1", "127.0.0.2"


class Gate:
    def __init__(self) -> None:
        self.hold = False
        self.waiting: list[Callable[[], None]] = []

    def holding(self) -> bool:
        return self.hold

    def when_open(self, callback: Callable[[], None]) -> None:
        self.waiting.append(callback)

    def open(self) -> None:
        self.hold = False
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


async def _pair(gate: Gate, hold_time: int = 9) -> tuple[Node, Node]:
    a = await make_node(65001, "10.0.0.1", A_IP)
    b = await make_node(65002, "10.0.0.2", B_IP)
    b.speaker.input_gate = gate  # before its peers, as the daemon does
    b.speaker.add_peer(peer(A_IP, 65001, a.speaker.ports[0], B_IP, passive=True,
                            hold_time=hold_time))  # fmt: skip
    a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, hold_time=hold_time))
    await b.wait(lambda: len(b.sink.eors) == 2)
    return a, b


def _send(a: Node, prefix: str) -> None:
    """Queue one UPDATE on a's session to b and let it pull."""
    src = next(iter(a.sources.values()))
    src.queue.extend(announce(prefix, (65001,), "192.0.2.1"))
    p = a.speaker.peer(B_IP)
    assert p is not None and p.main is not None
    p.main.pump()


async def test_held_input_waits_for_the_gate_and_flows_when_it_opens() -> None:
    gate = Gate()
    a, b = await _pair(gate)
    try:
        gate.hold = True
        _send(a, "10.1.0.0/16")
        await asyncio.sleep(0.4)
        assert "10.1.0.0/16" not in b.sink.announced()  # read, but not handed on
        assert len(gate.waiting) == 1
        gate.open()
        await b.wait(lambda: "10.1.0.0/16" in b.sink.announced(), timeout=0.5)
        _send(a, "10.2.0.0/16")  # open: no wait
        await b.wait(lambda: "10.2.0.0/16" in b.sink.announced(), timeout=0.5)
        assert not b.sink.downs and not a.sink.downs
    finally:
        for n in (a, b):
            await n.speaker.stop()


async def test_a_gate_that_never_opens_delays_input_by_max_hold_and_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Session, "MAX_HOLD", 0.3)
    gate = Gate()
    a, b = await _pair(gate, hold_time=3)
    try:
        gate.hold = True
        loop = asyncio.get_running_loop()
        sent = loop.time()
        _send(a, "10.1.0.0/16")
        await b.wait(lambda: "10.1.0.0/16" in b.sink.announced(), timeout=2)
        assert loop.time() - sent >= 0.25  # held, then read on past MAX_HOLD
        # still held, never opened: the session reads on, and keepalives keep it up
        # through more than two hold times
        await asyncio.sleep(6.5)
        _send(a, "10.2.0.0/16")
        await b.wait(lambda: "10.2.0.0/16" in b.sink.announced(), timeout=0.2)
        assert not b.sink.downs and not a.sink.downs
    finally:
        for n in (a, b):
            await n.speaker.stop()
