"""Which nodes a node peers with: the node-to-node mesh and in-cluster route reflectors.

Pure functions over the node registry (`ipam.Node` records), tested as tables.

- Full mesh (`bgp.mesh = true`, no reflector in the registry): every node peers with
  every other node. Each pair connects in one direction only — the node with the
  lower address connects, the other listens (passive) — so the two sides never
  race into a connection collision (RFC 4271 §6.8), whose resolution would close
  the session a graceful restart (RFC 4724) is trying to keep. The passive side
  still dials once when its daemon starts (`connect_on_start`, `bgp.fsm`): after
  a restart it must not wait for the other side's retry timer (or, after a crash,
  its hold time). That one dial cannot collide with a dial of the other side's
  that would win: if the other side still has the old session Established, the
  new OPEN with graceful restart ends it (RFC 4724 §4.2); if it is dialling too,
  §6.8 keeps one of two connections that are both still opening.
- Route reflectors (a node has `route_reflector_cluster_id`): a reflector leaves the
  mesh and peers with every other node; other reflectors are ordinary iBGP peers,
  all remaining nodes are its clients (RFC 4456 §2). A non-reflector peers only
  with the reflectors.
- `bgp.mesh = false` and no cluster ID: no peers from the registry at all (ToR
  peering, static `[[bgp.peer]]` only).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from ipam import Node


@dataclass(frozen=True, slots=True)
class MeshPeer:
    """A peer derived from the registry."""

    node: str
    address: str
    asn: int
    passive: bool
    route_reflector_client: bool


def node_ip(node: Node, family: int = 4) -> str:
    """The node's address of one family without its prefix length ("" if it has none)."""
    text = node.address if family == 4 else node.address6
    return str(ipaddress.ip_interface(text).ip) if text else ""


def _active_side(me: str, other: str) -> bool:
    """True if `me` connects out to `other` (the lower address connects)."""
    a, b = ipaddress.ip_address(me), ipaddress.ip_address(other)
    return (a.version, int(a)) < (b.version, int(b))


def mesh_peers(
    me: Node, nodes: Mapping[str, Node], mesh: bool = True, family: int = 4
) -> dict[str, MeshPeer]:
    """The registry-derived peers of `me`, keyed by peer address."""
    my_ip = node_ip(me, family)
    if not my_ip:
        return {}
    reflectors = {n for n, node in nodes.items() if node.route_reflector_cluster_id}
    i_reflect = bool(me.route_reflector_cluster_id)
    if not mesh and not reflectors and not i_reflect:
        return {}
    peers: dict[str, MeshPeer] = {}
    for name, node in sorted(nodes.items()):
        ip = node_ip(node, family)
        if name == me.name or not ip or ip == my_ip:
            continue
        other_reflects = name in reflectors
        if reflectors and not i_reflect and not other_reflects:
            continue  # clients only peer with reflectors
        if not reflectors and not mesh:
            continue
        client = i_reflect and not other_reflects
        peers[ip] = MeshPeer(
            node=name,
            address=ip,
            asn=node.asn or me.asn,
            passive=not _active_side(my_ip, ip),
            route_reflector_client=client,
        )
    return peers
