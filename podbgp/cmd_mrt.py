"""`podbgp mrt dump FILE`: the running daemon writes its RIB as an MRT table dump.

The daemon writes the file (RFC 6396 TABLE_DUMP_V2, ``podbgp.mrt``), atomically,
so FILE is a path as the daemon sees it; a relative one is made absolute here.
`--peer ADDRESS` dumps that peer's routes only (its post-policy Adj-RIB-In).
"""

from __future__ import annotations

import argparse
import os

from podbgp.cmd_show import _address, _call, _common


def _dump(args: argparse.Namespace) -> int:
    params: dict[str, object] = {"file": os.path.abspath(args.file)}
    if args.peer:
        params["peer"] = args.peer
    return _call(args, "mrt.dump", params, "mrt")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mrt = sub.add_parser("mrt", help="MRT dumps of the RIB (RFC 6396)")
    what = mrt.add_subparsers(dest="mrt_command", metavar="COMMAND", required=True)
    dump = what.add_parser("dump", help="write the RIB to FILE as a TABLE_DUMP_V2")
    dump.add_argument("file", metavar="FILE", help="where the daemon writes the dump")
    dump.add_argument("--peer", type=_address, help="only this peer's routes")
    _common(dump)
    dump.set_defaults(func=_dump)
