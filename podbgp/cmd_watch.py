"""`podbgp watch`: follow the running daemon's peer and route events as they happen.

Each event is printed as one line — a short text, or with `--json` the JSON object
the daemon sent (`podbgp.watch` lists the shapes) — until interrupted, the reader
closes the pipe, or the daemon ends the stream (it stops, or this watcher fell more
than the queue's length behind: an `overflow` event says so, exit status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from podbgp.api import APIError, ControlClient, InvalidArgument
from podbgp.cmd_show import EXIT_REFUSED, EXIT_USAGE, _common, _prefix, socket_path


def line(e: dict[str, Any]) -> str:
    """One event as text."""
    if e.get("type") == "peer":
        more = {
            "up": lambda: " ".join(e.get("families", [])),
            "down": lambda: f"{e.get('reason', '')}{' (graceful)' if e.get('graceful') else ''}",
            "end-of-rib": lambda: str(e.get("family", "")),
        }.get(str(e.get("event")), lambda: "")()
        return f"peer  {e.get('peer')} {e.get('event')} {more}".rstrip()
    if e.get("type") == "route":
        hops = ",".join(e.get("next_hops", [])) or "-"
        via = f" from {e['peer']} [{e.get('as_path', '')}]" if e.get("peer") else ""
        return f"route {e.get('prefix')} {e.get('event')} via {hops}{via}"
    return json.dumps(e)


def _watch(args: argparse.Namespace) -> int:
    kinds = args.events.split(",") if args.events else []
    params: dict[str, Any] = {"events": kinds} if kinds else {}
    if args.prefix:
        params["prefix"] = args.prefix
    try:
        stream = ControlClient(socket_path(args), timeout=args.timeout).stream("watch", **params)
        header = next(stream)
        print(json.dumps({"watching": header}) if args.json else f"watching {header}",
              file=sys.stderr)  # fmt: skip
        for event in stream:
            print(json.dumps(event) if args.json else line(event), flush=True)
            if event.get("type") == "overflow":
                return 1
    except InvalidArgument as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except APIError as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="follow peer and route events as they happen")
    p.add_argument("--events", metavar="KINDS", help="peer,route (default both)")
    p.add_argument("--prefix", type=_prefix, help="route events inside this prefix only")
    _common(p)
    p.set_defaults(func=_watch)
