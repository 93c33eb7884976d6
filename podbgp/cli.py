"""The `podbgp` command line (CONFIG.md, "Command line").

Each command group lives in its own module exposing `register(subparsers)`;
the module sets `func` on its parser, which `main` calls with the parsed
arguments and whose return value is the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that add sub-commands, in the order `podbgp --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "podbgp.cmd_run",
    "podbgp.cmd_check",
    "podbgp.cmd_show",
    "podbgp.cmd_drain",
    "podbgp.cmd_ipam",
    "podbgp.cmd_datastore",
    "podbgp.cmd_lab",
    "podbgp.cmd_advise",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podbgp", description="BGP route distribution and IPAM for pod networks"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args) or 0)
