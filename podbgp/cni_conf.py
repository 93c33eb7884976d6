"""The plugin's network configuration (the JSON a runtime passes on stdin).

Keys besides the spec's ``cniVersion``, ``name`` and ``type``::

    node_name       this node's name in IPAM (affinity, registry)
    datastore       "sqlite:PATH" or "etcd:http://HOST:PORT[,...]" (https:// with
                    "?ca=CA&cert=CERT&key=KEY" for TLS, `ipam.store.open_store`)
    pools           ["10.244.0.0/16", "fd00:244::/56/122", {"cidr": ..., ...}]
    mtu             both veth ends; default: the daemon's ``[fib] pod_mtu``, else the
                    MTU of the interface carrying the node's address (``node.address``,
                    or what ``"auto"`` detects) less the pools' encapsulation, else 1500
                    less it (`podbgp.underlay`)
    route_protocol  rtm_protocol of the node's pod routes (default 81, see below)
    log_file        append a line per call and every failure here
    podbgp_config   the daemon's TOML: node name, datastore, pools, [fib]
                    protocol and the node's cluster ID file are read from it;
                    keys given here win
    cluster_id_file where this node recorded the cluster ID it joined
                    (`ipam.identity`); default: the daemon's, or none
    ipam            optional: {"type": "podbgp", "ipv4_pools": [CIDR, ...],
                    "ipv6_pools": [...]}; the pools every pod of this network takes
                    its addresses from (Calico's CNI keys), instead of choosing by
                    namespace (`ipam.selection`)
    runtimeConfig   {"ipv4_pools": [...], "ipv6_pools": [...]} from the runtime, per
                    pod; wins over ``ipam``, and ``IPV4_POOLS``/``IPV6_POOLS`` in
                    CNI_ARGS win over both (docs/cni.md)
    dns             copied into the ADD result

Route protocol: the daemon's FIB reconciler owns every route whose
rtm_protocol is ``[fib] protocol`` (80 by default) and deletes those it does
not want, so the host routes to local pods must carry another number. We use
81 (unassigned in iproute2's rt_protos): it is not the daemon's, and it still
lets `podbgp` and an operator (``ip route show proto 81``) tell CNI-made pod
routes from anything else. A config that sets both to the same number is
rejected.

The daemon's TOML is read with the daemon's own loader (`podbgp.config`):
the same validation, defaults and error text as ``podbgp run`` and
``podbgp check``. A file they would refuse fails every call with code 7
naming the key (``datastore.pth: unknown key (did you mean path?)``) instead
of falling back to a default datastore -- another store is another set of
free addresses, and so duplicate pod IPs. ``pools`` given here are checked by
the same rules as ``[[ipam.pool]]``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ipam import ConfigError, IpamConfig, PoolUse
from ipam.store import StoreError
from podbgp import config as daemon_config
from podbgp import underlay, wiring
from podbgp.cni_proto import CniError, ErrorCode, check_version

DEFAULT_DATASTORE = f"sqlite:{daemon_config.DatastoreConfig().path}"
DEFAULT_FIB_PROTOCOL = daemon_config.FIBConfig().protocol
DEFAULT_ROUTE_PROTOCOL = 81
BASE_MTU = underlay.BASE_MTU
IPV6_MIN_MTU = 1280


def _bad(key: str, why: str) -> CniError:
    return CniError(ErrorCode.INVALID_CONFIG, f"{key}: {why}")


@dataclass(frozen=True, slots=True)
class NetConf:
    """A validated network configuration."""

    cni_version: str
    name: str
    node_name: str
    datastore: str
    ipam: IpamConfig
    mtu: int
    route_protocol: int
    log_file: str = ""
    cluster_id_file: str = ""
    dns: Mapping[str, Any] = field(default_factory=dict)
    prev_result: Mapping[str, Any] | None = None
    # Pools named by the config (runtimeConfig over ipam), by IP version.
    explicit_pools: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def versions(self) -> tuple[int, ...]:
        """The IP versions a pod gets an address of: those with an enabled pod pool."""
        return tuple(
            sorted(
                {
                    p.version
                    for p in self.ipam.pools
                    if not p.disabled and PoolUse.WORKLOAD in p.allowed_uses
                }
            )
        )


POOL_KEYS = {4: "ipv4_pools", 6: "ipv6_pools"}  # Calico's CNI config keys
POOL_ARGS = {4: "IPV4_POOLS", 6: "IPV6_POOLS"}  # the same in CNI_ARGS


def pool_names(value: object, version: int, where: str) -> tuple[str, ...]:
    """A list of pool CIDRs of `version`, normalised (`10.244.0.0/16`); a code 7 error
    naming `where` otherwise. A string is split at commas (the CNI_ARGS form)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _bad(where, f"{value!r} is not a list of pool CIDRs")
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            cidr = ipaddress.ip_network(item)
        except ValueError:
            raise _bad(where, f"{item!r} is not a pool CIDR") from None
        if cidr.version != version:
            raise _bad(where, f"{item} is not an IPv{version} pool")
        out.append(str(cidr))
    return tuple(out)


def _explicit_pools(raw: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    """`runtimeConfig` over `ipam`, per version."""
    out: dict[int, tuple[str, ...]] = {}
    for section in ("ipam", "runtimeConfig"):
        table = raw.get(section) or {}
        if not isinstance(table, dict):
            raise _bad(section, "must be an object")
        for version, key in POOL_KEYS.items():
            if key in table:
                out[version] = pool_names(table[key], version, f"{section}.{key}")
    return out


def pool_table(entry: object, where: str) -> dict[str, Any]:
    """A ``pools`` entry: ``CIDR``, ``CIDR/BLOCK_SIZE`` or a ``[[ipam.pool]]`` table."""
    if isinstance(entry, dict):
        return dict(entry)
    if not isinstance(entry, str):
        raise _bad(where, f"{entry!r} is not a CIDR string or a pool table")
    parts = entry.split("/")
    if len(parts) == 3:
        try:
            return {"cidr": f"{parts[0]}/{parts[1]}", "block_size": int(parts[2])}
        except ValueError as e:
            raise _bad(where, f"{entry!r}: block size is not an integer") from e
    return {"cidr": entry}


CLUSTER_READ_TIMEOUT = 10.0  # seconds for the cluster's resources (two reads)


def read_daemon_config(path: str) -> dict[str, Any]:
    """Node name, datastore URL, ``[ipam]``, FIB protocol and cluster ID file of the daemon.

    Through the daemon's loader, over the cluster's resources when the file names its
    datastore (`podbgp.cluster.load_effective`: the pools may be the cluster's). An
    invalid file is code 7 with its errors. A store that cannot be read within
    `CLUSTER_READ_TIMEOUT` leaves the file alone if that is a valid config (the IPAM call
    then meets the same store and reports it, code 11), else it is code 11 here.
    """
    from podbgp import cluster  # the store client, only for a file that names a store
    from podbgp.config.merge import effective_config, read_node_file

    try:
        node = read_node_file(path)
        try:
            load = cluster.load_effective(node)
            config = asyncio.run(asyncio.wait_for(load, CLUSTER_READ_TIMEOUT)).config
        except (StoreError, OSError, TimeoutError) as e:
            try:
                config = effective_config(node, ()).config
            except daemon_config.ConfigError:
                raise CniError(ErrorCode.TRY_AGAIN_LATER,
                               f"{path}: cluster resources: {e or 'timed out'}") from e  # fmt: skip
    except daemon_config.ConfigError as e:
        raise _bad("podbgp_config", f"{path}: " + "; ".join(e.errors)) from e
    return {
        "node_name": config.node.name,
        "datastore": wiring.datastore_url(config),
        "ipam": config.ipam,
        "fib_protocol": config.fib.protocol,
        "cluster_id_file": wiring.cluster_id_file(config),
        "pod_mtu": config.fib.pod_mtu,
        "underlay": _underlay_of(config),
    }


def _underlay_of(config: daemon_config.Config) -> underlay.Detected | None:
    """The interface carrying the node's address here (the plugin runs in the node's
    namespace), for the pod MTU; None when there is none to find."""
    if not (config.node.has_address or config.node.has_address6):
        return None
    try:
        return underlay.resolve(config, underlay.NetlinkUnderlay())[1].primary
    except (underlay.NoAddress, OSError):
        return None  # the daemon reports it; pods still get the 1500-based default


def _ipam_config(raw: Mapping[str, Any], daemon: Mapping[str, Any]) -> IpamConfig:
    base: daemon_config.IPAMConfig = daemon.get("ipam") or daemon_config.IPAMConfig()
    if "pools" in raw:
        pools = raw["pools"]
        if not isinstance(pools, list):
            raise _bad("pools", "must be a list of CIDRs or pool tables")
        table = {
            "strict_affinity": base.strict_affinity,
            "max_blocks_per_node": base.max_blocks_per_node,
            "pool": [pool_table(p, f"pools[{i}]") for i, p in enumerate(pools)],
            # The daemon's reservations hold whatever pools this network lists.
            "reservation": [
                {"name": r.name, "cidrs": [str(c) for c in r.cidrs]} for r in base.reservations
            ],
        }
        try:
            base = daemon_config.load_ipam_dict(table)
        except daemon_config.ConfigError as e:
            raise CniError(ErrorCode.INVALID_CONFIG, "pools: " + "; ".join(e.errors)) from e
    try:
        config = wiring.pools_config(base)
    except ConfigError as e:
        raise CniError(ErrorCode.INVALID_CONFIG, str(e)) from e
    if not any(not p.disabled for p in config.pools):
        raise _bad("pools", "no enabled pool (set pools or podbgp_config)")
    return config


def _int(raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    val = raw.get(key, default)
    if not isinstance(val, int) or isinstance(val, bool) or not lo <= val <= hi:
        raise _bad(key, f"{val!r} is not an integer in {lo}..{hi}")
    return val


def _str(raw: Mapping[str, Any], key: str, default: str) -> str:
    val = raw.get(key, default)
    if not isinstance(val, str):
        raise _bad(key, f"{val!r} is not a string")
    return val


def default_mtu(config: IpamConfig, found: underlay.Detected | None = None) -> int:
    """The underlay's MTU (1500 if unknown) less the largest encapsulation overhead any
    enabled pool uses (`podbgp.underlay.OVERHEAD`: VXLAN over IPv6 costs 70)."""
    base, version = (BASE_MTU, 4) if found is None else (found.mtu, found.address.version)
    overhead = 0
    for p in config.pools:
        if p.disabled:
            continue
        if p.vxlan_mode != "Never":
            overhead = max(overhead, underlay.OVERHEAD[("vxlan", version)])
        if p.ipip_mode != "Never":
            overhead = max(overhead, underlay.OVERHEAD[("ipip", 4)])
    return base - overhead


def _check_ipam_key(raw: Mapping[str, Any]) -> None:
    ipam = raw.get("ipam")
    if ipam is None or ipam == {}:
        return
    if not isinstance(ipam, dict):
        raise _bad("ipam", "must be an object")
    kind = ipam.get("type", "podbgp")
    if kind != "podbgp":
        raise CniError(
            ErrorCode.UNSUPPORTED_FIELD,
            f"ipam.type: {kind!r} is not supported; podbgp-cni uses podbgp's own IPAM",
        )
    unknown = sorted(set(ipam) - {"type", *POOL_KEYS.values()})
    if unknown:
        raise CniError(
            ErrorCode.UNSUPPORTED_FIELD,
            f"ipam.{unknown[0]}: not supported (ipam takes type, ipv4_pools, ipv6_pools)",
        )


def parse_netconf(raw: object) -> NetConf:
    """Validate the configuration; errors are code 7 (or 1, 2) naming the key."""
    if not isinstance(raw, dict):
        raise CniError(ErrorCode.DECODE_FAILURE, "network configuration is not a JSON object")
    version = check_version(raw.get("cniVersion"))
    for key in ("name", "type"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _bad(key, "required (a non-empty string)")
    _check_ipam_key(raw)
    daemon: dict[str, Any] = {}
    if raw.get("podbgp_config"):
        daemon = read_daemon_config(_str(raw, "podbgp_config", ""))
    ipam = _ipam_config(raw, daemon)
    node = _str(raw, "node_name", daemon.get("node_name") or os.uname().nodename)
    if not node:
        raise _bad("node_name", "must not be empty")
    fib_protocol = daemon.get("fib_protocol", DEFAULT_FIB_PROTOCOL)
    protocol = _int(raw, "route_protocol", DEFAULT_ROUTE_PROTOCOL, 1, 255)
    if protocol == fib_protocol:
        raise _bad(
            "route_protocol",
            f"{protocol} is the daemon's [fib] protocol; its reconciler would delete pod routes",
        )
    dns = raw.get("dns", {})
    if not isinstance(dns, dict):
        raise _bad("dns", "must be an object")
    prev = raw.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise _bad("prevResult", "must be an object")
    mtu = _int(
        raw, "mtu", daemon.get("pod_mtu") or default_mtu(ipam, daemon.get("underlay")), 576, 65535
    )
    if mtu < IPV6_MIN_MTU and any(p.version == 6 for p in ipam.pools):
        raise _bad("mtu", f"{mtu} is below IPv6's minimum of {IPV6_MIN_MTU} (RFC 8200 §5)")
    return NetConf(
        cni_version=version,
        name=raw["name"],
        node_name=node,
        datastore=_str(raw, "datastore", daemon.get("datastore", DEFAULT_DATASTORE)),
        ipam=ipam,
        mtu=mtu,
        route_protocol=protocol,
        log_file=_str(raw, "log_file", ""),
        cluster_id_file=_str(raw, "cluster_id_file", daemon.get("cluster_id_file", "")),
        dns=dns,
        prev_result=prev,
        explicit_pools=_explicit_pools(raw),
    )
