"""`podbgp lab up|down|status`: the demo lab of `podbgp.lab.lab` from the command line.

Exit status of `up`: 0 when every pod reaches every other pod, 1 when a pair fails or the lab
cannot be built, 2 when the option cannot run on this machine (no root, a missing kernel
feature such as `ipip`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from podbgp.lab.labplan import (
    DEFAULT_FAMILY,
    DEFAULT_OPTION,
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    FAMILIES,
    OPTIONS,
    PlanError,
    plan_lab,
)


def _say(text: str) -> None:
    print(text, flush=True)


def _up(args: argparse.Namespace) -> int:
    from podbgp.lab import lab
    from podbgp.lab.netns import have_netns
    from podbgp.lab.shell import LabError, Unsupported

    why = have_netns()
    if why:
        print(f"podbgp lab: {why} (run as root)", file=sys.stderr)
        return 2
    try:
        up = _cluster_up(args) if args.topology == "cluster" else _segment_up(args)
    except PlanError as exc:
        print(f"podbgp lab: {exc}", file=sys.stderr)
        return 2
    try:
        state, matrix = up()
    except Unsupported as exc:
        print(f"podbgp lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("podbgp lab: interrupted; `podbgp lab down` removes what was built", file=sys.stderr)
        return 130
    except LabError as exc:  # a failed command (shell.CommandFailed) is one too
        print(f"podbgp lab: {exc}", file=sys.stderr)
        print("podbgp lab: the lab is left as it is; `podbgp lab down` removes it",
              file=sys.stderr)  # fmt: skip
        return 1
    _say("\n== BGP sessions\n" + lab.sessions_report(state))
    _say("\n== podbgp routes in each node's kernel (proto 80)\n" + lab.routes_report(state))
    if args.family == "dual":  # one table per family: which one fails, if one does
        for v in (4, 6):
            per = lab.ping_matrix(state, version=v)
            _say(f"\n== IPv{v} ping matrix (row pings column)\n" + lab.format_matrix(state, per))
    else:
        _say("\n== ping matrix (row pings column)\n" + lab.format_matrix(state, matrix))
    if not all(matrix.values()):
        print("podbgp lab: some pods cannot reach each other; logs are in "
              f"{state.state_dir}", file=sys.stderr)  # fmt: skip
        return 1
    _say("\n" + lab.next_steps(state))
    return 0


Up = Callable[[], tuple[Any, dict[tuple[str, str], bool]]]


def _segment_up(args: argparse.Namespace) -> Up:
    """The one-segment lab of `--option` (`podbgp.lab.lab`)."""
    from podbgp.lab import lab

    plan = plan_lab(args.option, 3 if args.nodes is None else args.nodes, args.pods_per_node,
                    args.prefix, args.state_dir, args.nat_outgoing, args.family)  # fmt: skip
    return lambda: lab.up(plan, replace=args.demo, out=_say, converge_timeout=args.timeout)


def _cluster_up(args: argparse.Namespace) -> Up:
    """Two racks, etcd and label-chosen reflectors (`podbgp.lab.cluster`)."""
    from podbgp.lab import cluster
    from podbgp.lab.clusterplan import plan_cluster

    if args.option != DEFAULT_OPTION or args.nat_outgoing or args.family != DEFAULT_FAMILY:
        raise PlanError("--option, --family and --nat-outgoing are for --topology segment")
    plan = plan_cluster(
        6 if args.nodes is None else args.nodes, args.pods_per_node, args.prefix, args.state_dir
    )
    timeout = max(args.timeout, 90.0)
    return lambda: cluster.up(plan, out=_say, converge_timeout=timeout, replace=args.demo)


def _down(args: argparse.Namespace) -> int:
    from podbgp.lab import lab

    lab.down(args.prefix, args.state_dir, out=_say)
    return 0


def _status(args: argparse.Namespace) -> int:
    from podbgp.lab import lab

    text, exists = lab.status_report(args.state_dir, args.prefix)
    _say(text)
    return 0 if exists else 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"configs, logs, datastore and lab.json (default {DEFAULT_STATE_DIR})")  # fmt: skip
    p.add_argument("--prefix", default=DEFAULT_PREFIX,
                   help=f"namespace name prefix (default {DEFAULT_PREFIX})")  # fmt: skip


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lab", help="a demo cluster of nodes and pods in network namespaces")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="up|down|status", required=True)

    up = lab_sub.add_parser("up", help="build the lab, start podbgp, create pods, ping them")
    up.add_argument("--option", default=DEFAULT_OPTION, choices=list(OPTIONS),
                    help="networking option: " + "; ".join(
                        f"{name}: {opt.summary}" for name, opt in OPTIONS.items()))  # fmt: skip
    up.add_argument("--family", default=DEFAULT_FAMILY, choices=list(FAMILIES),
                    help="pod and node addresses: ipv4, ipv6 (IPv6-only) or dual (one "
                         f"address of each family per pod); default {DEFAULT_FAMILY}")  # fmt: skip
    up.add_argument("--topology", default="segment", choices=("segment", "cluster"),
                    help="segment: the nodes of --option on one or two subnets; cluster: two "
                    "racks with an FRR ToR each, 3 etcd members, reflectors chosen by label")  # fmt: skip
    up.add_argument("--nodes", type=int, default=None,
                    help="number of nodes (default 3; 6 with --topology cluster)")  # fmt: skip
    up.add_argument("--pods-per-node", type=int, default=2, help="pods on each node (default 2)")
    up.add_argument("--nat-outgoing", action="store_true",
                    help="set nat_outgoing on the pod pool")  # fmt: skip
    up.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for convergence (default 60)")  # fmt: skip
    up.add_argument("--demo", action="store_true",
                    help="replace a lab left up by an earlier run first (make demo)")  # fmt: skip
    _common(up)
    up.set_defaults(func=_up)

    down = lab_sub.add_parser("down", help="remove the lab (also the leftovers of a crash)")
    _common(down)
    down.set_defaults(func=_down)

    status = lab_sub.add_parser("status", help="show what is up")
    _common(status)
    status.set_defaults(func=_status)
