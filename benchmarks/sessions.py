"""Benchmark of the session layer: a full table through two speakers over loopback TCP.

Prints one JSON object. Usage::

    .venv/bin/python benchmarks/sessions.py [--prefixes N] [--per-update K] [--hold H]

Two ``bgp.speaker.Speaker`` instances in one process (one event loop, one
core), A on 127.0.0.1 and B on 127.0.0.2, eBGP with 4-octet AS. A's pull
source hands out pre-encoded UPDATEs (N IPv4 /24s, K per UPDATE, 100 distinct
attribute sets), so the figures measure the session path only: socket
writes with back-pressure, framing, ``decode_message``, the FSM, bounded
input batches, and the sink call per batch (the sink only counts).

- ``prefixes_per_s`` / ``updates_per_s``: from the first pull to the last
  prefix seen by B's sink.
- ``withdraw_prefixes_per_s``: the same table then withdrawn (K prefixes per
  withdraw-only UPDATE); ``withdraw_sink_updates`` is how many ``Update``
  objects B's sink got for it (consecutive withdrawals arrive merged).
- ``batches`` / ``max_batch_updates``: how the input was cut into sink calls.
- ``keepalive_gap_max_s``: the longest gap between KEEPALIVEs A received from
  B while the table streamed in (with ``--hold 3`` B sends one per second):
  shows that timers keep running during the load.
- ``peak_rss_mb``: the process's peak RSS (both speakers, the pre-encoded
  feed included).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import platform
import resource
import sys
import time
from typing import Any

from bgp.events import PeerHandle, SessionDown
from bgp.negotiate import Negotiated
from bgp.settings import PeerSettings, SpeakerSettings
from bgp.speaker import Speaker
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.update import Update, encode_announce, encode_end_of_rib, encode_withdraw

V4 = Family.IPV4_UNICAST


def feed(n: int, per_update: int) -> list[bytes]:
    ctx = CodecContext(as4=True)
    attrs = [
        PathAttributes(
            origin=0,
            as_path=((2, (65001, 64512 + i % 50, 4200000000 + i)),),
            next_hop=ipaddress.IPv4Address("192.0.2.1"),
            med=i,
            communities=(65001 << 16 | i,),
        )
        for i in range(100)
    ]
    out: list[bytes] = []
    for start in range(0, n, per_update):
        nlri = [
            bytes((24,)) + (0x0B000000 + (i << 8)).to_bytes(4, "big")[:3]
            for i in range(start, min(n, start + per_update))
        ]
        out += encode_announce(attrs[(start // per_update) % 100], V4, nlri, ctx)
    return out


def withdrawals(n: int, per_update: int) -> list[bytes]:
    ctx = CodecContext(as4=True)
    out: list[bytes] = []
    for start in range(0, n, per_update):
        nlri = [
            bytes((24,)) + (0x0B000000 + (i << 8)).to_bytes(4, "big")[:3]
            for i in range(start, min(n, start + per_update))
        ]
        out += encode_withdraw(V4, nlri, ctx)
    return out


class CountingSink:
    def __init__(self) -> None:
        self.prefixes = 0
        self.withdrawn = 0
        self.wd_updates = 0
        self.batches = 0
        self.max_batch = 0
        self.done = asyncio.Event()
        self.wd_done = asyncio.Event()
        self.target = 0
        self.up = asyncio.Event()

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        self.up.set()

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        self.batches += 1
        self.max_batch = max(self.max_batch, len(updates))
        self.prefixes += sum(len(v) for u in updates for v in u.reach.values())
        wd = sum(len(v) for u in updates for v in u.unreach.values())
        if wd:
            self.withdrawn += wd
            self.wd_updates += sum(1 for u in updates if u.unreach)
        if self.prefixes >= self.target:
            self.done.set()
        if self.withdrawn >= self.target:
            self.wd_done.set()

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        pass

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        pass

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        pass


class FeedSource:
    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.i = 0
        self.started: float | None = None

    def pull(self, max_bytes: int) -> bytes:
        if self.started is None:
            self.started = time.perf_counter()
        out, size = [], 0
        while self.i < len(self.messages) and size < max_bytes:
            m = self.messages[self.i]
            self.i += 1
            out.append(m)
            size += len(m)
        return b"".join(out)


async def run(n: int, per_update: int, hold: int) -> dict[str, Any]:
    msgs = [*feed(n, per_update), encode_end_of_rib(V4)]
    source = FeedSource(msgs)
    sink_a, sink_b = CountingSink(), CountingSink()
    sink_b.target = n
    a = Speaker(
        SpeakerSettings(asn=65001, router_id="10.0.0.1", listen=("127.0.0.1",), port=0),
        sink_a,
        lambda peer, neg: source,
    )
    b = Speaker(
        SpeakerSettings(asn=65002, router_id="10.0.0.2", listen=("127.0.0.2",), port=0),
        sink_b,
        lambda peer, neg: FeedSource([]),
    )
    await a.start()
    await b.start()
    common: dict[str, Any] = {"hold_time": hold, "families": (V4,), "connect_retry": 0.2}
    b.add_peer(PeerSettings("127.0.0.1", 65001, local_address="127.0.0.2", passive=True, **common))
    a.add_peer(
        PeerSettings("127.0.0.2", 65002, port=b.ports[0], local_address="127.0.0.1", **common)
    )
    # Watch KEEPALIVEs from B arriving at A while the table streams.
    gaps: list[float] = []
    peer_a = a.peer("127.0.0.2")
    assert peer_a is not None

    async def watch() -> None:
        last_n, last_t = peer_a.counters.msgs_in["keepalive"], time.perf_counter()
        while not sink_b.done.is_set():
            await asyncio.sleep(0.01)
            k = peer_a.counters.msgs_in["keepalive"]
            if k != last_n:
                now = time.perf_counter()
                gaps.append(now - last_t)
                last_n, last_t = k, now

    watcher = asyncio.get_running_loop().create_task(watch())
    await asyncio.wait_for(sink_b.done.wait(), 600)
    elapsed = time.perf_counter() - (source.started or 0.0)
    watcher.cancel()
    wd_msgs = withdrawals(n, per_update)
    source.messages, source.i = wd_msgs, 0
    wd_batches, max_batch = sink_b.batches, sink_b.max_batch
    t0 = time.perf_counter()
    peer_a.wake()
    await asyncio.wait_for(sink_b.wd_done.wait(), 600)
    wd_elapsed = time.perf_counter() - t0
    await a.stop()
    await b.stop()
    return {
        "benchmark": "sessions",
        "prefixes": n,
        "prefixes_per_update": per_update,
        "updates": len(msgs) - 1,
        "seconds": round(elapsed, 3),
        "prefixes_per_s": round(n / elapsed),
        "updates_per_s": round((len(msgs) - 1) / elapsed),
        "batches": wd_batches,
        "max_batch_updates": max_batch,
        "hold_time": hold,
        "withdraw_seconds": round(wd_elapsed, 3),
        "withdraw_prefixes_per_s": round(n / wd_elapsed),
        "withdraw_updates": len(wd_msgs),
        "withdraw_batches": sink_b.batches - wd_batches,
        "withdraw_sink_updates": sink_b.wd_updates,
        "keepalive_gap_max_s": round(max(gaps[1:], default=0.0), 3),
        "keepalives_during_load": len(gaps),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--per-update", type=int, default=8)
    ap.add_argument("--hold", type=int, default=3)
    args = ap.parse_args()
    result = asyncio.run(run(args.prefixes, args.per_update, args.hold))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
