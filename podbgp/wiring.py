"""Config → the parts' own settings: the one place that maps `podbgp.config` onto
`bgp` (speaker and peer settings), `rib` (RIB settings, per-peer policy, `[[policy]]`),
`ipam` (pools, registry record, datastore URL) and `fib` (reconciler settings, the
pools' encapsulation table).

Each function takes validated, typed config values and builds the typed value a
lower layer takes, with no text in between (podbgp may import downward; the
parts never import podbgp). `podbgp.bgpnode` keeps the life cycle and calls these.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ipam
from bgp.settings import ListenRange, PeerSettings, SpeakerSettings
from bgp.wire.constants import Family
from fib.model import Encap, Prefix, RemoteRoute, pack_addr, vtep_mac
from fib.reconciler import FibConfig
from ipam.lifecycle import Timing
from podbgp import config as cfg
from podbgp.config import APIConfig, Config, DatastoreConfig, IPAMConfig, PeerOptions, Pool
from podbgp.fibfeed import PoolTable
from podbgp.origins import Adornments
from podbgp.services import ServiceRange
from podbgp.topology import MeshPeer
from rib.policy import Match as RibMatch
from rib.policy import Policy as RibPolicy
from rib.policy import Rule as RibRule
from rib.policy import SetActions as RibSet
from rib.policy import builtin, neighbor_condition, prefix_condition
from rib.settings import PeerPolicy, RibSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ---------------------------------------------------------------- bgp


def speaker_settings(config: Config) -> SpeakerSettings:
    b = config.bgp
    ranges = tuple(
        ListenRange(str(r.prefix), peer_settings(config, r, "0.0.0.0")) for r in b.listen_ranges
    )
    return SpeakerSettings(
        asn=config.node.asn,
        router_id=str(config.node.router_id),
        listen=tuple(str(a) for a in b.listen),
        port=b.port,
        listen_ranges=ranges,
    )


def peer_settings(
    config: Config, p: PeerOptions, address: str, restarting: bool = False
) -> PeerSettings:
    b = config.bgp
    return PeerSettings(
        address=address,
        asn=p.asn,
        local_address=str(p.local_address) if p.local_address else None,
        port=p.port,
        passive=p.passive,
        password=p.password or None,
        ttl_security=p.ttl_security,
        multihop=p.multihop,
        hold_time=p.hold_time,
        keepalive=p.keepalive,
        connect_retry=float(b.connect_retry),
        connect_retry_max=float(max(p.connect_retry_max, b.connect_retry)),
        families=p.families,
        add_path=p.add_path,
        graceful_restart=p.graceful_restart,
        restart_time=b.restart_time,
        restarting=restarting and p.graceful_restart,
        long_lived_stale_time=p.long_lived_stale_time,
        shutdown_message=p.shutdown_message,
        enforce_first_as=p.enforce_first_as,
        local_as=p.local_asn,
        **_unnumbered(p),
    )


def _unnumbered(p: PeerOptions) -> dict[str, Any]:
    """An unnumbered `[[bgp.peer]]`'s link, how its neighbour is found, RFC 8950."""
    if not isinstance(p, cfg.Peer):
        return {}
    return {
        "interface": p.interface,
        "discovery": p.neighbor_discovery if p.discovers else None,
        "discovery_interval": float(p.neighbor_discovery_interval),
        "extended_nexthop": p.extended_nexthop,
    }


def mesh_family(config: Config) -> int:
    """The IP version the node's mesh and reflector sessions run over: IPv4 when the node
    has an IPv4 address (IPv6 routes ride along with their IPv6 next hop, RFC 4760 §3),
    IPv6 in an IPv6-only cluster."""
    return 4 if config.node.address is not None else 6


def mesh_options(config: Config, m: MeshPeer) -> PeerOptions:
    """A registry-derived peer's options. Mesh and reflection: `[bgp]`'s, both policies
    `all` (iBGP rules and reflection decide what actually goes), each family the node has
    an address of (IPv4 unicast needs an IPv4 next hop, RFC 4271 §5.1.3; IPv6 an IPv6 one,
    RFC 2545 §3), `bgp.mesh_password`. A peer_selector rule's: its own, with the
    chosen node's AS and the dial direction, `bgp.mesh_password` unless it sets one."""
    b = config.bgp
    if m.rule is not None:
        # A peer_selector rule's own options, for the node it chose (podbgp.topology).
        return dataclasses.replace(
            m.rule, asn=m.asn, passive=m.passive, password=m.rule.password or b.mesh_password
        )
    node = config.node
    families = [f for f, a in ((Family.IPV4_UNICAST, node.address),
                               (Family.IPV6_UNICAST, node.address6)) if a is not None]  # fmt: skip
    return PeerOptions(
        asn=m.asn,
        passive=m.passive,
        password=b.mesh_password,
        route_reflector_client=m.route_reflector_client,
        families=tuple(families),
        import_policy="all",
        export_policy="all",
        hold_time=b.hold_time,
        keepalive=b.keepalive,
        connect_retry_max=b.connect_retry_max,
        graceful_restart=b.graceful_restart,
        long_lived_stale_time=b.long_lived_stale_time,
        add_path=b.add_path,
        bfd=b.bfd,
        bfd_interval_ms=b.bfd_interval_ms,
        bfd_multiplier=b.bfd_multiplier,
    )


# ---------------------------------------------------------------- rib


def rib_settings(config: Config, restarting: bool) -> RibSettings:
    b = config.bgp
    return RibSettings(
        local_as=config.node.asn,
        router_id=config.node.router_id,
        cluster_id=b.route_reflector_cluster_id,
        max_paths=b.max_paths,
        always_compare_med=b.always_compare_med,
        honor_graceful_shutdown=b.honor_graceful_shutdown,
        graceful_restart=b.graceful_restart,
        restart_time=b.restart_time,
        deferral_time=float(b.deferral_time),
        restarting=restarting,
        max_prefix_restart=float(b.max_prefixes_restart),
        local_addresses=frozenset(
            i.ip for i in (config.node.address, config.node.address6) if i is not None
        ),
    )


def peer_policy(address: str, p: PeerOptions, policies: Mapping[str, RibPolicy]) -> PeerPolicy:
    """What the RIB applies to one peer; `policies` by name (`rib_policies`)."""
    send = p.add_path_send_max if p.add_path.send else 0
    if p.add_path.send and send == 0:
        send = -1  # all paths
    return PeerPolicy(
        address=ipaddress.ip_address(address),
        asn=p.asn,
        import_policy=policies[p.import_policy],
        export_policy=policies[p.export_policy],
        route_reflector_client=p.route_reflector_client,
        keep_original_next_hop=p.keep_original_next_hop,
        max_prefixes=p.max_prefixes,
        add_path_send=send,
        add_path_receive=p.add_path.receive,
        families=p.families,
        soft_reconfiguration=p.soft_reconfiguration,
        local_as=p.local_asn,
        allow_own_as=p.allow_own_as,
    )


def rib_policies(config: Config) -> dict[str, RibPolicy]:
    """The built-ins `all`, `none`, `local` and every `[[policy]]`, by name."""
    out = {name: builtin(name) for name in ("all", "none", "local")}
    out.update((p.name, rib_policy(p)) for p in config.policies)
    return out


def rib_policy(p: cfg.Policy) -> RibPolicy:
    """A `[[policy]]` as the RIB evaluates it (first matching rule wins)."""
    return RibPolicy(
        p.name,
        tuple(_rule(r) for r in p.rules),
        default_accept=p.default_action == cfg.PolicyAction.ACCEPT,
    )


def _rule(r: cfg.Rule) -> RibRule:
    return RibRule(_match(r.match), r.action == cfg.PolicyAction.ACCEPT, _set(r.set))


def _match(m: cfg.Match) -> RibMatch:
    any_length = RibMatch()
    prefix, ge, le = (
        (None, any_length.ge, any_length.le)
        if m.prefix is None
        else prefix_condition(m.prefix, m.ge, m.le)
    )
    return RibMatch(
        prefix=prefix,
        ge=ge,
        le=le,
        communities=() if m.community is None else (m.community.packed,),
        large_communities=() if m.large_community is None else (_large(m.large_community),),
        as_path=m.as_path,
        family=m.family,
        neighbor=None if m.neighbor is None else neighbor_condition(m.neighbor),
        origin=None if m.origin is None else int(m.origin),
    )


def _set(s: cfg.SetActions) -> RibSet:
    return RibSet(
        local_pref=s.local_pref,
        med=s.med,
        community_add=tuple(c.packed for c in s.community_add),
        community_remove=tuple(c.packed for c in s.community_remove),
        large_community_add=tuple(_large(c) for c in s.large_community_add),
        large_community_remove=tuple(_large(c) for c in s.large_community_remove),
        as_path_prepend=s.as_path_prepend,
        next_hop=s.next_hop,
    )


def _large(c: cfg.LargeCommunity) -> tuple[int, int, int]:
    return (c.global_admin, c.local1, c.local2)


# ---------------------------------------------------------------- ipam, datastore, fib


def ipam_config(config: Config) -> ipam.IpamConfig:
    """`[ipam]` as the IPAM package takes it."""
    return pools_config(config.ipam)


def pools_config(ic: IPAMConfig) -> ipam.IpamConfig:
    """An `[ipam]` table (validated by `podbgp.config`) as the IPAM package takes it."""
    pools = tuple(
        ipam.Pool(
            cidr=p.cidr,
            block_size=p.block_size,
            ipip_mode=p.ipip_mode.value,
            vxlan_mode=p.vxlan_mode.value,
            nat_outgoing=p.nat_outgoing,
            disabled=p.disabled,
            disable_bgp_export=p.disable_bgp_export,
            node_selector=p.node_selector,
            namespace_selector=p.namespace_selector,
            allowed_uses=p.allowed_uses,
        )
        for p in ic.pools
    )
    reservations = tuple(ipam.Reservation(c, r.name) for r in ic.reservations for c in r.cidrs)
    return ipam.IpamConfig(
        pools=pools,
        strict_affinity=ic.strict_affinity,
        max_blocks_per_node=ic.max_blocks_per_node,
        reservations=reservations,
    )


def datastore_url(config: Config) -> str:
    return datastore_url_of(config.datastore)


def datastore_url_of(ds: DatastoreConfig) -> str:
    """The ``--datastore`` URL of a ``[datastore]`` table."""
    if str(ds.kind) == "etcd":
        from ipam.store.etcd import TlsFiles

        return (
            "etcd:" + ",".join(ds.endpoints) + TlsFiles(ds.ca_file, ds.cert_file, ds.key_file).query
        )
    return f"sqlite:{ds.path}"


def cluster_id_file(config: Config) -> str:
    """Where this node records the cluster ID it joined (`ipam.identity`).

    ``datastore.cluster_id_file``, or ``cluster-id`` in the control socket's
    directory: per node even when several nodes share a host (the lab), and
    never inside the store it vouches for. The default directory (/run) is
    emptied by a reboot, after which the node records the ID at its next
    contact with the store; set the key to a persistent path to keep it.
    """
    return cluster_id_file_of(config.datastore, config.api)


def cluster_id_file_of(ds: DatastoreConfig, api: APIConfig) -> str:
    """`cluster_id_file` from the two sections it depends on."""
    if ds.cluster_id_file:
        return ds.cluster_id_file
    return str(Path(api.socket).parent / "cluster-id")


def uses_vxlan(config: Config) -> bool:
    return any(p.vxlan_mode is not Encap.NEVER for p in config.ipam.pools)


def uses_vxlan4(config: Config) -> bool:
    """An IPv4 pool is VXLAN-encapsulated: the node needs an IPv4 VTEP address."""
    return any(p.vxlan_mode is not Encap.NEVER and p.cidr.version == 4 for p in config.ipam.pools)


def lifecycle_timing(config: Config) -> Timing:
    """When a lapsed node is gone (graceful-restart time + grace), removed and forgotten
    (`ipam.lifecycle`)."""
    restart = config.bgp.restart_time if config.bgp.enabled and config.bgp.graceful_restart else 0
    gone = float(restart + config.ipam.node_gone_grace)
    return Timing(gone_after=gone, remove_after=max(gone, float(config.ipam.node_gone_after)),
                  forget_after=float(config.ipam.node_forget_after))  # fmt: skip


def registry_record(config: Config, vtep_address: str = "") -> ipam.Node:
    n = config.node
    return ipam.Node(
        name=n.name,
        asn=n.asn,
        address=str(n.address) if n.address else "",
        address6=str(n.address6) if n.address6 else "",
        vtep_mac=vtep_mac(n.name) if vtep_address or uses_vxlan(config) else "",
        vtep_address=vtep_address,
        route_reflector_cluster_id=str(config.bgp.route_reflector_cluster_id or ""),
        labels=dict(n.labels),
    )


@functools.lru_cache(maxsize=4)
def _pool_table(pools: tuple[Pool, ...]) -> PoolTable:
    return PoolTable((p.cidr, p.ipip_mode, p.vxlan_mode) for p in pools)


def pool_table(config: Config) -> PoolTable:
    """The pools' encapsulation modes as a longest-match table (built once per pool set)."""
    return _pool_table(config.ipam.pools)


def remote_route(config: Config, prefix: IPNetwork, next_hops: Iterable[str]) -> RemoteRoute:
    """The FIB route to a remote prefix, encapsulated as its pool says (none outside pools).

    For the datastore-fed routes (VXLAN without BGP); BGP's best paths take the
    bulk path in `podbgp.fibfeed`."""
    fprefix = Prefix(prefix.network_address.packed, prefix.prefixlen)
    ipip, vxlan = pool_table(config).modes(fprefix.addr, fprefix.length)
    return RemoteRoute(fprefix, tuple(sorted(pack_addr(h) for h in next_hops)), ipip, vxlan)


def fib_settings(config: Config) -> FibConfig:
    """`[fib]` as the reconciler takes it."""
    fc = config.fib
    return FibConfig(fc.table, fc.protocol, float(fc.resync_interval), nexthops=fc.nexthops)


def service_ranges(config: Config) -> tuple[ServiceRange, ...]:
    """`[[service]]` as `podbgp.services` takes it."""
    return tuple(
        ServiceRange(s.cidr, tuple(c.packed for c in s.communities)) for s in config.services
    )


def adornments(config: Config) -> Adornments:
    """`[[bgp.prefix_advertisement]]` as `podbgp.origins` takes it."""
    return Adornments(
        (a.cidr, tuple(c.packed for c in a.communities), tuple(map(_large, a.large_communities)))
        for a in config.bgp.prefix_advertisements
    )
