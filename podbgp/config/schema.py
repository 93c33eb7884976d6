"""The config's typed form: frozen dataclasses and the enums they use.

Each default is stated here and only here; the readers take it from the dataclass.
Where a lower layer owns a concept its type is used as is (`bgp`'s `Family`,
`Origin` and `AddPathMode`, `fib`'s `Encap`); `TOML_NAMES` gives their spelling in
the file, which the reader accepts and `to_dict` prints. Only what exists nowhere
below (`DatastoreKind`, `PolicyAction`) is a `StrEnum` of its own.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bgp.ndp import Discovery
from bgp.settings import link_peer_address
from bgp.wire.capabilities import AddPathMode
from bgp.wire.constants import Family, Origin
from fib.model import Encap
from ipam.model import PoolUse, selector_matches

if TYPE_CHECKING:
    from podbgp.config.diff import ConfigDiff

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NextHop = Literal["self", "keep"] | ipaddress.IPv4Address | ipaddress.IPv6Address


class ConfigError(Exception):
    """The configuration is invalid; `errors` lists every problem, each naming its key."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__("\n".join(self.errors))


# The TOML spelling of each lower-layer enum the config uses, in the order error
# messages list them.
FAMILY_NAMES: dict[str, Family] = {"ipv4": Family.IPV4_UNICAST, "ipv6": Family.IPV6_UNICAST}
ADD_PATH_NAMES: dict[str, AddPathMode] = {m.name.lower(): m for m in AddPathMode}
ENCAP_NAMES: dict[str, Encap] = {m.value: m for m in Encap}  # Calico's spelling
ORIGIN_NAMES: dict[str, Origin] = {m.name.lower(): m for m in Origin}
TOML_NAMES: dict[type[Enum], dict[str, Any]] = {
    Family: FAMILY_NAMES,
    AddPathMode: ADD_PATH_NAMES,
    Encap: ENCAP_NAMES,
    Origin: ORIGIN_NAMES,
}


def toml_name(value: Enum) -> str:
    """How `value` is written in the config file (`Family.IPV4_UNICAST` is "ipv4")."""
    if isinstance(value, StrEnum):
        return str(value)
    return next(k for k, v in TOML_NAMES[type(value)].items() if v is value)


class DatastoreKind(StrEnum):
    SQLITE = "sqlite"
    ETCD = "etcd"


class PolicyAction(StrEnum):
    """What a `[[policy]]` rule does with a route it matches (not RFC 7606's `Action`)."""

    ACCEPT = "accept"
    REJECT = "reject"


@dataclass(frozen=True, slots=True, order=True)
class Community:
    """An RFC 1997 community, written `A:B` (or a well-known name)."""

    asn: int
    value: int

    @property
    def packed(self) -> int:
        """The 32-bit wire value."""
        return (self.asn << 16) | self.value

    def __str__(self) -> str:
        return f"{self.asn}:{self.value}"


@dataclass(frozen=True, slots=True, order=True)
class LargeCommunity:
    """An RFC 8092 large community, written `A:B:C`."""

    global_admin: int
    local1: int
    local2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"


class DetectMethod(StrEnum):
    """How `node.address = "auto"` finds the address (Calico's IP autodetection methods)."""

    FIRST_FOUND = "first-found"  # the first global address, skipping container/virtual links
    INTERFACE = "interface"  # the first address on an interface whose name matches
    SKIP_INTERFACE = "skip-interface"  # first-found, also skipping names that match
    CAN_REACH = "can-reach"  # the source address the kernel would use towards a destination
    CIDR = "cidr"  # the first address inside one of the listed prefixes


@dataclass(frozen=True, slots=True)
class AddressDetection:
    """One detection method with its argument, written `METHOD[=ARG]` in the file."""

    method: DetectMethod = DetectMethod.FIRST_FOUND
    patterns: tuple[re.Pattern[str], ...] = ()  # interface, skip-interface (full match)
    destination: IPAddress | None = None  # can-reach
    cidrs: tuple[IPNetwork, ...] = ()  # cidr

    def __str__(self) -> str:
        args = [p.pattern for p in self.patterns] + [str(c) for c in self.cidrs]
        if self.destination is not None:
            args.append(str(self.destination))
        return f"{self.method}={','.join(args)}" if args else str(self.method)


# `router_id` when it is to come from an address that `"auto"` has yet to find.
ROUTER_ID_FROM_ADDRESS = ipaddress.IPv4Address(0)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    asn: int
    router_id: ipaddress.IPv4Address
    address: ipaddress.IPv4Interface | None = None
    address6: ipaddress.IPv6Interface | None = None
    # Labels the pools' `node_selector` matches (Calico's node labels), sorted pairs.
    labels: tuple[tuple[str, str], ...] = ()
    # Set when the file says `address = "auto"` (`address6 = "auto"`): how to find it.
    # `podbgp.underlay` fills `address` in before anything uses it; until then it is None
    # and `router_id` may be `ROUTER_ID_FROM_ADDRESS`.
    address_detection: AddressDetection | None = None
    address6_detection: AddressDetection | None = None

    @property
    def has_address(self) -> bool:
        """An IPv4 underlay address is configured or will be detected."""
        return self.address is not None or self.address_detection is not None

    @property
    def has_address6(self) -> bool:
        return self.address6 is not None or self.address6_detection is not None


@dataclass(frozen=True, slots=True)
class BGPConfig:
    enabled: bool = True
    listen: tuple[IPAddress, ...] = (
        ipaddress.IPv4Address("0.0.0.0"),
        ipaddress.IPv6Address("::"),
    )
    port: int = 179
    hold_time: int = 90
    keepalive: int = 30
    connect_retry: int = 5
    connect_retry_max: int = 120
    mesh: bool = True
    # TCP MD5 (RFC 2385) on every session derived from the registry (mesh, reflection,
    # peer_selector); "" = none.
    mesh_password: str = ""
    route_reflector_cluster_id: ipaddress.IPv4Address | None = None
    # A node label whose value is the node's reflector group (a rack); "" = one group.
    route_reflector_group_label: str = ""
    # The node label whose value makes a node a reflector with that cluster ID (when
    # `route_reflector_cluster_id` is not set), so reflector node files stay identity only.
    route_reflector_cluster_id_label: str = ""
    graceful_restart: bool = True
    restart_time: int = 120
    long_lived_stale_time: int = 0
    add_path: AddPathMode = AddPathMode.OFF
    max_paths: int = 8
    always_compare_med: bool = False
    honor_graceful_shutdown: bool = True
    max_prefixes_restart: int = 60
    deferral_time: int = 360
    bfd: bool = False
    bfd_interval_ms: int = 300
    bfd_multiplier: int = 3
    # `[[bgp.peer]]` in file order (error paths index it): static peers and peer_selector rules.
    peers: tuple[Peer | SelectedPeer, ...] = ()
    originate: tuple[Originate, ...] = ()
    listen_ranges: tuple[ListenRange, ...] = ()
    prefix_advertisements: tuple[PrefixAdvertisement, ...] = ()

    @property
    def is_route_reflector(self) -> bool:
        return self.route_reflector_cluster_id is not None

    @property
    def static_peers(self) -> tuple[Peer, ...]:
        """The `[[bgp.peer]]` entries with an address (on every node or not)."""
        return tuple(p for p in self.peers if isinstance(p, Peer))

    @property
    def selected_peers(self) -> tuple[SelectedPeer, ...]:
        """The `[[bgp.peer]]` entries with a `peer_selector`."""
        return tuple(p for p in self.peers if isinstance(p, SelectedPeer))


# What a peer inherits from `[bgp]` when it says nothing: `[bgp]`'s own defaults.
_BGP = BGPConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOptions:
    """Keys shared by `[[bgp.peer]]` and `[[bgp.listen_range]]`."""

    asn: int
    local_address: IPAddress | None = None
    port: int = 179
    passive: bool = False
    password: str = ""
    ttl_security: int = 0
    multihop: int = 1
    route_reflector_client: bool = False
    keep_original_next_hop: bool = False
    families: tuple[Family, ...] = (Family.IPV4_UNICAST, Family.IPV6_UNICAST)
    import_policy: str = "all"
    export_policy: str = "local"
    max_prefixes: int = 0
    shutdown_message: str = ""
    # Defaults come from [bgp] (docs/configuration.md).
    hold_time: int = _BGP.hold_time
    keepalive: int = _BGP.keepalive
    connect_retry_max: int = _BGP.connect_retry_max
    graceful_restart: bool = _BGP.graceful_restart
    long_lived_stale_time: int = _BGP.long_lived_stale_time
    add_path: AddPathMode = _BGP.add_path
    add_path_send_max: int = 0
    soft_reconfiguration: bool = False
    # RFC 4271 §6.3 (a MAY): an eBGP route whose AS_PATH does not start with the peer's
    # AS is withdrawn; off for route servers, which do not prepend (RFC 7947 §2.2).
    enforce_first_as: bool = True
    # BFD (RFC 5880/5881 single hop) for the session; defaults come from [bgp].
    bfd: bool = _BGP.bfd
    bfd_interval_ms: int = _BGP.bfd_interval_ms
    bfd_multiplier: int = _BGP.bfd_multiplier
    # The AS this node presents to an eBGP peer (OPEN) and the only one it prepends
    # towards it; 0 = node.asn (RFC 7705 §3.1 no-prepend, §3.2 replace; FRR's
    # `local-as N no-prepend replace-as`).
    local_asn: int = 0
    # Accept routes whose AS_PATH holds our AS up to this many times (RFC 4271 §9.1.2
    # loop detection relaxed, FRR's `allowas-in N`); 0 = the RFC's rule.
    allow_own_as: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer(PeerOptions):
    """A static neighbour (`[[bgp.peer]]` with `address`, or `interface`).

    Unnumbered (`interface` set): the session runs between the link's IPv6
    link-local addresses. `address` is then the neighbour's link-local address
    with the interface as zone, or, when it is to be found on the link
    (`neighbor_discovery`), `bgp.settings.link_peer_address(interface)`.
    """

    address: IPAddress
    # The nodes that have this peer, matched against `node.labels`.
    node_selector: str = "all()"
    interface: str = ""
    neighbor_discovery: Discovery = Discovery.RA
    neighbor_discovery_interval: int = 10
    extended_nexthop: bool = False

    @property
    def discovers(self) -> bool:
        """The neighbour's address is found on the link, not configured."""
        return bool(self.interface) and str(self.address) == link_peer_address(self.interface)

    @property
    def session_settings(self) -> Peer:
        """This peer with its policies and BFD blanked: what a session reset depends on.

        BFD runs beside the session (podbgp.bfdnode), so a reload changes it without
        a reset."""
        return dataclasses.replace(
            self, import_policy="", export_policy="", bfd=False, bfd_interval_ms=0,
            bfd_multiplier=0,
        )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectedPeer(PeerOptions):
    """In-cluster peers chosen by label (`[[bgp.peer]]` with `peer_selector`): every
    other node whose registry labels match is a peer at its registry address
    (`podbgp.topology.selected_peers`); `asn` 0 is that node's own AS."""

    peer_selector: str
    node_selector: str = "all()"
    asn: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenRange(PeerOptions):
    """Dynamic neighbours accepted from `prefix` (`[[bgp.listen_range]]`); always passive."""

    prefix: IPNetwork
    passive: bool = True


@dataclass(frozen=True, slots=True)
class Originate:
    prefix: IPNetwork
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    next_hop: NextHop = "self"


@dataclass(frozen=True, slots=True)
class PrefixAdvertisement:
    """`[[bgp.prefix_advertisement]]`: communities added to every prefix this node
    originates inside `cidr` (its blocks, borrowed addresses, services, static ones),
    as Calico's BGPConfiguration `prefixAdvertisements` does."""

    cidr: IPNetwork
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    """A `[[service]]` range every node announces (`podbgp.services`)."""

    cidr: IPNetwork
    name: str = ""
    communities: tuple[Community, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """What a policy rule matches; every given condition must hold, none given matches all.

    `prefix` matches routes inside it whose length is within `ge..le`; without
    either the length must equal the prefix's, with only `ge` it runs up to the
    family's maximum, with only `le` it starts at the prefix's length.

    `as_path` is searched (`re.search`) in the AS path written as ASNs separated by
    single spaces, e.g. "64512 65000"; an empty path is "".
    """

    prefix: IPNetwork | None = None
    ge: int | None = None
    le: int | None = None
    community: Community | None = None
    large_community: LargeCommunity | None = None
    as_path: re.Pattern[str] | None = None
    family: Family | None = None
    neighbor: IPNetwork | None = None
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class SetActions:
    local_pref: int | None = None
    med: int | None = None
    community_add: tuple[Community, ...] = ()
    community_remove: tuple[Community, ...] = ()
    large_community_add: tuple[LargeCommunity, ...] = ()
    large_community_remove: tuple[LargeCommunity, ...] = ()
    as_path_prepend: int = 0
    next_hop: NextHop | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    match: Match = Match()
    action: PolicyAction = PolicyAction.ACCEPT
    set: SetActions = SetActions()


@dataclass(frozen=True, slots=True)
class Policy:
    """Ordered rules, first match wins; `default_action` when none matches."""

    name: str
    rules: tuple[Rule, ...] = ()
    default_action: PolicyAction = PolicyAction.REJECT


@dataclass(frozen=True, slots=True)
class DatastoreConfig:
    kind: DatastoreKind = DatastoreKind.SQLITE
    path: str = "/var/lib/podbgp/podbgp.db"
    endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    create: bool = False  # `podbgp run` creates a missing store (labs); else only `datastore init`
    cluster_id_file: str = ""  # the cluster this node joined; "" = cluster-id beside api.socket
    # TLS to etcd (https:// endpoints): the CA that signed etcd's certificate ("" = the
    # system's CAs) and this node's client certificate and key (etcd --client-cert-auth)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True, slots=True)
class Pool:
    cidr: IPNetwork
    block_size: int
    ipip_mode: Encap = Encap.NEVER
    vxlan_mode: Encap = Encap.NEVER
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool = False
    node_selector: str = "all()"
    # Which pods' namespaces may take addresses from the pool (see docs/configuration.md).
    namespace_selector: str = "all()"
    allowed_uses: tuple[PoolUse, ...] = (PoolUse.WORKLOAD, PoolUse.TUNNEL)  # Calico's default


@dataclass(frozen=True, slots=True)
class Reservation:
    """`[[ipam.reservation]]`: addresses IPAM never hands out."""

    cidrs: tuple[IPNetwork, ...]
    name: str = ""


@dataclass(frozen=True, slots=True)
class IPAMConfig:
    strict_affinity: bool = False
    max_blocks_per_node: int = 20
    pools: tuple[Pool, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    # Node lifecycle (ipam.lifecycle) and leak reclaim (ipam.leaks), in seconds.
    node_lease_ttl: int = 15
    node_gone_grace: int = 60
    node_gone_after: int = 86400
    node_forget_after: int = 30 * 86400  # 0: removed nodes are kept for ever
    leak_grace: int = 300
    leak_check_interval: int = 30


@dataclass(frozen=True, slots=True)
class FIBConfig:
    enabled: bool = True
    table: int = 254
    protocol: int = 80
    resync_interval: int = 90
    nexthops: bool = True  # kernel nexthop objects for shared/ECMP hops; False = inline hops
    # MTUs; 0 = derived from the underlay interface's MTU (`podbgp.underlay`).
    pod_mtu: int = 0
    ipip_mtu: int = 0
    vxlan_mtu: int = 0


@dataclass(frozen=True, slots=True)
class APIConfig:
    socket: str = "/run/podbgp/podbgp.sock"
    metrics: tuple[str, int] | None = ("127.0.0.1", 9469)  # (host, port); None = off


class RouteMonitoring(StrEnum):
    """Which Adj-RIB-In a BMP station gets as Route Monitoring (RFC 7854 §4.6)."""

    NONE = "none"
    PRE_POLICY = "pre-policy"
    POST_POLICY = "post-policy"
    BOTH = "both"

    @property
    def pre(self) -> bool:
        return self in (RouteMonitoring.PRE_POLICY, RouteMonitoring.BOTH)

    @property
    def post(self) -> bool:
        return self in (RouteMonitoring.POST_POLICY, RouteMonitoring.BOTH)


@dataclass(frozen=True, slots=True)
class BMPStation:
    """One `[[bmp.station]]`: a BMP collector podbgp connects to (RFC 7854 §3.2)."""

    address: IPAddress
    port: int = 1790
    route_monitoring: RouteMonitoring = RouteMonitoring.PRE_POLICY
    statistics_interval: int = 60  # seconds; 0 = no Statistics Reports
    queue_limit: int = 100_000  # messages waiting for the station; over it: reconnect
    reconnect_max: int = 60  # seconds: the longest wait between connection attempts


@dataclass(frozen=True, slots=True)
class BMPConfig:
    stations: tuple[BMPStation, ...] = ()
    sys_name: str = ""  # "" = node.name
    sys_descr: str = ""  # "" = "podbgp VERSION"


@dataclass(frozen=True, slots=True)
class MRTConfig:
    """`[mrt]`: periodic table dumps (on-demand ones need no config)."""

    directory: str = "/var/lib/podbgp/mrt"
    table_dump_interval: int = 0  # seconds; 0 = no periodic dumps
    file_pattern: str = "rib.%Y%m%d.%H%M%S.mrt"  # strftime, UTC
    keep: int = 24  # newest files kept in `directory`; 0 = keep every file
    update_dump_interval: int = 0  # seconds per BGP4MP update file; 0 = no update dumps
    update_file_pattern: str = "updates.%Y%m%d.%H%M%S.mrt"  # strftime, UTC


@dataclass(frozen=True, slots=True)
class Config:
    node: NodeConfig
    bgp: BGPConfig = BGPConfig()
    policies: tuple[Policy, ...] = ()
    datastore: DatastoreConfig = DatastoreConfig()
    ipam: IPAMConfig = IPAMConfig()
    fib: FIBConfig = FIBConfig()
    api: APIConfig = APIConfig()
    bmp: BMPConfig = BMPConfig()
    mrt: MRTConfig = MRTConfig()
    services: tuple[Service, ...] = ()

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        from podbgp.config import load_config  # the reader builds on this module

        return load_config(path)

    @classmethod
    def from_text(cls, text: str, source: str = "<config>") -> Config:
        from podbgp.config import load_config_text

        return load_config_text(text, source)

    @property
    def applied_peers(self) -> tuple[Peer, ...]:
        """The static peers whose `node_selector` picks this node (by `node.labels`)."""
        labels = dict(self.node.labels)
        return tuple(p for p in self.bgp.static_peers if selector_matches(p.node_selector, labels))

    def policy(self, name: str) -> Policy:
        """The `[[policy]]` called `name` (KeyError if there is none)."""
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def diff(self, new: Config) -> ConfigDiff:
        """What a reload from this config to `new` must do (see `diff_configs`)."""
        from podbgp.config.diff import diff_configs

        return diff_configs(self, new)

    def to_dict(self, *, reveal_secrets: bool = True) -> dict[str, Any]:
        """The effective config in CONFIG.md's shape (TOML keys, plain values)."""
        from podbgp.config.dump import _dump_config

        return _dump_config(self, reveal_secrets)

    def to_json(self, *, reveal_secrets: bool = True) -> str:
        return json.dumps(self.to_dict(reveal_secrets=reveal_secrets), indent=2)
