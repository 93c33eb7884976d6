"""`podbgp show …` and `podbgp peer …`: ask the running daemon over its control socket.

The socket is found from `--socket PATH`, else from `--config FILE`'s `[api] socket`,
else the default path. `--json` prints the daemon's answer as it is (a stable,
documented shape: docs/control-api.md); without it, a readable table.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Sequence
from typing import Any

from podbgp.api import DEFAULT_SOCKET, APIError, ControlClient, InvalidArgument
from podbgp.config import ConfigError, load_config

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
        ("ORIGIN", "origin"),
        ("LOCAL_PREF", "local_pref"),
        ("MED", "med"),
        ("COMMUNITIES", "all_communities"),
        ("AGE", "age_hms"),
        ("REASON", "reason"),
    ),
    # `show routes --peer X --received`: the peer's paths after import policy.
    "received": (
        ("PREFIX", "prefix"),
        ("BEST", "best"),
        ("NEXT HOP", "next_hop"),
        ("AS PATH", "as_path"),
        ("ORIGIN", "origin"),
        ("LOCAL_PREF", "local_pref"),
        ("MED", "med"),
        ("COMMUNITIES", "all_communities"),
        ("STALE", "stale"),
    ),
    # `--advertised` and `--received --pre-policy`: attributes as sent / as received.
    "adj": (
        ("PREFIX", "prefix"),
        ("NEXT HOP", "next_hop"),
        ("AS PATH", "as_path"),
        ("ORIGIN", "origin"),
        ("LOCAL_PREF", "local_pref"),
        ("MED", "med"),
        ("COMMUNITIES", "all_communities"),
    ),
    "fib": (
        ("PREFIX", "prefix"),
        ("STATE", "state"),
        ("ROUTE", "route"),
        ("KERNEL", "kernel"),
    ),
}


def socket_path(args: argparse.Namespace) -> str:
    """`--socket`, else `--config`'s `[api] socket` (read by the daemon's own loader, so
    the same file gives the same socket), else the default."""
    if getattr(args, "socket", None):
        return str(args.socket)
    if getattr(args, "config", None):
        try:
            return load_config(args.config).api.socket
        except ConfigError as exc:
            first, n = exc.errors[0], len(exc.errors)
            if not first.startswith(str(args.config)):
                first = f"{args.config}: invalid config: {first}"
            more = f" (and {n - 1} more: `podbgp check --config {args.config}`)" if n > 1 else ""
            raise APIError(f"{first}{more}; or give --socket") from exc
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
    if isinstance(value, dict):  # e.g. show node's datastore: key=value pairs, not a repr
        return " ".join(f"{k}={_yes(v) if isinstance(v, bool) else _cell(v)}"
                        for k, v in value.items()) or "-"  # fmt: skip
    return str(value)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _yes(value: Any) -> str:
    return "yes" if value else "no"


# -- per-command rendering: the JSON answer → text ------------------------------------------
def peers_table(result: list[dict[str, Any]]) -> str:
    """`show peers` (and the lab's session report): one table row per peer, its last
    error on an indented line below."""
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
    ("long_lived_graceful_restart", "llgr"),
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


def _last_error(err: Any, width: int | None = 60) -> str:
    """`sent 6/1 reason`, a Hard Reset as `sent 6/9 (6/1) maximum prefixes (3) reached`;
    code 0 is a close without NOTIFICATION."""
    if not isinstance(err, dict):
        return ""
    reason = str(err.get("reason") or "")
    if width is not None and len(reason) > width:
        reason = reason[: width - 1] + "…"
    if not err.get("code"):
        return reason or "connection closed"
    code = f"{err.get('code')}/{err.get('subcode')}"
    if err.get("inner_code"):  # a Hard Reset names the error it stands for (RFC 8538 §3)
        code += f" ({err.get('inner_code')}/{err.get('inner_subcode')})"
    words = [err.get("direction"), code, reason]
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
    gate = result.get("input_gate")
    if result.get("backlog") or (isinstance(gate, dict) and gate.get("holds")):
        lines.append(_backlog_summary(result.get("backlog") or 0, gate))
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


def _backlog_summary(backlog: int, gate: Any) -> str:
    """Routes waiting for the kernel, and how often BGP input waited for them (fib.service)."""
    line = f"backlog: {backlog} routes waiting for the kernel"
    if isinstance(gate, dict) and gate.get("holds"):
        now = ", holding now" if gate.get("holding") else ""
        line += (f"; BGP input held {gate['holds']} times, "
                 f"{gate.get('held_seconds', 0):g} s in all{now}")  # fmt: skip
    return line


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


def _route_row(row: dict[str, Any]) -> dict[str, Any]:
    """Standard (RFC 1997) and large (RFC 8092) communities in one column; the path's
    age as H:MM:SS."""
    both = list(row.get("communities") or []) + list(row.get("large_communities") or [])
    age = row.get("age")
    return {**row, "all_communities": both, "age_hms": _hms(age) if age is not None else None}


def _routes_text(columns: str, result: list[dict[str, Any]]) -> str:
    return render_table([_route_row(r) for r in result], COLUMNS[columns])


def _peer_text(r: dict[str, Any]) -> str:
    """`show peer ADDRESS`: the detail view, section by section."""
    row = _peer_row(r)
    lines = [
        f"peer {r.get('address')}, AS {r.get('asn')}, state {row.get('state')}"
        + (f" for {r['uptime']}" if r.get("uptime") else ""),
        f"  router id {_cell(r.get('router_id'))}, local {_cell(r.get('local'))}, "
        f"remote {_cell(r.get('remote'))}, flaps {r.get('flaps', 0)}"
        + (f", mesh node {r['mesh_node']}" if r.get("mesh_node") else ""),
    ]
    lines += _timers_lines(r.get("timers") or {})
    caps = r.get("capabilities") or {}
    lines.append("capabilities sent:")
    lines += [f"  {c}" for c in caps.get("sent") or []]
    received = caps.get("received")
    lines.append("capabilities received:" + ("" if received is not None else " (no session)"))
    lines += [f"  {c}" for c in received or []]
    lines += _messages_lines(r)
    lines += _prefix_lines(r.get("routes"))
    lines += _gr_lines(r.get("graceful_restart") or {})
    lines += _bfd_lines(r.get("bfd"))
    err = r.get("last_error")
    lines.append("last error: " + (_last_error(err, width=None) if err else "none"))
    return "\n".join(lines)


def _timers_lines(t: dict[str, Any]) -> list[str]:
    conf, neg = t.get("configured") or {}, t.get("negotiated")
    lines = [
        f"timers: configured hold {conf.get('hold_time')} s, keepalive "
        f"{conf.get('keepalive')} s, connect retry {conf.get('connect_retry')} s "
        f"(max {conf.get('connect_retry_max')} s)"
    ]
    if neg:
        lines.append(f"  negotiated hold {neg['hold_time']} s, keepalive {neg['keepalive']} s")
    return lines


def _messages_lines(r: dict[str, Any]) -> list[str]:
    """Messages per type, in and out (RFC 4271 §4.1 types and ROUTE-REFRESH)."""
    ins, outs = r.get("messages_in") or {}, r.get("messages_out") or {}
    rows = [{"type": k, "in": ins.get(k, 0), "out": outs.get(k, 0)} for k in {**ins, **outs}]
    rows.append({"type": "total", "in": _total(ins), "out": _total(outs)})
    table = render_table(rows, (("MESSAGES", "type"), ("IN", "in"), ("OUT", "out")))
    return ["  " + line for line in table.splitlines()]


def _prefix_lines(routes: Any) -> list[str]:
    if not isinstance(routes, dict):
        return ["prefixes: -"]
    pre = routes.get("received_pre_policy")

    def fams(counts: Any) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted((counts or {}).items())) or "0"

    return [
        f"prefixes received: {fams(routes.get('received'))} (after import policy); "
        + ("before policy: " + fams(pre) if pre is not None else "before policy: not kept"),
        f"prefixes advertised: {fams(routes.get('advertised'))}",
    ]


def _gr_lines(gr: dict[str, Any]) -> list[str]:
    local = gr.get("local") or {}
    lines = [
        "graceful restart: "
        + (f"on, restart time {local.get('restart_time')} s" if local.get("enabled") else "off")
        + (", restarting" if local.get("restarting") else ""),
        f"  peer: {gr.get('peer') or 'no capability'}",
    ]
    if gr.get("stale_families"):
        lines.append("  stale routes kept for: " + ", ".join(gr["stale_families"]))
    if gr.get("end_of_rib_received"):
        lines.append("  End-of-RIB received: " + ", ".join(gr["end_of_rib_received"]))
    return lines


def _bfd_lines(b: Any) -> list[str]:
    """The peer's BFD session (RFC 5880): state, agreed timers, discriminators, flaps."""
    if not isinstance(b, dict):
        return ["bfd: off"]
    return [
        f"bfd: {b.get('state')} (remote {b.get('remote_state')}), diagnostic {b.get('diag')}, "
        f"flaps {b.get('flaps', 0)}",
        f"  transmit every {b.get('tx_interval_ms')} ms, detection time "
        f"{b.get('detection_time_ms')} ms, discriminators {b.get('local_discriminator')} / "
        f"{b.get('remote_discriminator')}",
        f"  packets in {b.get('packets_in')}, out {b.get('packets_out')}, dropped "
        + (", ".join(f"{k} {v}" for k, v in sorted((b.get("dropped") or {}).items())) or "0"),
    ]


def _announcements_text(result: dict[str, Any]) -> str:
    """`show announcements`: run-time prefixes with their check, then service prefixes."""
    lines = []
    for r in result.get("runtime", []):
        check = r.get("check") or {}
        how = next((f"{k} {v}" for k, v in check.items() if k in ("exec", "tcp")), "no check")
        state = "announced" if r.get("announced") else "WITHDRAWN"
        seen = f" ({r['last_check']})" if r.get("last_check") else ""
        lines.append(f"{r['prefix']:<22} {state:<10} {how}{seen}")
    lines += [f"{r['prefix']:<22} {'announced':<10} service" for r in result.get("services", [])]
    return "\n".join(lines) or "nothing announced beyond the node's blocks"


def _text(what: str, result: Any) -> str:
    if what == "announcements" and isinstance(result, dict):
        return _announcements_text(result)
    if what == "fib" and isinstance(result, dict):
        return _fib_text(result)
    if what == "ipam" and isinstance(result, dict):
        return _ipam_text(result)
    if what == "peers" and isinstance(result, list):
        return peers_table(result)
    if what == "peer" and isinstance(result, dict) and "timers" in result:
        return _peer_text(result)
    if what in ("routes", "received", "adj") and isinstance(result, list):
        return _routes_text(what, result)
    if what == "peer" and isinstance(result, dict) and "expected_back_seconds" in result:
        return _peer_action_text(result)
    if isinstance(result, list) and what in COLUMNS:
        return render_table(result, COLUMNS[what])
    if what == "node" and isinstance(result, dict) and "uptime_seconds" in result:
        # `show peers` writes H:MM:SS: the same here (`--json` keeps the seconds).
        result = {
            ("uptime" if k == "uptime_seconds" else k): (
                _hms(v) if k == "uptime_seconds" and isinstance(v, int | float) else v
            )
            for k, v in result.items()
        }
    if isinstance(result, dict):
        return "\n".join(
            f"{key}: {_yes(value) if isinstance(value, bool) else _cell(value)}"
            for key, value in result.items()
        )
    return str(result)


def _peer_action_text(result: dict[str, Any]) -> str:
    """`podbgp peer reset|shutdown|enable`: the state, and when the session is expected back."""
    back = result.get("expected_back_seconds")
    if result.get("admin") == "down":
        when = "stays down until `podbgp peer enable`"
    elif back is not None:
        when = "dialling now" if back == 0 else f"dials again in {back:g} s"
    elif result.get("waits_for_peer"):
        when = "waits for the peer to connect (passive)"
    else:
        when = "-"
    return f"{result.get('address')}: {result.get('state')}, {when}"


def _print_result(what: str, result: Any, as_json: bool) -> None:
    """A closed pipe (`| head`) is `podbgp.cli.main`'s to handle, for every command."""
    if as_json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(_text(what, result))


def _show(args: argparse.Namespace) -> int:
    problem = _usage_error(args)
    if problem:
        args.parser.error(problem)  # exits 2
    if args.what == "peer":
        return _call(args, "show.peer", {"address": args.address}, "peer")
    filters: dict[str, Any] = {
        k: v for k in ("prefix", "peer", "family") if (v := getattr(args, k, None))
    }
    view = args.what
    if args.advertised:
        filters["advertised"], view = True, "adj"
    elif args.pre_policy:
        filters["received"] = filters["pre_policy"] = True
        view = "adj"
    elif args.received:
        filters["received"], view = True, "received"
    return _call(args, f"show.{args.what}", filters, view)


def _peer(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"address": args.address}
    if args.message:
        params["message"] = args.message
    if args.hard:
        params["hard"] = True
    return _call(args, f"peer.{args.action}", params, "peer")


# Exit statuses: 0 answered, 1 the daemon refused or cannot be reached, 2 bad input
# (argparse's own status for a usage error).
EXIT_REFUSED, EXIT_USAGE = 1, 2


def _call(args: argparse.Namespace, cmd: str, params: dict[str, Any], what: str) -> int:
    try:
        result = ControlClient(socket_path(args), timeout=args.timeout).request(cmd, **params)
    except InvalidArgument as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except APIError as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    _print_result(what, result, getattr(args, "json", False))
    return 0


def _address(text: str) -> str:
    """argparse type: an IP address (the daemon checks again; this fails before asking)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _prefix(text: str) -> str:
    """argparse type: a prefix (`10.0.0.0/24`) or an address (its covering route)."""
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP prefix or address") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 3600]")
    return value


def _common(p: argparse.ArgumentParser, answer_timeout: bool = True) -> None:
    """--config, --socket, --json; and --timeout unless the command has its own."""
    p.add_argument("--config", help="the daemon's config file (for its [api] socket)")
    p.add_argument("--socket", help="the daemon's control socket")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    if not answer_timeout:
        return
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="how long to wait for the daemon's answer (default 10)")  # fmt: skip


def _usage_error(args: argparse.Namespace) -> str | None:
    """What argparse cannot say about `show`'s arguments (exit 2 like its own errors)."""
    if args.what == "peer" and args.address is None:
        return "show peer needs the peer's ADDRESS"
    if args.what != "peer" and args.address is not None:
        return f"show {args.what} takes no ADDRESS (did you mean --peer {args.address}?)"
    if (args.advertised or args.received or args.pre_policy) and (
        args.what != "routes" or not args.peer
    ):
        return "--advertised, --received and --pre-policy need show routes --peer ADDRESS"
    if args.advertised and (args.received or args.pre_policy):
        return "--advertised excludes --received and --pre-policy"
    return None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = sub.add_parser("show", help="ask the running daemon")
    show.add_argument(
        "what", choices=["peers", "peer", "routes", "fib", "ipam", "node", "announcements"]
    )
    show.add_argument("address", nargs="?", type=_address, help="peer: the peer's address")
    show.add_argument("--prefix", type=_prefix, help="routes: only this prefix, or the routes "
                      "covering this address")  # fmt: skip
    show.add_argument("--peer", type=_address, help="routes: only paths from this peer")
    show.add_argument("--family", choices=["ipv4", "ipv6"], help="routes: one family")
    show.add_argument("--advertised", action="store_true",
                      help="routes: what was sent to --peer (its Adj-RIB-Out)")  # fmt: skip
    show.add_argument("--received", action="store_true",
                      help="routes: what --peer sent, after import policy")  # fmt: skip
    show.add_argument("--pre-policy", action="store_true",
                      help="routes: with --received, before import policy "
                      "(needs soft_reconfiguration on the peer)")  # fmt: skip
    _common(show)
    show.set_defaults(func=_show, parser=show)

    peer = sub.add_parser("peer", help="reset, shut down or enable a BGP session")
    peer.add_argument("action", choices=["reset", "shutdown", "enable"])
    peer.add_argument("address", type=_address)
    peer.add_argument("--message", help="shutdown communication (RFC 9003)")
    peer.add_argument("--hard", action="store_true",
                      help="reset/shutdown as Cease / Hard Reset (RFC 8538): routes are "
                           "flushed on both ends instead of kept until the session is back")  # fmt: skip
    _common(peer)
    peer.set_defaults(func=_peer)
