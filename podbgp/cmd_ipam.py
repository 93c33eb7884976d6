"""`podbgp ipam pools|blocks|allocate|release|show|gc|check`: IPAM against the datastore.

These commands talk to the datastore directly (no daemon needed). Where the
datastore and pools come from, later wins:

1. defaults (``sqlite:/var/lib/podbgp/podbgp.db``, no pools);
2. ``--config FILE``: its ``[datastore]``, ``[ipam]`` and ``[[ipam.pool]]``
   (read here with tomllib, only those keys);
3. ``--datastore sqlite:PATH | etcd:http://HOST:PORT[,...]``,
   ``--pool CIDR[/BLOCK_SIZE]`` (repeatable, e.g. ``10.244.0.0/16/26``),
   ``--strict-affinity``, ``--max-blocks-per-node N``.

``--json`` prints one JSON object; otherwise a readable table. Errors print
one line naming what went wrong and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ipam import Ipam, IpamConfig, IpamError
from ipam.store import StoreError, open_store

DEFAULT_DATASTORE = "sqlite:/var/lib/podbgp/podbgp.db"


# -- settings ------------------------------------------------------------------------
def _datastore_from_toml(ds: dict[str, Any]) -> str:
    kind = ds.get("kind", "sqlite")
    if kind == "sqlite":
        return "sqlite:" + str(ds.get("path", DEFAULT_DATASTORE.partition(":")[2]))
    if kind == "etcd":
        endpoints = ds.get("endpoints", ["http://127.0.0.1:2379"])
        if not isinstance(endpoints, list) or not endpoints:
            raise IpamError("datastore.endpoints: must be a non-empty list of URLs")
        return "etcd:" + ",".join(str(e) for e in endpoints)
    raise IpamError(f"datastore.kind: {kind!r} is not sqlite or etcd")


def parse_pool_flag(text: str) -> dict[str, Any]:
    """``CIDR`` or ``CIDR/BLOCK_SIZE`` -> a ``[[ipam.pool]]`` table."""
    parts = text.split("/")
    if len(parts) == 3:
        return {"cidr": "/".join(parts[:2]), "block_size": int(parts[2])}
    return {"cidr": text}


def settings(args: argparse.Namespace) -> tuple[str, IpamConfig]:
    """The datastore URL and IPAM config from --config and the flags."""
    url = DEFAULT_DATASTORE
    ipam_raw: dict[str, Any] = {}
    if args.config:
        with open(args.config, "rb") as f:
            raw = tomllib.load(f)
        if "datastore" in raw:
            url = _datastore_from_toml(raw["datastore"])
        ipam_raw = dict(raw.get("ipam", {}))
    if args.datastore:
        url = args.datastore
    if args.pool:
        ipam_raw["pool"] = [parse_pool_flag(p) for p in args.pool]
    if args.strict_affinity:
        ipam_raw["strict_affinity"] = True
    if args.max_blocks_per_node is not None:
        ipam_raw["max_blocks_per_node"] = args.max_blocks_per_node
    return url, IpamConfig.parse(ipam_raw)


# -- output --------------------------------------------------------------------------
def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    cells = [[h for h, _ in columns]]
    cells += [["-" if r.get(k) is None else str(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def emit(args: argparse.Namespace, obj: dict[str, Any], human: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if args.json else human)


# -- commands ------------------------------------------------------------------------
async def cmd_pools(ipam: Ipam, args: argparse.Namespace) -> None:
    rows = await ipam.usage()
    cols = (
        ("POOL", "cidr"),
        ("BLOCK", "block_size"),
        ("BLOCKS", "blocks"),
        ("OF", "blocks_total"),
        ("USED", "used"),
        ("FREE", "free"),
        ("IPIP", "ipip_mode"),
        ("VXLAN", "vxlan_mode"),
        ("DISABLED", "disabled"),
    )
    emit(args, {"pools": rows}, table(rows, cols))


async def cmd_blocks(ipam: Ipam, args: argparse.Namespace) -> None:
    affs = await ipam.affinities()
    rows = []
    for b in await ipam.blocks():
        if args.node and b.affinity != args.node:
            continue
        pool = ipam.config.pool_of_block(b.cidr)
        state = affs.get((b.affinity, b.cidr)) if b.affinity else None
        rows.append(
            {
                "cidr": str(b.cidr),
                "pool": None if pool is None else str(pool.cidr),
                "affinity": b.affinity,
                "state": state,
                "used": b.used,
                "free": b.free,
            }
        )
    cols = (
        ("BLOCK", "cidr"),
        ("POOL", "pool"),
        ("AFFINITY", "affinity"),
        ("STATE", "state"),
        ("USED", "used"),
        ("FREE", "free"),
    )
    emit(args, {"blocks": rows}, table(rows, cols))


def _attrs(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep:
            raise IpamError(f"--attr {p!r}: expected KEY=VALUE")
        out[k] = v
    return out


async def cmd_allocate(ipam: Ipam, args: argparse.Namespace) -> None:
    attrs = _attrs(args.attr)
    if args.address:
        addr = ipaddress.ip_address(args.address)
        got = await ipam.assign(addr, args.node, args.handle, attrs)
    else:
        version = 6 if args.ipv6 else 4
        got = await ipam.allocate(args.node, args.handle, version, attrs, args.from_pool)
    extra = " (borrowed)" if got.borrowed else ""
    emit(args, got.to_json(), f"{got.address} block {got.block} seq {got.seq}{extra}")


async def cmd_release(ipam: Ipam, args: argparse.Namespace) -> None:
    if args.handle:
        freed = [str(a) for a in await ipam.release_handle(args.handle)]
    else:
        addr = ipaddress.ip_address(args.address)
        freed = [str(addr)] if await ipam.release_address(addr, args.seq) else []
    human = "released " + ", ".join(freed) if freed else "nothing to release"
    emit(args, {"released": freed}, human)


async def cmd_show(ipam: Ipam, args: argparse.Namespace) -> None:
    info = await ipam.show(ipaddress.ip_address(args.address))
    d = info.to_json()
    lines = [f"address   {d['address']}", f"pool      {d['pool'] or '-'}"]
    lines += [f"block     {d['block'] or '-'}", f"affinity  {d['affinity'] or '-'}"]
    a = d["allocation"]
    if a is None:
        lines.append("state     free")
    else:
        lines.append(f"state     allocated to {a['handle']} (node {a['node']}, seq {a['seq']})")
        lines += [f"attr      {k}={v}" for k, v in sorted(a["attrs"].items())]
    emit(args, d, "\n".join(lines))


def _live_handles(args: argparse.Namespace) -> set[str]:
    live = set(args.live)
    if args.live_file:
        text = Path(args.live_file).read_text()
        live |= {line.strip() for line in text.splitlines() if line.strip()}
    return live


async def cmd_gc(ipam: Ipam, args: argparse.Namespace) -> None:
    if not args.live and not args.live_file:
        raise IpamError("gc needs the live handles: --live HANDLE ... or --live-file FILE")
    live = _live_handles(args)
    report = await ipam.gc(lambda h, _a: h in live, grace=args.grace, dry_run=args.dry_run)
    d = report.to_json()
    d["dry_run"] = args.dry_run
    verb = "would release" if args.dry_run else "released"
    lines = [f"{verb} {r['address']} (handle {r['handle']})" for r in d["released"]]
    lines += [f"confirmed affinity {a}" for a in d["affinities_confirmed"]]
    lines += [f"dropped affinity {a}" for a in d["affinities_dropped"]]
    lines += [f"released empty block {b}" for b in d["blocks_released"]]
    lines += [f"repaired handle {h}" for h in d["handles_repaired"]]
    emit(args, d, "\n".join(lines) or "nothing to collect")


async def cmd_check(ipam: Ipam, args: argparse.Namespace) -> int:
    problems = await ipam.check()
    emit(args, {"consistent": not problems, "problems": problems}, "\n".join(problems) or "ok")
    return 1 if problems else 0


# -- wiring --------------------------------------------------------------------------
Command = Callable[[Ipam, argparse.Namespace], Awaitable[int | None]]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def go() -> int:
            url, config = settings(args)
            store = open_store(url)
            try:
                return await command(Ipam(store, config), args) or 0
            finally:
                await store.close()

        try:
            return asyncio.run(go())
        except (IpamError, StoreError, ValueError, OSError) as e:
            print(f"podbgp ipam {args.ipam_command}: {e}", file=sys.stderr)
            return 1

    return run


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="FILE", help="read [datastore] and [ipam] from FILE")
    p.add_argument("--datastore", metavar="URL", help="sqlite:PATH or etcd:http://H:P[,...]")
    p.add_argument(
        "--pool", action="append", default=[], metavar="CIDR[/BLOCK]", help="a pool (repeat)"
    )
    p.add_argument("--strict-affinity", action="store_true", help="never borrow addresses")
    p.add_argument("--max-blocks-per-node", type=int, metavar="N")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def register(subparsers: Any) -> None:
    """Add `podbgp ipam` and its sub-commands."""
    common = _common()
    top = subparsers.add_parser("ipam", help="pools, blocks and addresses in the datastore")
    sub = top.add_subparsers(dest="ipam_command", metavar="SUBCOMMAND", required=True)

    sub.add_parser("pools", parents=[common], help="pools and their usage").set_defaults(
        func=_run(cmd_pools)
    )
    p = sub.add_parser("blocks", parents=[common], help="blocks with affinity and usage")
    p.add_argument("--node", help="only blocks affine to NODE")
    p.set_defaults(func=_run(cmd_blocks))

    p = sub.add_parser("allocate", parents=[common], help="allocate an address")
    p.add_argument("--node", required=True)
    p.add_argument("--handle", required=True, help="e.g. the container ID")
    p.add_argument("--ipv6", action="store_true", help="an IPv6 address (default IPv4)")
    p.add_argument("--from-pool", metavar="CIDR", help="only from this pool")
    p.add_argument("--address", help="this specific address")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_run(cmd_allocate))

    p = sub.add_parser("release", parents=[common], help="release by address or handle")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--address")
    g.add_argument("--handle")
    p.add_argument("--seq", type=int, help="only if the address still has this sequence number")
    p.set_defaults(func=_run(cmd_release))

    p = sub.add_parser("show", parents=[common], help="what holds an address")
    p.add_argument("address")
    p.set_defaults(func=_run(cmd_show))

    p = sub.add_parser("gc", parents=[common], help="release addresses of dead handles")
    p.add_argument("--live", action="append", default=[], metavar="HANDLE")
    p.add_argument("--live-file", metavar="FILE", help="live handles, one per line")
    p.add_argument("--grace", type=float, default=300.0, help="seconds (default 300)")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=_run(cmd_gc))

    sub.add_parser("check", parents=[common], help="check the store's consistency").set_defaults(
        func=_run(cmd_check)
    )
