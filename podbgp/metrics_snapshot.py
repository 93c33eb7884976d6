"""The numbers a metrics scrape reads (`podbgp.metrics` turns them into Prometheus families).

Kept apart from `podbgp.metrics` so that the daemon and `podbgp.bgpnode` can fill a
snapshot without the exposition format and its HTTP endpoint, which only a daemon
serving the endpoint loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PeerMetrics:
    address: str
    state: str
    uptime_seconds: float = 0.0
    updates_in: int = 0
    updates_out: int = 0
    # family ("ipv4"/"ipv6") → (received, accepted, advertised)
    prefixes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # `bfd.runner` stats of the peer's BFD session (state, flaps, ...); None: no BFD
    bfd: dict[str, Any] | None = None


@dataclass
class PoolMetrics:
    cidr: str
    blocks: int
    addresses_used: int
    addresses_free: int


@dataclass
class MetricsSnapshot:
    peers: list[PeerMetrics] = field(default_factory=list)
    fib_desired: int = 0
    fib_installed: int = 0
    fib_drift_repairs: int = 0
    fib_backlog: int = 0  # routes waiting for the kernel (fib.reconciler.Reconciler.backlog)
    fib_input_holds: int = 0  # times BGP input waited for the kernel (fib.service)
    fib_input_held_seconds: float = 0.0
    pools: list[PoolMetrics] = field(default_factory=list)
    decision_runs: int = 0
    decision_seconds: float = 0.0
    datastore_ok: bool | None = None  # None: no datastore on this node
    ipam_leaks_released: int = 0  # pod addresses this node released as leaked (ipam.leaks)
    nodes_removed: int = 0  # lapsed nodes this node removed as the reaper (ipam.lifecycle)
    bmp: list[dict[str, Any]] = field(default_factory=list)  # podbgp.bmp.BmpFeed.status()
