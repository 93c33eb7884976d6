"""IPAM throughput on SQLite and on a local etcd; prints one JSON object.

    .venv/bin/python benchmarks/ipam.py [--allocs N] [--procs P] [--per-proc M]

* ``sqlite_allocs_per_s`` / ``etcd_allocs_per_s``: one process, one node,
  allocating N addresses one after another (each a full CAS transaction on
  the block and the handle, as the CNI plugin would do).
* ``releases_per_s``: releasing those N addresses by handle (SQLite).
* ``sqlite_concurrent_allocs_per_s`` / ``etcd_concurrent_allocs_per_s``: P
  processes (one per node, the daemon's shape) each allocating M addresses
  from the same pool at once; total allocations over wall time from a common
  start to the last one's end.
* ``duplicates``: addresses handed out twice over every run (must be 0);
  ``conflicts``: CAS retries seen in the concurrent runs.

The etcd server is a throwaway single member on 127.0.0.1 (ipam.etcdlab); its
data directory is on the same disk as everything else, so etcd's fsync per
commit is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# This file is named ipam.py: drop its directory from the path so that
# `import ipam` finds the package, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from ipam import Ipam, IpamConfig, Pool  # noqa: E402
from ipam.etcdlab import EtcdCluster  # noqa: E402
from ipam.identity import ensure_cluster, join  # noqa: E402
from ipam.store import OpenMode, open_store  # noqa: E402

POOL = {"cidr": "10.128.0.0/14", "block_size": 26}  # 65536 blocks: room for every run


def config() -> IpamConfig:
    return IpamConfig(pools=(Pool.parse(POOL),), max_blocks_per_node=4096)


async def create(url: str) -> None:
    """`podbgp datastore init` for a store the benchmark's processes then share."""
    store = open_store(url, OpenMode.CREATE)
    try:
        await ensure_cluster(store)
    finally:
        await store.close()


async def single(url: str, n: int, release: bool) -> tuple[float, float, list[str]]:
    """(allocs/s, releases/s or 0, addresses) for one process."""
    store = open_store(url, OpenMode.CREATE)  # `podbgp datastore init`
    try:
        await ensure_cluster(store)
        ipam = Ipam(await join(store, None), config())
        await ipam.allocate("warm-up", "warm-up")  # connection, schema, first claim
        t0 = time.perf_counter()
        got = [await ipam.allocate("bench-node", f"h{i}") for i in range(n)]
        t1 = time.perf_counter()
        rel = 0.0
        if release:
            for i in range(n):
                await ipam.release_handle(f"h{i}")
            rel = n / (time.perf_counter() - t1)
        return n / (t1 - t0), rel, [str(g.address) for g in got]
    finally:
        await store.close()


async def worker(url: str, node: str, n: int) -> None:
    """Child process: wait for GO on stdin, allocate n, print a JSON report."""
    store = open_store(url)
    ipam = Ipam(await join(store, None), config())
    await ipam.allocate(node, f"{node}-warm-up")
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    got = [str((await ipam.allocate(node, f"{node}-{i}")).address) for i in range(n)]
    end = time.time()
    await store.close()
    print(json.dumps({"end": end, "addresses": got, "conflicts": ipam.conflicts}), flush=True)


def concurrent(url: str, procs: int, n: int) -> tuple[float, list[str], int]:
    """(allocs/s over all processes, addresses, CAS conflicts)."""
    ps = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, f"node-{i}", str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(procs)
    ]
    try:
        for p in ps:
            assert p.stdout is not None and p.stdout.readline().strip() == "READY"
        start = time.time()
        for p in ps:
            assert p.stdin is not None
            p.stdin.write("GO\n")
            p.stdin.flush()
        reports = []
        for p in ps:
            assert p.stdout is not None
            reports.append(json.loads(p.stdout.readline()))
            p.wait(60)
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
    end = max(r["end"] for r in reports)
    addrs = [a for r in reports for a in r["addresses"]]
    return len(addrs) / (end - start), addrs, sum(r["conflicts"] for r in reports)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allocs", type=int, default=2000)
    ap.add_argument("--etcd-allocs", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--per-proc", type=int, default=200)
    ap.add_argument("--worker", nargs=3, metavar=("URL", "NODE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, node, n = args.worker
        asyncio.run(worker(url, node, int(n)))
        return
    out: dict[str, float | int] = {}
    dups = 0
    conflicts = 0
    with tempfile.TemporaryDirectory(prefix="podbgp-bench-") as d:
        rate, rel, addrs = asyncio.run(single(f"sqlite:{Path(d) / 'a.db'}", args.allocs, True))
        out["sqlite_allocs_per_s"], out["releases_per_s"] = round(rate), round(rel)
        dups += sum(c - 1 for c in Counter(addrs).values())
        asyncio.run(create(f"sqlite:{Path(d) / 'b.db'}"))
        rate, addrs, conf = concurrent(f"sqlite:{Path(d) / 'b.db'}", args.procs, args.per_proc)
        out["sqlite_concurrent_allocs_per_s"] = round(rate)
        dups += sum(c - 1 for c in Counter(addrs).values())
        conflicts += conf
    with EtcdCluster.start(1) as etcd:
        rate, _, addrs = asyncio.run(single(etcd.url, args.etcd_allocs, False))
        out["etcd_allocs_per_s"] = round(rate)
        dups += sum(c - 1 for c in Counter(addrs).values())
    with EtcdCluster.start(1) as etcd:
        asyncio.run(create(etcd.url))
        rate, addrs, conf = concurrent(etcd.url, args.procs, args.per_proc)
        out["etcd_concurrent_allocs_per_s"] = round(rate)
        dups += sum(c - 1 for c in Counter(addrs).values())
        conflicts += conf
    out["duplicates"] = dups
    out["conflicts"] = conflicts
    out["procs"] = args.procs
    print(json.dumps(out))


if __name__ == "__main__":
    main()
