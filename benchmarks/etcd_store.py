"""The etcd store's own cost (`ipam.store.etcd`) against a local etcd; prints one JSON object.

    .venv/bin/python benchmarks/etcd_store.py [--ops N]

One throwaway etcd member on 127.0.0.1 (`ipam.etcdlab`), one client process:

* ``get_per_s`` / ``get_cpu_us``: N `get`s one after another (a read: no fsync), the rate
  and the client's CPU (user + system of this process) per call.
* ``cas_per_s`` / ``cas_cpu_us``: N `put_cas` on one key, each on the revision the last
  returned (a write: etcd fsyncs each).
* ``watch_events_per_s`` / ``watch_cpu_us``: N keys written in transactions of 100, then
  one `watch` from the revision before them reads all N events (replayed from etcd's
  history, so the rate is the client's and the server's decoding, not the writes').
* ``*_server_cpu_us``: etcd's CPU (user + system of the member) per call or event over
  the same span; with the JSON gateway etcd decodes JSON and relays each call to its own
  gRPC server, so this shows what the client's protocol costs the server.
* ``rss_mb``: this process's VmRSS at the end (the interpreter, the store and its
  connections).

The client's CPU is what a node pays; the server's share is etcd's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ipam.etcdlab import EtcdCluster
from ipam.store.base import Put
from ipam.store.etcd import EtcdStore


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_cpu(pid: int) -> float:
    """Seconds of CPU (utime + stime) process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(n: int, fn: object, pid: int) -> tuple[float, float, float]:
    """(calls per second, client and server CPU µs per call) of awaiting `fn()` n times."""
    wall, cpu, srv = time.perf_counter(), time.process_time(), server_cpu(pid)
    for _ in range(n):
        await fn()  # type: ignore[operator]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6, (server_cpu(pid) - srv) / n * 1e6


async def run(url: str, n: int, pid: int) -> dict[str, float]:
    store = EtcdStore(url.removeprefix("etcd:").split(","))
    out: dict[str, float] = {}
    try:
        await store.create("/bench/k", b"0")
        get = await timed(n, lambda: store.get("/bench/k"), pid)
        out["get_per_s"], out["get_cpu_us"], out["get_server_cpu_us"] = get
        rev = (await store.get("/bench/k")).mod_revision  # type: ignore[union-attr]

        async def cas() -> None:
            nonlocal rev
            assert await store.put_cas("/bench/k", b"x" * 64, rev)
            rev = (await store.get("/bench/k")).mod_revision  # type: ignore[union-attr]

        out["cas_per_s"], out["cas_cpu_us"], out["cas_server_cpu_us"] = await timed(n, cas, pid)
        _, start = await store.list_prefix("/bench/w/")
        for i in range(0, n, 100):
            ops = [Put(f"/bench/w/{j:06d}", b"v" * 64) for j in range(i, min(i + 100, n))]
            await store.txn([], ops)
        wall, cpu, srv, seen = time.perf_counter(), time.process_time(), server_cpu(pid), 0
        async for batch in store.watch("/bench/w/", start + 1):
            seen += len(batch)
            if seen >= n:
                break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out["watch_events_per_s"], out["watch_cpu_us"] = n / wall, cpu / n * 1e6
        out["watch_server_cpu_us"] = (server_cpu(pid) - srv) / n * 1e6
        out["rss_mb"] = rss_mb()
    finally:
        await store.close()
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=2000)
    args = ap.parse_args()
    with EtcdCluster.start(1) as etcd:
        proc = etcd.procs[0]
        assert proc is not None
        out = asyncio.run(run(etcd.url, args.ops, proc.pid))
    print(json.dumps({"ops": args.ops, **out}))


if __name__ == "__main__":
    main()
