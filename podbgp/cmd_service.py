"""`podbgp service set|delete|list` (records in the datastore) and `podbgp announce|withdraw`
(run-time announcements of the running daemon).

A service record (`podbgp.services`) names its addresses, its endpoints (pod addresses)
and its traffic policy; every daemon follows the records and announces accordingly.
`announce` adds a prefix to what the running daemon announces, optionally behind a health
check (`podbgp.anycast`); `withdraw` takes it back; `podbgp show announcements` lists both.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from typing import Any

from ipam.identity import join
from ipam.store import OpenMode, StoreError, open_store
from podbgp.cmd_datastore import add_target_args, config_error_text, store_target
from podbgp.cmd_show import _call, _common, _seconds
from podbgp.config import ConfigError
from podbgp.services import (
    ServiceRecord,
    TrafficPolicy,
    delete_record,
    list_records,
    parse_community,
    put_record,
)


def _record(args: argparse.Namespace) -> ServiceRecord:
    return ServiceRecord(
        name=args.name,
        addresses=tuple(args.address),
        traffic_policy=TrafficPolicy(args.traffic_policy),
        endpoints=tuple(args.endpoint),
        communities=tuple(args.community),
    )


async def _with_store(args: argparse.Namespace, mode: OpenMode) -> Any:
    target = store_target(args)
    store = open_store(target.url, mode)
    try:
        joined = await join(store, target.cluster_id_file, record=False)
        if args.service_command == "set":
            await put_record(joined, _record(args))
            return _record(args).to_json()
        if args.service_command == "delete":
            if not await delete_record(joined, args.name):
                raise LookupError(f"no service named {args.name!r}")
            return {"name": args.name, "deleted": True}
        records, _ = await list_records(joined)
        return [r.to_json() for r in sorted(records, key=lambda r: r.name)]
    finally:
        await store.close()


def _service(args: argparse.Namespace) -> int:
    name = f"podbgp service {args.service_command}"
    mode = OpenMode.READ_ONLY if args.service_command == "list" else OpenMode.READ_WRITE
    try:
        result = asyncio.run(_with_store(args, mode))
    except ConfigError as e:
        print(f"{name}: {config_error_text(args.config, e)}", file=sys.stderr)
        return 1
    except (StoreError, LookupError, OSError) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    if args.json or args.service_command != "list":
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for r in result:
            eps = ", ".join(r["endpoints"]) or "-"
            print(f"{r['name']:<20} {', '.join(r['addresses']):<20} {r['traffic_policy']:<8} {eps}")
    return 0


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _community(text: str) -> int:
    try:
        return parse_community(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a prefix (host bits must be zero)"
        ) from None


def _announce(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"prefix": args.prefix, "communities": args.community}
    check = (
        {"exec": args.check_exec}
        if args.check_exec
        else {"tcp": args.check_tcp}
        if args.check_tcp
        else None
    )
    if check is not None:
        params["check"] = {**check, "interval": args.interval, "timeout": args.check_timeout}
    return _call(args, "announce", params, "announce")


def _withdraw(args: argparse.Namespace) -> int:
    return _call(args, "withdraw", {"prefix": args.prefix}, "withdraw")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    svc = sub.add_parser("service", help="service records in the datastore (announced by BGP)")
    what = svc.add_subparsers(dest="service_command", metavar="COMMAND", required=True)
    p = what.add_parser("set", help="create or replace a service record")
    p.add_argument("name")
    p.add_argument("--address", type=_address, action="append", required=True,
                   help="a service address (repeat)")  # fmt: skip
    p.add_argument("--traffic-policy", choices=[str(t) for t in TrafficPolicy], default="cluster",
                   help="local: only nodes with an endpoint announce it (default cluster)")  # fmt: skip
    p.add_argument("--endpoint", type=_address, action="append", default=[],
                   help="a pod address serving it (repeat)")  # fmt: skip
    p.add_argument("--community", type=_community, action="append", default=[], help="A:B")
    d = what.add_parser("delete", help="delete a service record")
    d.add_argument("name")
    ls = what.add_parser("list", help="the service records")
    for q in (p, d, ls):
        add_target_args(q)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=_service)

    a = sub.add_parser("announce", help="announce a prefix from the running daemon")
    a.add_argument("prefix", type=_network)
    a.add_argument("--community", action="append", default=[], type=_community_text, help="A:B")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--check-exec", metavar="COMMAND", help="announced while COMMAND exits 0")
    g.add_argument("--check-tcp", metavar="ADDRESS:PORT", help="announced while it accepts")
    a.add_argument("--interval", type=_seconds, default=5.0, help="seconds between checks (5)")
    a.add_argument("--check-timeout", type=_seconds, default=2.0, help="seconds per check (2)")
    _common(a)
    a.set_defaults(func=_announce)
    w = sub.add_parser("withdraw", help="withdraw a prefix `podbgp announce` announced")
    w.add_argument("prefix", type=_network)
    _common(w)
    w.set_defaults(func=_withdraw)


def _community_text(text: str) -> str:
    _community(text)
    return text
