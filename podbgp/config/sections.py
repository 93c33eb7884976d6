"""Section readers: `[node]`, `[bgp]` (peers, listen ranges, originate),
`[datastore]`, `[ipam]`, `[fib]` and `[api]`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fib.model import Encap
from ipam.block import default_block_size
from ipam.model import PoolUse, check_selector
from podbgp.config.peers import (
    _check_keepalive,
    _hold_time,
    _Inherit,
    _label_key,
    _read_bfd,
    _read_listen_range,
    _read_peer,
)
from podbgp.config.reader import (
    _REQUIRED,
    AS_MAX,
    LLGR_TIME_MAX,
    RESTART_TIME_MAX,
    _address,
    _asn,
    _cluster_id,
    _community,
    _done,
    _endpoint,
    _enum,
    _fib_protocol,
    _int_range,
    _interface,
    _Invalid,
    _labels,
    _large_community,
    _metrics,
    _named,
    _next_hop,
    _node_name,
    _non_empty,
    _overlaps,
    _password,
    _port,
    _prefix,
    _regex,
    _router_id,
    _socket_path,
    _Table,
    _type_name,
    default_of,
    show,
)
from podbgp.config.schema import (
    ADD_PATH_NAMES,
    ENCAP_NAMES,
    ROUTER_ID_FROM_ADDRESS,
    AddressDetection,
    APIConfig,
    BGPConfig,
    DatastoreConfig,
    DatastoreKind,
    DetectMethod,
    FIBConfig,
    IPAddress,
    IPAMConfig,
    ListenRange,
    NodeConfig,
    Originate,
    Peer,
    Pool,
    PrefixAdvertisement,
    Reservation,
    SelectedPeer,
    toml_name,
)


def _read_node(t: _Table) -> NodeConfig | None:
    name = t.get("name", str, _REQUIRED, _node_name)
    asn = t.get("asn", int, _REQUIRED, _asn)
    address, detect = _node_address(t, "address", 4)
    address6, detect6 = _node_address(t, "address6", 6)
    router_id = t.get("router_id", str, None, _router_id)
    if router_id is None and not t.has("router_id"):
        if address is not None:
            router_id = address.ip
        elif detect is not None:
            router_id = ROUTER_ID_FROM_ADDRESS  # the detected address's, at start
        elif not t.has("address"):
            t.error(
                "router_id", "is required when node.address is absent (it defaults to its IPv4)"
            )
    labels = t.get("labels", dict, {}, _labels)
    return _done(
        t,
        lambda: NodeConfig(name, asn, router_id, address, address6, labels, detect, detect6),
    )


def _node_address(t: _Table, key: str, version: int) -> tuple[Any, AddressDetection | None]:
    """`address` / `address6`: an interface address, or "auto" with `KEY_detection`."""
    method_key = f"{key}_detection"
    t.seen.add(method_key)  # a known key either way (`accepted_keys`)
    if t.data.get(key) == "auto":
        t.seen.add(key)
        return None, t.get(method_key, str, AddressDetection(), _detection(version))
    if t.has(method_key):
        t.error(method_key, f'is only read with node.{key} = "auto"')
    return t.get(key, str, None, _interface(version)), None


def _detection(version: int) -> Callable[[str], AddressDetection]:
    """`first-found` | `interface=RE[,RE]` | `skip-interface=RE[,RE]` | `can-reach=DEST` |
    `cidr=CIDR[,CIDR]`: Calico's IP autodetection methods, spelt as Calico spells them."""

    def conv(v: str) -> AddressDetection:
        word, sep, arg = v.partition("=")
        try:
            method = DetectMethod(word.strip())
        except ValueError:
            choices = " | ".join(f"{m}{'' if m is DetectMethod.FIRST_FOUND else '=...'}"
                                 for m in DetectMethod)  # fmt: skip
            raise _Invalid(f"{show(v)} is not a detection method ({choices})") from None
        items = [a.strip() for a in arg.split(",") if a.strip()]
        if method is DetectMethod.FIRST_FOUND:
            if sep:
                raise _Invalid(f"{show(v)}: first-found takes no argument")
            return AddressDetection()
        if not items:
            raise _Invalid(f"{show(v)}: {method} needs an argument ({method}=...)")
        if method in (DetectMethod.INTERFACE, DetectMethod.SKIP_INTERFACE):
            return AddressDetection(method, patterns=tuple(_regex(i) for i in items))
        if method is DetectMethod.CAN_REACH:
            return AddressDetection(method, destination=_reach(v, items, version))
        cidrs = tuple(_prefix(i) for i in items)
        for c in cidrs:
            if c.version != version:
                raise _Invalid(f"{show(v)}: {c} is not IPv{version}")
        return AddressDetection(method, cidrs=cidrs)

    return conv


def _reach(v: str, items: list[str], version: int) -> IPAddress:
    if len(items) != 1:
        raise _Invalid(f"{show(v)}: can-reach takes one destination")
    dest = _address(items[0])
    if dest.version != version or dest.is_unspecified or dest.is_multicast:
        raise _Invalid(f"{show(v)}: {items[0]} is not a unicast IPv{version} destination")
    return dest


def _read_bgp(t: _Table, policies: set[str]) -> BGPConfig | None:
    d = BGPConfig()
    enabled = t.get("enabled", bool, d.enabled)
    listen = t.get_list("listen", d.listen, _list_address)
    port = t.get("port", int, d.port, _port)
    hold = t.get("hold_time", int, d.hold_time, _hold_time)
    keepalive = t.get("keepalive", int, None, _int_range(0, 65535))
    keepalive = _check_keepalive(t, hold, keepalive, "hold_time")
    values: dict[str, Any] = {
        "enabled": enabled,
        "listen": listen,
        "port": port,
        "hold_time": hold,
        "keepalive": keepalive,
        "connect_retry": t.get("connect_retry", int, d.connect_retry, _int_range(1, 65535)),
        "connect_retry_max": t.get(
            "connect_retry_max", int, d.connect_retry_max, _int_range(1, 65535)
        ),
        "mesh": t.get("mesh", bool, d.mesh) and enabled is not False,
        "mesh_password": t.get("mesh_password", str, d.mesh_password, _password),
        "route_reflector_cluster_id": t.get("route_reflector_cluster_id", str, None, _cluster_id),
        "route_reflector_group_label": t.get(
            "route_reflector_group_label", str, d.route_reflector_group_label, _label_key
        ),
        "route_reflector_cluster_id_label": t.get(
            "route_reflector_cluster_id_label",
            str,
            d.route_reflector_cluster_id_label,
            _label_key,
        ),
        "graceful_restart": t.get("graceful_restart", bool, d.graceful_restart),
        "restart_time": t.get("restart_time", int, d.restart_time, _int_range(0, RESTART_TIME_MAX)),
        "long_lived_stale_time": t.get(
            "long_lived_stale_time", int, d.long_lived_stale_time, _int_range(0, LLGR_TIME_MAX)
        ),
        "add_path": t.get("add_path", str, d.add_path, _named(ADD_PATH_NAMES)),
        "max_paths": t.get("max_paths", int, d.max_paths, _int_range(1, 1024)),
        "always_compare_med": t.get("always_compare_med", bool, d.always_compare_med),
        "honor_graceful_shutdown": t.get(
            "honor_graceful_shutdown", bool, d.honor_graceful_shutdown
        ),
        "max_prefixes_restart": t.get(
            "max_prefixes_restart", int, d.max_prefixes_restart, _int_range(0, 86400)
        ),
        "deferral_time": t.get("deferral_time", int, d.deferral_time, _int_range(1, 3600)),
        **_read_bfd(
            t,
            {
                "bfd": d.bfd,
                "bfd_interval_ms": d.bfd_interval_ms,
                "bfd_multiplier": d.bfd_multiplier,
            },
        ),
    }
    if listen is not None and len(set(listen)) != len(listen):
        t.error("listen", f"{show([str(a) for a in listen])} lists an address twice")
    first, cap = values["connect_retry"], values["connect_retry_max"]
    if first is not None and cap is not None and cap < first:
        t.error("connect_retry_max", f"{cap} is below connect_retry ({first}), where it starts")
    inherit = _Inherit(values, policies)
    peers = [_read_peer(p, inherit) for p in t.subs("peer")]
    ranges = [_read_listen_range(r, inherit) for r in t.subs("listen_range")]
    originate = [_read_originate(o) for o in t.subs("originate")]
    adverts = [_read_prefix_advertisement(a) for a in t.subs("prefix_advertisement")]
    if any(x is None for x in (*peers, *ranges, *originate, *adverts)):
        t.failed = True
    _check_bgp_lists(t, values, peers, ranges, originate)
    return _done(
        t,
        lambda: BGPConfig(
            **values,
            peers=tuple(p for p in peers if p),
            originate=tuple(o for o in originate if o),
            listen_ranges=tuple(r for r in ranges if r),
            prefix_advertisements=tuple(a for a in adverts if a),
        ),
    )


def _list_address(v: Any) -> IPAddress:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    return _address(v)


def _read_prefix_advertisement(t: _Table) -> PrefixAdvertisement | None:
    def d(name: str) -> Any:
        return default_of(PrefixAdvertisement, name)

    cidr = t.get("cidr", str, _REQUIRED, _prefix)
    communities = t.get_list("communities", d("communities"), _community)
    large = t.get_list("large_communities", d("large_communities"), _large_community)
    if not t.failed and not communities and not large:
        t.error("communities", "give communities or large_communities to add")
    return _done(t, lambda: PrefixAdvertisement(cidr, communities, large))


def _read_originate(t: _Table) -> Originate | None:
    prefix = t.get("prefix", str, _REQUIRED, _prefix)
    communities = t.get_list("communities", default_of(Originate, "communities"), _community)
    large = t.get_list(
        "large_communities", default_of(Originate, "large_communities"), _large_community
    )
    next_hop = t.get("next_hop", str, default_of(Originate, "next_hop"), _next_hop(("self",)))
    if (
        prefix is not None
        and not isinstance(next_hop, str | None)
        and next_hop.version != prefix.version
    ):
        t.error(
            "next_hop",
            f'"{next_hop}" is IPv{next_hop.version} but the prefix is IPv{prefix.version}',
        )
    return _done(t, lambda: Originate(prefix, communities, large, next_hop))


def _check_bgp_lists(
    t: _Table,
    values: dict[str, Any],
    peers: list[Peer | SelectedPeer | None],
    ranges: list[ListenRange | None],
    originate: list[Originate | None],
) -> None:
    """Duplicates and overlaps among peers and ranges; what a disabled BGP cannot have."""
    seen: dict[IPAddress, int] = {}
    for i, p in enumerate(peers):
        if not isinstance(p, Peer):
            continue
        if p.address in seen:
            t.error(f"peer[{i}].address", f'"{p.address}" is already bgp.peer[{seen[p.address]}]')
        seen.setdefault(p.address, i)
    for i, r in enumerate(ranges):
        for j in range(i):
            other = ranges[j]
            if r is not None and other is not None and _overlaps(r.prefix, other.prefix):
                t.error(f"listen_range[{i}].prefix", f'"{r.prefix}" overlaps bgp.listen_range[{j}]')
    if values["enabled"] is False:
        for key, items in (("peer", peers), ("listen_range", ranges), ("originate", originate)):
            if items:
                t.error(key, "is not allowed with bgp.enabled = false")
        if values["route_reflector_cluster_id"] is not None:
            t.error("route_reflector_cluster_id", "is not allowed with bgp.enabled = false")


# ---------------------------------------------------------------- datastore, ipam, fib, api


def _read_datastore(t: _Table) -> DatastoreConfig | None:
    d = DatastoreConfig()
    kind = t.get("kind", str, d.kind, _enum(DatastoreKind))
    path = t.get("path", str, d.path, _non_empty("the SQLite file"))
    endpoints = t.get_list("endpoints", d.endpoints, _endpoint)
    if kind == DatastoreKind.ETCD and endpoints == ():
        t.error("endpoints", 'must list at least one endpoint with kind = "etcd"')
    create = t.get("create", bool, d.create)
    id_file = t.get("cluster_id_file", str, d.cluster_id_file)
    ca, cert, key = (t.get(k, str, "") for k in ("ca_file", "cert_file", "key_file"))
    if isinstance(endpoints, tuple) and kind == DatastoreKind.ETCD:
        schemes = {e.partition(":")[0] for e in endpoints}
        if len(schemes) > 1:
            t.error("endpoints", "mix http:// and https://: TLS is for all members or none")
        elif (ca or cert or key) and schemes == {"http"}:
            key_name = "ca_file" if ca else "cert_file" if cert else "key_file"
            t.error(key_name, "is for https:// endpoints; these are http://")
    if bool(cert) != bool(key):
        t.error("key_file" if cert else "cert_file",
                "is needed with " + ("cert_file" if cert else "key_file"))  # fmt: skip
    return _done(t, lambda: DatastoreConfig(kind, path, endpoints, create, id_file, ca, cert, key))


def _read_ipam(t: _Table) -> IPAMConfig | None:
    d = IPAMConfig()
    strict = t.get("strict_affinity", bool, d.strict_affinity)
    max_blocks = t.get("max_blocks_per_node", int, d.max_blocks_per_node, _int_range(0, AS_MAX))
    pools = [_read_pool(p) for p in t.subs("pool")]
    for i, p in enumerate(pools):
        for j in range(i):
            other = pools[j]
            if p is not None and other is not None and _overlaps(p.cidr, other.cidr):
                t.error(f"pool[{i}].cidr", f'"{p.cidr}" overlaps ipam.pool[{j}] ("{other.cidr}")')
    reservations = [_read_reservation(r) for r in t.subs("reservation")]
    names: dict[str, int] = {}
    for i, r in enumerate(reservations):
        if r is not None and r.name:
            if r.name in names:
                t.error(f"reservation[{i}].name", f"{show(r.name)} is already "
                        f"ipam.reservation[{names[r.name]}]")  # fmt: skip
            names.setdefault(r.name, i)
    if any(x is None for x in (*pools, *reservations)):
        t.failed = True
    timers = {k: t.get(k, int, getattr(d, k), _int_range(*r)) for k, r in _IPAM_TIMERS.items()}
    return _done(t, lambda: IPAMConfig(strict, max_blocks, tuple(p for p in pools if p),
                                       tuple(r for r in reservations if r), **timers))  # fmt: skip


# Node lifecycle and leak reclaim (seconds) and their ranges.
_IPAM_TIMERS = {"node_lease_ttl": (1, 3600), "node_gone_grace": (0, 30 * 86400),
                "node_gone_after": (1, 365 * 86400), "node_forget_after": (0, 3650 * 86400),
                "leak_grace": (0, 30 * 86400),
                "leak_check_interval": (0, 86400)}  # fmt: skip


def _read_reservation(t: _Table) -> Reservation | None:
    """`[[ipam.reservation]]`: `cidrs` (prefixes or single addresses) and an optional name."""
    name = t.get("name", str, default_of(Reservation, "name"))
    cidrs = t.get_list("cidrs", _REQUIRED, _reserved_cidr)
    if cidrs == ():
        t.error("cidrs", "must list at least one prefix or address")
    return _done(t, lambda: Reservation(cidrs, name))


def _reserved_cidr(v: Any) -> Any:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    return _prefix(v if "/" in v else f"{v}/{32 if ':' not in v else 128}")


def _selector(v: str) -> str:
    try:
        check_selector(v)
    except ValueError as e:
        raise _Invalid(f"{show(v)}: {e}") from None
    return v


def _uses(v: Any) -> PoolUse:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    try:
        return PoolUse(v)
    except ValueError:
        raise _Invalid(f"{show(v)} is not one of {' | '.join(PoolUse)}") from None


def _read_pool(t: _Table) -> Pool | None:
    cidr = t.get("cidr", str, _REQUIRED, _prefix)
    block = t.get("block_size", int, None, _int_range(0, 128))
    if cidr is not None and block is None and not t.has("block_size"):
        block = max(default_block_size(cidr.version), cidr.prefixlen)
    ipip = t.get("ipip_mode", str, default_of(Pool, "ipip_mode"), _named(ENCAP_NAMES))
    vxlan = t.get("vxlan_mode", str, default_of(Pool, "vxlan_mode"), _named(ENCAP_NAMES))
    values = {
        "nat_outgoing": t.get("nat_outgoing", bool, default_of(Pool, "nat_outgoing")),
        "disabled": t.get("disabled", bool, default_of(Pool, "disabled")),
        "disable_bgp_export": t.get(
            "disable_bgp_export", bool, default_of(Pool, "disable_bgp_export")
        ),
        "node_selector": t.get(
            "node_selector",
            str,
            default_of(Pool, "node_selector"),
            _non_empty('"all()" selects every node'),
        ),
        "namespace_selector": t.get(
            "namespace_selector", str, default_of(Pool, "namespace_selector"), _selector
        ),
        "allowed_uses": t.get_list("allowed_uses", default_of(Pool, "allowed_uses"), _uses),
    }
    uses = values["allowed_uses"]
    if uses is not None and (not uses or len(set(uses)) != len(uses)):
        t.error("allowed_uses", f"{show([str(u) for u in uses])} must list workload and/or "
                "tunnel once each")  # fmt: skip
    if cidr is not None and block is not None and not cidr.prefixlen <= block <= cidr.max_prefixlen:
        t.error(
            "block_size",
            f"{block} is not within {cidr.prefixlen}..{cidr.max_prefixlen} (pool {cidr})",
        )
    if ipip not in (None, Encap.NEVER) and vxlan not in (None, Encap.NEVER):
        t.error(
            "vxlan_mode",
            f"{show(toml_name(vxlan))} cannot be combined with ipip_mode {show(toml_name(ipip))}",
        )
    if cidr is not None and cidr.version == 6 and ipip not in (None, Encap.NEVER):
        t.error("ipip_mode", f"{show(toml_name(ipip))} is for IPv4 pools only ({cidr} is IPv6)")
    return _done(t, lambda: Pool(cidr, block, ipip, vxlan, **values))


def _read_fib(t: _Table) -> FIBConfig | None:
    d = FIBConfig()
    enabled = t.get("enabled", bool, d.enabled)
    table = t.get("table", int, d.table, _int_range(1, AS_MAX))
    protocol = t.get("protocol", int, d.protocol, _fib_protocol)
    resync = t.get("resync_interval", int, d.resync_interval, _int_range(0, 86400))
    nexthops = t.get("nexthops", bool, d.nexthops)
    # 0 = derived from the underlay; else at least IPv4's minimum (RFC 791: 68) — the CNI
    # plugin refuses a pod MTU below IPv6's 1280 when a pool is IPv6.
    mtus = [t.get(k, int, getattr(d, k), _mtu) for k in ("pod_mtu", "ipip_mtu", "vxlan_mtu")]
    return _done(t, lambda: FIBConfig(enabled, table, protocol, resync, nexthops, *mtus))


def _mtu(v: int) -> int:
    if v != 0 and not 68 <= v <= 65535:
        raise _Invalid(f"{v} is not an MTU (0 = derived from the underlay, or 68..65535)")
    return v


def _read_api(t: _Table) -> APIConfig | None:
    d = APIConfig()
    sock = t.get("socket", str, d.socket, _socket_path)
    metrics = t.get("metrics", str, d.metrics, _metrics)
    return _done(t, lambda: APIConfig(sock, metrics))
