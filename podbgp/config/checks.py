"""Cross-section rules, run on the sections that parsed cleanly."""

from __future__ import annotations

from fib.model import Encap
from podbgp.config.reader import _Errors
from podbgp.config.schema import (
    BGPConfig,
    IPAMConfig,
    NodeConfig,
    Peer,
    PeerOptions,
    toml_name,
)


def _cross_checks(
    node: NodeConfig | None, bgp: BGPConfig | None, ipam: IPAMConfig | None, errors: _Errors
) -> None:
    """Rules spanning sections; each runs only when the sections it needs parsed cleanly."""
    if bgp is not None:
        _check_listening(bgp, errors)
        _check_reflector_clients(node, bgp, errors)
    if node is not None and bgp is not None:
        _check_node_for_bgp(node, bgp, errors)
        _check_local_asn(node, bgp, errors)
    if node is not None and ipam is not None:
        _check_node_for_pools(node, bgp, ipam, errors)


def _check_listening(bgp: BGPConfig, errors: _Errors) -> None:
    """Sessions that can only come up inbound need a listening socket."""
    if bgp.listen:
        return
    if bgp.mesh or bgp.is_route_reflector:
        # Each mesh pair connects in one direction only, so half the sessions are inbound.
        errors.add("bgp.listen", "[] but the mesh and route reflection need inbound sessions")
    elif bgp.selected_peers:
        # So do peers chosen by label (podbgp.topology: the lower address dials).
        errors.add("bgp.listen", "[] but peers chosen by peer_selector need inbound sessions")
    if bgp.listen_ranges:
        errors.add("bgp.listen_range", "dynamic neighbours need bgp.listen (it is [])")
    for i, p in enumerate(bgp.peers):
        if p.passive:
            errors.add(
                f"bgp.peer[{i}].passive", "true but bgp.listen is [], so it could never connect"
            )


def _check_reflector_clients(node: NodeConfig | None, bgp: BGPConfig, errors: _Errors) -> None:
    """RFC 4456: clients are iBGP peers.

    A client without `route_reflector_cluster_id` is allowed: the node then
    reflects for it with its router ID as cluster ID (RFC 4456 §7) and stays in
    the mesh; only the cluster ID makes it leave the mesh.
    """
    items: list[tuple[str, PeerOptions]] = [(f"bgp.peer[{i}]", p) for i, p in enumerate(bgp.peers)]
    items += [(f"bgp.listen_range[{i}]", r) for i, r in enumerate(bgp.listen_ranges)]
    for path, p in items:
        # asn 0 (peer_selector): each selected node's AS, which the registry knows.
        if p.route_reflector_client and node is not None and p.asn not in (0, node.asn):
            errors.add(
                f"{path}.route_reflector_client",
                f"AS {p.asn} is not this node's AS {node.asn}; clients are iBGP peers (RFC 4456)",
            )


def _check_local_asn(node: NodeConfig, bgp: BGPConfig, errors: _Errors) -> None:
    """A local AS (RFC 7705) is for eBGP: both ends must see an external session, or
    the peer's view (iBGP rules) and ours (eBGP rules) of every route would differ."""
    items: list[tuple[str, PeerOptions]] = [(f"bgp.peer[{i}]", p) for i, p in enumerate(bgp.peers)]
    items += [(f"bgp.listen_range[{i}]", r) for i, r in enumerate(bgp.listen_ranges)]
    for path, p in items:
        if not p.local_asn:
            continue
        key = f"{path}.local_asn"
        if p.local_asn == node.asn:
            errors.add(key, f"{p.local_asn} is node.asn already (0 presents node.asn)")
        elif p.asn in (0, node.asn):
            errors.add(key, f"is for eBGP peers; this one is in the node's AS {node.asn}")
        elif p.local_asn == p.asn:
            errors.add(key, f"{p.local_asn} is the peer's own AS: it would see an iBGP session")


def _check_node_for_bgp(node: NodeConfig, bgp: BGPConfig, errors: _Errors) -> None:
    if (bgp.mesh or bgp.is_route_reflector) and not (node.has_address or node.has_address6):
        errors.add(
            "node.address", "is required for the mesh and route reflection (peers connect to it)"
        )
    elif bgp.selected_peers and not node.has_address:
        # podbgp.topology: in-cluster peers are found and dialled at registry IPv4 addresses.
        errors.add("node.address", "is required for peers chosen by peer_selector")
    own = {i.ip for i in (node.address, node.address6) if i is not None}
    for i, p in enumerate(bgp.peers):
        if isinstance(p, Peer) and p.address in own:
            errors.add(f"bgp.peer[{i}].address", f'"{p.address}" is this node\'s own address')


def _check_node_for_pools(
    node: NodeConfig, bgp: BGPConfig | None, ipam: IPAMConfig, errors: _Errors
) -> None:
    """Encapsulation needs an underlay address of the pool's family, and IP-in-IP needs BGP."""
    for i, pool in enumerate(ipam.pools):
        path = f"ipam.pool[{i}]"
        for key, mode in (("ipip_mode", pool.ipip_mode), ("vxlan_mode", pool.vxlan_mode)):
            if mode == Encap.NEVER:
                continue
            need, have = (
                ("address", node.has_address)
                if pool.cidr.version == 4
                else ("address6", node.has_address6)
            )
            if not have:
                errors.add(
                    f"{path}.{key}", f'"{toml_name(mode)}" needs node.{need} (the tunnel underlay)'
                )
        if pool.ipip_mode != Encap.NEVER and bgp is not None and not bgp.enabled:
            errors.add(
                f"{path}.ipip_mode",
                "IP-in-IP routes come from BGP; bgp.enabled is false (use vxlan_mode)",
            )
