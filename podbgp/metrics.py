"""Prometheus metrics, collected from the daemon's state at scrape time.

Nothing on the hot path updates a metric object: a scrape asks the daemon for a
`MetricsSnapshot` (plain numbers it keeps anyway for `podbgp show`) and turns it
into metric families. A scrape therefore costs the daemon nothing between scrapes.
The snapshot's types live in `podbgp.metrics_snapshot`, so a daemon with the
endpoint off (``[api] metrics = ""``) never imports prometheus_client (~4.6 MB).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bgp.fsm import State
from podbgp.metrics_snapshot import MetricsSnapshot, PeerMetrics, PoolMetrics

__all__ = ["MetricsServer", "MetricsSnapshot", "PeerMetrics", "PoolMetrics"]

SESSION_STATES = tuple(s.rfc_name for s in State)  # RFC 4271 §8.2.2 spelling
BFD_STATES = ("admindown", "down", "init", "up")  # RFC 5880 §4.1


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snap = self.snapshot()
        yield from _peer_families(snap.peers)
        fib = GaugeMetricFamily(
            "podbgp_fib_routes", "Kernel routes owned by podbgp", labels=["kind"]
        )
        fib.add_metric(["desired"], snap.fib_desired)
        fib.add_metric(["installed"], snap.fib_installed)
        yield fib
        yield CounterMetricFamily(
            "podbgp_fib_drift_repairs",
            "Owned routes put back after drift",
            value=snap.fib_drift_repairs,
        )
        yield GaugeMetricFamily(
            "podbgp_fib_backlog",
            "Routes waiting to be written to the kernel",
            value=snap.fib_backlog,
        )
        yield CounterMetricFamily(
            "podbgp_fib_input_holds",
            "Times BGP sessions stopped reading while the kernel caught up",
            value=snap.fib_input_holds,
        )
        yield CounterMetricFamily(
            "podbgp_fib_input_held_seconds",
            "Time BGP sessions spent waiting for the kernel to catch up",
            value=snap.fib_input_held_seconds,
        )
        yield from _pool_families(snap.pools)
        if snap.datastore_ok is not None:
            yield GaugeMetricFamily(
                "podbgp_datastore_ok",
                "1 while the datastore is the one this node joined; 0 if missing or replaced",
                value=int(snap.datastore_ok),
            )
        yield from _bmp_families(snap.bmp)
        yield CounterMetricFamily(
            "podbgp_decision_runs", "Best-path decision runs", value=snap.decision_runs
        )
        yield CounterMetricFamily(
            "podbgp_ipam_leaks_released",
            "Pod addresses released because the pod's network namespace was gone",
            value=snap.ipam_leaks_released,
        )
        yield CounterMetricFamily(
            "podbgp_nodes_removed",
            "Nodes this node removed after their lease lapsed for node_gone_after",
            value=snap.nodes_removed,
        )
        yield CounterMetricFamily(
            "podbgp_decision_seconds",
            "Time spent in best-path decision",
            value=snap.decision_seconds,
        )


def _peer_families(peers: list[PeerMetrics]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    state = GaugeMetricFamily(
        "podbgp_bgp_session_state", "1 for the state the session is in", labels=["peer", "state"]
    )
    uptime = GaugeMetricFamily(
        "podbgp_bgp_session_uptime_seconds", "Time since Established", labels=["peer"]
    )
    updates = CounterMetricFamily(
        "podbgp_bgp_updates", "UPDATE messages", labels=["peer", "direction"]
    )
    prefixes = GaugeMetricFamily(
        "podbgp_bgp_prefixes", "Prefixes per peer and family", labels=["peer", "family", "kind"]
    )
    for p in peers:
        for s in SESSION_STATES:
            state.add_metric([p.address, s], 1.0 if p.state == s else 0.0)
        uptime.add_metric([p.address], p.uptime_seconds)
        updates.add_metric([p.address, "in"], p.updates_in)
        updates.add_metric([p.address, "out"], p.updates_out)
        for family, counts in p.prefixes.items():
            for kind, n in zip(("received", "accepted", "advertised"), counts, strict=True):
                prefixes.add_metric([p.address, family, kind], n)
    yield from (state, uptime, updates, prefixes)
    yield from _bfd_families(peers)


def _bfd_families(peers: list[PeerMetrics]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """BFD session state and flaps (Up → Down) of the peers that run BFD."""
    state = GaugeMetricFamily(
        "podbgp_bfd_session_state",
        "1 for the state the BFD session is in",
        labels=["peer", "state"],
    )
    flaps = CounterMetricFamily(
        "podbgp_bfd_session_flaps", "BFD session changes from Up to Down", labels=["peer"]
    )
    for p in peers:
        if p.bfd is None:
            continue
        for s in BFD_STATES:
            state.add_metric([p.address, s], 1.0 if p.bfd.get("state") == s else 0.0)
        flaps.add_metric([p.address], p.bfd.get("flaps", 0))
    yield from (state, flaps)


def _pool_families(pools: list[PoolMetrics]) -> Iterator[GaugeMetricFamily]:
    blocks = GaugeMetricFamily(
        "podbgp_ipam_blocks", "Blocks claimed in the pool (cluster-wide)", labels=["pool"]
    )
    addrs = GaugeMetricFamily(
        "podbgp_ipam_addresses", "Addresses of the pool, used and free", labels=["pool", "kind"]
    )
    for pool in pools:
        blocks.add_metric([pool.cidr], pool.blocks)
        addrs.add_metric([pool.cidr, "used"], pool.addresses_used)
        addrs.add_metric([pool.cidr, "free"], pool.addresses_free)
    yield from (blocks, addrs)


def _bmp_families(
    stations: list[dict[str, Any]],
) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Each BMP station's connection (``podbgp.bmp``): up, and what went to it."""
    up = GaugeMetricFamily(
        "podbgp_bmp_station_up", "1 while connected to the BMP station", labels=["station"]
    )
    counters = {
        key: CounterMetricFamily(f"podbgp_bmp_{name}", text, labels=["station"])
        for key, name, text in (
            ("messages", "messages", "BMP messages written to the station"),
            ("connects", "connects", "Connections made to the station"),
            ("overflows", "overflows",
             "Connections dropped because too many messages waited (then resynced)"),
        )
    }  # fmt: skip
    for st in stations:
        up.add_metric([st["station"]], 1.0 if st["connected"] else 0.0)
        for key, fam in counters.items():
            fam.add_metric([st["station"]], st[key])
    yield up
    yield from counters.values()


class MetricsServer:
    """An HTTP endpoint (`[api] metrics = "host:port"`) serving the snapshot collector."""

    def __init__(self, address: str, snapshot: Callable[[], MetricsSnapshot]) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(snapshot))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        self.port = self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
