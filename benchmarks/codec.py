"""Benchmark of the bgp.wire codec on a realistic 1,000,000-prefix IPv4 table.

Prints one JSON object. Usage::

    .venv/bin/python benchmarks/codec.py [--prefixes N] [--scapy-updates M] [--repeat R]

The table: prefix lengths shaped like the public IPv4 table (mostly /24),
4,000 distinct AS paths of 1-8 ASNs (a quarter 4-octet), 10,000 attribute
sets (ORIGIN, AS_PATH, NEXT_HOP; MED on 30 %, 1-4 COMMUNITIES on 50 %),
1-13 prefixes per UPDATE. Figures:

- ``decode_prefixes_per_s``: ``decode_message`` over every UPDATE of the feed,
  fresh context (so each attribute set is decoded once, then interned).
- ``decode_into_table_prefixes_per_s``: the same, also storing every prefix
  key → attributes in a dict, as an Adj-RIB-In would.
- ``encode_prefixes_per_s``: the table grouped by attribute set (as an
  Adj-RIB-Out update group does), ``encode_announce`` per group.
- ``encode_per_update_prefixes_per_s``: ``encode_announce`` per original
  UPDATE group (1-13 prefixes), the worst case.
- ``bytes_per_route``: memory of that dict (keys, interned attributes, the
  dict itself) per route, measured with tracemalloc.
- ``scapy_decode_prefixes_per_s``: scapy.contrib.bgp dissecting the first
  ``--scapy-updates`` UPDATEs of the same bytes and listing their prefixes.
Each rate is the best of ``--repeat`` runs in this process.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
import tracemalloc
from ipaddress import IPv4Address

from bgp.wire import (
    CodecContext,
    Family,
    PathAttributes,
    Update,
    decode_message,
    encode_announce,
)

V4 = Family.IPV4_UNICAST
LEN_WEIGHTS = [
    (24, 60),
    (23, 9),
    (22, 12),
    (21, 5),
    (20, 5),
    (19, 3),
    (18, 2),
    (17, 1.5),
    (16, 2.5),
]
FIRST_OCTETS = [o for o in range(1, 224) if o not in {0, 10, 100, 127, 169, 172, 192, 198, 203}]


def gen_keys(n: int, rng: random.Random) -> list[bytes]:
    """``n`` distinct IPv4 prefix keys with a realistic length mix."""
    total = sum(w for _, w in LEN_WEIGHTS)
    out: list[bytes] = []
    for i, (ln, w) in enumerate(LEN_WEIGHTS):
        count = (
            int(n * w / total) if i else n - sum(int(n * w2 / total) for _, w2 in LEN_WEIGHTS[1:])
        )
        step = 1 << (32 - ln)
        per8 = 1 << (ln - 8)
        start = (ln * 37) % len(FIRST_OCTETS)
        for j in range(count):
            base = FIRST_OCTETS[(start + j // per8) % len(FIRST_OCTETS)] << 24
            addr = base + (j % per8) * step
            out.append(bytes((ln,)) + addr.to_bytes(4, "big")[: (ln + 7) // 8])
    rng.shuffle(out)
    return out


def gen_attr_sets(rng: random.Random, paths: int = 4000, sets: int = 10000) -> list[PathAttributes]:
    pool: set[tuple[int, ...]] = set()
    while len(pool) < paths:
        length = rng.choices(range(1, 9), [4, 12, 22, 24, 17, 10, 6, 5])[0]
        rest = [
            rng.randint(1, 64495) if rng.random() < 0.75 else rng.randint(131072, 401308)
            for _ in range(length - 1)
        ]
        pool.add((65001, *rest))
    plist = sorted(pool)
    out = []
    for i in range(sets):
        path = plist[i % paths] if i < paths else rng.choice(plist)
        comms: tuple[int, ...] = ()
        if rng.random() < 0.5:
            comms = tuple(
                sorted({(65001 << 16) | rng.randint(1, 999) for _ in range(rng.randint(1, 4))})
            )
        out.append(
            PathAttributes(
                origin=0 if rng.random() < 0.8 else 2,
                as_path=((2, path),),
                next_hop=IPv4Address("10.0.1.1"),
                med=rng.choice([0, 10, 50, 100, 1000]) if rng.random() < 0.3 else None,
                communities=comms,
            )
        )
    return out


def gen_feed(n: int, seed: int) -> tuple[list[bytes], list[tuple[PathAttributes, list[bytes]]]]:
    """UPDATE frames of the table, and the (attrs, keys) group of each UPDATE."""
    rng = random.Random(seed)
    keys = gen_keys(n, rng)
    sets = gen_attr_sets(rng)
    ctx = CodecContext()
    frames: list[bytes] = []
    groups: list[tuple[PathAttributes, list[bytes]]] = []
    i = 0
    while i < n:
        k = rng.randint(1, 13)
        grp = keys[i : i + k]
        attrs = sets[rng.randrange(len(sets))]
        (frame,) = encode_announce(attrs, V4, grp, ctx)
        frames.append(frame)
        groups.append((attrs, grp))
        i += k
    return frames, groups


def bench_decode(frames: list[bytes], into_table: bool) -> tuple[float, int]:
    ctx = CodecContext()
    table: dict[bytes, object] = {}
    n = 0
    t0 = time.perf_counter()
    for frame in frames:
        msg = decode_message(frame, ctx)
        assert type(msg) is Update
        keys = msg.reach[V4]
        n += len(keys)
        if into_table:
            attrs = msg.attrs
            for k in keys:
                table[k] = attrs
    dt = time.perf_counter() - t0
    return n / dt, n


def bench_encode(groups: list[tuple[PathAttributes, list[bytes]]]) -> float:
    ctx = CodecContext()
    n = sum(len(g) for _, g in groups)
    t0 = time.perf_counter()
    for attrs, grp in groups:
        encode_announce(attrs, V4, grp, ctx)
    return n / (time.perf_counter() - t0)


def group_by_attrs(
    groups: list[tuple[PathAttributes, list[bytes]]],
) -> list[tuple[PathAttributes, list[bytes]]]:
    by: dict[PathAttributes, list[bytes]] = {}
    for attrs, grp in groups:
        by.setdefault(attrs, []).extend(grp)
    return list(by.items())


def bytes_per_route(frames: list[bytes]) -> float:
    gc.collect()
    ctx = CodecContext()
    tracemalloc.start()
    table: dict[bytes, object] = {}
    for frame in frames:
        msg = decode_message(frame, ctx)
        assert type(msg) is Update
        attrs = msg.attrs
        for k in msg.reach[V4]:
            table[k] = attrs
        del msg
    ctx._attr_cache.clear()  # the bounded cache is not per-route memory
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / len(table)


def scapy_rate(frames: list[bytes], count: int) -> float | None:
    try:
        from scapy.contrib import bgp as sbgp
    except ImportError:
        return None
    sbgp.bgp_module_conf.use_2_bytes_asn = False
    subset = frames[:count]
    n = 0
    t0 = time.perf_counter()
    for frame in subset:
        pkt = sbgp.BGPHeader(frame)
        upd = pkt[sbgp.BGPUpdate]
        n += len([p.prefix for p in upd.nlri])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--scapy-updates", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    frames, groups = gen_feed(args.prefixes, args.seed)
    grouped = group_by_attrs(groups)
    dec = max(bench_decode(frames, False)[0] for _ in range(args.repeat))
    dec_table = max(bench_decode(frames, True)[0] for _ in range(args.repeat))
    enc = max(bench_encode(grouped) for _ in range(args.repeat))
    enc_upd = max(bench_encode(groups) for _ in range(args.repeat))
    bpr = bytes_per_route(frames)
    sc = scapy_rate(frames, args.scapy_updates)
    result = {
        "benchmark": "bgp.wire codec",
        "python": platform.python_version(),
        "prefixes": args.prefixes,
        "updates": len(frames),
        "avg_prefixes_per_update": round(args.prefixes / len(frames), 2),
        "attribute_sets": len(grouped),
        "feed_bytes": sum(map(len, frames)),
        "decode_prefixes_per_s": round(dec),
        "decode_into_table_prefixes_per_s": round(dec_table),
        "encode_prefixes_per_s": round(enc),
        "encode_per_update_prefixes_per_s": round(enc_upd),
        "bytes_per_route": round(bpr, 1),
        "scapy_decode_prefixes_per_s": None if sc is None else round(sc),
        "scapy_updates_measured": args.scapy_updates,
        "decode_speedup_vs_scapy": None if not sc else round(dec / sc, 1),
        "repeat": args.repeat,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
