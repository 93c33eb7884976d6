"""`podbgp drain` and `podbgp undrain`: take the node out of service and back (RFC 8326).

`drain` asks the running daemon to tag its routes with GRACEFUL_SHUTDOWN, wait until
its peers have moved their traffic (or `--timeout` seconds), then withdraw everything
and stop its sessions (`podbgp.drain` says exactly what is waited for); it returns
once the node is drained, printing the daemon's report. `--stop` then ends the daemon.
`undrain` announces the routes again untagged and restarts the sessions.
"""

from __future__ import annotations

import argparse
import sys

from podbgp.api import APIError, ControlClient
from podbgp.cmd_show import _common, _print_result, socket_path
from podbgp.drain import DEFAULT_TIMEOUT, TIMEOUT_MAX

# The answer comes once the drain is over: allow for the flush and the session stops.
_ANSWER_MARGIN = 30.0


def _drain(args: argparse.Namespace) -> int:
    if not 0 <= args.timeout <= TIMEOUT_MAX:
        print(f"podbgp: --timeout {args.timeout:g} is out of range 0..{TIMEOUT_MAX:g}",
              file=sys.stderr)  # fmt: skip
        return 2
    client = ControlClient(socket_path(args), timeout=args.timeout + _ANSWER_MARGIN)
    return _ask(args, client, "node.drain", timeout=args.timeout, stop=args.stop)


def _undrain(args: argparse.Namespace) -> int:
    return _ask(args, ControlClient(socket_path(args)), "node.undrain")


def _ask(args: argparse.Namespace, client: ControlClient, cmd: str, **params: object) -> int:
    try:
        result = client.request(cmd, **params)
    except (APIError, OSError) as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return 1
    _print_result("node", result, args.json)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drain = sub.add_parser(
        "drain", help="move traffic away from this node, then stop its sessions (RFC 8326)"
    )
    drain.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"longest wait for the peers to move, seconds (default {DEFAULT_TIMEOUT:g})",
    )
    drain.add_argument("--stop", action="store_true", help="exit the daemon once drained")
    _common(drain, answer_timeout=False)  # its --timeout bounds the drain itself
    drain.set_defaults(func=_drain)

    undrain = sub.add_parser("undrain", help="announce routes again and restart the sessions")
    _common(undrain)
    undrain.set_defaults(func=_undrain)
