"""Planning: FIB inputs to the kernel routes, neighbours, FDB entries and devices they need.

Pure functions, no I/O. For each next hop (a node address) of a route to a pod
block the pool's modes decide how it is reached:

* unencapsulated: ``via NODE dev UNDERLAY`` when NODE is in this node's subnet,
  else ``via NODE`` and the kernel picks the device;
* IP-in-IP: ``via NODE dev tunl0 onlink``: the tunnel device encapsulates to
  the next hop address, which `onlink` lets the kernel accept without a
  connected route to it;
* a link-local next hop learned over an unnumbered link: ``via inet6 fe80::… dev
  IF`` whatever the pool says (RFC 8950 lets an IPv4 route use it);
* VXLAN: ``via VTEP dev vxlan.podbgp onlink``, plus a permanent neighbour entry
  (VTEP → VTEP MAC) and a permanent FDB entry (MAC → node address), so the
  kernel never has to learn or flood (learning is off on the device).

``CrossSubnet`` encapsulates only when the next hop lies outside this node's
subnet; ``Always`` encapsulates every hop. Hops are planned one by one, so an
ECMP route whose next hops sit on both sides of the subnet boundary mixes
plain and encapsulated next hops, as it should. A node's own blocks get a
blackhole route (traffic to unallocated addresses is dropped instead of
leaking to the default route) and local pods a ``dev VETH scope link`` route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fib.model import (
    DEFAULT_METRIC,
    IPIP_DEVICE,
    IPIP_OVERHEAD,
    RT_SCOPE_LINK,
    RTN_BLACKHOLE,
    RTN_UNICAST,
    VXLAN6_OVERHEAD,
    VXLAN_DEVICE,
    VXLAN_OVERHEAD,
    Encap,
    FdbEntry,
    FibInputs,
    IpipSpec,
    KernelRoute,
    Neighbour,
    Nexthop,
    NodeInfo,
    Prefix,
    Reach,
    RemoteRoute,
    RouteKey,
    Vtep,
    VxlanSpec,
    split_hop,
    vtep_mac,
)

IPV6_DEFAULT_METRIC = DEFAULT_METRIC[16]  # the kernel gives IPv6 routes this metric


class PlanError(ValueError):
    """Inputs the planner cannot turn into routes (a pool with both encapsulations)."""


def encapsulation(route: RemoteRoute, node: NodeInfo, hop: bytes) -> str:
    """'none', 'ipip' or 'vxlan' for one next hop of `route`."""
    if route.ipip is not Encap.NEVER and route.vxlan is not Encap.NEVER:
        raise PlanError(f"{route.prefix}: ipip_mode and vxlan_mode cannot both be on")
    for name, mode in (("ipip", route.ipip), ("vxlan", route.vxlan)):
        if mode is Encap.ALWAYS:
            return name
        if mode is Encap.CROSS_SUBNET and not node.same_subnet(hop):
            return name
    return "none"


def plan_hop(
    route: RemoteRoute, node: NodeInfo, hop: bytes, vteps: dict[bytes, Vtep]
) -> Nexthop | None:
    """The kernel next hop for one node address, or None if its VTEP is not known yet.

    A link-local next hop (with its interface, `split_hop`) is a neighbour on an
    unnumbered link: `via inet6 fe80::… dev IF`, for IPv4 routes too (RFC 8950),
    never encapsulated (a tunnel cannot start at a link-local address)."""
    addr, dev = split_hop(hop)
    if dev or len(addr) != len(route.prefix.addr):
        return Nexthop(addr, dev)  # IPv6 next hop of an IPv4 route: plain `via inet6`
    how = encapsulation(route, node, hop)
    if how == "ipip":
        return Nexthop(hop, IPIP_DEVICE, True)
    if how == "vxlan":
        vtep = vteps.get(hop)
        if vtep is None:
            return None
        if len(hop) == 16:
            # IPv6 pods through the tunnel: via the remote device's own link-local address
            # (a permanent neighbour, `plan_vxlan_entries`), whatever the underlay's family.
            return Nexthop(vtep.link_local, VXLAN_DEVICE)
        if not vtep.vtep_address:
            return None  # an IPv6-only node has no IPv4 VTEP
        return Nexthop(vtep.vtep_address, VXLAN_DEVICE, True)
    if node.same_subnet(hop):
        return Nexthop(hop, node.underlay)  # what the kernel would pick: the connected subnet
    return Nexthop(hop, "")


def metric_for(prefix: Prefix) -> int:
    return 0 if len(prefix.addr) == 4 else IPV6_DEFAULT_METRIC


def plan_remote(
    route: RemoteRoute, node: NodeInfo, vteps: dict[bytes, Vtep], protocol: int, table: int
) -> KernelRoute | None:
    """One route (multipath when several next hops) or None when no hop is usable."""
    hops = set()
    for addr in route.next_hops:
        if node.is_own(addr) or not _usable(len(addr), len(route.prefix.addr)):
            continue  # our own blocks come back through reflection; never route to self
        hop = plan_hop(route, node, addr, vteps)
        if hop is not None:
            hops.add(hop)
    if not hops:
        return None
    p = route.prefix
    return KernelRoute(p.addr, p.length, RTN_UNICAST, tuple(sorted(hops)), 0, protocol, table,
                       metric_for(p))  # fmt: skip


def _usable(hop_len: int, addr_len: int) -> bool:
    """A hop of the prefix's family, or an IPv6 one for an IPv4 prefix (RFC 8950), or a
    link-local one with its interface (longer than 16 bytes, `split_hop`)."""
    return hop_len == addr_len or hop_len >= 16


def plan_blackhole(prefix: Prefix, protocol: int, table: int) -> KernelRoute:
    """`blackhole BLOCK`: unallocated addresses of our own blocks are dropped here."""
    return KernelRoute(prefix.addr, prefix.length, RTN_BLACKHOLE, (), 0, protocol, table,
                       metric_for(prefix))  # fmt: skip


def plan_local(prefix: Prefix, veth: str, protocol: int, table: int) -> KernelRoute:
    """`POD/32 dev VETH scope link`: a pod on this node, behind its host-side veth."""
    return KernelRoute(prefix.addr, prefix.length, RTN_UNICAST, (Nexthop(b"", veth),),
                       RT_SCOPE_LINK, protocol, table, metric_for(prefix))  # fmt: skip


@dataclass(slots=True)
class Plan:
    """Desired kernel state: routes by key, neighbour and FDB entries, devices."""

    routes: dict[RouteKey, KernelRoute] = field(default_factory=dict)
    neighbours: set[Neighbour] = field(default_factory=set)
    fdb: set[FdbEntry] = field(default_factory=set)
    unroutable: list[Prefix] = field(default_factory=list)  # no usable next hop (VTEP unknown)
    needs_vxlan: bool = False
    needs_ipip: bool = False


def plan_route_for(
    prefix: Prefix, inputs: FibInputs, protocol: int, table: int
) -> KernelRoute | None:
    """The route wanted for one prefix: local pod, else own block, else remote route."""
    veth = inputs.local_pods.get(prefix)
    if veth is not None:
        return plan_local(prefix, veth, protocol, table)
    if prefix in inputs.own_blocks:
        return plan_blackhole(prefix, protocol, table)
    reach = inputs.remote.get(prefix.dest)
    if reach is None or inputs.node is None:
        return None
    return plan_remote(RemoteRoute.of(prefix, reach), inputs.node, inputs.vteps, protocol, table)


# A planned remote route without its destination: (kind, nexthops, scope, protocol,
# table, priority), the fields 2..7 of `KernelRoute`.
Shape = tuple[int, tuple[Nexthop, ...], int, int, int, int]
_V4_ANY = Prefix(bytes(4), 0)
_V6_ANY = Prefix(bytes(16), 0)


def plan_shape(
    reach: Reach, ipv6: bool, node: NodeInfo, vteps: dict[bytes, Vtep], protocol: int, table: int
) -> Shape | None:
    """What `plan_remote` plans for every prefix of one family reached by `reach`.

    Nothing in a remote route's plan depends on its prefix but the family (which
    hops are usable, the metric), so a batch is planned once per distinct
    (reach, family). Raises PlanError as `plan_remote` does."""
    any_prefix = _V6_ANY if ipv6 else _V4_ANY
    route = plan_remote(RemoteRoute.of(any_prefix, reach), node, vteps, protocol, table)
    if route is None:
        return None
    return (route.kind, route.nexthops, route.scope, route.protocol, route.table, route.priority)


def plan_vxlan_entries(inputs: FibInputs) -> tuple[set[Neighbour], set[FdbEntry]]:
    """A neighbour and an FDB entry for every known remote VTEP."""
    own = inputs.node.address if inputs.node else b""
    neigh = set()
    fdb = set()
    for vtep in inputs.vteps.values():  # a dual-stack VTEP is there twice (`Vtep.keys`)
        if vtep.node_address == own:
            continue
        if vtep.vtep_address:
            neigh.add(Neighbour(VXLAN_DEVICE, vtep.vtep_address, vtep.mac))
        if vtep.node_address6 or len(vtep.node_address) == 16:
            neigh.add(Neighbour(VXLAN_DEVICE, vtep.link_local, vtep.mac))
        fdb.add(FdbEntry(VXLAN_DEVICE, vtep.mac, vtep.node_address))
    return neigh, fdb


def uses_mode(inputs: FibInputs, attr: str) -> bool:
    return any(getattr(r, attr) is not Encap.NEVER for r in set(inputs.remote.values()))


def plan_all(inputs: FibInputs, protocol: int, table: int) -> Plan:
    """The whole desired state (the reconciler re-plans single prefixes incrementally)."""
    plan = Plan()
    prefixes = set(inputs.local_pods) | inputs.own_blocks | set(map(Prefix.of_dest, inputs.remote))
    for prefix in prefixes:
        route = plan_route_for(prefix, inputs, protocol, table)
        if route is None:
            plan.unroutable.append(prefix)
        else:
            plan.routes[route.key] = route
    plan.needs_vxlan = uses_mode(inputs, "vxlan") or bool(inputs.vteps)
    plan.needs_ipip = uses_mode(inputs, "ipip")
    if plan.needs_vxlan:
        plan.neighbours, plan.fdb = plan_vxlan_entries(inputs)
    return plan


def plan_vxlan_device(node: NodeInfo, underlay_mtu: int) -> VxlanSpec:
    """`vxlan.podbgp`: VNI 4096, UDP 4789, MAC from the node name (RFC 7348 §5); MTU the
    configured one, else underlay - 50 (- 70 over an IPv6 underlay)."""
    overhead = VXLAN6_OVERHEAD if len(node.address) == 16 else VXLAN_OVERHEAD
    mtu = node.vxlan_mtu or underlay_mtu - overhead
    return VxlanSpec(node.address, node.underlay, vtep_mac(node.name), mtu, node.vtep_address)


def plan_ipip_device(node: NodeInfo, underlay_mtu: int) -> IpipSpec:
    """`tunl0`: the configured MTU, else underlay - 20 (RFC 2003 §4: one outer IPv4 header)."""
    return IpipSpec(node.ipip_mtu or underlay_mtu - IPIP_OVERHEAD)
