"""`podbgp audit`: what is wrong between the datastore, BGP and the kernel, for monitoring.

Asks one node's daemon (its socket, as for `podbgp show`), or several
(`--socket` repeated: one per node, as on a host that runs a lab, or over
mounted sockets), and prints every finding (`podbgp.audit` says what each check
looks at). A node that does not answer is a finding too. Exit status: 0 nothing
found, 1 something found (or a node did not answer), 2 a wrong argument.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from podbgp.api import APIError, ControlClient
from podbgp.cmd_show import _seconds, socket_path

EXIT_FOUND, EXIT_USAGE = 1, 2


def _ask(path: str, timeout: float) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = ControlClient(path, timeout=timeout).request("audit")
        return answer
    except APIError as exc:
        return {"node": path, "ok": False, "unreachable": True,
                "findings": [{"check": "unreachable", "subject": path, "detail": str(exc)}]}  # fmt: skip


def render(reports: list[dict[str, Any]]) -> str:
    lines = []
    for r in reports:
        found = r["findings"]
        lines.append(f"{r['node']}: {'ok' if r['ok'] else f'{len(found)} finding(s)'}")
        lines += [f"  {f['check']:<28} {f['subject']:<22} {f['detail']}" for f in found]
    return "\n".join(lines)


def _audit(args: argparse.Namespace) -> int:
    paths = args.socket or [socket_path(args)]
    reports = [_ask(p, args.timeout) for p in paths]
    print(json.dumps(reports, indent=2) if args.json else render(reports))
    return 0 if all(r["ok"] for r in reports) else EXIT_FOUND


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="what is wrong between the datastore, BGP and the kernel")
    p.add_argument("--config", help="the daemon's config file (for its [api] socket)")
    p.add_argument("--socket", action="append", help="a daemon's control socket (repeatable: "
                   "one per node)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="how long to wait for each daemon (default 10)")  # fmt: skip
    p.set_defaults(func=_audit)
