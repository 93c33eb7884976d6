"""Reconciler.snapshot (`podbgp show fib`, the FIB metrics) says what a route-by-route
classification says, without a Python pass over every route."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from fib.fake import FakeKernel
from fib.model import (
    RTN_UNICAST,
    KernelRoute,
    Nexthop,
    NodeInfo,
    Prefix,
    Reach,
    RouteKey,
    key_dest,
    pack_addr,
)
from fib.reconciler import FibConfig, Reconciler, key_of
from fib.wire import same_route

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0")
B, C = pack_addr("10.0.0.2"), pack_addr("10.0.0.3")


def block(i: int) -> Prefix:
    return Prefix(bytes([10, 244, i // 4, (i % 4) * 64]), 26)


def reference(rec: Reconciler, limit: int | None) -> tuple[int, list[dict[str, Any]]]:
    """The classification key by key, every key sorted by address, length and metric
    (a route of the default metric first): what snapshot must equal."""
    keys = sorted(set(rec.desired) | set(rec.installed), key=_readable_order)
    rows, in_sync = [], 0
    for key in keys:
        want, have = rec.desired.get(key), rec.installed.get(key)
        state = rec._state(key, want, have)
        in_sync += state == "ok"
        if limit is None or len(rows) < limit:
            rows.append({
                "prefix": str(Prefix.of_dest(key_dest(key))),
                "desired": want.describe() if want else None,
                "installed": have.describe() if have else None,
                "state": state,
            })  # fmt: skip
    return in_sync, rows


def _readable_order(key: RouteKey) -> tuple[bytes, int] | tuple[bytes, int, int]:
    p = Prefix.of_dest(key_dest(key))
    return (p.addr, p.length) if isinstance(key, bytes) else (p.addr, p.length, key[1])


def mixed(nexthops: bool, extras: bool = True) -> Reconciler:
    """Routes in every state: ok, foreign (conflict), refused (failed), changed behind our
    back (differs, events not read yet), someone's owned leftover (stale), missing."""
    kernel = FakeKernel()
    foreign = KernelRoute(block(1).addr, 26, RTN_UNICAST, (Nexthop(C, "eth0"),), protocol=4)
    kernel.table(254)[foreign.key] = foreign
    leftover = KernelRoute(block(60).addr, 26, RTN_UNICAST, (Nexthop(C, "eth0"),), protocol=80)
    kernel.table(254)[leftover.key] = leftover
    # more leftovers, to hold the order of rows: another metric on a key we want (its
    # key has two parts), a shorter prefix at the same address, an IPv6 one
    hop = (Nexthop(C, "eth0"),)
    for extra in (KernelRoute(block(0).addr, 26, RTN_UNICAST, hop, protocol=80, priority=9),
                  KernelRoute(block(4).addr, 24, RTN_UNICAST, hop, protocol=80),
                  KernelRoute(pack_addr("fd00::"), 64, RTN_UNICAST, (), protocol=80,
                              priority=1024)) if extras else ():  # fmt: skip
        kernel.table(254)[extra.key] = extra
    kernel.refuse[key_of(block(2))] = errno.EINVAL
    rec = Reconciler(kernel, FibConfig(nexthops=nexthops))
    rec.set_node(NODE)
    rec.apply()
    reach = Reach((B,))
    rec.update_remote({block(i).dest: reach for i in range(40)})
    rec.apply()
    installed = rec.installed[key_of(block(3))]
    kernel.external_replace(installed._replace(nexthops=(Nexthop(C, "eth0"),), nh_id=0))
    rec.installed[key_of(block(3))] = kernel.table(254)[key_of(block(3))]  # as a dump would
    rec.update_remote({block(i).dest: reach for i in range(40, 45)})  # desired, not applied yet
    return rec


@pytest.mark.parametrize("extras", [True, False])
@pytest.mark.parametrize("nexthops", [True, False])
@pytest.mark.parametrize("limit", [None, 1000, 7, 0])
def test_snapshot_equals_the_route_by_route_classification(
    nexthops: bool, limit: int | None, extras: bool
) -> None:
    rec = mixed(nexthops, extras)
    snap = rec.snapshot(limit=limit)
    in_sync, rows = reference(rec, limit)
    assert snap["in_sync"] == in_sync
    assert snap["routes"] == rows
    states = {r["state"] for r in reference(rec, None)[1]}
    assert {"ok", "conflict", "missing", "differs", "stale"} <= states
    assert any(s.startswith("failed") for s in states)
    assert snap["conflicts"] == 1
    assert not same_route(rec.desired[key_of(block(3))], rec.installed[key_of(block(3))])
