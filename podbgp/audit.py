"""``podbgp audit``: what is wrong between the datastore, BGP and the kernel, as findings.

A node's daemon takes a ``Snapshot`` of what it knows — the datastore's blocks
and affinities and the registry's nodes, its RIB's prefixes, what it
announces, its kernel routes as the reconciler sees them, its sessions — and
``findings`` compares them. Every check is a pure function of the snapshot,
tested as tables (tests/unit/daemon/test_audit_checks.py) and in the lab
(tests/integration/daemon/test_audit.py). The CLI asks one node or several
(``--socket`` repeated) and exits non-zero when any finding is reported, for
monitoring.

The checks, each a ``Check``:

- ``block-not-routed``: a confirmed block of another live node that no route of
  this node's kernel covers (with the FIB off: no path in the RIB), and this
  node's own confirmed block without its blackhole;
- ``route-to-unowned-block``: a route in the RIB to a prefix inside a pool that
  no block with an affinity covers (a block released, a node removed, a stray
  announcement);
- ``pending-affinity-advertised``: a block whose affinity is still pending
  (claimed, not confirmed: Calico's two-phase claim) yet announced here or
  heard from a peer;
- ``overlapping-affinity``: one block affine to two nodes, or a block whose
  record names another node than its affinity;
- ``kernel-route``: an owned route missing, different from the plan, held
  by a route podbgp does not own, failed, or left stale after convergence;
- ``session-down``: a configured or registry-derived peer (not one from a
  listen range, not shut down by the operator) whose session is not Established;
- ``datastore``: the datastore cannot be read (nothing else about IPAM can be said).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bgp.wire.constants import Family
from bgp.wire.prefix import key_to_network
from fib.model import DEST4_MAX, RouteKey, dest_addr, key_dest
from fib.reconciler import Reconciler
from ipam import Announcement, Ipam
from ipam.store.base import StoreError
from rib.core import Rib

__all__ = ["Check", "Finding", "Parts", "Snapshot", "findings", "report", "take"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Check(StrEnum):
    BLOCK_NOT_ROUTED = "block-not-routed"
    ROUTE_TO_UNOWNED = "route-to-unowned-block"
    PENDING_ADVERTISED = "pending-affinity-advertised"
    OVERLAPPING_AFFINITY = "overlapping-affinity"
    KERNEL_ROUTE = "kernel-route"
    SESSION_DOWN = "session-down"
    DATASTORE = "datastore"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong: which check, about what (a prefix, a peer), and a sentence."""

    check: Check
    subject: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": str(self.check), "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """A block as the datastore has it: its CIDR and the node its record names."""

    cidr: IPNetwork
    affinity: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one node knows, taken at one moment (``podbgp.daemon`` fills it)."""

    node: str
    pools: tuple[IPNetwork, ...] = ()
    blocks: tuple[BlockRecord, ...] = ()
    affinities: Mapping[tuple[str, IPNetwork], str] = field(default_factory=dict)
    live_nodes: frozenset[str] = frozenset()
    datastore_fault: str | None = None
    # The RIB: every prefix with a usable best path, and the ones originated here.
    rib: frozenset[IPNetwork] | None = None  # None: BGP off on this node
    originated: frozenset[IPNetwork] = frozenset()
    # The kernel as the reconciler sees it: prefix -> state (see fib.reconciler), and
    # whether it has converged (stale routes are expected before).
    kernel: Mapping[IPNetwork, str] | None = None  # None: FIB off on this node
    kernel_converged: bool = True
    # How many prefixes the RIB and routes the kernel table hold in all: `rib` and
    # `kernel` keep only those the checks read (see `take`).
    rib_total: int | None = None
    kernel_total: int | None = None
    # Peers: address -> (state, admin, dynamic, mesh node or None).
    peers: Mapping[str, tuple[str, str, bool, str | None]] = field(default_factory=dict)


def _covered(net: IPNetwork, by: Iterable[IPNetwork]) -> bool:
    return any(net.version == b.version and net.subnet_of(b) for b in by)  # type: ignore[arg-type]


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


def _confirmed(s: Snapshot) -> dict[IPNetwork, str]:
    return {cidr: node for (node, cidr), state in s.affinities.items() if state == "confirmed"}


def _blocks_not_routed(s: Snapshot) -> list[Finding]:
    out = []
    routed: Sequence[IPNetwork]
    if s.kernel is not None:
        routed = [p for p, state in s.kernel.items() if state == "ok"]
        where = "kernel"
    elif s.rib is not None:
        routed = list(s.rib)
        where = "RIB"
    else:
        return []
    for cidr, owner in sorted(_confirmed(s).items(), key=lambda t: str(t[0])):
        if owner != s.node and owner not in s.live_nodes:
            continue  # a node that is gone: its blocks go with it (node lifecycle)
        if owner == s.node and s.kernel is None:
            continue  # own blocks are originated, not routed, when there is no FIB
        if not _covered(cidr, routed):
            what = "its blackhole" if owner == s.node else f"a route to {owner}'s block"
            out.append(Finding(Check.BLOCK_NOT_ROUTED, str(cidr), f"the {where} has no {what}"))
    return out


def _routes_to_unowned(s: Snapshot) -> list[Finding]:
    if s.rib is None:
        return []
    owned = [cidr for (_, cidr) in s.affinities]
    out = []
    for p in sorted(s.rib, key=str):
        if not _covered(p, s.pools):
            continue  # not a pod route: a ToR default, a service range, …
        if any(_overlaps(p, b) for b in owned):
            continue
        if p.prefixlen == p.max_prefixlen and any(p.network_address in b.cidr for b in s.blocks):
            continue  # a borrowed address: its block exists, owned by another node
        out.append(
            Finding(
                Check.ROUTE_TO_UNOWNED,
                str(p),
                "a route inside a pool, to no block with an affinity",
            )
        )
    return out


def _pending_advertised(s: Snapshot) -> list[Finding]:
    heard = s.rib or frozenset()
    out = []
    for (node, cidr), state in sorted(s.affinities.items(), key=lambda t: (t[0][0], str(t[0][1]))):
        if state == "confirmed":
            continue
        if cidr in s.originated:
            out.append(
                Finding(
                    Check.PENDING_ADVERTISED,
                    str(cidr),
                    f"announced by this node while {node}'s affinity is {state}",
                )
            )
        elif cidr in heard:
            out.append(
                Finding(
                    Check.PENDING_ADVERTISED,
                    str(cidr),
                    f"heard from a peer while {node}'s affinity is {state}",
                )
            )
    return out


def _overlapping(s: Snapshot) -> list[Finding]:
    out = []
    by_block: dict[IPNetwork, list[str]] = {}
    for node, cidr in s.affinities:
        by_block.setdefault(cidr, []).append(node)
    for cidr, nodes in sorted(by_block.items(), key=lambda t: str(t[0])):
        if len(nodes) > 1:
            out.append(
                Finding(
                    Check.OVERLAPPING_AFFINITY, str(cidr), "affine to " + ", ".join(sorted(nodes))
                )
            )
    records = {b.cidr: b.affinity for b in s.blocks}
    for cidr, nodes in sorted(by_block.items(), key=lambda t: str(t[0])):
        rec = records.get(cidr)
        if len(nodes) == 1 and cidr in records and rec != nodes[0]:
            out.append(
                Finding(
                    Check.OVERLAPPING_AFFINITY,
                    str(cidr),
                    f"affinity says {nodes[0]}, the block's record says {rec}",
                )
            )
    return out


def _kernel(s: Snapshot) -> list[Finding]:
    if s.kernel is None:
        return []
    out = []
    for p, state in sorted(s.kernel.items(), key=lambda t: str(t[0])):
        if state in ("ok", "extra") or (state == "stale" and not s.kernel_converged):
            continue
        out.append(Finding(Check.KERNEL_ROUTE, str(p), state))
    return out


def _sessions(s: Snapshot) -> list[Finding]:
    out = []
    for address, (state, admin, dynamic, mesh_node) in sorted(s.peers.items()):
        if dynamic or admin == "down" or state == "Established":
            continue
        who = f" (node {mesh_node})" if mesh_node else ""
        out.append(Finding(Check.SESSION_DOWN, address, f"expected Established{who}, is {state}"))
    return out


def findings(s: Snapshot) -> list[Finding]:
    """Everything wrong in one node's snapshot, check by check."""
    if s.datastore_fault is not None:
        ipam_side = [Finding(Check.DATASTORE, "datastore", s.datastore_fault)]
    else:
        ipam_side = [
            *_blocks_not_routed(s),
            *_routes_to_unowned(s),
            *_pending_advertised(s),
            *_overlapping(s),
        ]
    return [*ipam_side, *_kernel(s), *_sessions(s)]


def report(s: Snapshot) -> dict[str, Any]:
    """The control API's answer: the findings and what was looked at."""
    found = findings(s)
    return {
        "node": s.node,
        "ok": not found,
        "findings": [f.to_json() for f in found],
        "checked": {
            "blocks": len(s.blocks),
            "affinities": len(s.affinities),
            "rib_prefixes": _count(s.rib, s.rib_total),
            "kernel_routes": _count(s.kernel, s.kernel_total),
            "peers": len(s.peers),
        },
    }


def _count(part: Iterable[Any] | None, total: int | None) -> int | None:
    if part is None:
        return None
    return total if total is not None else len(list(part))


# -- taking a snapshot of a running node ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Parts:
    """What a node's snapshot is read from; each part None where the node runs without it."""

    node: str
    pools: tuple[IPNetwork, ...]
    ipam: Ipam | None
    live_nodes: frozenset[str]
    rib: Rib | None
    peers: Sequence[Mapping[str, Any]]
    announced: Announcement | None
    reconciler: Reconciler | None
    datastore_fault: str | None = None


class _PoolOverlap:
    """Which prefixes overlap a pool (lie inside one, or cover one): the only ones the
    IPAM checks read, kernel problems aside. A node may hold a large table (a ToR's
    full feed); its prefixes are passed over on their first address byte before any
    arithmetic, so that taking the snapshot does not hold up the event loop (and the
    BGP sessions on it) for seconds."""

    def __init__(self, pools: Sequence[IPNetwork]) -> None:
        self.nets: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        firsts: dict[int, set[int] | None] = {4: set(), 6: set()}
        for pool in pools:
            self.nets[pool.version].append((pool.prefixlen, int(pool.network_address)))
            known = firsts[pool.version]
            if pool.prefixlen < 8:
                firsts[pool.version] = None  # a pool shorter than /8: no first-byte test
            elif known is not None:
                known.add(pool.network_address.packed[0])
        self.firsts = firsts

    def rib_candidates(self, version: int, keys: Iterable[bytes]) -> list[bytes]:
        """The RIB keys (length octet, then address bytes) that may overlap a pool: the
        cheap test (`overlaps` decides)."""
        if not self.nets[version]:
            return []
        firsts = self.firsts[version]
        if firsts is None:
            return list(keys)
        return [k for k in keys if k[0] < 8 or k[1] in firsts]

    def fib_candidates(self, keys: Iterable[RouteKey]) -> list[RouteKey]:
        """The same for kernel route keys (a `fib.model.Dest`: length octet, then address
        bytes; or (dest, metric) for a route of another metric)."""
        by_v4 = {True: self.firsts[4], False: self.firsts[6]}
        if None in by_v4.values():
            return list(keys)
        out = []
        for k in keys:
            d = k if isinstance(k, bytes) else k[0]
            if d[0] < 8 or d[1] in by_v4[len(d) <= DEST4_MAX]:  # type: ignore[operator]
                out.append(k)
        return out

    def overlaps(self, version: int, addr: bytes, length: int) -> bool:
        """`addr` (its leading bytes, or all of them) / `length` lies in a pool or covers one."""
        width = 32 if version == 4 else 128
        value = int.from_bytes(addr[: width // 8].ljust(width // 8, b"\0"), "big")
        for plen, net in self.nets[version]:
            cut = width - min(length, plen)
            if value >> cut == net >> cut:
                return True
        return False


def _rib_prefixes(
    rib: Rib, pools: _PoolOverlap
) -> tuple[frozenset[IPNetwork], frozenset[IPNetwork], int]:
    """The prefixes overlapping a pool with a usable best path, those of them whose best
    path is this node's own, and how many prefixes the Loc-RIB holds in all."""
    usable, local = set(), set()
    total = 0
    for f in Family:
        version = 4 if f is Family.IPV4_UNICAST else 6
        loc = rib.loc[f]
        total += len(loc)
        for k in pools.rib_candidates(version, loc):
            if not pools.overlaps(version, k[1:], k[0]):
                continue
            best = rib.best(f, k)
            if best is None:
                continue
            net = key_to_network(f, k)
            usable.add(net)
            if best.local:
                local.add(net)
    return frozenset(usable), frozenset(local), total


def _kernel_states(reconciler: Reconciler, pools: _PoolOverlap) -> tuple[dict[IPNetwork, str], int]:
    """Every kernel route that is not as planned, and every route overlapping a pool,
    with its state (`Reconciler.route_states`); how many routes there are in all."""
    desired = reconciler.desired.shapes
    relevant = []
    for k in pools.fib_candidates(desired):
        d = key_dest(k)
        if pools.overlaps(4 if len(d) <= DEST4_MAX else 6, d[1:], d[0]):
            relevant.append(k)
    # A route installed but not desired (stale, extra) is never "ok": route_states
    # reports every one, so they are neither scanned above nor counted apart.
    states = reconciler.route_states(relevant)
    total = len(desired) + sum(1 for k in states if k not in desired)
    out = {}
    for k, state in states.items():
        d = key_dest(k)
        out[ipaddress.ip_network((dest_addr(d), d[0]))] = state
    return out, total


async def take(p: Parts) -> Snapshot:
    """A snapshot of a running node; a datastore that fails on the way becomes a fault."""
    fault = p.datastore_fault
    blocks: tuple[BlockRecord, ...] = ()
    affinities: dict[tuple[str, IPNetwork], str] = {}
    if p.ipam is None and fault is None:
        fault = "this node has no datastore"
    if p.ipam is not None and fault is None:
        try:
            blocks = tuple(BlockRecord(b.cidr, b.affinity) for b in await p.ipam.blocks())
            affinities = await p.ipam.affinities()
        except StoreError as exc:
            fault = str(exc)
    pools = _PoolOverlap(p.pools)
    rib: frozenset[IPNetwork] | None = None
    local: frozenset[IPNetwork] = frozenset()
    rib_total = kernel_total = None
    if p.rib is not None:
        rib, local, rib_total = _rib_prefixes(p.rib, pools)
    if p.announced is not None:
        local |= p.announced.prefixes
    kernel = None
    if p.reconciler is not None:
        kernel, kernel_total = _kernel_states(p.reconciler, pools)
    return Snapshot(
        node=p.node,
        pools=p.pools,
        blocks=blocks,
        affinities=affinities,
        live_nodes=p.live_nodes,
        datastore_fault=fault,
        rib=rib,
        originated=local,
        kernel=kernel,
        kernel_converged=p.reconciler.converged if p.reconciler is not None else True,
        rib_total=rib_total,
        kernel_total=kernel_total,
        peers={
            str(r["address"]): (
                str(r["state"]),
                str(r.get("admin", "up")),
                bool(r.get("dynamic")),
                r.get("mesh_node"),
            )
            for r in p.peers
        },
    )
