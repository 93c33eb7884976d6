"""`podbgp datastore init|show`: create a datastore on purpose, and say which one is in use.

Nothing else creates a store (`ipam.identity`): ``init`` is the one explicit
step (besides ``podbgp run`` with ``datastore.create = true``, for labs). It
creates the SQLite file (and its directory) or, for etcd, writes the cluster
key with a create-if-absent transaction, so two inits cannot both win; the
store gets a random cluster ID and the schema version. Running it against a
store that already has an ID changes nothing and exits 1 saying so. A store
written by a podbgp from before identities (data, no cluster ID) is adopted:
``init`` adds the ID and keeps the data.

``show`` opens the store read-only and prints where it is, its cluster ID and
schema version and, with ``--config``, the cluster this node recorded and
whether they match.

Where the store is: ``--config FILE`` (the daemon's config, through the same
validating loader as ``podbgp run`` and ``podbgp check``), then
``--datastore sqlite:PATH | etcd:http(s)://HOST:PORT[,...][?ca=CA&cert=CERT&key=KEY]``, else the default
``sqlite:/var/lib/podbgp/podbgp.db``. `store_target` is shared with
``podbgp ipam``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipam.identity import (
    AlreadyInitialised,
    ClusterIdentity,
    init_cluster,
    read_identity,
    read_membership,
)
from ipam.store import OpenMode, StoreError, open_store
from podbgp import wiring
from podbgp.cluster import load_effective
from podbgp.config import Config, ConfigError, DatastoreConfig
from podbgp.config.merge import read_node_file

DEFAULT_URL = f"sqlite:{DatastoreConfig().path}"


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """The store a command works on, and this node's cluster ID file (with --config)."""

    url: str
    cluster_id_file: str | None = None
    config: Config | None = None


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="the daemon's config ([datastore], [ipam])")
    p.add_argument(
        "--datastore",
        metavar="URL",
        help="sqlite:PATH or etcd:http(s)://H:P[,...][?ca=CA&cert=CERT&key=KEY]",
    )


def store_target(args: argparse.Namespace, *, effective: bool = False) -> StoreTarget:
    """--config, then --datastore, else the default.

    Of the node file only ``[datastore]`` and ``[api]`` are read, so a file that takes
    its AS from the cluster works here; with `effective` the whole config is read
    over the cluster's resources (validated like `podbgp check`; StoreError if the
    store that holds them cannot be read).
    """
    node = read_node_file(args.config) if args.config else None
    config = None
    if node is not None and effective:
        config = asyncio.run(load_effective(node)).config
    if args.datastore:
        return StoreTarget(args.datastore, None, config)
    if node is None:
        return StoreTarget(DEFAULT_URL)
    url = wiring.datastore_url_of(node.datastore)
    return StoreTarget(url, wiring.cluster_id_file_of(node.datastore, node.api), config)


def config_error_text(path: str, e: ConfigError) -> str:
    """The same text `podbgp check` prints for an invalid file."""
    n = len(e.errors)
    head = f"{path}: {n} error{'s' if n != 1 else ''}"
    return "\n".join([head, *(f"  {m}" for m in e.errors)])


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


async def _init(url: str) -> ClusterIdentity:
    store = open_store(url, OpenMode.CREATE)
    try:
        return await init_cluster(store)
    finally:
        await store.close()


async def _show(url: str) -> ClusterIdentity:
    store = open_store(url, OpenMode.READ_ONLY)
    try:
        return await read_identity(store)
    finally:
        await store.close()


def _emit(args: argparse.Namespace, obj: dict[str, Any], human: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if args.json else human)


def cmd_init(args: argparse.Namespace, target: StoreTarget) -> int:
    ident = asyncio.run(_init(target.url))
    obj = {"datastore": target.url, **ident.to_json()}
    _emit(args, obj, f"initialised {target.url}: cluster ID {ident.cluster_id}, "
                     f"schema {ident.schema}")  # fmt: skip
    return 0


def cmd_show(args: argparse.Namespace, target: StoreTarget) -> int:
    ident = asyncio.run(_show(target.url))
    obj: dict[str, Any] = {"datastore": target.url, **ident.to_json()}
    lines = [
        f"datastore   {target.url}",
        f"cluster ID  {ident.cluster_id}",
        f"schema      {ident.schema}",
        f"created     {_when(ident.created)}",
    ]
    status = 0
    if target.cluster_id_file:
        m = read_membership(target.cluster_id_file)
        joined = None if m is None else m.cluster_id
        obj["node_joined"] = joined
        obj["cluster_id_file"] = target.cluster_id_file
        if m is None:
            lines.append(f"this node   not joined yet ({target.cluster_id_file} absent)")
        elif m.cluster_id == ident.cluster_id:
            lines.append(f"this node   joined this cluster ({target.cluster_id_file})")
        else:
            lines.append(f"this node   joined ANOTHER cluster, {m.cluster_id} "
                         f"({target.cluster_id_file}): the store was replaced")  # fmt: skip
            status = 1
    _emit(args, obj, "\n".join(lines))
    return status


Command = Callable[[argparse.Namespace, StoreTarget], int]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        name = f"podbgp datastore {args.datastore_command}"
        try:
            target = store_target(args)
        except ConfigError as e:
            print(f"{name}: {config_error_text(args.config, e)}", file=sys.stderr)
            return 1
        try:
            return command(args, target)
        except AlreadyInitialised as e:
            print(f"{name}: {e}; nothing changed", file=sys.stderr)
            return 1
        except BrokenPipeError:
            raise  # `| head`: podbgp.cli.main ends quietly
        except (StoreError, OSError) as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 1

    return run


def register(subparsers: Any) -> None:
    """Add `podbgp datastore init|show`."""
    top = subparsers.add_parser("datastore", help="create the datastore, show its identity")
    sub = top.add_subparsers(dest="datastore_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("init", help="create the datastore and give it a cluster ID")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_init))
    p = sub.add_parser("show", help="where the datastore is, its cluster ID and schema")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_show))
