"""`podbgp ipam pools|blocks|allocate|release|show|gc|check [--repair]`: IPAM against the datastore.

These commands talk to the datastore directly (no daemon needed). Where the
datastore and pools come from, later wins:

1. defaults (``sqlite:/var/lib/podbgp/podbgp.db``, no pools);
2. ``--config FILE``: the daemon's config, read by the daemon's own loader
   (`podbgp.config`): the same validation, defaults and error text as
   ``podbgp run`` and ``podbgp check``;
3. ``--datastore sqlite:PATH | etcd:http(s)://HOST:PORT[,...][?ca=..&cert=..&key=..]``,
   ``--pool CIDR[/BLOCK_SIZE]`` (repeatable, e.g. ``10.244.0.0/16/26``; checked
   by the rules of ``[[ipam.pool]]``), ``--strict-affinity``,
   ``--max-blocks-per-node N``.

The store must exist and carry a cluster ID (`ipam.identity`); with
``--config`` its ID must also be the one this node recorded. Nothing here
creates a store (``podbgp datastore init`` does). Reading commands (``pools``,
``blocks``, ``show``, ``check``) open it read-only, so they work on a
read-only file and cannot change it. ``allocate --node`` refuses a node that
is not in the node registry: a block claimed for a misspelt name would stay
claimed for ever.

``--json`` prints one JSON object; otherwise a readable table. Errors print
one line naming what went wrong and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ipam import Ipam, IpamConfig, IpamError, NodeRegistry, consistency
from ipam.identity import join
from ipam.lifecycle import Lifecycle
from ipam.selection import PoolRequest, namespace_labels
from ipam.store import OpenMode, StoreError, open_store
from podbgp import wiring
from podbgp.cmd_datastore import StoreTarget, add_target_args, config_error_text, store_target
from podbgp.config import ConfigError, IPAMConfig, load_ipam_dict


# -- settings ------------------------------------------------------------------------
def parse_pool_flag(text: str) -> dict[str, Any]:
    """``CIDR`` or ``CIDR/BLOCK_SIZE`` -> a ``[[ipam.pool]]`` table."""
    parts = text.split("/")
    if len(parts) == 3:
        try:
            return {"cidr": "/".join(parts[:2]), "block_size": int(parts[2])}
        except ValueError:
            raise IpamError(f"--pool {text}: block size {parts[2]!r} is not an integer") from None
    return {"cidr": text}


def _flag_overrides(args: argparse.Namespace, ic: IPAMConfig) -> IPAMConfig:
    """--pool, --strict-affinity, --max-blocks-per-node over the config's [ipam]."""
    table: dict[str, Any] = {}
    if args.pool:
        table["pool"] = [parse_pool_flag(p) for p in args.pool]
    if args.max_blocks_per_node is not None:
        table["max_blocks_per_node"] = args.max_blocks_per_node
    flags = load_ipam_dict(table)
    return dataclasses.replace(
        ic,
        pools=flags.pools if args.pool else ic.pools,
        strict_affinity=ic.strict_affinity or args.strict_affinity,
        max_blocks_per_node=(
            flags.max_blocks_per_node if "max_blocks_per_node" in table else ic.max_blocks_per_node
        ),
    )


def settings(args: argparse.Namespace) -> tuple[StoreTarget, IpamConfig]:
    """The store and IPAM config from --config and the flags (ConfigError if invalid)."""
    target = store_target(args, effective=True)
    ic = target.config.ipam if target.config is not None else IPAMConfig()
    return target, wiring.pools_config(_flag_overrides(args, ic))


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
POOL_COLUMNS = (
    ("POOL", "cidr"),
    ("BLOCK", "block"),
    ("BLOCKS", "blocks"),
    ("USED", "used"),
    ("FREE", "free"),
    ("IPIP", "ipip_mode"),
    ("VXLAN", "vxlan_mode"),
    ("NAT", "nat_outgoing"),
    ("DISABLED", "disabled"),
)


def pools_table(usage: Sequence[dict[str, Any]]) -> str:
    """Pool usage rows (`Ipam.usage`) as a table: `ipam pools` and `show ipam` both print this."""

    def yes(v: Any) -> str:
        return "yes" if v else "no"

    rows = [
        {**r, "block": f"/{r.get('block_size')}",
         "blocks": f"{r.get('blocks')}/{r.get('blocks_total')}",
         "nat_outgoing": yes(r.get("nat_outgoing")), "disabled": yes(r.get("disabled"))}
        for r in usage
    ]  # fmt: skip
    return table(rows, POOL_COLUMNS)


async def cmd_pools(ipam: Ipam, args: argparse.Namespace) -> None:
    rows = await ipam.usage()
    emit(args, {"pools": rows}, pools_table(rows))


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


async def _registered(ipam: Ipam, node: str) -> None:
    """Refuse a node the registry does not know (a typo would claim a block for ever)."""
    registry = NodeRegistry(ipam.store)
    if await registry.get(node) is not None:
        return
    known = ", ".join(sorted(await registry.list())) or "none"
    raise IpamError(
        f"node {node!r} is not registered in the datastore (registered: {known}); "
        "a node registers when podbgp runs on it"
    )


async def cmd_allocate(ipam: Ipam, args: argparse.Namespace) -> None:
    attrs = _attrs(args.attr)
    await _registered(ipam, args.node)
    if args.address:
        addr = ipaddress.ip_address(args.address)
        got = await ipam.assign(addr, args.node, args.handle, attrs)
    else:
        version = 6 if args.ipv6 else 4
        if args.namespace:
            attrs.setdefault("namespace", args.namespace)
        request = PoolRequest(
            version,
            namespace=namespace_labels(args.namespace or ""),
            explicit=(args.from_pool,) if args.from_pool else (),
        )
        got = await ipam.allocate(args.node, args.handle, attrs=attrs, request=request)
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


async def cmd_show(ipam: Ipam, args: argparse.Namespace) -> int:
    info = await ipam.show(ipaddress.ip_address(args.address))
    d = info.to_json()
    lines = [f"address   {d['address']}", f"pool      {d['pool'] or '-'}"]
    lines += [f"block     {d['block'] or '-'}", f"affinity  {d['affinity'] or '-'}"]
    a = d["allocation"]
    if info.pool is None and info.block is None:
        pools = ", ".join(str(p.cidr) for p in ipam.config.pools) or "none configured"
        lines.append(f"state     in no pool (pools: {pools})")
        emit(args, {**d, "in_pool": False}, "\n".join(lines))
        return 1
    if a is None:
        lines.append("state     free")
    else:
        lines.append(f"state     allocated to {a['handle']} (node {a['node']}, seq {a['seq']})")
        lines += [f"attr      {k}={v}" for k, v in sorted(a["attrs"].items())]
    emit(args, {**d, "in_pool": True}, "\n".join(lines))
    return 0


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
    """Every inconsistency (`ipam.consistency`); with --repair, fixed in CAS steps, then re-checked."""
    members = await Lifecycle(ipam.store).members()
    removed = {n for n, m in members.items() if m.state.removed_at is not None and m.live is None}
    found = await consistency.problems(ipam, removed)
    out: dict[str, Any] = {"problems": [p.to_json() for p in found]}
    lines = [f"{p.kind.value}: {p}" for p in found]
    if args.repair and found:
        out["repaired"] = await consistency.repair(ipam, found)
        found = await consistency.problems(ipam, removed)
        out["remaining"] = [p.to_json() for p in found]
        lines += [f"repaired: {line}" for line in out["repaired"]]
        lines += [f"remaining {p.kind.value}: {p}" for p in found]
    out["consistent"] = not found
    emit(args, out, "\n".join(lines) or "ok")
    return 1 if found else 0


# -- wiring --------------------------------------------------------------------------
Command = Callable[[Ipam, argparse.Namespace], Awaitable[int | None]]


def _run(command: Command, mode: OpenMode) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        name = f"podbgp ipam {args.ipam_command}"
        try:
            target, config = settings(args)
        except ConfigError as e:
            where = args.config if args.config else "options"
            print(f"{name}: {config_error_text(where, e)}", file=sys.stderr)
            return 1
        except (IpamError, StoreError) as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 1

        async def go() -> int:
            store = open_store(target.url, mode)
            try:
                joined = await join(store, target.cluster_id_file, record=False)
                return await command(Ipam(joined, config), args) or 0
            finally:
                await store.close()

        try:
            return asyncio.run(go())
        except BrokenPipeError:
            raise  # `| head`: podbgp.cli.main ends quietly
        except (IpamError, StoreError, ValueError, OSError) as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 1

    return run


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add_target_args(p)
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
        func=_run(cmd_pools, OpenMode.READ_ONLY)
    )
    p = sub.add_parser("blocks", parents=[common], help="blocks with affinity and usage")
    p.add_argument("--node", help="only blocks affine to NODE")
    p.set_defaults(func=_run(cmd_blocks, OpenMode.READ_ONLY))

    p = sub.add_parser("allocate", parents=[common], help="allocate an address")
    p.add_argument("--node", required=True)
    p.add_argument("--handle", required=True, help="e.g. the container ID")
    p.add_argument("--ipv6", action="store_true", help="an IPv6 address (default IPv4)")
    p.add_argument("--from-pool", metavar="CIDR", help="only from this pool")
    p.add_argument(
        "--namespace", help="a pod of this namespace: pools chosen by their namespace_selector"
    )
    p.add_argument("--address", help="this specific address")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_run(cmd_allocate, OpenMode.READ_WRITE))

    p = sub.add_parser("release", parents=[common], help="release by address or handle")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--address")
    g.add_argument("--handle")
    p.add_argument("--seq", type=int, help="only if the address still has this sequence number")
    p.set_defaults(func=_run(cmd_release, OpenMode.READ_WRITE))

    p = sub.add_parser("show", parents=[common], help="what holds an address")
    p.add_argument("address")
    p.set_defaults(func=_run(cmd_show, OpenMode.READ_ONLY))

    p = sub.add_parser("gc", parents=[common], help="release addresses of dead handles")
    p.add_argument("--live", action="append", default=[], metavar="HANDLE")
    p.add_argument("--live-file", metavar="FILE", help="live handles, one per line")
    p.add_argument("--grace", type=float, default=300.0, help="seconds (default 300)")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=_run(cmd_gc, OpenMode.READ_WRITE))

    p = sub.add_parser("check", parents=[common], help="check the store's consistency")
    p.add_argument("--repair", action="store_true", help="fix what can be fixed (CAS steps)")
    check_ro, check_rw = _run(cmd_check, OpenMode.READ_ONLY), _run(cmd_check, OpenMode.READ_WRITE)
    p.set_defaults(func=lambda args: (check_rw if args.repair else check_ro)(args))
