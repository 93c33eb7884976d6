"""The speaker's route sink as the daemon plugs it in: the RIB adapter, timed, and
the parts that watch the sessions (the drainer, BFD and dynamic peers, the BMP feed).

Kept apart from ``podbgp.bgpnode`` (which builds it) because it is one small concern:
the order in which each sink event reaches the RIB and then its observers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bgp.events import PeerHandle, RouteSink, SessionDown
from bgp.negotiate import Negotiated
from bgp.speaker import Peer as BgpPeer
from bgp.wire.constants import Family
from bgp.wire.update import Update
from podbgp.drain import Drainer
from rib.adapter import RibAdapter

__all__ = ["TimedSink"]


class TimedSink:
    """The speaker's route sink (`bgp.events.RouteSink`), timed: every batch of UPDATEs
    the RIB takes in runs import policy, the decision process and the FIB hand-off in
    one call, so the time spent in `updates_received` is the decision time the metrics
    report. The drainer sees each batch, and `on_peer_up` each session's start and end.
    `observers` (the BMP feed, `podbgp.bmp`) see every event after the RIB has taken it."""

    def __init__(self, adapter: RibAdapter, drainer: Drainer) -> None:
        self.adapter = adapter
        self.drainer = drainer
        self.on_peer_up: Callable[[BgpPeer, bool], None] | None = None  # BFD, dynamic peers
        self.observers: list[RouteSink] = []
        self.runs = 0
        self.seconds = 0.0

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        t0 = time.perf_counter()
        try:
            self.adapter.updates_received(peer, updates)
        finally:
            self.runs += 1
            self.seconds += time.perf_counter() - t0
        self.drainer.received(peer.key, updates)  # a drain waits for the peers' moves
        for o in self.observers:
            o.updates_received(peer, updates)

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        self.adapter.peer_up(peer, negotiated)
        for o in self.observers:
            o.peer_up(peer, negotiated)
        if self.on_peer_up is not None and isinstance(peer, BgpPeer):
            self.on_peer_up(peer, True)

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        self.adapter.peer_down(peer, reason)
        for o in self.observers:
            o.peer_down(peer, reason)
        if self.on_peer_up is not None and isinstance(peer, BgpPeer):
            self.on_peer_up(peer, False)

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        self.adapter.end_of_rib(peer, family)
        for o in self.observers:
            o.end_of_rib(peer, family)

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        self.adapter.route_refresh(peer, family, subtype)
        for o in self.observers:
            o.route_refresh(peer, family, subtype)
