"""`podbgp audit` on a node holding a large table: the snapshot keeps only the prefixes
the checks read (those overlapping a pool, and every kernel route that is not as
planned), and the findings are those of the whole table.

The reference is the snapshot as it was taken before: every usable RIB prefix, every
kernel route with its state (`Reconciler.snapshot(limit=None)`).
"""

from __future__ import annotations

import errno
import ipaddress
import random
from dataclasses import replace

from ribkit import announce, attrs, make_rib, peer

from bgp.wire import Family
from bgp.wire.prefix import key_to_network
from fib.fake import FakeKernel
from fib.model import RTN_UNICAST, KernelRoute, Nexthop, NodeInfo, Prefix, Reach, pack_addr
from fib.reconciler import FibConfig, Reconciler, key_of
from podbgp.audit import (
    BlockRecord,
    Snapshot,
    _kernel_states,
    _PoolOverlap,
    _rib_prefixes,
    findings,
    report,
)
from rib import Rib

POOLS = (ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("fd00:244::/56"))
B1, B2, B9 = (ipaddress.ip_network(f"10.244.{i}.0/26") for i in (1, 2, 9))
V6B = ipaddress.ip_network("fd00:244::/122")
NODE = NodeInfo.parse("n1", "10.0.0.1/24", "eth0")


def internet(n: int) -> list[str]:
    """`n` IPv4 prefixes outside the pool, some sharing its first octet (10.x)."""
    rng = random.Random(7)
    out: set[str] = set()
    while len(out) < n:
        first = rng.choice([10, 11, 23, 45, 100, 192, 203])
        net = ipaddress.ip_network((first << 24 | rng.getrandbits(16) << 8, 24))
        if not net.overlaps(POOLS[0]):
            out.add(str(net))
    return sorted(out)


INSIDE = [str(B1), str(B2), str(B9)]
COVERING = ["0.0.0.0/0", "10.0.0.0/8"]
V6 = [str(V6B), "2001:db8::/32", "::/0"]


def a_rib() -> Rib:
    rib = make_rib()
    p = peer(rib, "192.0.2.1", 65001)
    announce(rib, p, internet(3000) + INSIDE + COVERING, attrs())
    p6 = peer(rib, "2001:db8::1", 65002)
    announce(rib, p6, V6, attrs((65002,), nh="2001:db8::1"))
    return rib


def a_reconciler() -> Reconciler:
    kernel = FakeKernel()
    outside = ipaddress.ip_network("45.1.2.0/24")
    foreign = KernelRoute(outside.network_address.packed, 24, RTN_UNICAST,
                          (Nexthop(pack_addr("10.0.0.3"), "eth0"),), protocol=4)  # fmt: skip
    kernel.table(254)[foreign.key] = foreign
    refused = Prefix.parse("23.5.6.0/24")
    kernel.refuse[key_of(refused)] = errno.EINVAL
    rec = Reconciler(kernel, FibConfig())
    rec.set_node(NODE)
    rec.apply()
    reach = Reach((pack_addr("10.0.0.2"),))
    prefixes = [Prefix.parse(p) for p in internet(3000) + INSIDE + COVERING]
    rec.update_remote({p.dest: reach for p in [*prefixes, Prefix.parse(str(outside)), refused]})
    rec.apply()
    return rec


def test_rib_snapshot_keeps_what_overlaps_a_pool_and_counts_the_rest() -> None:
    rib = a_rib()
    usable, local, total = _rib_prefixes(rib, _PoolOverlap(POOLS))
    every = {key_to_network(f, k) for f in Family for k in rib.loc[f] if rib.best(f, k)}
    wanted = {n for n in every if any(n.version == p.version and n.overlaps(p) for p in POOLS)}
    assert usable == wanted
    assert {str(n) for n in usable} == {*INSIDE, *COVERING, str(V6B), "::/0"}
    assert total == 3000 + len(INSIDE) + len(COVERING) + len(V6) and not local


def test_kernel_snapshot_keeps_every_problem_and_the_routes_overlapping_pools() -> None:
    rec = a_reconciler()
    kernel, total = _kernel_states(rec, _PoolOverlap(POOLS))
    every = {ipaddress.ip_network(r["prefix"]): r["state"] for r in rec.snapshot(None)["routes"]}
    assert total == len(every) == 3000 + 7
    assert {n: s for n, s in every.items() if s != "ok"} == {
        n: s for n, s in kernel.items() if s != "ok"
    }
    assert {str(n) for n, s in kernel.items() if s == "ok"} == {*INSIDE, *COVERING}
    assert kernel[ipaddress.ip_network("45.1.2.0/24")] == "conflict"
    assert kernel[ipaddress.ip_network("23.5.6.0/24")].startswith("failed")


def test_findings_are_those_of_the_whole_table() -> None:
    rib, rec = a_rib(), a_reconciler()
    pools = _PoolOverlap(POOLS)
    usable, local, rib_total = _rib_prefixes(rib, pools)
    kernel, kernel_total = _kernel_states(rec, pools)
    base = Snapshot(
        node="n1", pools=POOLS,
        blocks=(BlockRecord(B1, "n1"), BlockRecord(B2, "n2"), BlockRecord(V6B, "n2")),
        affinities={("n1", B1): "confirmed", ("n2", B2): "pending", ("n2", V6B): "confirmed"},
        live_nodes=frozenset({"n1", "n2"}), originated=local,
    )  # fmt: skip
    taken = replace(base, rib=usable, kernel=kernel, rib_total=rib_total, kernel_total=kernel_total)
    whole = replace(
        base,
        rib=frozenset(key_to_network(f, k) for f in Family for k in rib.loc[f] if rib.best(f, k)),
        kernel={
            ipaddress.ip_network(r["prefix"]): r["state"] for r in rec.snapshot(None)["routes"]
        },
    )
    assert findings(taken) == findings(whole)
    subjects = {(f.check.value, f.subject) for f in findings(taken)}
    assert ("route-to-unowned-block", str(B9)) in subjects  # inside the pool, no affinity
    assert ("pending-affinity-advertised", str(B2)) in subjects
    assert ("kernel-route", "45.1.2.0/24") in subjects  # a problem outside the pools is kept
    assert report(taken)["checked"]["rib_prefixes"] == report(whole)["checked"]["rib_prefixes"]
    assert report(taken)["checked"]["kernel_routes"] == report(whole)["checked"]["kernel_routes"]
