"""What a SIGHUP reload must do: the difference between two valid configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from podbgp.config.dump import _BGP_LISTS
from podbgp.config.schema import Config, ListenRange, Peer

# Applied live by a reload like the peers (BgpNode.reload re-applies BFD to every peer).
_BGP_LIVE = (
    "bfd",
    "bfd_interval_ms",
    "bfd_multiplier",
    # the registry-derived peers are re-evaluated with the new config (BgpNode.reload)
    "mesh",
    "mesh_password",
    "route_reflector_group_label",
)
# Dataclass fields that are arrays of tables, by their TOML name.
_TOML_ARRAYS = {"pools": "pool", "reservations": "reservation", "stations": "station"}


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """What changed between two configs, in the terms a SIGHUP reload acts on.

    `peers_reset` (the new versions) differ in anything but their policies, so
    their sessions must restart; `peers_import_changed` / `peers_export_changed`
    keep their sessions and need a route refresh (RFC 2918/7313) or a
    re-evaluation of Adj-RIB-In / Adj-RIB-Out, because the policy name or the
    named policy's rules changed. `changed_keys` lists every other changed key
    path (e.g. "bgp.hold_time", "ipam.pool", "node"), for the daemon to apply
    live or to refuse.
    """

    peers_added: tuple[Peer, ...] = ()
    peers_removed: tuple[Peer, ...] = ()
    peers_reset: tuple[Peer, ...] = ()
    peers_import_changed: tuple[Peer, ...] = ()
    peers_export_changed: tuple[Peer, ...] = ()
    listen_ranges_added: tuple[ListenRange, ...] = ()
    listen_ranges_removed: tuple[ListenRange, ...] = ()
    listen_ranges_changed: tuple[ListenRange, ...] = ()
    originate_changed: bool = False
    policies_changed: frozenset[str] = frozenset()
    changed_keys: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == ConfigDiff()


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare two valid configs; peers are matched by address, listen ranges by prefix."""
    policies = _changed_policies(old, new)
    # A static peer counts where its node_selector picks the node, so a change of
    # node.labels adds or removes it; peer_selector rules are applied with the
    # registry (podbgp.topology), which BgpNode.reload re-evaluates.
    old_peers = {p.address: p for p in old.applied_peers}
    new_peers = {p.address: p for p in new.applied_peers}
    kept = [(old_peers[a], p) for a, p in new_peers.items() if a in old_peers]
    old_ranges = {r.prefix: r for r in old.bgp.listen_ranges}
    new_ranges = {r.prefix: r for r in new.bgp.listen_ranges}
    return ConfigDiff(
        peers_added=tuple(p for a, p in new_peers.items() if a not in old_peers),
        peers_removed=tuple(p for a, p in old_peers.items() if a not in new_peers),
        peers_reset=tuple(n for o, n in kept if o.session_settings != n.session_settings),
        peers_import_changed=tuple(
            n for o, n in kept if _policy_changed(o.import_policy, n.import_policy, policies)
        ),
        peers_export_changed=tuple(
            n for o, n in kept if _policy_changed(o.export_policy, n.export_policy, policies)
        ),
        listen_ranges_added=tuple(r for k, r in new_ranges.items() if k not in old_ranges),
        listen_ranges_removed=tuple(r for k, r in old_ranges.items() if k not in new_ranges),
        listen_ranges_changed=tuple(
            r for k, r in new_ranges.items() if k in old_ranges and old_ranges[k] != r
        ),
        originate_changed=old.bgp.originate != new.bgp.originate,
        policies_changed=policies,
        changed_keys=tuple(_changed_keys(old, new)),
    )


def _changed_policies(old: Config, new: Config) -> frozenset[str]:
    a = {p.name: p for p in old.policies}
    b = {p.name: p for p in new.policies}
    return frozenset(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))


def _policy_changed(old: str, new: str, changed: frozenset[str]) -> bool:
    return old != new or new in changed


def _changed_keys(old: Config, new: Config) -> Iterator[str]:
    if dataclasses.replace(old.node, labels=()) != dataclasses.replace(new.node, labels=()):
        yield "node"
    if old.node.labels != new.node.labels:
        yield "node.labels"  # applied live: the registry record, node_selector
    sections: list[tuple[str, Any, Any]] = [
        ("bgp", old.bgp, new.bgp),
        ("datastore", old.datastore, new.datastore),
        ("ipam", old.ipam, new.ipam),
        ("fib", old.fib, new.fib),
        ("api", old.api, new.api),
        ("bmp", old.bmp, new.bmp),
        ("mrt", old.mrt, new.mrt),
    ]
    for name, a, b in sections:
        for f in dataclasses.fields(a):
            if f.name in (*_BGP_LISTS, *_BGP_LIVE) and name == "bgp":
                continue
            if getattr(a, f.name) != getattr(b, f.name):
                yield f"{name}.{_TOML_ARRAYS.get(f.name, f.name)}"
