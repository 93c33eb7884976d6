"""Typed settings the composition root hands the RIB, and the facts of one session.

``RibSettings`` are node-wide (CONFIG.md ``[node]`` and ``[bgp]``); ``PeerPolicy``
is one ``[[bgp.peer]]`` (or a dynamic neighbour of a ``[[bgp.listen_range]]``);
``SessionFacts`` is what the OPEN exchange negotiated with that peer
(RFC 4760 families, RFC 7911 ADD-PATH, RFC 4724 graceful restart, RFC 7313
enhanced route refresh). The session layer's own types are translated into
these by ``rib.adapter`` so the RIB core never depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from bgp.wire.constants import Family
from rib.policy import Policy, builtin

__all__ = ["PeerPolicy", "RibSettings", "SessionFacts"]

Address = IPv4Address | IPv6Address
_ZERO = IPv4Address(0)


@dataclass(frozen=True, slots=True)
class RibSettings:
    """Node-wide RIB behaviour.

    ``cluster_id`` set (or any peer marked ``route_reflector_client``) makes
    this node a route reflector (RFC 4456 §7: the cluster id defaults to the
    router id). ``deferral_time`` bounds how long a restarting speaker waits
    for its peers' End-of-RIB before selecting best paths (RFC 4724 §4.1).
    ``restarting`` is true when the daemon comes back from a graceful restart.
    ``local_addresses`` are the node's own addresses (``[node] address``/``address6``):
    a received route whose next hop is one of them, or the session's local
    address, is ignored (RFC 4271 §6.3, §9.1.2). ``honor_graceful_shutdown``:
    a received route carrying GRACEFUL_SHUTDOWN gets LOCAL_PREF 0 after import
    policy (RFC 8326 §4.1), so traffic leaves a draining neighbour.
    """

    local_as: int
    router_id: IPv4Address
    cluster_id: IPv4Address | None = None
    max_paths: int = 8
    always_compare_med: bool = False
    default_local_pref: int = 100
    graceful_restart: bool = True
    restart_time: int = 120
    deferral_time: float = 360.0
    stale_time: float = 360.0
    restarting: bool = False
    max_prefix_restart: float = 60.0
    local_addresses: frozenset[Address] = frozenset()
    honor_graceful_shutdown: bool = True

    @classmethod
    def make(cls, local_as: int, router_id: str, **kw: Any) -> RibSettings:
        """Convenience constructor taking the router id (and cluster id) as text."""
        cid = kw.pop("cluster_id", None)
        cluster = IPv4Address(str(cid)) if cid else None
        return cls(local_as, IPv4Address(router_id), cluster, **kw)


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """One configured peer, as far as the RIB cares (CONFIG.md ``[[bgp.peer]]``).

    ``add_path_send``: 0 sends one (the best) path per prefix; N > 0 sends the
    best N paths with path identifiers; -1 sends all (RFC 7911 §3).
    ``soft_reconfiguration`` keeps pre-policy routes so a changed import policy
    can be re-applied without a ROUTE-REFRESH.
    ``local_as`` (0 = ours): the AS the session presents (``bgp.settings.PeerSettings``);
    routes sent to the peer carry it, and only it, where ours would be prepended (RFC
    7705 §3.2, "replace" the global AS), and routes from the peer are taken as they
    come, without it (§3.1 with "no prepend"); an AS_PATH holding it has looped too.
    ``allow_own_as``: routes whose AS_PATH holds our AS (or ``local_as``) up to this
    many times are accepted (RFC 4271 §9.1.2's loop check relaxed, FRR's allowas-in).
    """

    address: Address
    asn: int
    import_policy: Policy = field(default_factory=lambda: builtin("all"))
    export_policy: Policy = field(default_factory=lambda: builtin("local"))
    route_reflector_client: bool = False
    keep_original_next_hop: bool = False
    max_prefixes: int = 0
    add_path_send: int = 0
    add_path_receive: bool = False
    families: tuple[Family, ...] = (Family.IPV4_UNICAST, Family.IPV6_UNICAST)
    soft_reconfiguration: bool = False
    name: str = ""
    local_as: int = 0
    allow_own_as: int = 0

    @classmethod
    def make(cls, address: str, asn: int, **kw: Any) -> PeerPolicy:
        """Convenience constructor taking the address as text."""
        return cls(ip_address(address), asn, **kw)

    @property
    def key(self) -> str:
        """The peer's identity in the RIB and in ``show routes --peer``."""
        return self.name or str(self.address)


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What an established session negotiated (filled in by ``rib.adapter``).

    ``gr_families`` maps each family the peer preserves across its restart to
    its Forwarding State bit (RFC 4724 §3); ``gr_restart_time`` 0 with empty
    ``gr_families`` means the peer does not do graceful restart. ``llgr`` maps
    each family of the peer's long-lived graceful restart capability (RFC 9494
    §3) to (long-lived stale time, F bit); the time is already capped by ours,
    so 0 means we keep nothing past the restart time, though the peer may still
    be sent LLGR_STALE routes (§4.3). ``local_address``
    is our end of the TCP connection: the next hop we announce as "self".
    ``link_local`` is our end when that is an IPv6 link-local address (an
    unnumbered session): it goes beside the global ``local_address6`` as the
    second MP next hop (RFC 2545 §3). ``extended_nexthop``: both sides may carry
    IPv4 routes with an IPv6 next hop (RFC 8950).
    """

    families: tuple[Family, ...] = (Family.IPV4_UNICAST,)
    bgp_id: IPv4Address = _ZERO
    as4: bool = True
    add_path_rx: tuple[Family, ...] = ()
    add_path_tx: tuple[Family, ...] = ()
    gr_restart_time: int = 0
    gr_families: dict[Family, bool] = field(default_factory=dict)
    gr_restarting: bool = False
    enhanced_refresh: bool = False
    local_address: Address | None = None
    local_address6: IPv6Address | None = None
    link_local: IPv6Address | None = None
    extended_nexthop: bool = False
    max_message_len: int = 4096
    gr_capable: bool | None = None
    llgr: dict[Family, tuple[int, bool]] = field(default_factory=dict)

    @property
    def does_gr(self) -> bool:
        """The peer advertised the graceful-restart capability (RFC 4724 §3).

        ``gr_capable`` when the adapter knows it, else inferred from the other fields.
        """
        if self.gr_capable is not None:
            return self.gr_capable
        return self.gr_restart_time > 0 or bool(self.gr_families)
