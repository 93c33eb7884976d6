"""`podbgp node list|show|remove|cordon|uncordon`: the cluster's nodes and their lifecycle.

Like ``podbgp ipam`` these talk to the datastore directly (``--config FILE``
or ``--datastore URL``; no daemon needed). A node's phase (`ipam.lifecycle`)
depends on the gone and remove times, which come from ``--config`` (its
``bgp.restart_time``, ``ipam.node_gone_grace`` and ``ipam.node_gone_after``)
or else from their defaults.

* ``list`` -- every node: phase (live, lapsed, gone, removed, unleased), how
  long it has been in it, its lease TTL, blocks, cordoned;
* ``show NAME`` -- one node's records;
* ``remove NAME [--force]`` -- delete the node's registry record (leaving a
  tombstone) and release its blocks and addresses. Refused while the node's
  lease is live (its daemon runs) unless ``--force`` (the daemon keeps running,
  but every other node drops it; a restart of it rejoins, and its pods that
  still run take their addresses back, `ipam.rejoin`). Removing a removed
  node again forgets its tombstone and what its removal released;
* ``cordon NAME`` / ``uncordon NAME`` -- IPAM gives a cordoned node no new
  blocks (it keeps allocating from the blocks it has).

``--json`` prints one JSON object. Errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ipam import Ipam, IpamConfig, IpamError
from ipam.identity import join
from ipam.lifecycle import Lifecycle, Member, Phase, Timing, release_node
from ipam.model import AFFINITY, parse_affinity_key
from ipam.store import OpenMode, Store, StoreError, open_store
from podbgp import wiring
from podbgp.cmd_datastore import StoreTarget, add_target_args, config_error_text, store_target
from podbgp.cmd_ipam import table
from podbgp.config import BGPConfig, ConfigError, IPAMConfig


def timing(target: StoreTarget) -> Timing:
    if target.config is not None:
        return wiring.lifecycle_timing(target.config)
    gone = float(BGPConfig().restart_time + IPAMConfig().node_gone_grace)
    return Timing(gone, max(gone, float(IPAMConfig().node_gone_after)))


def _age(seconds: float) -> str:
    s = int(max(seconds, 0))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _since(m: Member) -> float | None:
    if m.live is not None:
        return m.live.since
    return m.state.removed_at if m.state.removed_at is not None else m.state.lapsed_at


async def _blocks(store: Store) -> dict[str, int]:
    kvs, _ = await store.list_prefix(AFFINITY, keys_only=True)
    count: dict[str, int] = {}
    for kv in kvs:
        node, _ = parse_affinity_key(kv.key)
        count[node] = count.get(node, 0) + 1
    return count


def _row(m: Member, now: float, t: Timing, blocks: dict[str, int]) -> dict[str, Any]:
    since = _since(m)
    return {
        **m.to_json(now, t),
        "age": None if since is None else round(now - since, 1),
        "blocks": blocks.get(m.name, 0),
    }


async def cmd_list(store: Store, args: argparse.Namespace, t: Timing) -> int:
    now = time.time()
    blocks = await _blocks(store)
    members = await Lifecycle(store).members()
    rows = [_row(m, now, t, blocks) for m in members.values()]
    human = [
        {
            "name": r["name"],
            "phase": r["phase"],
            "age": "-" if r["age"] is None else _age(r["age"]),
            "ttl": "-" if r["lease"] is None else f"{r['lease']['ttl']}s",
            "blocks": r["blocks"],
            "cordoned": "yes" if r["cordoned"] else "no",
        }
        for r in rows
    ]
    cols = (("NAME", "name"), ("PHASE", "phase"), ("AGE", "age"), ("LEASE", "ttl"),
            ("BLOCKS", "blocks"), ("CORDONED", "cordoned"))  # fmt: skip
    _emit(args, {"nodes": rows}, table(human, cols) if rows else "no nodes")
    return 0


async def cmd_show(store: Store, args: argparse.Namespace, t: Timing) -> int:
    lc = Lifecycle(store)
    m = await lc.member(args.name)
    if m is None:
        raise IpamError(f"node {args.name!r} is not registered")
    now = time.time()
    r = _row(m, now, t, await _blocks(store))
    # what a removal released, kept until the node comes back (`ipam.rejoin`)
    r["released"] = [d["address"] for d in (await lc.released(args.name))[0]]
    lines = [f"name      {m.name}", f"phase     {r['phase']}"]
    if r["age"] is not None:
        lines.append(f"for       {_age(r['age'])}")
    if m.live is not None:
        lines.append(f"lease     {m.live.lease:x} ttl {m.live.ttl}s pid {m.live.pid}")
    lines += [f"cordoned  {'yes' if m.state.cordoned else 'no'}", f"blocks    {r['blocks']}"]
    if r["released"]:
        lines.append(f"released  {len(r['released'])} addresses, taken back on its return if "
                     "their pods still run")  # fmt: skip
    if m.node is not None:
        lines += [f"address   {m.node.address or '-'}", f"asn       {m.node.asn}"]
        lines += [f"label     {k}={v}" for k, v in sorted(m.node.labels.items())]
    _emit(args, r, "\n".join(lines))
    return 0


async def cmd_remove(store: Store, args: argparse.Namespace, t: Timing) -> int:
    lc = Lifecycle(store)
    if await lc.remove(args.name, force=args.force):
        freed = await release_node(lc, Ipam(store, IpamConfig()), args.name) or []
        out = {"removed": args.name, "released": [str(r.address) for r in freed]}
        human = f"removed node {args.name}; released {len(freed)} addresses and its blocks"
        _emit(args, out, human)
        return 0
    m = await lc.member(args.name)
    if m is None or m.phase(time.time(), t) is not Phase.REMOVED:
        raise IpamError(f"node {args.name}: changed while being removed; try again")
    # Removed before: finish what may be left, then drop the tombstone from the list.
    freed = await Ipam(store, IpamConfig()).remove_node(args.name)
    if not await lc.forget(args.name):  # it came back (held a lease) meanwhile
        raise IpamError(f"node {args.name}: changed while being forgotten; try again")
    out = {"forgotten": args.name, "released": [str(r.address) for r in freed]}
    _emit(args, out, f"node {args.name} was removed before; forgot it")
    return 0


def _cordon(on: bool) -> Command:
    async def run(store: Store, args: argparse.Namespace, t: Timing) -> int:
        changed = await Lifecycle(store).cordon(args.name, on)
        word = "cordoned" if on else "uncordoned"
        human = f"node {args.name} {word}" + ("" if changed else " (already)")
        _emit(args, {"node": args.name, "cordoned": on, "changed": changed}, human)
        return 0

    return run


def _emit(args: argparse.Namespace, obj: dict[str, Any], human: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if args.json else human)


Command = Callable[[Store, argparse.Namespace, Timing], Awaitable[int]]


def _run(command: Command, mode: OpenMode) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        name = f"podbgp node {args.node_command}"
        try:
            target = store_target(args)
        except ConfigError as e:
            print(f"{name}: {config_error_text(args.config, e)}", file=sys.stderr)
            return 1

        async def go() -> int:
            store = open_store(target.url, mode)
            try:
                joined = await join(store, target.cluster_id_file, record=False)
                return await command(joined, args, timing(target))
            finally:
                await store.close()

        try:
            return asyncio.run(go())
        except BrokenPipeError:
            raise
        except (IpamError, StoreError, ValueError, OSError) as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 1

    return run


def register(subparsers: Any) -> None:
    """Add `podbgp node` and its sub-commands."""
    common = argparse.ArgumentParser(add_help=False)
    add_target_args(common)
    common.add_argument("--json", action="store_true", help="print JSON")
    top = subparsers.add_parser("node", help="the cluster's nodes: leases, removal, cordon")
    sub = top.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    sub.add_parser("list", parents=[common], help="every node and its phase").set_defaults(
        func=_run(cmd_list, OpenMode.READ_ONLY)
    )
    p = sub.add_parser("show", parents=[common], help="one node's records")
    p.add_argument("name")
    p.set_defaults(func=_run(cmd_show, OpenMode.READ_ONLY))
    p = sub.add_parser("remove", parents=[common], help="remove a node and release its blocks")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="even while its lease is live")
    p.set_defaults(func=_run(cmd_remove, OpenMode.READ_WRITE))
    for word, on in (("cordon", True), ("uncordon", False)):
        what = "no new blocks for a node" if on else "let a cordoned node claim blocks again"
        p = sub.add_parser(word, parents=[common], help=what)
        p.add_argument("name")
        p.set_defaults(func=_run(_cordon(on), OpenMode.READ_WRITE))
