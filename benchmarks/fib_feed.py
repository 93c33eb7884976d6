"""The FIB side of BGP → kernel, in process: RIB batches → FibFeed → Reconciler, no kernel.

What `../shared/bench/fibbench.py` (through benchmarks/fib_ingest.py) measures end
to end includes BGP decoding, the RIB and the kernel inserting routes; this
isolates the FIB's own share: the CPU of `FibFeed.best_paths` plus the
reconciler's passes, and the memory of the FIB's structures per route
(tracemalloc, after the install, not counting the RIB's key and hop bytes,
which the RIB holds anyway). The kernel accepts every write and keeps nothing.

The routes: N IPv4 prefixes, /16 to /24 (about the harness's mix), in RIB
batches of 1,000, behind four next hops and two ECMP pairs; three next hops
lie in the node's subnet (`via NODE dev eth0`, bound to kernel nexthop
objects), one outside it (`via NODE`, a plain route), so about three quarters
of the routes name an object. Then the same batches withdraw them.

    .venv/bin/python benchmarks/fib_feed.py --prefixes 100000 --rounds 3

Prints one JSON object: per round announce and withdraw CPU seconds (feed and
passes), routes/s, FIB bytes per route, and what reading the installed table
costs the event loop (`podbgp show fib`, the audit's kernel states: wall
seconds); medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bgp.wire.constants import Family
from fib.kernel import Event, NexthopFailure, NexthopOp, RouteBatch, RouteFailure, RouteOp
from fib.model import (
    FdbEntry,
    IpipSpec,
    KernelRoute,
    Neighbour,
    NexthopObject,
    NodeInfo,
    VxlanSpec,
    pack_addr,
)
from fib.reconciler import FibConfig, Reconciler
from podbgp.fibfeed import FibFeed, PoolTable

BATCH = 1000
HOPS = [pack_addr(a) for a in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.9.0.2")]
HOP_SETS = [(h,) for h in HOPS] + [(HOPS[0], HOPS[1]), (HOPS[1], HOPS[2])]


class NullKernel:
    """A kernel that accepts every write and holds nothing (`fib.kernel.Kernel`)."""

    def dump_routes(self, table: int) -> list[KernelRoute]:
        return []

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        return []

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        return []

    def dump_nexthops(self) -> list[NexthopObject]:
        return []

    def write_nexthops(self, ops: Sequence[NexthopOp]) -> list[NexthopFailure]:
        return []

    def link_mtu(self, name: str) -> int | None:
        return 1500

    def ensure_vxlan(self, spec: VxlanSpec) -> bool:
        return False

    def ensure_ipip(self, spec: IpipSpec) -> bool:
        return False

    def dump_neighbours(self, dev: str) -> set[Neighbour]:
        return set()

    def write_neighbours(self, add: Sequence[Neighbour], remove: Sequence[Neighbour]) -> None:
        pass

    def dump_fdb(self, dev: str) -> set[FdbEntry]:
        return set()

    def write_fdb(self, add: Sequence[FdbEntry], remove: Sequence[FdbEntry]) -> None:
        pass

    def read_events(self) -> list[Event]:
        return []

    def event_fd(self) -> int | None:
        return None

    def close(self) -> None:
        pass


def rib_batches(n: int, seed: int = 15) -> list[dict[bytes, tuple[bytes, ...]]]:
    """N distinct IPv4 RIB keys (length byte, then the bytes the length covers) with hops."""
    rng = random.Random(seed)
    keys: set[bytes] = set()
    while len(keys) < n:
        length = rng.choice((16, 20, 22, 23, 24, 24, 24, 24))
        value = rng.getrandbits(length) << (32 - length)
        keys.add(bytes([length]) + value.to_bytes(4, "big")[: (length + 7) // 8])
    ordered = sorted(keys)
    rng.shuffle(ordered)
    hops = [HOP_SETS[rng.randrange(len(HOP_SETS))] for _ in range(n)]
    return [
        dict(zip(ordered[i : i + BATCH], hops[i : i + BATCH], strict=True))
        for i in range(0, n, BATCH)
    ]


def one_round(n: int) -> dict[str, Any]:
    batches = rib_batches(n)
    withdrawals: list[dict[bytes, tuple[bytes, ...]]] = [dict.fromkeys(b, ()) for b in batches]
    pools = PoolTable([])
    rec = Reconciler(NullKernel(), FibConfig(), clock=lambda: 0.0)
    rec.set_node(NodeInfo.parse("node-a", "10.0.0.1/24", "eth0"))
    rec.apply()  # the start-up resync
    feed = FibFeed(rec, lambda: pools, lambda: None)
    gc.collect()
    t0 = time.process_time()
    for batch in batches:
        feed.best_paths(Family.IPV4_UNICAST, batch)
        rec.apply()
    announce = time.process_time() - t0
    assert len(rec.installed) == n, (len(rec.installed), n)
    looks = introspection(rec)
    del feed, rec
    # the same again under tracemalloc for the bytes (the timing above runs without it)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    rec = Reconciler(NullKernel(), FibConfig(), clock=lambda: 0.0)
    rec.set_node(NodeInfo.parse("node-a", "10.0.0.1/24", "eth0"))
    rec.apply()
    feed = FibFeed(rec, lambda: pools, lambda: None)
    for batch in batches:
        feed.best_paths(Family.IPV4_UNICAST, batch)
        rec.apply()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    bound = sum(1 for s in rec.installed.shapes.values() if s[6])
    t0 = time.process_time()
    for batch in withdrawals:
        feed.best_paths(Family.IPV4_UNICAST, batch)
        rec.apply()
    withdraw = time.process_time() - t0
    assert not rec.installed
    return {
        "announce_cpu_s": round(announce, 3),
        "announce_routes_per_s": round(n / announce),
        "withdraw_cpu_s": round(withdraw, 3),
        "withdraw_routes_per_s": round(n / withdraw),
        "fib_bytes_per_route": round(held / n, 1),
        "bound_share": round(bound / n, 3),
        **looks,
    }


def introspection(rec: Reconciler) -> dict[str, float]:
    """What reading the full table costs the event loop it runs on: `podbgp show fib`
    (`snapshot()`, 1,000 rows) and the audit's kernel states (`route_states()`: the
    routes not as planned). (A metrics scrape reads the table sizes only.)"""
    out = {}
    for name, call in (
        ("show_fib_s", rec.snapshot),
        ("audit_kernel_states_s", rec.route_states),
    ):
        t0 = time.perf_counter()
        call()
        out[name] = round(time.perf_counter() - t0, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = [one_round(args.prefixes) for _ in range(args.rounds)]
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(json.dumps({"prefixes": args.prefixes, "runs": runs, "medians": medians}))


if __name__ == "__main__":
    main()
