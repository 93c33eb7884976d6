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
from podbgp import instance, logs, wiring
from podbgp.cluster import load_effective
from podbgp.config import Config, ConfigError
from podbgp.config.merge import effective_config, read_node_file

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
        log.error("cannot start: %s", exc)
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


LOAD_TIMEOUT = 10.0  # seconds for the cluster's resources: a store that does not answer


def load_node_config(path: str) -> Config:
    """The node file over the cluster's resources in the store it names (`podbgp.cluster`).

    A store that cannot be read is StoreError naming it -- unless the node file has
    mistakes of its own, which come first (ConfigError), as they would without a store.
    """
    node = read_node_file(path)
    try:
        return asyncio.run(asyncio.wait_for(load_effective(node), LOAD_TIMEOUT)).config
    except (StoreError, OSError, TimeoutError) as exc:
        effective_config(node, ())  # the file's own errors, if it has any
        url = wiring.datastore_url_of(node.datastore)
        raise StoreError(f"datastore {url}: {exc or f'no answer in {LOAD_TIMEOUT:g} s'}") from exc


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
