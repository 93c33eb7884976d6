"""`podbgp.watch`: subscriptions, prefix filters, overflow, and the RIB listener that exists
only while someone watches routes."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

from ribkit import V4, attrs, facts, key, make_rib

from podbgp import watch
from rib import PeerPolicy, builtin


async def test_filters_and_overflow() -> None:
    bus = watch.EventBus()
    routes = bus.subscribe(frozenset({"route"}), ip_network("10.0.0.0/8"))
    peers = bus.subscribe(frozenset({"peer"}))
    bus.publish("route", {"prefix": "10.1.0.0/16"})
    bus.publish("route", {"prefix": "192.0.2.0/24"})
    bus.publish("peer", {"event": "up"})
    assert routes.queue.qsize() == 1 and peers.queue.qsize() == 1
    for i in range(watch.QUEUE_LIMIT + 5):
        bus.publish("peer", {"event": "up", "n": i})
    got = [e async for e in peers.events()]
    assert got[-1]["type"] == "overflow" and len(got) == watch.QUEUE_LIMIT + 1
    assert peers.closed and not bus.wants("peer")


async def test_route_listener_only_while_watched() -> None:
    told: list[dict[bytes, tuple[bytes, ...]]] = []
    rib = make_rib()
    fib = lambda fam, changes: told.append(changes)  # noqa: E731
    rib.set_best_listener(fib)
    w = watch.Watch(rib, [], fib)
    assert rib.fib is fib
    stream = await w.handler({"events": ["route"]})
    assert rib.fib is not fib
    p = PeerPolicy.make("192.0.2.1", 65001, export_policy=builtin("all"))
    rib.add_peer(p)
    rib.peer_up(p.key, facts(bgp_id="192.0.2.1"))
    rib.receive(p.key, V4, (), attrs((65001,), "192.0.2.1"), [key("10.9.0.0/16")])
    rib.flush()
    assert told  # the FIB still gets every change
    event = await asyncio.wait_for(anext(stream.events), 2)
    assert event == {**event, "type": "route", "event": "best", "prefix": "10.9.0.0/16",
                     "peer": "192.0.2.1", "as_path": "65001", "next_hops": ["192.0.2.1"]}  # fmt: skip
    stream.close()
    assert rib.fib is fib
