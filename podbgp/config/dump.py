"""The effective config in CONFIG.md's TOML shape (`Config.to_dict`, `podbgp check`)."""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Any

from podbgp.config.schema import (
    ROUTER_ID_FROM_ADDRESS,
    BGPConfig,
    Config,
    IPAMConfig,
    Peer,
    PeerOptions,
    Policy,
    SelectedPeer,
    toml_name,
)


def _dump_config(cfg: Config, reveal: bool) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": cfg.node.name,
        "asn": cfg.node.asn,
        "router_id": str(cfg.node.router_id),
    }
    if cfg.node.router_id == ROUTER_ID_FROM_ADDRESS:
        del node["router_id"]  # the detected address's: absent, so the dump loads back
    for key in ("address", "address6"):
        value = getattr(cfg.node, key)
        detect = getattr(cfg.node, f"{key}_detection")
        if value is not None:
            node[key] = str(value)
        elif detect is not None:
            node[key] = "auto"
            node[f"{key}_detection"] = str(detect)
    if cfg.node.labels:
        node["labels"] = dict(cfg.node.labels)
    return {
        "node": node,
        "bgp": _dump_bgp(cfg.bgp, reveal),
        "policy": [_dump_policy(p) for p in cfg.policies],
        "datastore": {
            "kind": str(cfg.datastore.kind),
            "path": cfg.datastore.path,
            "endpoints": list(cfg.datastore.endpoints),
            "create": cfg.datastore.create,
            "cluster_id_file": cfg.datastore.cluster_id_file,
        },
        "ipam": _dump_ipam(cfg.ipam),
        "fib": dataclasses.asdict(cfg.fib),
        "api": {"socket": cfg.api.socket, "metrics": _show_hostport(cfg.api.metrics)},
        "bmp": {
            "station": [
                {
                    **dataclasses.asdict(s),
                    "address": str(s.address),
                    "route_monitoring": str(s.route_monitoring),
                }
                for s in cfg.bmp.stations
            ],
            "sys_name": cfg.bmp.sys_name,
            "sys_descr": cfg.bmp.sys_descr,
        },
        "mrt": dataclasses.asdict(cfg.mrt),
        "service": [
            {"cidr": str(s.cidr), "name": s.name, "communities": [str(c) for c in s.communities]}
            for s in cfg.services
        ],
    }


def _show_hostport(hp: tuple[str, int] | None) -> str:
    if hp is None:
        return ""
    host, port = hp
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _plain(value: Any) -> Any:
    """Dataclass field values as TOML values."""
    if isinstance(value, Enum):
        return toml_name(value)
    if isinstance(value, bool | int | str):
        return value
    if value is None:
        return ""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, re.Pattern):
        return value.pattern
    return str(value)


_BGP_LISTS = ("peers", "originate", "listen_ranges", "prefix_advertisements")
_PEER_RENAMES = {"import_policy": "import", "export_policy": "export"}


def _dump_bgp(bgp: BGPConfig, reveal: bool) -> dict[str, Any]:
    out = {
        f.name: _plain(getattr(bgp, f.name))
        for f in dataclasses.fields(bgp)
        if f.name not in _BGP_LISTS
    }
    if out["mesh_password"] and not reveal:
        out["mesh_password"] = "<redacted>"
    out["peer"] = [_dump_peer(p, reveal) for p in bgp.peers]
    out["originate"] = [_dump_fields(o) for o in bgp.originate]
    out["listen_range"] = [_dump_peer(r, reveal) for r in bgp.listen_ranges]
    out["prefix_advertisement"] = [_dump_fields(a) for a in bgp.prefix_advertisements]
    return out


def _dump_fields(obj: Any, skip_defaults: bool = False) -> dict[str, Any]:
    """Fields under their TOML names; optionally only those that differ from the default."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if skip_defaults and value == f.default:
            continue
        out[_PEER_RENAMES.get(f.name, f.name)] = _plain(value)
    return out


def _dump_peer(p: PeerOptions, reveal: bool) -> dict[str, Any]:
    out = _dump_fields(p)
    first = {Peer: "address", SelectedPeer: "peer_selector"}.get(type(p), "prefix")
    out = {first: out.pop(first), **out}
    if isinstance(p, Peer) and not p.interface:  # the unnumbered keys mean nothing here
        for key in ("interface", "neighbor_discovery", "neighbor_discovery_interval"):
            del out[key]
    elif isinstance(p, Peer):
        if p.discovers:
            del out["address"]  # found on the link: `neighbor_discovery`
        else:
            del out["neighbor_discovery"]
            out["address"] = out["address"].partition("%")[0]  # the zone is `interface`
    if out["password"] and not reveal:
        out["password"] = "<redacted>"
    return out


def _dump_policy(p: Policy) -> dict[str, Any]:
    rules = []
    for r in p.rules:
        match = _dump_fields(r.match, skip_defaults=True)
        actions = _dump_fields(r.set, skip_defaults=True)
        rules.append({"match": match, "action": str(r.action), "set": actions})
    return {"name": p.name, "default_action": str(p.default_action), "rule": rules}


def _dump_ipam(ipam: IPAMConfig) -> dict[str, Any]:
    return {
        "strict_affinity": ipam.strict_affinity,
        "max_blocks_per_node": ipam.max_blocks_per_node,
        "node_lease_ttl": ipam.node_lease_ttl,
        "node_gone_grace": ipam.node_gone_grace,
        "node_gone_after": ipam.node_gone_after,
        "node_forget_after": ipam.node_forget_after,
        "leak_grace": ipam.leak_grace,
        "leak_check_interval": ipam.leak_check_interval,
        "pool": [_dump_fields(p) for p in ipam.pools],
        "reservation": [
            {"name": r.name, "cidrs": [str(c) for c in r.cidrs]} for r in ipam.reservations
        ],
    }


# ---------------------------------------------------------------- reload
