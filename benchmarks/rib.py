"""In-process RIB benchmark: pre-encoded UPDATEs → decode → RIB → encoded UPDATEs pulled.

No sockets: the feed of ``../shared/bench/bgpwire.py`` (``gen_feed``: ~60 % /24,
1 to 13 NLRI per UPDATE, 10,000 attribute sets) is decoded with ``bgp.wire``,
applied to a ``rib.Rib`` in batches as a session hands them over
(``Rib.receive_updates``, a run of withdraw-only UPDATEs merged into one, as
``bgp.fsm`` does), and
after every batch each monitor peer pulls its UPDATEs (as a writable socket
would). Then everything is withdrawn the same way. Prints one JSON object.

    .venv/bin/python benchmarks/rib.py --prefixes 1000000 --monitors 1
    .venv/bin/python benchmarks/rib.py --prefixes 100000 --monitors 100

``*_cpu_s`` are the process's CPU seconds per phase, steadier than the
wall-clock ``*_s`` on a machine shared with other work. ``bytes_per_route``
is (peak RSS - RSS after loading the feed) / prefixes. As
``podbgp run`` does, the benchmark first pins glibc's mmap threshold
(``rib.heap``); ``--no-pin-heap`` shows the figure without it. It also tunes the
garbage collector as ``podbgp run`` does (``rib.heap.tune_gc``);
``--default-gc`` keeps Python's defaults.

``--memory-sites N`` traces the announce phase with ``tracemalloc`` and adds
the N allocation sites holding the most memory after it (bytes per route and
blocks, ``memory_sites``): what a route costs, by where it was allocated.
Tracing slows the run several times over; its times are not comparable.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from ipaddress import IPv4Address

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
BENCH = os.environ.get("BGPBENCH_DIR", os.path.join(HERE, "..", "..", "shared", "bench"))

from bgp.wire import CodecContext, Family  # noqa: E402
from bgp.wire.update import Update, decode_update, plain_withdrawal  # noqa: E402
from rib import PeerPolicy, Rib, RibSettings, SessionFacts, builtin  # noqa: E402
from rib.heap import pin_mmap_threshold, tune_gc  # noqa: E402

V4 = Family.IPV4_UNICAST


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Reset VmHWM so the peak counts from now (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def frames(blob: bytes) -> list[bytes]:
    out = []
    i, n = 0, len(blob)
    while i < n:
        ln = (blob[i + 16] << 8) | blob[i + 17]
        out.append(blob[i : i + ln])
        i += ln
    return out


def count_nlri(blobs: list[bytes]) -> tuple[int, int]:
    """(announced, withdrawn) IPv4 prefixes in concatenated UPDATEs (verification)."""
    ann = wd = 0
    for blob in blobs:
        i, n = 0, len(blob)
        while i < n:
            ln = (blob[i + 16] << 8) | blob[i + 17]
            if blob[i + 18] == 2:
                wl = (blob[i + 19] << 8) | blob[i + 20]
                j = i + 21
                while j < i + 21 + wl:
                    j += 1 + ((blob[j] + 7) >> 3)
                    wd += 1
                al = (blob[i + 21 + wl] << 8) | blob[i + 22 + wl]
                j = i + 23 + wl + al
                while j < i + ln:
                    j += 1 + ((blob[j] + 7) >> 3)
                    ann += 1
            i += ln
    return ann, wd


def memory_sites(top: int, n: int) -> list[dict[str, object]]:
    """The ``top`` allocation sites holding the most traced memory, per route; stops tracing."""
    stats = tracemalloc.take_snapshot().statistics("lineno")[:top]
    tracemalloc.stop()
    here = os.path.dirname(HERE) + os.sep
    return [
        {
            "site": f"{s.traceback[0].filename.replace(here, '')}:{s.traceback[0].lineno}",
            "bytes_per_route": round(s.size / n, 2),
            "blocks": s.count,
        }
        for s in stats
    ]


def run(
    n: int,
    monitors: int,
    batch: int,
    pull_bytes: int,
    verify: bool,
    pin: bool = True,
    default_gc: bool = False,
    sites: int = 0,
) -> dict[str, object]:
    pinned = pin_mmap_threshold() if pin else False
    sys.path.insert(0, BENCH)
    import bgpwire  # the neutral harness's feed generator

    path = bgpwire.ensure_feed("/tmp/bgpbench-cache", n)
    feed = bgpwire.load_feed(path, want=("ann", "wd"))
    ann, wd = frames(feed["ann"]), frames(feed["wd"])
    del feed
    settings = RibSettings(local_as=65000, router_id=IPv4Address("10.0.0.1"))
    rib = Rib(settings)
    feeder = PeerPolicy.make(
        "10.0.1.1", 65001, import_policy=builtin("all"), export_policy=builtin("all")
    )
    rib.add_peer(feeder)
    facts = SessionFacts(families=(V4,), local_address=IPv4Address("10.0.0.1"))
    mons = []
    for i in range(monitors):
        p = PeerPolicy.make(
            f"10.0.2.{1 + i % 250}", 65002 + i, name=f"mon{i}", export_policy=builtin("all")
        )
        rib.add_peer(p)
        mons.append(p.key)
    rib.peer_up(feeder.key, facts)
    for k in mons:
        rib.peer_up(k, facts)
    ctx = CodecContext(as4=True, ebgp=True, local_as=65000, peer_as=65001)
    gc.collect()
    if default_gc:
        gc.freeze()
    else:
        tune_gc()
    base = rss_kib()
    reset_peak()
    sent = [0] * monitors
    seen: list[bytes] = []
    cpu: list[float] = []

    def phase(msgs: list[bytes]) -> float:
        t0 = time.perf_counter()
        c0 = time.process_time()
        receive = rib.receive_updates
        key = feeder.key
        for s in range(0, len(msgs), batch):
            run: list[Update] = []  # as bgp.fsm hands them over: withdraw-only runs merged
            merged: list[bytes] | None = None
            for m in msgs[s : s + batch]:
                wd_keys = plain_withdrawal(m, ctx)
                if wd_keys is not None:
                    if merged is None:
                        merged = []
                        run.append(Update(None, {}, {V4: merged}))
                    merged += wd_keys
                    continue
                merged = None
                run.append(decode_update(m, ctx))
            receive(key, run)  # flushes
            for i, mk in enumerate([*mons, key]):
                while True:
                    blobs = rib.pull(mk, pull_bytes)
                    if not blobs:
                        break
                    if i < monitors:
                        sent[i] += sum(map(len, blobs))
                    if verify and i == 0:
                        seen.extend(blobs)
        cpu.append(time.process_time() - c0)
        return time.perf_counter() - t0

    if sites:
        tracemalloc.start()
    t_ann = phase(ann)
    peak_ann = rss_kib("VmHWM")
    held = memory_sites(sites, n) if sites else []
    table = len(rib.loc[V4])
    ann_counts = count_nlri(seen) if verify else (0, 0)
    seen.clear()
    t_wd = phase(wd)
    wd_counts = count_nlri(seen) if verify else (0, 0)
    out: dict[str, object] = {
        "benchmark": "rib",
        "prefixes": n,
        "monitors": monitors,
        "updates": len(ann),
        "batch": batch,
        "announce_s": round(t_ann, 3),
        "announce_prefixes_per_s": round(n / t_ann),
        "withdraw_s": round(t_wd, 3),
        "withdraw_prefixes_per_s": round(n / t_wd),
        "announce_cpu_s": round(cpu[0], 3),
        "withdraw_cpu_s": round(cpu[1], 3),
        "table_after_announce": table,
        "table_after_withdraw": len(rib.loc[V4]),
        "bytes_per_route": round((peak_ann - base) * 1024 / n, 1),
        "bytes_sent_per_monitor": sent[0] if sent else 0,
        "mmap_threshold_pinned": pinned,
        "python": sys.version.split()[0],
    }
    if sites:
        out["memory_sites"] = held
    if verify:
        out["monitor0_announced"] = ann_counts[0]
        out["monitor0_withdrawn"] = wd_counts[1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--monitors", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256, help="UPDATEs per batch handed to the RIB")
    ap.add_argument("--pull-bytes", type=int, default=1 << 18)
    ap.add_argument("--verify", action="store_true", help="count NLRI sent to the first monitor")
    ap.add_argument(
        "--no-pin-heap",
        action="store_true",
        help="leave glibc's dynamic mmap threshold alone (see rib/heap.py)",
    )
    ap.add_argument(
        "--default-gc", action="store_true", help="keep Python's garbage collector thresholds"
    )
    ap.add_argument(
        "--memory-sites",
        type=int,
        default=0,
        metavar="N",
        help="trace the announce phase and list the N sites holding the most memory",
    )
    a = ap.parse_args()
    out = run(
        a.prefixes,
        a.monitors,
        a.batch,
        a.pull_bytes,
        a.verify,
        not a.no_pin_heap,
        a.default_gc,
        a.memory_sites,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
