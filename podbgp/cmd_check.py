"""`podbgp check --config FILE`: validate a config and print the effective one.

Exit status 0 with the effective config (every default filled in, inherited
per-peer values resolved) on stdout, as TOML by default or as JSON with
`--json`; exit status 1 with every error, one per line, on stderr. The printed
TOML loads back to the same config, so it doubles as a fully spelled-out
template. Peer passwords print as "<redacted>" unless `--show-secrets`.

A node file with a ``[datastore]`` table is checked over the cluster's
resources in that store (`podbgp.cluster.load_effective`), read-only; the
TOML then opens with comments saying where each value that is not a default
came from and which keys the file overrides. A store that does not exist (or
does not answer) is said in a comment and the file is checked alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ipam.store import StoreError
from podbgp import underlay
from podbgp.cluster import load_effective
from podbgp.config import Config, ConfigError
from podbgp.config.merge import NODE_FILE, Effective, NodeFile, effective_config, read_node_file

# Keys that hold arrays of tables ([[bgp.peer]] ...) rather than plain arrays.
ARRAYS_OF_TABLES = frozenset(
    {"peer", "originate", "listen_range", "policy", "rule", "pool", "reservation"}
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="validate a config file and print the effective config",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the TOML config file")
    p.add_argument("--json", action="store_true", help="print the effective config as JSON")
    p.add_argument(
        "--show-secrets", action="store_true", help="print peer passwords instead of <redacted>"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    notes: list[str] = []
    try:
        eff = _effective(read_node_file(args.config), notes)
    except ConfigError as e:
        count = len(e.errors)
        print(f"{args.config}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        for message in e.errors:
            print(f"  {message}", file=sys.stderr)
        return 1
    data = eff.config.to_dict(reveal_secrets=args.show_secrets)
    notes += underlay_notes(eff.config)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"# effective configuration of {args.config}")
        for line in notes + sources_text(eff):
            print(f"# {line}")
        print(format_toml(data), end="")
    return 0


def _effective(node: NodeFile, notes: list[str]) -> Effective:
    """The node file over its store's resources; the file alone if the store cannot be read."""
    if not node.names_datastore:
        return effective_config(node, ())
    try:
        return asyncio.run(load_effective(node))
    except (StoreError, OSError) as e:
        notes.append(f"cluster resources not read ({e}): the node file alone")
        return effective_config(node, ())


def sources_text(eff: Effective) -> list[str]:
    """Where the values came from and what the node file overrides, as comment lines."""
    cluster = {k: v for k, v in eff.origins.items() if v != NODE_FILE}
    if not eff.resources and not cluster:
        return []
    lines = [f"cluster resources: {len(eff.resources)}", "values from the cluster:"]
    lines += [f"  {k}: {v}" for k, v in sorted(cluster.items())] or ["  none"]
    lines.append("the node file overrides:")
    lines += [f"  {o.path}: {_short(o.node_value)} (cluster {o.resource}: {_short(o.cluster_value)})"
              for o in eff.overrides] or ["  nothing"]  # fmt: skip
    if eff.skipped:
        lines.append(
            "cluster peers at this node's own address, left out: " + ", ".join(eff.skipped)
        )
    lines.append("every other value is the node file's or a default")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, dict):
        shown = [(k, "<redacted>" if "password" in k else v) for k, v in list(value.items())[:4]]
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in shown) + " }"
    return toml_value(value)


def underlay_notes(cfg: Config) -> list[str]:
    """What `node.address = "auto"` finds on this machine and the MTUs that follow (on
    stdout, as comments), and warnings (on stderr): a configured MTU above what the
    underlay carries, or detection finding nothing here. The file stays valid either
    way: `podbgp check` may run on another machine than the node."""
    fib = cfg.fib
    if not (underlay.is_detected(cfg) or fib.pod_mtu or fib.ipip_mtu or fib.vxlan_mtu):
        return []
    try:
        resolved, found = underlay.resolve(cfg, underlay.NetlinkUnderlay())
    except (underlay.NoAddress, OSError) as e:
        print(f"warning: {e}", file=sys.stderr)
        return []
    notes = []
    for key, detected in (("address", found.v4), ("address6", found.v6)):
        if detected is not None and getattr(cfg.node, f"{key}_detection") is not None:
            notes.append(f"node.{key} = \"auto\" finds {detected.address} on "
                         f"{detected.interface} (MTU {detected.mtu}) here")  # fmt: skip
    mtus, warnings = underlay.underlay_mtus(resolved, found)
    if found.primary is not None:
        notes.append(f"MTUs here: pods {mtus.pod}, tunl0 {mtus.ipip}, vxlan.podbgp {mtus.vxlan}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return notes


def format_toml(data: dict[str, Any]) -> str:
    """The TOML text of a config dict: [section] tables, [[arrays]] of tables, inline rest."""
    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, list):
            for item in value:
                _table(lines, name, item, array=True)
        else:
            _table(lines, name, value, array=False)
    return "\n".join(lines) + "\n"


def _table(lines: list[str], path: str, table: dict[str, Any], array: bool) -> None:
    if lines:
        lines.append("")
    lines.append(f"[[{path}]]" if array else f"[{path}]")
    nested = {k: v for k, v in table.items() if k in ARRAYS_OF_TABLES and isinstance(v, list)}
    lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items() if k not in nested)
    for key, items in nested.items():
        for item in items:
            _table(lines, f"{path}.{key}", item, array=True)


def toml_value(value: Any) -> str:
    """One TOML value; dicts become inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters (DEL too) escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
