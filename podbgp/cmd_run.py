"""`podbgp run --config FILE`: the node daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import sys

from podbgp import logs
from podbgp.config import ConfigError, load_config


def _run(args: argparse.Namespace) -> int:
    try:
        logs.setup(args.log_format, args.log_level)
    except ValueError as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"podbgp: {args.config}: invalid config:\n{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"podbgp: cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 1
    from podbgp.daemon import run_daemon

    return asyncio.run(run_daemon(config, args.config))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the node daemon in the foreground")
    p.add_argument("--config", required=True, help="the node's TOML config (CONFIG.md)")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument(
        "--log-level", default="info", help='a level, or per part: "info,fib=debug,bgp=warning"'
    )
    p.set_defaults(func=_run)
