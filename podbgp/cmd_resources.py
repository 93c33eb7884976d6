"""`podbgp apply -f FILE`, `podbgp get KIND [NAME]`, `podbgp delete KIND NAME`: cluster resources.

They talk to the datastore directly (no daemon needed), found like ``podbgp
ipam`` finds it: ``--datastore URL``, else the store named by ``--config``
(only its ``[datastore]`` and ``[api]`` are read, so a node file that takes
its AS from the cluster works), else ``sqlite:/var/lib/podbgp/podbgp.db``. The
store must exist and carry its cluster ID, and with ``--config`` the one this
node joined (`ipam.identity`); nothing here creates one.

``apply`` reads a TOML file of resources (`podbgp.config.resources`), checks
every one and the set they leave in the store, and writes them in one
compare-and-swap transaction (`podbgp.cluster`): every error is printed with
its key path and nothing is written if there is any. ``get`` prints a
resource as the table ``apply`` takes (with its revision), or a list; ``--json``
prints JSON. ``delete`` removes one, optionally only at ``--revision``.

Exit status: 0 done, 1 refused (invalid resources, no such resource, store
missing or unreachable, lost races), 2 usage (unknown kind, unreadable file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ipam.store import OpenMode, StoreError
from podbgp.cluster import (
    ResourceError,
    StoreRef,
    apply_resources,
    delete_resource,
    open_joined,
    read_resources,
)
from podbgp.cmd_check import format_toml, toml_value
from podbgp.cmd_datastore import DEFAULT_URL, add_target_args, config_error_text
from podbgp.config import ConfigError
from podbgp.config.merge import read_node_file
from podbgp.config.resources import (
    BGP_NAME,
    Resource,
    ResourceKind,
    file_labels,
    read_resource_file,
)

EXIT_USAGE = 2
REDACTED = "<redacted>"
_ALIASES = {**{k.value: k for k in ResourceKind}, **{f"{k.value}s": k for k in ResourceKind}}


class UsageError(Exception):
    """A mistake in the command line or its file (exit status 2)."""


def target(args: argparse.Namespace) -> StoreRef:
    if args.datastore:
        return StoreRef(args.datastore)
    if args.config:
        return StoreRef.of_node(read_node_file(args.config))
    return StoreRef(DEFAULT_URL)


def kind_of(text: str) -> ResourceKind:
    try:
        return _ALIASES[text]
    except KeyError:
        raise UsageError(f"unknown kind {text!r}; kinds: {', '.join(ResourceKind)}") from None


def _redact(spec: dict[str, Any], show: bool) -> dict[str, Any]:
    if show:
        return spec
    return {k: REDACTED if "password" in k and v else v for k, v in spec.items()}


def resource_json(r: Resource, show_secrets: bool) -> dict[str, Any]:
    spec = _redact(dict(r.spec), show_secrets)
    return {"kind": str(r.kind), "name": r.name, "revision": r.revision, "spec": spec}


def resource_toml(r: Resource, show_secrets: bool) -> str:
    """The resource as the table `apply` takes, its revision in a comment."""
    table = _redact(r.to_table(), show_secrets)
    if r.kind is ResourceKind.BGP:
        body = format_toml({"bgp": table})
    else:
        body = format_toml({str(r.kind): [table]})
    return f"# {r.ref} revision {r.revision}\n{body}"


# -- commands ------------------------------------------------------------------------
async def cmd_apply(args: argparse.Namespace, ref: StoreRef) -> int:
    resources, labels = _read_file(args.file)
    store = await open_joined(ref, OpenMode.READ_WRITE)
    try:
        done = await apply_resources(store, resources, labels)
    finally:
        await store.close()
    rows = [(r, "created" if r.ref in done.created else "configured") for r in done.written]
    rows += [(r, "unchanged") for r in done.unchanged]
    if args.json:
        out = [{"kind": str(r.kind), "name": r.name, "result": what,
                "revision": r.revision or None} for r, what in rows]  # fmt: skip
        print(json.dumps({"revision": done.revision, "resources": out}, indent=2))
    else:
        for r, what in rows:
            print(f"{r.ref} {what}" + (f" (revision {r.revision})" if r.revision else ""))
    return 0


def _read_file(path: str) -> tuple[list[Resource], dict[Resource, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8") if path != "-" else sys.stdin.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"]) from e
    resources = read_resource_file(raw)
    if not resources:
        raise ConfigError(["no resources: expected [bgp], [[pool]], [[peer]], [[policy]] or "
                           "[[reservation]] tables"])  # fmt: skip
    return resources, file_labels(resources)


async def cmd_get(args: argparse.Namespace, ref: StoreRef) -> int:
    kind = kind_of(args.kind)
    store = await open_joined(ref, OpenMode.READ_ONLY)
    try:
        current = await read_resources(store)
    finally:
        await store.close()
    name = args.name if args.name is not None else (BGP_NAME if kind is ResourceKind.BGP else None)
    if name is not None:
        found = current.find(kind, name)
        if found is None:
            raise ResourceError(f"no {kind} named {name!r}")
        print(json.dumps(resource_json(found, args.show_secrets), indent=2) if args.json
              else resource_toml(found, args.show_secrets), end="\n" if args.json else "")  # fmt: skip
        return 0
    items = current.of_kind(kind)
    if args.json:
        print(json.dumps([resource_json(r, args.show_secrets) for r in items], indent=2))
    elif not items:
        print(f"no {kind} resources")
    else:
        print(_list_text(items, args.show_secrets))
    return 0


def _list_text(items: list[Resource], show_secrets: bool) -> str:
    rows = [("NAME", "REVISION", "SPEC")]
    for r in items:
        spec = _redact(dict(r.spec), show_secrets)
        text = ", ".join(f"{k} = {toml_value(v)}" for k, v in spec.items())
        rows.append((r.name, str(r.revision), text))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(
        f"{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in rows
    )


async def cmd_delete(args: argparse.Namespace, ref: StoreRef) -> int:
    kind = kind_of(args.kind)
    store = await open_joined(ref, OpenMode.READ_WRITE)
    try:
        revision = await delete_resource(store, kind, args.name, args.revision)
    finally:
        await store.close()
    if args.json:
        print(json.dumps({"deleted": f"{kind}/{args.name}", "revision": revision}))
    else:
        print(f"{kind}/{args.name} deleted")
    return 0


# -- wiring --------------------------------------------------------------------------
Command = Callable[[argparse.Namespace, StoreRef], Coroutine[Any, Any, int]]


def _run(name: str, command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        where = (
            getattr(args, "file", None)
            or f"{getattr(args, 'kind', '')} {getattr(args, 'name', '')}"
        )
        try:
            if getattr(args, "kind", None) is not None:
                kind_of(args.kind)
            ref = target(args)
            return asyncio.run(command(args, ref))
        except UsageError as e:
            print(f"podbgp {name}: {e}", file=sys.stderr)
            return EXIT_USAGE
        except ConfigError as e:
            print(f"podbgp {name}: {config_error_text(where, e)}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            raise  # `| head`: podbgp.cli.main ends quietly
        except (StoreError, OSError, ValueError) as e:
            print(f"podbgp {name}: {e}", file=sys.stderr)
            return 1

    return run


def register(subparsers: Any) -> None:
    """Add `podbgp apply`, `podbgp get` and `podbgp delete`."""
    kinds = ", ".join(ResourceKind)
    p = subparsers.add_parser("apply", help="create or update cluster resources from a file")
    p.add_argument(
        "-f", "--file", required=True, metavar="FILE", help="TOML resources ('-': stdin)"
    )
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run("apply", cmd_apply))

    p = subparsers.add_parser("get", help="show cluster resources")
    p.add_argument("kind", metavar="KIND", help=kinds)
    p.add_argument("name", metavar="NAME", nargs="?", help="one resource (default: list them)")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--show-secrets", action="store_true", help="print passwords")
    p.set_defaults(func=_run("get", cmd_get))

    p = subparsers.add_parser("delete", help="delete a cluster resource")
    p.add_argument("kind", metavar="KIND", help=kinds)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--revision", type=int, metavar="N", help="only if it is still at revision N")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run("delete", cmd_delete))
