"""`podbgp explain ADDRESS|PREFIX`: why a route is (not) originated, chosen, sent, installed.

Asks the running daemon (``podbgp.explain`` builds the answer) and prints each
step of the chain with its reason, then where the chain breaks. ``--json``
prints the answer as the daemon gave it (docs/control-api.md). Exit status 0
when the answer came back, whatever it says; 1 when the daemon refused, 2 for
a wrong argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from podbgp.api import APIError, ControlClient, InvalidArgument
from podbgp.cmd_show import EXIT_REFUSED, EXIT_USAGE, _common, _prefix, socket_path


def render(r: dict[str, Any]) -> str:
    """The answer as text: one line per step, one per peer, then the breaks."""
    lines = [f"{r['query']} on node {r['node']}"]
    lines.append(f"  ipam:    {r['ipam'].get('why', '')}")
    lines.append(f"  origin:  {r['origin']['why']}")
    lines.append(f"  rib:     {r['rib'].get('why', '')}")
    for p in r["peers"]:
        rule = ""
        if p["policy"] is not None:
            rule = f" [{p['policy']['policy']}: {p['policy']['why']}]"
        sent = "advertised" if p["advertised"] else "not advertised"
        got = len(p["received"])
        lines.append(f"  peer {p['peer']}: {sent}: {p['why']}{rule}; received {got} path(s)")
    k = r["kernel"]
    where = f" {k['prefix']}" if k.get("prefix") else ""
    lines.append(f"  kernel:{where} {k['why']}")
    if k.get("last_drift"):
        lines.append(f"           last changed by someone else: {k['last_drift']['what']}")
    if r["breaks"]:
        lines.append("breaks:")
        lines += [f"  - {b}" for b in r["breaks"]]
    else:
        lines.append("no break in the chain")
    return "\n".join(lines)


def _explain(args: argparse.Namespace) -> int:
    try:
        result = ControlClient(socket_path(args), timeout=args.timeout).request(
            "explain", target=args.target
        )
    except InvalidArgument as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except APIError as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else render(result))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="why a route is (not) originated, chosen, sent, installed")
    p.add_argument("target", metavar="ADDRESS|PREFIX", type=_prefix,
                   help="a pod address, a block or any prefix")  # fmt: skip
    _common(p)
    p.set_defaults(func=_explain)
