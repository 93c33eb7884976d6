"""FIB write and resync speed against the real kernel, side by side with `ip -batch`.

Creates a network namespace (removed at exit) with one veth, then for each
size installs N /32 routes `via 10.0.0.2 dev eth0 proto 80`, replaces them
with `via 10.0.0.3`, and deletes them: once through podbgp's batched raw
netlink writer (`fib.netlink`), once through `ip -batch`. Then it installs the
largest size through the reconciler and times a full resync of a table that is
already right, which must be a dump and no writes.

Nexthop objects: for each size it also installs N routes that name one kernel
nexthop object (`RTA_NH_ID`), then times one RTM_NEWNEXTHOP replace that moves
that object (so all N routes) from `via 10.0.0.2 dev eth0` to
`via 10.244.3.0 dev vxlan.podbgp onlink`, and checks from a dump that every
route now shows the VXLAN hop. The same move is timed through the reconciler
(re-planning N routes, binding them, one replace, no route writes). Prints
one JSON object.

    sudo .venv/bin/python benchmarks/fib.py [--sizes 100000,500000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fib.kernel import DELETE, REPLACE
from fib.model import (
    RTN_UNICAST,
    Encap,
    KernelRoute,
    Nexthop,
    NexthopObject,
    NexthopSpec,
    NodeInfo,
    Prefix,
    RemoteRoute,
    Vtep,
    pack_addr,
    vtep_mac,
)
from fib.netlink import NetlinkKernel
from fib.reconciler import FibConfig, Reconciler

GW1, GW2 = pack_addr("10.0.0.2"), pack_addr("10.0.0.3")
BASE = int.from_bytes(pack_addr("10.64.0.0"), "big")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def dsts(n: int) -> list[bytes]:
    return [(BASE + i).to_bytes(4, "big") for i in range(n)]


def routes(n: int, gw: bytes) -> list[KernelRoute]:
    hop = (Nexthop(gw, "eth0"),)
    return [KernelRoute(d, 32, RTN_UNICAST, hop, 0, 80, 254) for d in dsts(n)]


def count(ns: str) -> int:
    out = subprocess.run(["ip", "-n", ns, "-4", "route", "show", "proto", "80"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return out.count("\n")


def timed_write(kernel: NetlinkKernel, ops: list[tuple[int, KernelRoute]]) -> float:
    start = time.perf_counter()
    failures = kernel.write_routes(ops)
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} writes failed, first: {failures[0]}")
    return elapsed


def podbgp_run(ns: str, n: int) -> dict[str, float]:
    kernel = NetlinkKernel(ns, watch=False)
    try:
        install = [(REPLACE, r) for r in routes(n, GW1)]
        replace = [(REPLACE, r) for r in routes(n, GW2)]
        delete = [(DELETE, r) for r in routes(n, GW2)]
        gc.collect()
        t_install = timed_write(kernel, install)
        assert count(ns) == n
        t_replace = timed_write(kernel, replace)
        t_delete = timed_write(kernel, delete)
        assert count(ns) == 0
    finally:
        kernel.close()
    return {"install": n / t_install, "replace": n / t_replace, "delete": n / t_delete}


def ip_batch(ns: str, lines: list[str]) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        start = time.perf_counter()
        sh("ip", "-n", ns, "-batch", f.name)
        return time.perf_counter() - start
    finally:
        os.unlink(f.name)


def ip_run(ns: str, n: int) -> dict[str, float]:
    text = [f"10.{(BASE + i) >> 16 & 255}.{(BASE + i) >> 8 & 255}.{(BASE + i) & 255}/32"
            for i in range(n)]  # fmt: skip
    t_install = ip_batch(ns, [f"route add {d} via 10.0.0.2 dev eth0 proto 80" for d in text])
    assert count(ns) == n
    t_replace = ip_batch(ns, [f"route replace {d} via 10.0.0.3 dev eth0 proto 80" for d in text])
    t_delete = ip_batch(ns, [f"route del {d} proto 80" for d in text])
    assert count(ns) == 0
    return {"install": n / t_install, "replace": n / t_replace, "delete": n / t_delete}


NH_ID = 0x50000000
PLAIN_HOP = Nexthop(GW1, "eth0")
VXLAN_HOP = Nexthop(pack_addr("10.244.3.0"), "vxlan.podbgp", True)


def write_nexthop(kernel: NetlinkKernel, op: int, hop: Nexthop) -> float:
    start = time.perf_counter()
    failures = kernel.write_nexthops([(op, NexthopObject(NH_ID, NexthopSpec(hop), 80))])
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"nexthop write failed: {failures[0]}")
    return elapsed


def nexthop_run(ns: str, n: int) -> dict[str, float]:
    """N routes naming one object; one replace of that object re-points them all."""
    kernel = NetlinkKernel(ns, watch=False)
    try:
        write_nexthop(kernel, REPLACE, PLAIN_HOP)
        install = [(REPLACE, r._replace(nh_id=NH_ID)) for r in routes(n, GW1)]
        gc.collect()
        t_install = timed_write(kernel, install)
        assert count(ns) == n
        t_repoint = write_nexthop(kernel, REPLACE, VXLAN_HOP)
        shown = kernel.dump_routes(254)
        assert sum(r.nh_id == NH_ID and r.nexthops == (VXLAN_HOP,) for r in shown) == n
        timed_write(kernel, [(DELETE, r) for _, r in install])
        write_nexthop(kernel, DELETE, VXLAN_HOP)
        assert count(ns) == 0
    finally:
        kernel.close()
    return {"install": n / t_install, "repoint_s": t_repoint}


def nexthop_reconciler_run(ns: str, n: int) -> dict[str, float]:
    """The same move as the daemon makes it: node C's pool switches to VXLAN Always."""
    kernel = NetlinkKernel(ns, watch=False)
    node_c = pack_addr("10.0.0.3")
    try:
        rec = Reconciler(kernel, FibConfig())
        rec.set_node(NodeInfo.parse("bench", "10.0.0.1/24", "eth0", vtep="10.244.0.0"))
        rec.set_vtep(Vtep(node_c, VXLAN_HOP.gateway, vtep_mac("node-c")))
        rec.set_routes(RemoteRoute(Prefix(d, 32), (node_c,)) for d in dsts(n))
        rec.apply()
        assert count(ns) == n
        writes = rec.counters.route_writes
        gc.collect()
        start = time.perf_counter()
        rec.set_routes(RemoteRoute(Prefix(d, 32), (node_c,), vxlan=Encap.ALWAYS) for d in dsts(n))
        t_plan = time.perf_counter() - start
        rec.apply()
        t_total = time.perf_counter() - start
        assert rec.counters.route_writes == writes and rec.counters.nexthop_repoints == 1
        kernel.write_routes([(DELETE, r) for r in rec.installed.values()])
        kernel.write_nexthops([(DELETE, o) for o in kernel.dump_nexthops() if o.protocol == 80])
        assert count(ns) == 0
    finally:
        kernel.close()
    return {
        "plan_s": t_plan,
        "total_s": t_total,
        "route_writes": rec.counters.route_writes - writes,
    }


def resync_run(ns: str, n: int) -> dict[str, float]:
    kernel = NetlinkKernel(ns, watch=False)
    try:
        rec = Reconciler(kernel, FibConfig())
        rec.set_node(NodeInfo.parse("bench", "10.0.0.1/24", "eth0"))
        rec.set_routes(RemoteRoute(Prefix(d, 32), (GW1,)) for d in dsts(n))
        start = time.perf_counter()
        rec.apply()
        t_first = time.perf_counter() - start
        assert count(ns) == n
        writes = rec.counters.route_writes
        gc.collect()
        start = time.perf_counter()
        rec.resync()
        t_resync = time.perf_counter() - start
        resync_writes = rec.counters.route_writes - writes
        assert rec.snapshot(limit=0)["in_sync"] == n
        kernel.write_routes([(DELETE, r) for r in rec.installed.values()])
        kernel.write_nexthops([(DELETE, o) for o in kernel.dump_nexthops() if o.protocol == 80])
    finally:
        kernel.close()
    return {"first_apply_s": t_first, "resync_s": t_resync, "resync_writes": resync_writes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,500000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ns = f"fibbench-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        sh("ip", "-n", ns, "addr", "add", "10.0.0.1/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "eth1", "up")
        sh("ip", "-n", ns, "link", "add", "vxlan.podbgp", "type", "vxlan", "id", "4096",
           "dstport", "4789", "local", "10.0.0.1", "dev", "eth0", "nolearning")  # fmt: skip
        sh("ip", "-n", ns, "link", "set", "vxlan.podbgp", "up")
        result: dict[str, object] = {
            "benchmark": "fib",
            "python": platform.python_version(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "route": "/32 via GW dev eth0 proto 80, table main",
        }
        for n in sizes:
            mine = podbgp_run(ns, n)
            theirs = ip_run(ns, n)
            result[str(n)] = {
                "install_routes_per_s": round(mine["install"]),
                "replace_routes_per_s": round(mine["replace"]),
                "delete_routes_per_s": round(mine["delete"]),
                "ip_batch_install_routes_per_s": round(theirs["install"]),
                "ip_batch_replace_routes_per_s": round(theirs["replace"]),
                "ip_batch_delete_routes_per_s": round(theirs["delete"]),
                "install_speedup_vs_ip_batch": round(mine["install"] / theirs["install"], 2),
            }
            nh = nexthop_run(ns, n)
            via_rec = nexthop_reconciler_run(ns, n)
            result[str(n)].update(
                {  # type: ignore[attr-defined]
                    "nexthop_install_routes_per_s": round(nh["install"]),
                    "nexthop_repoint_seconds": round(nh["repoint_s"], 4),
                    "nexthop_repoint_reconciler_seconds": round(via_rec["total_s"], 3),
                    "nexthop_repoint_reconciler_plan_seconds": round(via_rec["plan_s"], 3),
                    "nexthop_repoint_route_writes": via_rec["route_writes"],
                }
            )
        big = max(sizes)
        res = resync_run(ns, big)
        result["resync"] = {
            "routes": big,
            "already_right_resync_s": round(res["resync_s"], 3),
            "writes": res["resync_writes"],
            "reconciler_first_install_s": round(res["first_apply_s"], 3),
        }
        # the headline figures: the largest size
        result.update({k: v for k, v in result[str(big)].items()})  # type: ignore[attr-defined]
        print(json.dumps(result))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
