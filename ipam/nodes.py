"""The node registry: who is in the cluster, kept in the same store as IPAM.

Each node writes its own record (name, IPv4/IPv6 address, AS number, VTEP
MAC and address, route-reflector cluster ID, labels for pool selectors) at
start-up. The daemon builds the BGP mesh (every other node, or the route
reflectors) and the VXLAN neighbour/FDB entries from it, and follows changes
through `NodeRegistry.watch`, which yields a full snapshot after each change:
the registry is small, and a snapshot is what the daemon diffs against.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from ipam.model import ROOT, dumps, loads
from ipam.store.base import EventKind, Store, WatchCompacted

NODES = ROOT + "nodes/"


def node_key(name: str) -> str:
    return NODES + quote(name, safe="")


@dataclass(frozen=True, slots=True)
class Node:
    """One node's registry record."""

    name: str
    asn: int = 0
    address: str = ""  # IPv4 with prefix length, e.g. "10.0.0.1/24"
    address6: str = ""
    vtep_mac: str = ""
    vtep_address: str = ""
    route_reflector_cluster_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "asn": self.asn,
            "address": self.address,
            "address6": self.address6,
            "vtep_mac": self.vtep_mac,
            "vtep_address": self.vtep_address,
            "route_reflector_cluster_id": self.route_reflector_cluster_id,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Node:
        return cls(
            name=str(d["name"]),
            asn=int(d.get("asn", 0)),
            address=str(d.get("address", "")),
            address6=str(d.get("address6", "")),
            vtep_mac=str(d.get("vtep_mac", "")),
            vtep_address=str(d.get("vtep_address", "")),
            route_reflector_cluster_id=str(d.get("route_reflector_cluster_id", "")),
            labels={str(k): str(v) for k, v in d.get("labels", {}).items()},
        )


class NodeRegistry:
    """Read, write and follow node records in `store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def register(self, node: Node, retries: int = 50) -> None:
        """Create or update `node`'s record (CAS on its revision, retried on conflict)."""
        key = node_key(node.name)
        value = dumps(node.to_json())
        for _ in range(retries):
            kv = await self.store.get(key)
            if kv is not None and kv.value == value:
                return
            if await self.store.put_cas(key, value, 0 if kv is None else kv.mod_revision):
                return
        raise RuntimeError(f"node {node.name}: registry write kept conflicting")

    async def get(self, name: str) -> Node | None:
        kv = await self.store.get(node_key(name))
        return None if kv is None else Node.from_json(loads(kv.value))

    async def list(self) -> dict[str, Node]:
        return (await self._snapshot())[0]

    async def _snapshot(self) -> tuple[dict[str, Node], int]:
        kvs, rev = await self.store.list_prefix(NODES)
        nodes = [Node.from_json(loads(kv.value)) for kv in kvs]
        return {n.name: n for n in nodes}, rev

    async def remove(self, name: str) -> bool:
        """Delete the record (IPAM's `remove_node` frees the node's addresses)."""
        kv = await self.store.get(node_key(name))
        return kv is not None and await self.store.delete_cas(kv.key, kv.mod_revision)

    async def watch(self) -> AsyncIterator[dict[str, Node]]:
        """The current nodes, then the nodes again after every change."""
        while True:
            nodes, rev = await self._snapshot()
            yield dict(nodes)
            try:
                async for batch in self.store.watch(NODES, rev + 1):
                    for ev in batch:
                        name = unquote(ev.key[len(NODES) :])
                        if ev.kind is EventKind.DELETE:
                            nodes.pop(name, None)
                        else:
                            nodes[name] = Node.from_json(loads(ev.value))
                    yield dict(nodes)
            except WatchCompacted:
                await asyncio.sleep(0)  # fell behind the store's history: re-list
