"""`podbgp run --config FILE`: the node daemon in the foreground.

Before the daemon touches the kernel, the datastore or BGP: the node's instance lock
(one daemon per control socket: a second one exits with `already running (pid N)`) and
the pre-flight check of the BGP listen addresses (`podbgp.instance`). Every start-up
failure is one logged line, `cannot start: …`, and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ipam.store import StoreError
from podbgp import instance, logs
from podbgp.cluster import load_effective
from podbgp.config import Config, ConfigError
from podbgp.config.merge import read_node_file

log = logging.getLogger("podbgp.daemon")


def _run(args: argparse.Namespace) -> int:
    try:
        logs.setup(args.log_format, args.log_level)
    except ValueError as exc:
        print(f"podbgp: {exc}", file=sys.stderr)
        return 2
    try:
        config = load_node_config(args.config)
    except StoreError as exc:
        print(f"podbgp: {args.config}: cannot read the cluster's resources: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"podbgp: {args.config}: invalid config:\n{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"podbgp: cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 1
    lock = instance.InstanceLock(instance.lock_path(config.api.socket))
    try:
        lock.acquire()
    except instance.AlreadyRunning as exc:
        log.error("cannot start: node %s is %s", config.node.name, exc)
        return 1
    except OSError as exc:
        log.error("cannot start: lock file %s: %s", lock.path, exc.strerror or exc)
        return 1
    try:
        return _start(config, args.config)
    finally:
        lock.release()


def load_node_config(path: str) -> Config:
    """The node file over the cluster's resources in the store it names (`podbgp.cluster`)."""
    return asyncio.run(load_effective(read_node_file(path))).config


def _start(config: Config, path: str) -> int:
    problem = instance.check_listen(config)
    if problem:
        log.error("cannot start: %s", problem)
        return 1
    from podbgp.daemon import run_daemon

    return asyncio.run(run_daemon(config, path))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the node daemon in the foreground")
    p.add_argument("--config", required=True, help="the node's TOML config (CONFIG.md)")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument(
        "--log-level", default="info", help='a level, or per part: "info,fib=debug,bgp=warning"'
    )
    p.set_defaults(func=_run)
