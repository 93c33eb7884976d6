"""`podbgp show …` and `podbgp peer …`: ask the running daemon over its control socket.

The socket is found from `--socket PATH`, else from `--config FILE`'s `[api] socket`,
else the default path. `--json` prints the daemon's answer as it is (a stable,
documented shape: docs/control-api.md); without it, a readable table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from typing import Any

from podbgp.api import DEFAULT_SOCKET, APIError, ControlClient

# Columns of the human tables: (heading, key in each row of the JSON answer).
COLUMNS: dict[str, Sequence[tuple[str, str]]] = {
    "peers": (
        ("PEER", "address"),
        ("AS", "asn"),
        ("STATE", "state"),
        ("UPTIME", "uptime"),
        ("PFX IN", "prefixes_received"),
        ("PFX OUT", "prefixes_advertised"),
        ("LAST ERROR", "last_error"),
    ),
    "routes": (
        ("PREFIX", "prefix"),
        ("BEST", "best"),
        ("NEXT HOP", "next_hop"),
        ("FROM", "peer"),
        ("AS PATH", "as_path"),
        ("REASON", "reason"),
    ),
    "fib": (
        ("PREFIX", "prefix"),
        ("ROUTE", "route"),
        ("STATE", "state"),
    ),
    "ipam": (
        ("BLOCK", "cidr"),
        ("POOL", "pool"),
        ("AFFINITY", "affinity"),
        ("USED", "used"),
        ("FREE", "free"),
    ),
}


def socket_path(args: argparse.Namespace) -> str:
    if getattr(args, "socket", None):
        return str(args.socket)
    if getattr(args, "config", None):
        with open(args.config, "rb") as f:
            raw = tomllib.load(f)
        api = raw.get("api", {})
        if isinstance(api, dict) and isinstance(api.get("socket"), str):
            return str(api["socket"])
    return DEFAULT_SOCKET


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    cells = [[h for h, _ in columns]]
    for row in rows:
        cells.append([_cell(row.get(key)) for _, key in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _print_result(what: str, result: Any, as_json: bool) -> None:
    if as_json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return
    if isinstance(result, dict) and "rows" in result:
        for key, value in result.items():
            if key != "rows":
                print(f"{key}: {_cell(value)}")
        result = result["rows"]
    if isinstance(result, list) and what in COLUMNS:
        print(render_table(result, COLUMNS[what]))
    elif isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {_cell(value)}")
    else:
        print(result)


def _show(args: argparse.Namespace) -> int:
    filters = {k: v for k in ("prefix", "peer", "family") if (v := getattr(args, k, None))}
    return _call(args, f"show.{args.what}", filters, args.what)


def _peer(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"address": args.address}
    if args.message:
        params["message"] = args.message
    return _call(args, f"peer.{args.action}", params, "peer")


def _call(args: argparse.Namespace, cmd: str, params: dict[str, Any], what: str) -> int:
    try:
        result = ControlClient(socket_path(args)).request(cmd, **params)
    except (APIError, OSError) as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return 1
    _print_result(what, result, getattr(args, "json", False))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="the daemon's config file (for its [api] socket)")
    p.add_argument("--socket", help="the daemon's control socket")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = sub.add_parser("show", help="ask the running daemon")
    show.add_argument("what", choices=["peers", "routes", "fib", "ipam", "node"])
    show.add_argument("--prefix", help="routes: only this prefix")
    show.add_argument("--peer", help="routes: only paths from this peer")
    show.add_argument("--family", choices=["ipv4", "ipv6"], help="routes: one family")
    _common(show)
    show.set_defaults(func=_show)

    peer = sub.add_parser("peer", help="reset, shut down or enable a BGP session")
    peer.add_argument("action", choices=["reset", "shutdown", "enable"])
    peer.add_argument("address")
    peer.add_argument("--message", help="shutdown communication (RFC 9003)")
    _common(peer)
    peer.set_defaults(func=_peer)
