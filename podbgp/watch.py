"""The control API's ``watch`` stream: peer and route events as JSON lines, as they happen.

``EventBus`` fans events out to subscriptions, each a bounded queue: a watcher
that cannot keep up (a full-table load is a million route events) gets one last
``{"type": "overflow"}`` event and its stream ends, rather than the daemon
buffering without bound or the sessions waiting on it. Nothing is computed for
a kind of event nobody watches: ``PeerEvents`` (an observer of the speaker's
sink, `podbgp.sink.TimedSink`) returns at once, and route events exist only
while someone watches them, because only then does the daemon add
``route_events`` to the RIB's best-path listener (``EventBus.on_routes_wanted``).

Events:

- ``{"type": "peer", "event": "up", "peer", "time", "families"}``;
- ``{"type": "peer", "event": "down", "peer", "time", "code", "subcode", "reason", "graceful"}``;
- ``{"type": "peer", "event": "end-of-rib", "peer", "time", "family"}``;
- ``{"type": "route", "event": "best" | "withdrawn" | "local", "prefix", "family", "time",
  "next_hops", "peer", "as_path"}``: the new best path of a prefix after a RIB batch
  (``local``: this node's own route; ``withdrawn``: no path left).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from bgp.events import PeerHandle, SessionDown
from bgp.negotiate import Negotiated
from bgp.wire.attributes import as_path_str
from bgp.wire.constants import Family
from bgp.wire.prefix import key_to_network
from bgp.wire.update import Update
from podbgp.api import InvalidArgument, Stream, arg_prefix
from rib.core import Rib

__all__ = ["KINDS", "EventBus", "PeerEvents", "Subscription", "Watch", "route_events"]

KINDS = ("peer", "route")
QUEUE_LIMIT = 10_000
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_FAMILY = {Family.IPV4_UNICAST: "ipv4", Family.IPV6_UNICAST: "ipv6"}


@dataclass(eq=False)
class Subscription:
    """One watcher: the kinds it wants, an optional prefix filter, its queue."""

    kinds: frozenset[str]
    within: IPNetwork | None = None
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT + 2)  # + overflow, end
    )
    closed: bool = False

    def wants(self, kind: str, event: dict[str, Any]) -> bool:
        if kind not in self.kinds:
            return False
        if kind == "route" and self.within is not None:
            net = ipaddress.ip_network(event["prefix"])
            return net.version == self.within.version and net.subnet_of(self.within)  # type: ignore[arg-type]
        return True

    def put(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.closed = True
            self.queue.put_nowait({"type": "overflow", "time": time.time(),
                                   "why": f"more than {QUEUE_LIMIT} events unread"})  # fmt: skip
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self.queue.get()) is not None:
            yield event


class EventBus:
    """Subscriptions by kind; ``on_routes_wanted(True/False)`` when route watchers come and go."""

    def __init__(self, on_routes_wanted: Callable[[bool], None] = lambda _: None) -> None:
        self.subs: list[Subscription] = []
        self.on_routes_wanted = on_routes_wanted

    def wants(self, kind: str) -> bool:
        return any(kind in s.kinds and not s.closed for s in self.subs)

    def subscribe(self, kinds: frozenset[str], within: IPNetwork | None = None) -> Subscription:
        had_routes = self.wants("route")
        sub = Subscription(kinds, within)
        self.subs.append(sub)
        if not had_routes and self.wants("route"):
            self.on_routes_wanted(True)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        had_routes = self.wants("route")
        sub.closed = True
        if sub in self.subs:
            self.subs.remove(sub)
        if had_routes and not self.wants("route"):
            self.on_routes_wanted(False)

    def publish(self, kind: str, event: dict[str, Any]) -> None:
        event = {"type": kind, **event}
        for sub in self.subs:
            if sub.wants(kind, event):
                sub.put(event)


def route_events(
    rib: Rib, family: Family, changes: dict[bytes, tuple[bytes, ...]]
) -> list[dict[str, Any]]:
    """One event per prefix of a RIB batch: its best path now (see the module docstring)."""
    now = time.time()
    out = []
    for key, hops in changes.items():
        best = rib.best(family, key)
        event: dict[str, Any] = {
            "prefix": str(key_to_network(family, key)),
            "family": _FAMILY.get(family, str(family)),
            "time": now,
            "next_hops": [str(ipaddress.ip_address(h)) for h in hops],
        }
        if best is None:
            event["event"] = "withdrawn"
        else:
            event["event"] = "local" if best.local else "best"
            event["peer"] = None if best.local else best.source.key
            event["as_path"] = as_path_str(best.attrs.as_path)
        out.append(event)
    return out


class PeerEvents:
    """A sink observer (`bgp.events.RouteSink`) that publishes session events."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        if self.bus.wants("peer"):
            fams = sorted(_FAMILY.get(f, str(f)) for f in negotiated.families)
            self.bus.publish("peer", {"event": "up", "peer": peer.key, "time": time.time(),
                                      "families": fams})  # fmt: skip

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        if self.bus.wants("peer"):
            self.bus.publish("peer", {"event": "down", "peer": peer.key, "time": time.time(),
                                      "code": reason.code, "subcode": reason.subcode,
                                      "reason": reason.reason, "graceful": reason.graceful})  # fmt: skip

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        if self.bus.wants("peer"):
            self.bus.publish("peer", {"event": "end-of-rib", "peer": peer.key,
                                      "time": time.time(), "family": _FAMILY.get(family)})  # fmt: skip

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        pass  # route events come from the RIB, after policy and the decision process

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        pass


class Watch:
    """The ``watch`` verb of one daemon: a bus, the sink observer, and the RIB listener
    that adds route events to the FIB's callback while route watchers exist."""

    def __init__(
        self,
        rib: Rib,
        observers: list[Any],
        fib: Callable[[Family, dict[bytes, tuple[bytes, ...]]], None] | None,
    ) -> None:
        self.rib = rib
        self.fib = fib
        self.bus = EventBus(self._routes_wanted)
        observers.append(PeerEvents(self.bus))

    def _routes_wanted(self, wanted: bool) -> None:
        self.rib.set_best_listener(self._best if wanted else self.fib)

    def _best(self, family: Family, changes: dict[bytes, tuple[bytes, ...]]) -> None:
        if self.fib is not None:
            self.fib(family, changes)
        for event in route_events(self.rib, family, changes):
            self.bus.publish("route", event)

    async def handler(self, args: dict[str, Any]) -> Stream:
        raw = args.get("events") or list(KINDS)
        if not isinstance(raw, list) or not raw or any(k not in KINDS for k in raw):
            raise InvalidArgument(f"events: a list of {', '.join(KINDS)} is required")
        prefix = arg_prefix(args)
        within = ipaddress.ip_network(prefix) if prefix else None
        sub = self.bus.subscribe(frozenset(raw), within)
        header = {"watching": sorted(sub.kinds), "prefix": prefix}
        return Stream(header, sub.events(), lambda: self.bus.unsubscribe(sub))
