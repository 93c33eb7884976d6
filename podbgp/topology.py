"""Which nodes a node peers with: the node-to-node mesh, in-cluster route reflectors
grouped per rack, and in-cluster peers chosen by label.

Pure functions over the node registry (`ipam.Node` records, labels included), tested
as tables. The daemon calls `cluster_peers` with every registry snapshot and with
every reload; `podbgp.bgpnode` then starts and stops only the sessions whose entry
changed.

- Full mesh (`bgp.mesh = true`, no reflector in the registry): every node peers with
  every other node. Each pair connects in one direction only — the node with the
  lower address connects, the other listens (passive) — so the two sides never
  race into a connection collision (RFC 4271 §6.8), whose resolution would close
  the session a graceful restart (RFC 4724) is trying to keep. The passive side
  still dials once when it adds the peer (`connect_on_start`, `bgp.fsm`): after
  a restart it must not wait for the other side's retry timer (or, after a crash,
  its hold time), nor after a fix on its side (a password) for the other side's
  back-off. It goes at once for the pairs of the daemon's first view of the
  registry (it has just started: the others may be waiting out their retry
  timers) and right after a graceful restart (a new OPEN with graceful restart
  ends a session the other side still has, RFC 4724 §4.2), and when the other
  side has already dialled and been refused (`Speaker.refused_within`: it is in
  its back-off). For a pair added later it waits `PASSIVE_DIAL_DELAY` for the
  other side's connection first (`connect_delay`): when both running daemons add
  the pair at once (a reload on every node, a label), two dials would open a
  collision, whose §6.8 resolution can close a connection the other side has
  just seen Established — a session up for an instant, then down.
- Route reflectors (a node has `route_reflector_cluster_id`): a reflector leaves the
  mesh; other reflectors, of every group, are its ordinary iBGP peers (RFC 4456 §2:
  the reflectors' own full mesh), and its clients are the non-reflectors it serves.
  A non-reflector peers only with the reflectors that serve it.
- Reflector groups (`bgp.route_reflector_group_label`, e.g. "rack"): a node's group
  is the value of that label on its record ("" without the label). A client is
  served by the reflectors of its own group; if its group has none (a rack whose
  reflectors are all gone, or a node without the label), by every reflector of the
  cluster, so that it still learns and announces routes. Both ends of a pair compute
  the same answer from the same snapshot, so the rule is symmetric. The reflectors
  of one group normally share a cluster ID (RFC 4456 §7, redundant reflectors);
  each node sets its own `route_reflector_cluster_id`.
- `bgp.mesh = false` and no cluster ID anywhere: no peers from the mesh at all (ToR
  peering, static `[[bgp.peer]]` only).
- Peers chosen by label (`[[bgp.peer]]` with `peer_selector`, on the nodes its
  `node_selector` picks): every other node the selector matches is a peer at its
  registry address, with that entry's options (its AS, if not given, is the node's).
  Such a session only comes up if the other node selects this one too (sessions
  are accepted from configured peers only), so the same one-direction dial rule
  applies unless the entry says `passive = true`. Where a selected peer and a mesh
  or reflector peer share an address, the selected one wins: the operator wrote it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ipam import Node
from ipam.model import selector_matches
from podbgp.config import SelectedPeer


@dataclass(frozen=True, slots=True)
class MeshPeer:
    """A peer derived from the registry.

    `rule` is the `[[bgp.peer]]` whose `peer_selector` chose the node; None for the
    mesh and reflection. Two entries are equal only if the session they describe is
    the same, so a changed rule resets exactly the sessions it produced."""

    node: str
    address: str
    asn: int
    passive: bool
    route_reflector_client: bool
    rule: SelectedPeer | None = None


def node_ip(node: Node, family: int = 4) -> str:
    """The node's address of one family without its prefix length ("" if it has none)."""
    text = node.address if family == 4 else node.address6
    return str(ipaddress.ip_interface(text).ip) if text else ""


PASSIVE_DIAL_DELAY = 2.0
"""Seconds the passive side of a pair waits for the other side's connection before
its one dial (module docstring); the active side dials as soon as it adds the pair."""


def _active_side(me: str, other: str) -> bool:
    """True if `me` connects out to `other` (the lower address connects)."""
    a, b = ipaddress.ip_address(me), ipaddress.ip_address(other)
    return (a.version, int(a)) < (b.version, int(b))


def reflector_group(node: Node, group_label: str) -> str:
    """The node's reflector group: its value of `group_label` ("" without one)."""
    return node.labels.get(group_label, "") if group_label else ""


def serving_reflectors(
    client: Node, reflectors: Mapping[str, Node], group_label: str = ""
) -> set[str]:
    """The reflectors (by name) that serve `client`: its group's, or all if it has none."""
    group = reflector_group(client, group_label)
    same = {n for n, r in reflectors.items() if reflector_group(r, group_label) == group}
    return same or set(reflectors)


def _pairs(me: Node, other: Node, reflectors: Mapping[str, Node], mesh: bool, label: str) -> bool:
    """Whether `me` and `other` have a mesh or reflection session; the same answer
    from either side, so both ends configure the pair."""
    if not reflectors:
        return mesh
    if me.name in reflectors and other.name in reflectors:
        return True  # the reflectors' own full mesh, across groups (RFC 4456 §2)
    if me.name in reflectors:
        return me.name in serving_reflectors(other, reflectors, label)
    if other.name in reflectors:
        return other.name in serving_reflectors(me, reflectors, label)
    return False  # two clients


def mesh_peers(
    me: Node,
    nodes: Mapping[str, Node],
    mesh: bool = True,
    family: int = 4,
    group_label: str = "",
) -> dict[str, MeshPeer]:
    """The mesh and reflection peers of `me`, keyed by peer address."""
    my_ip = node_ip(me, family)
    if not my_ip:
        return {}
    reflectors = {n: node for n, node in nodes.items() if node.route_reflector_cluster_id}
    if me.route_reflector_cluster_id:
        reflectors[me.name] = me
    peers: dict[str, MeshPeer] = {}
    for name, node in sorted(nodes.items()):
        ip = node_ip(node, family)
        if name == me.name or not ip or ip == my_ip:
            continue
        if not _pairs(me, node, reflectors, mesh, group_label):
            continue
        peers[ip] = MeshPeer(
            node=name,
            address=ip,
            asn=node.asn or me.asn,
            passive=not _active_side(my_ip, ip),
            route_reflector_client=me.name in reflectors and name not in reflectors,
        )
    return peers


def selected_peers(
    me: Node, nodes: Mapping[str, Node], rules: Iterable[SelectedPeer], family: int = 4
) -> dict[str, MeshPeer]:
    """The in-cluster peers the `peer_selector` rules that apply to `me` choose.

    A node two rules choose gets the first rule's options (the order of
    `[[bgp.peer]]`), as a static peer listed twice would be refused."""
    my_ip = node_ip(me, family)
    if not my_ip:
        return {}
    peers: dict[str, MeshPeer] = {}
    for rule in rules:
        if not selector_matches(rule.node_selector, me.labels):
            continue
        for name, node in sorted(nodes.items()):
            ip = node_ip(node, family)
            if name == me.name or not ip or ip == my_ip or ip in peers:
                continue
            if not selector_matches(rule.peer_selector, node.labels):
                continue
            peers[ip] = MeshPeer(
                node=name,
                address=ip,
                asn=rule.asn or node.asn or me.asn,
                passive=rule.passive or not _active_side(my_ip, ip),
                route_reflector_client=rule.route_reflector_client,
                rule=rule,
            )
    return peers


def cluster_peers(
    me: Node,
    nodes: Mapping[str, Node],
    *,
    mesh: bool = True,
    group_label: str = "",
    rules: Iterable[SelectedPeer] = (),
    family: int = 4,
) -> dict[str, MeshPeer]:
    """Every registry-derived peer of `me`: mesh or reflection, then the selected
    peers, which replace a mesh entry at the same address."""
    peers = mesh_peers(me, nodes, mesh=mesh, family=family, group_label=group_label)
    peers.update(selected_peers(me, nodes, rules, family=family))
    return peers
