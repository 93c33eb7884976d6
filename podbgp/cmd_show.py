"""`podbgp show …` and `podbgp peer …`: ask the running daemon over its control socket.

The socket is found from `--socket PATH`, else from `--config FILE`'s `[api] socket`,
else the default path. `--json` prints the daemon's answer as it is (a stable,
documented shape: docs/control-api.md); without it, a readable table.
"""

from __future__ import annotations

import argparse
import json
import os
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
        ("MSGS IN/OUT", "messages"),
        ("PFX IN/OUT", "prefixes"),
        ("CAPS", "caps"),
        ("BFD", "bfd_state"),
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
        ("STATE", "state"),
        ("ROUTE", "route"),
        ("KERNEL", "kernel"),
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
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def _yes(value: Any) -> str:
    return "yes" if value else "no"


# -- per-command rendering: the JSON answer → text ------------------------------------------
def _peers_text(result: list[dict[str, Any]]) -> str:
    """`show peers`: one table row per peer, its last error on an indented line below."""
    lines = render_table([_peer_row(r) for r in result], COLUMNS["peers"]).splitlines()
    out = lines[:1]
    for row, line in zip(result, lines[1:], strict=True):
        out.append(line)
        err = _last_error(row.get("last_error"))
        if err:
            out.append(f"    last error: {err}")
    return "\n".join(out)


def _peer_row(row: dict[str, Any]) -> dict[str, Any]:
    state = row.get("state")
    if row.get("admin") == "down":
        state = f"{state} (Admin)"  # shut down: no session until `podbgp peer enable`
    pfx_in = row.get("prefixes_received", row.get("prefixes_in"))
    pfx_out = row.get("prefixes_advertised", row.get("prefixes_out"))
    return {
        **row,
        "state": state,
        "messages": f"{_total(row.get('messages_in'))}/{_total(row.get('messages_out'))}",
        "prefixes": f"{_cell(pfx_in)}/{_cell(pfx_out)}",
        "caps": " ".join(capabilities(row.get("negotiated"))) or None,
        "bfd_state": _bfd_cell(row.get("bfd")),
    }


def _bfd_cell(bfd: Any) -> str | None:
    """`up`, or `down (2 flaps)`: the BFD session's state and Up → Down count."""
    if not isinstance(bfd, dict):
        return None
    flaps = bfd.get("flaps", 0)
    return (
        f"{bfd.get('state')} ({flaps} flap{'s' if flaps != 1 else ''})"
        if flaps
        else bfd.get("state")
    )


def _total(counts: Any) -> int:
    return sum(counts.values()) if isinstance(counts, dict) else 0


# Short names of negotiated capabilities (RFC 5492), in the order they are printed;
# the legend is in docs/control-api.md.
_FAMILY_CAPS = {"ipv4_unicast": "mp4", "ipv6_unicast": "mp6"}
_FLAG_CAPS = (
    ("route_refresh", "rr"),
    ("enhanced_route_refresh", "err"),
    ("extended_message", "em"),
    ("extended_nexthop", "enh"),
    ("graceful_restart", "gr"),
    ("four_octet_as", "as4"),
)


def capabilities(negotiated: Any) -> list[str]:
    """`negotiated` of `show.peers` in short form, e.g. ``mp4 mp6 rr err gr as4 ap``."""
    if not isinstance(negotiated, dict):
        return []
    caps = [_FAMILY_CAPS.get(f, f) for f in negotiated.get("families", ())]
    caps += [short for key, short in _FLAG_CAPS if negotiated.get(key)]
    rx, tx = negotiated.get("add_path_rx"), negotiated.get("add_path_tx")
    if rx or tx:
        caps.append("ap" if rx and tx else "ap-rx" if rx else "ap-tx")
    return caps


def _last_error(err: Any, width: int = 60) -> str:
    """`sent 6/1 maximum prefixes (3) reached`; code 0 is a close without NOTIFICATION."""
    if not isinstance(err, dict):
        return ""
    reason = str(err.get("reason") or "")
    if len(reason) > width:
        reason = reason[: width - 1] + "…"
    if not err.get("code"):
        return reason or "connection closed"
    words = [err.get("direction"), f"{err.get('code')}/{err.get('subcode')}", reason]
    return " ".join(str(w) for w in words if w)


def _fib_text(result: dict[str, Any]) -> str:
    """`show fib`: summary lines, then one row per prefix (Reconciler.snapshot's rows)."""
    tunnels = result.get("tunnels") or {}
    up = ", ".join(name for name in ("vxlan", "ipip") if tunnels.get(name)) or "none"
    if tunnels.get("ipip_unsupported"):
        up += f" (ipip unsupported: {tunnels['ipip_unsupported']})"
    counters = result.get("counters") or {}
    lines = [
        f"table {result.get('table')}, protocol {result.get('protocol')}, "
        f"converged: {_yes(result.get('converged'))}",
        f"routes: {result.get('desired')} desired, {result.get('installed')} installed, "
        f"{result.get('in_sync')} in sync, {result.get('stale')} stale, "
        f"{result.get('conflicts')} conflicts, {result.get('failed')} failed",
        f"tunnels: {up}",
        "counters: " + (" ".join(f"{k}={v}" for k, v in counters.items() if v) or "-"),
    ]
    nexthops = result.get("nexthops")
    if isinstance(nexthops, dict):
        lines.append(_nexthops_summary(nexthops))
    if result.get("unroutable"):
        lines.append("unroutable: " + " ".join(result["unroutable"]))
    rows = []
    for r in result.get("rows", []):
        want, have = r.get("desired"), r.get("installed")
        route = want or have
        kernel = "same" if have is not None and have == want else have
        rows.append({"prefix": r.get("prefix"), "state": r.get("state"),
                     "route": _strip(route, r.get("prefix")), "kernel": _strip(kernel, r.get("prefix"))})  # fmt: skip
    text = "\n".join(lines) + "\n" + render_table(rows, COLUMNS["fib"])
    objects = nexthops.get("rows") if isinstance(nexthops, dict) else None
    if objects:
        # Routes name objects by `nhid N`: list them so the route column can be read.
        text += "\nnexthop objects:\n" + "\n".join(f"  {o}" for o in objects)
    return text


def _nexthops_summary(nh: dict[str, Any]) -> str:
    """Kernel nexthop objects (fib.nexthops): counts when on, why not when off."""
    if nh.get("enabled"):
        return (f"nexthops: objects, {nh.get('objects')} desired, {nh.get('installed')} "
                f"installed, {nh.get('refused')} refused")  # fmt: skip
    if nh.get("unsupported"):
        return f"nexthops: inline hops (kernel refused objects: {nh['unsupported']})"
    return "nexthops: inline hops ([fib] nexthops = false)"


def _strip(route: str | None, prefix: str | None) -> str | None:
    """A route's text without its prefix (the table has a column for it)."""
    if route is None or prefix is None:
        return route
    words = [w for w in route.split() if w != prefix]
    return " ".join(words)


def _ipam_text(result: dict[str, Any]) -> str:
    """`show ipam`: what this node announces, then one row per pool (as `podbgp ipam pools`)."""
    from podbgp.cmd_ipam import pools_table

    ann = result.get("announced") or {}
    lines = [
        "announced: " + _cell(ann.get("prefixes")),
        "blackholes: " + _cell(ann.get("blackholes")),
    ]
    store = result.get("datastore") or {}
    if store.get("error"):
        lines.append(f"DATASTORE: {store['error']}")
    return "\n".join(lines) + "\n" + pools_table(result.get("rows", []))


def _text(what: str, result: Any) -> str:
    if what == "fib" and isinstance(result, dict):
        return _fib_text(result)
    if what == "ipam" and isinstance(result, dict):
        return _ipam_text(result)
    if what == "peers" and isinstance(result, list):
        return _peers_text(result)
    if isinstance(result, list) and what in COLUMNS:
        return render_table(result, COLUMNS[what])
    if isinstance(result, dict):
        return "\n".join(
            f"{key}: {_yes(value) if isinstance(value, bool) else _cell(value)}"
            for key, value in result.items()
        )
    return str(result)


def _print_result(what: str, result: Any, as_json: bool) -> None:
    try:
        if as_json:
            json.dump(result, sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
        else:
            print(_text(what, result))
        sys.stdout.flush()
    except BrokenPipeError:  # `podbgp show ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _show(args: argparse.Namespace) -> int:
    filters = {k: v for k in ("prefix", "peer", "family") if (v := getattr(args, k, None))}
    return _call(args, f"show.{args.what}", filters, args.what)


def _peer(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"address": args.address}
    if args.message:
        params["message"] = args.message
    if args.hard:
        params["hard"] = True
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
    peer.add_argument("--hard", action="store_true",
                      help="reset/shutdown as Cease / Hard Reset (RFC 8538): routes are "
                           "flushed on both ends instead of kept until the session is back")  # fmt: skip
    _common(peer)
    peer.set_defaults(func=_peer)
