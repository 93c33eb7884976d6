"""The kernel's own cost of N route inserts and deletes: the floor under issue 15 goal 1.

Every daemon in `benchmarks/fib_ingest.py` ends in the same place: one rtnetlink
RTM_NEWROUTE per prefix into the main table, one RTM_DELROUTE per prefix when it is
withdrawn. This script does only that, from messages built before the clock
starts, in batches of 1,024 on one socket, in a network namespace of its own (a veth
pair for the next hop), and reports the wall time and the system CPU the kernel spent
on it. Whatever a daemon does on top (BGP, its tables, encoding) comes after this
floor, or beside it on another core.

The prefixes are the harness's kind: random unicast addresses, lengths /16-/24 (the
realistic mix is 97 % of those), no duplicates, seed 1. `--order` sets the order of the
deletes: the kernel's fib_trie deletes an ascending sweep of a dense range far more
slowly than the same routes in any other order, so `ascending` over contiguous /24s
shows that case as well.

    sudo .venv/bin/python benchmarks/kernel_floor.py --prefixes 100000,1000000

Prints one JSON object per N and order, and a last line with all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import time
from typing import Any

RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REQUEST, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x100, 0x400
RT_TABLE_MAIN, RTPROT_BENCH, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 186, 0, 1
RTA_DST, RTA_GATEWAY = 1, 5
BATCH = 1024
GATEWAY = "10.255.0.2"


def prefixes(n: int, order: str) -> list[tuple[int, int]]:
    """N distinct (address, length) pairs; `contiguous` is N consecutive /24s."""
    if order == "ascending":
        return [((20 << 24) + (i << 8), 24) for i in range(n)]
    rnd = random.Random(1)
    seen: set[tuple[int, int]] = set()
    out = []
    while len(out) < n:
        length = rnd.randint(16, 24)
        addr = rnd.randint(0x01000000, 0xDFFFFFFF) & (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
        if (addr >> 24) in (10, 127) or (addr, length) in seen:
            continue
        seen.add((addr, length))
        out.append((addr, length))
    return out


def message(kind: int, seq: int, addr: int, length: int, gateway: bytes) -> bytes:
    flags = NLM_F_REQUEST | (NLM_F_CREATE | NLM_F_REPLACE if kind == RTM_NEWROUTE else 0)
    rtmsg = struct.pack(
        "=BBBBBBBBI", socket.AF_INET, length, 0, 0, RT_TABLE_MAIN, RTPROT_BENCH,
        RT_SCOPE_UNIVERSE, RTN_UNICAST, 0,
    )  # fmt: skip
    attrs = struct.pack("=HHI", 8, RTA_DST, socket.htonl(addr))
    if kind == RTM_NEWROUTE:
        attrs += struct.pack("=HH", 8, RTA_GATEWAY) + gateway
    body = rtmsg + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def timed_send(sock: socket.socket, msgs: list[bytes]) -> dict[str, float]:
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in range(0, len(msgs), BATCH):
        sock.send(b"".join(msgs[i : i + BATCH]))
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": round(wall, 3), "sys_s": round(after.ru_stime - before.ru_stime, 3)}


def count_routes() -> int:
    out = subprocess.run(
        ["ip", "-4", "route", "show", "proto", str(RTPROT_BENCH)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return len(out.stdout.splitlines())


def measure(n: int, order: str) -> dict[str, Any]:
    """In the namespace: insert N routes, delete them in the given order."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    sock.bind((0, 0))
    gateway = socket.inet_aton(GATEWAY)
    routes = prefixes(n, order)
    adds = [message(RTM_NEWROUTE, i, a, ln, gateway) for i, (a, ln) in enumerate(routes)]
    insert = timed_send(sock, adds)
    installed = count_routes()
    deletes = list(routes) if order == "ascending" else random.Random(2).sample(routes, n)
    dels = [message(RTM_DELROUTE, i, a, ln, gateway) for i, (a, ln) in enumerate(deletes)]
    delete = timed_send(sock, dels)
    left = count_routes()
    return {"n": n, "order": order, "installed": installed, "left": left,
            "insert": insert, "delete": delete}  # fmt: skip


def run_in_namespace(args: argparse.Namespace) -> int:
    ns = f"podbgp-kfloor-{os.getpid()}"
    ip = ["ip", "-n", ns]
    results = []
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run([*ip, "link", "add", "kf0", "type", "veth", "peer", "name", "kf1"],
                       check=True)  # fmt: skip
        subprocess.run([*ip, "addr", "add", "10.255.0.1/24", "dev", "kf0"], check=True)
        for dev in ("kf0", "kf1"):
            subprocess.run([*ip, "link", "set", dev, "up"], check=True)
        for n in args.prefixes:
            for order in args.order:
                out = subprocess.run(
                    ["ip", "netns", "exec", ns, sys.executable, __file__, "--_one",
                     str(n), order],
                    capture_output=True, text=True, check=True, timeout=600,
                )  # fmt: skip
                result = json.loads(out.stdout.splitlines()[-1])
                print(json.dumps(result), flush=True)
                results.append(result)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"kernel_floor: {exc}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)
    print(json.dumps({"benchmark": "kernel_floor", "results": results}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", default="100000,1000000")
    parser.add_argument("--order", default="random,ascending",
                        help="delete orders: random (the harness's kind), ascending")  # fmt: skip
    parser.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._one:
        print(json.dumps(measure(int(args._one[0]), args._one[1])))
        return 0
    if os.geteuid() != 0:
        print("kernel_floor: needs root (network namespaces)", file=sys.stderr)
        return 1
    try:
        args.prefixes = [int(n) for n in args.prefixes.split(",") if n]
    except ValueError:
        print(f"kernel_floor: --prefixes {args.prefixes!r}: numbers, comma-separated",
              file=sys.stderr)  # fmt: skip
        return 2
    args.order = [o for o in args.order.split(",") if o]
    if not set(args.order) <= {"random", "ascending"}:
        print(f"kernel_floor: --order {args.order}: random and/or ascending", file=sys.stderr)
        return 2
    return run_in_namespace(args)


if __name__ == "__main__":
    sys.exit(main())
