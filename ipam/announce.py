"""What a node originates into BGP, and the blackholes its FIB installs.

`announcement(node, blocks, confirmed, config)` is a pure function of the
store's state:

* ``prefixes`` -- the node's confirmed blocks, aggregated (adjacent blocks
  collapse into one shorter prefix), plus a host route (/32 or /128) for every
  address the node borrowed from a block that is not its own. Receivers pick
  the host route over the owner's block by longest match (RFC 4271 section
  9.1.2.2 leaves forwarding to longest match; the block and the /32 are
  different NLRI). Pools with ``disable_bgp_export`` contribute nothing.
* ``blackholes`` -- the node's confirmed blocks, aggregated, from every pool,
  so that traffic to an unallocated address of its own blocks is dropped
  instead of following the default route.

`watch_announcements` yields the current value, then a new one whenever a
change in the store (seen through `Store.watch`, not by polling) changes it.
The values are frozensets of `ipaddress` networks: not a hot path (a node has
tens of blocks), and easy for the daemon to diff.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass

from ipam.block import Block, IPNetwork
from ipam.model import (
    AFFINITY,
    BLOCKS,
    IPAM,
    IpamConfig,
    affinity_prefix,
    cidr_of_key,
    loads,
    parse_affinity_key,
)
from ipam.store.base import EventKind, KeyValue, Store, WatchCompacted


@dataclass(frozen=True, slots=True)
class Announcement:
    """Prefixes to originate and blackhole routes to install for one node."""

    prefixes: frozenset[IPNetwork]
    blackholes: frozenset[IPNetwork]

    def to_json(self) -> dict[str, list[str]]:
        return {
            "prefixes": sorted(str(p) for p in self.prefixes),
            "blackholes": sorted(str(p) for p in self.blackholes),
        }


def _collapse(nets: Iterable[IPNetwork]) -> set[IPNetwork]:
    out: set[IPNetwork] = set()
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    out.update(ipaddress.collapse_addresses(v4))
    out.update(ipaddress.collapse_addresses(v6))
    return out


def announcement(
    node: str, blocks: Iterable[Block], confirmed: Collection[IPNetwork], config: IpamConfig
) -> Announcement:
    """The node's announcement from every block and its confirmed affinities."""
    own: list[IPNetwork] = []
    exported: list[IPNetwork] = []
    hosts: set[IPNetwork] = set()
    for b in blocks:
        pool = config.pool_of_block(b.cidr)
        export = pool is None or not pool.disable_bgp_export
        if b.affinity == node and b.cidr in confirmed:
            own.append(b.cidr)
            if export:
                exported.append(b.cidr)
            continue
        if export:
            for addr, alloc in b.held():
                if alloc.node == node:
                    hosts.add(ipaddress.ip_network(addr))
    return Announcement(
        prefixes=frozenset(_collapse(exported) | hosts),
        blackholes=frozenset(_collapse(own)),
    )


def node_prefixes(
    blocks: Iterable[Block], confirmed: Collection[tuple[str, IPNetwork]]
) -> dict[str, frozenset[IPNetwork]]:
    """Every node's prefixes: confirmed blocks (aggregated) and borrowed host routes.

    For routing from the datastore without BGP (VXLAN): unlike `announcement`
    it ignores ``disable_bgp_export``, which only concerns BGP.
    """
    own: dict[str, list[IPNetwork]] = {}
    hosts: dict[str, set[IPNetwork]] = {}
    for b in blocks:
        if b.affinity is not None and (b.affinity, b.cidr) in confirmed:
            own.setdefault(b.affinity, []).append(b.cidr)
        for addr, alloc in b.held():
            if alloc.node != b.affinity or (alloc.node, b.cidr) not in confirmed:
                hosts.setdefault(alloc.node, set()).add(ipaddress.ip_network(addr))
    return {
        n: frozenset(_collapse(own.get(n, [])) | hosts.get(n, set()))
        for n in sorted(own.keys() | hosts.keys())
    }


async def watch_node_blocks(
    store: Store, config: IpamConfig
) -> AsyncIterator[dict[str, frozenset[IPNetwork]]]:
    """`node_prefixes` now, then each time it changes (from the store's watch).

    `config` is accepted for symmetry with `watch_announcements`; every pool counts.
    """
    del config
    last: dict[str, frozenset[IPNetwork]] | None = None
    while True:
        kvs, rev = await store.list_prefix(IPAM)
        blocks: dict[str, Block] = {}
        confirmed: dict[str, tuple[str, IPNetwork]] = {}
        for kv in kvs:
            _fold(blocks, confirmed, EventKind.PUT, kv.key, kv.value)
        try:
            current = node_prefixes(blocks.values(), set(confirmed.values()))
            if current != last:
                last = current
                yield current
            async for batch in store.watch(IPAM, rev + 1):
                for ev in batch:
                    _fold(blocks, confirmed, ev.kind, ev.key, ev.value)
                current = node_prefixes(blocks.values(), set(confirmed.values()))
                if current != last:
                    last = current
                    yield current
        except WatchCompacted:
            continue


def _fold(
    blocks: dict[str, Block],
    confirmed: dict[str, tuple[str, IPNetwork]],
    kind: EventKind,
    key: str,
    value: bytes,
) -> None:
    if key.startswith(BLOCKS):
        if kind is EventKind.DELETE:
            blocks.pop(key, None)
        else:
            blocks[key] = Block.from_json(loads(value))
    elif key.startswith(AFFINITY):
        if kind is EventKind.PUT and loads(value).get("state") == "confirmed":
            confirmed[key] = parse_affinity_key(key)
        else:
            confirmed.pop(key, None)


class _State:
    """The part of the store an announcement depends on, kept up to date from events."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.aff_prefix = affinity_prefix(node)
        self.blocks: dict[str, Block] = {}
        self.confirmed: dict[str, IPNetwork] = {}

    def apply(self, kind: EventKind, key: str, value: bytes) -> bool:
        """Fold one change in; True if it can matter to this node's announcement."""
        if key.startswith(BLOCKS):
            if kind is EventKind.DELETE:
                self.blocks.pop(key, None)
            else:
                self.blocks[key] = Block.from_json(loads(value))
            return True
        if key.startswith(self.aff_prefix):
            cidr = cidr_of_key(key[len(self.aff_prefix) :])
            if kind is EventKind.PUT and loads(value).get("state") == "confirmed":
                self.confirmed[key] = cidr
            else:
                self.confirmed.pop(key, None)
            return True
        return False

    def load(self, kvs: Iterable[KeyValue]) -> None:
        self.blocks.clear()
        self.confirmed.clear()
        for kv in kvs:
            if kv.key.startswith((BLOCKS, AFFINITY)):
                self.apply(EventKind.PUT, kv.key, kv.value)


async def watch_announcements(
    store: Store, node: str, config: IpamConfig
) -> AsyncIterator[Announcement]:
    """The node's announcement now, then each time it changes."""
    state = _State(node)
    last: Announcement | None = None
    while True:
        kvs, rev = await store.list_prefix(IPAM)
        state.load(kvs)
        try:
            current = announcement(node, state.blocks.values(), state.confirmed.values(), config)
            if current != last:
                last = current
                yield current
            async for batch in store.watch(IPAM, rev + 1):
                touched = False
                for ev in batch:
                    touched |= state.apply(ev.kind, ev.key, ev.value)
                if not touched:
                    continue
                blocks, confirmed = state.blocks.values(), state.confirmed.values()
                current = announcement(node, blocks, confirmed, config)
                if current != last:
                    last = current
                    yield current
        except WatchCompacted:
            continue  # we fell behind the store's history: take a fresh snapshot
