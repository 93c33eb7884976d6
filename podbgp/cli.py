"""The `podbgp` command line (CONFIG.md, "Command line").

Each command group lives in its own module exposing `register(subparsers)`;
the module sets `func` on its parser, which `main` calls with the parsed
arguments and whose return value is the exit status.

A reader that closes the pipe early (`podbgp show peers | head -1`) ends any
command quietly, with the status a shell reports for a command killed by SIGPIPE
(141), as `yes | head -1` does: no traceback, no "Broken pipe" message.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from podbgp.api import APIError

# Modules that add sub-commands, in the order `podbgp --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "podbgp.cmd_run",
    "podbgp.cmd_check",
    "podbgp.cmd_show",
    "podbgp.cmd_explain",
    "podbgp.cmd_audit",
    "podbgp.cmd_service",
    "podbgp.cmd_watch",
    "podbgp.cmd_drain",
    "podbgp.cmd_mrt",
    "podbgp.cmd_ipam",
    "podbgp.cmd_node",
    "podbgp.cmd_datastore",
    "podbgp.cmd_resources",
    "podbgp.cmd_lab",
    "podbgp.cmd_advise",
)
# The command words each module adds. `podbgp WORD ...` imports only WORD's module, so the
# daemon (`podbgp run`) does not carry every client command's code for its whole life
# (~2.6 MB of RSS: explain, lab, advise); anything else (`--help`, a typo) imports them all.
COMMANDS: dict[str, str] = {
    "run": "podbgp.cmd_run",
    "check": "podbgp.cmd_check",
    "show": "podbgp.cmd_show",
    "peer": "podbgp.cmd_show",
    "explain": "podbgp.cmd_explain",
    "audit": "podbgp.cmd_audit",
    "service": "podbgp.cmd_service",
    "announce": "podbgp.cmd_service",
    "withdraw": "podbgp.cmd_service",
    "watch": "podbgp.cmd_watch",
    "drain": "podbgp.cmd_drain",
    "undrain": "podbgp.cmd_drain",
    "mrt": "podbgp.cmd_mrt",
    "ipam": "podbgp.cmd_ipam",
    "node": "podbgp.cmd_node",
    "datastore": "podbgp.cmd_datastore",
    "apply": "podbgp.cmd_resources",
    "get": "podbgp.cmd_resources",
    "delete": "podbgp.cmd_resources",
    "lab": "podbgp.cmd_lab",
    "advise": "podbgp.cmd_advise",
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the usage itself is one `--help` away).
    Sub-command parsers are made of this class too (`add_subparsers` uses the parent's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a known `command` word, only the module that adds it is imported."""
    parser = _Parser(prog="podbgp", description="BGP route distribution and IPAM for pod networks")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE


def package_version() -> str:
    """The installed package's version (its metadata, from pyproject.toml)."""
    # importlib.metadata only when asked: it pulls in email, zipfile, csv... (~2.7 MB RSS
    # a daemon would otherwise carry for its whole life).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podbgp")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``, reading the version only when the option is given."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kw: Any) -> None:
        print(f"podbgp {package_version()}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(words[0] if words else None)
        args = parser.parse_args(words)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        status = int(func(args) or 0)
        sys.stdout.flush()
    except APIError as exc:  # a client command's last resort (each handles its own first)
        print(f"podbgp: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Later writes (and the interpreter's flush at exit) go nowhere instead of failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED
    return status
