"""Two sans-IO FSMs wired back to back with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from bgp.events import FsmEvent
from bgp.fsm import BgpFsm, State
from bgp.settings import PeerSettings


def settings(address: str, asn: int, **kw: object) -> PeerSettings:
    kw.setdefault("hold_time", 9)
    kw.setdefault("connect_retry", 1.0)
    return PeerSettings(address=address, asn=asn, **kw)  # type: ignore[arg-type]


@dataclass
class Side:
    fsm: BgpFsm
    events: list[FsmEvent] = field(default_factory=list)

    def drain(self) -> list[FsmEvent]:
        while (ev := self.fsm.next_event()) is not None:
            self.events.append(ev)
        return self.events

    def of(self, cls: type) -> list[FsmEvent]:
        self.drain()
        return [e for e in self.events if isinstance(e, cls)]


class Pair:
    """A and B, connected by a perfect in-memory pipe; ``now`` is the fake clock."""

    def __init__(
        self,
        a: PeerSettings | None = None,
        b: PeerSettings | None = None,
        a_as: int = 65001,
        b_as: int = 65002,
        a_id: str = "10.0.0.1",
        b_id: str = "10.0.0.2",
    ) -> None:
        self.now = 1000.0
        self.a = Side(BgpFsm(a_as, a_id, a or settings("10.0.0.2", b_as)))
        self.b = Side(BgpFsm(b_as, b_id, b or settings("10.0.0.1", a_as, passive=True)))

    def connect(self) -> None:
        self.a.fsm.start(self.now)
        self.b.fsm.start(self.now)
        self.a.fsm.connection_made(self.now, outgoing=True)
        self.b.fsm.connection_made(self.now, outgoing=False)
        self.pump()

    def connect_again(self) -> None:
        """A new connection after both sides went down (idle timers fired at ``now``)."""
        for side in (self.a, self.b):
            side.fsm.handle_timer(self.now)
            if side.fsm.state is State.IDLE:
                side.fsm.start_for_incoming(self.now)
        self.a.fsm.connection_made(self.now, outgoing=True)
        self.b.fsm.connection_made(self.now, outgoing=False)
        self.pump()
        assert self.a.fsm.state is State.ESTABLISHED, self.a.fsm.state

    def pump(self) -> None:
        """Carry bytes both ways until quiet; like a shell that finds no collision,
        each side is resumed after the peer's OPEN (``BgpFsm.resume``)."""
        for _ in range(20):
            da, db = self.a.fsm.data_to_send(), self.b.fsm.data_to_send()
            if not da and not db:
                break
            if db:
                self.a.fsm.receive_data(db, self.now)
                self.a.fsm.resume(self.now)
            if da:
                self.b.fsm.receive_data(da, self.now)
                self.b.fsm.resume(self.now)
        self.a.drain()
        self.b.drain()

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            self.a.fsm.handle_timer(self.now)
            self.b.fsm.handle_timer(self.now)
            self.pump()
