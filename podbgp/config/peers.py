"""Readers for `[[bgp.peer]]` (static peers and `peer_selector` rules) and
`[[bgp.listen_range]]`: the keys they share, what they inherit from `[bgp]`, and
their checks. `podbgp.config.sections` reads `[bgp]` with them."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipam.model import check_selector
from podbgp.config.reader import (
    _LABEL_KEY,
    _REQUIRED,
    AS_MAX,
    LLGR_TIME_MAX,
    _address,
    _asn,
    _done,
    _family,
    _int_range,
    _Invalid,
    _named,
    _password,
    _port,
    _prefix,
    _shutdown_message,
    _Table,
    default_of,
    show,
)
from podbgp.config.schema import (
    ADD_PATH_NAMES,
    IPAddress,
    ListenRange,
    Peer,
    PeerOptions,
    SelectedPeer,
    toml_name,
)
from podbgp.config.unnumbered import peer_address, read_unnumbered


def _hold_time(v: int) -> int:
    """RFC 4271 §4.2: zero or at least three seconds (a 16-bit field)."""
    if v != 0 and not 3 <= v <= 65535:
        raise _Invalid(f"{v} is not a hold time (0, or 3..65535; RFC 4271 §4.2)")
    return v


def _check_keepalive(t: _Table, hold: int | None, keepalive: int | None, hold_key: str) -> Any:
    """Default a third of the hold time (RFC 4271 §10); must stay below it unless hold is 0."""
    if hold is None:
        return None
    if keepalive is None:
        return None if t.has("keepalive") else hold // 3
    if hold != 0 and not 1 <= keepalive < hold:
        t.error("keepalive", f"{keepalive} must be 1..{hold - 1} (below {hold_key} {hold})")
        return None
    return keepalive


@dataclass
class _Inherit:
    """What a peer inherits from `[bgp]`, and the policy names it may reference."""

    bgp: dict[str, Any]
    policies: set[str]


def _read_peer(t: _Table, inherit: _Inherit) -> Peer | SelectedPeer | None:
    """A static peer (`address`) or in-cluster peers chosen by label (`peer_selector`)."""
    node_selector = t.get("node_selector", str, default_of(Peer, "node_selector"), _label_selector)
    if t.has("peer_selector"):
        return _read_selected_peer(t, inherit, node_selector)
    t.seen.add("peer_selector")  # a key of [[bgp.peer]] (accepted_keys), absent here
    # `address`, or `interface` for an unnumbered peer (podbgp.config.unnumbered); None
    # if the table failed (then nothing is built).
    address, interface = peer_address(t, _peer_address)
    options = _read_peer_options(t, inherit, Peer)
    if address is not None and options is not None:
        _check_local_address(t, address, options.get("local_address"))
    options.update(read_unnumbered(t, interface or ""))
    return _done(t, lambda: Peer(address=address, node_selector=node_selector, **options))


def _read_selected_peer(t: _Table, inherit: _Inherit, node_selector: str) -> SelectedPeer | None:
    """`[[bgp.peer]]` with `peer_selector`: the address comes from each selected node's
    registry record, and `asn` defaults to that node's AS (0 here)."""
    selector = t.get("peer_selector", str, None, _label_selector)
    if t.has("address"):
        t.seen.add("address")
        t.error(
            "address", "is not allowed with peer_selector (each selected node's address is used)"
        )
    options = _read_peer_options(t, inherit, SelectedPeer)
    return _done(
        t,
        lambda: SelectedPeer(peer_selector=selector, node_selector=node_selector, **options),
    )


def _label_selector(v: str) -> str:
    """A node selector in the pools' language (`ipam.model.check_selector`)."""
    if not v.strip():
        raise _Invalid('must not be empty ("all()" selects every node)')
    try:
        check_selector(v)
    except ValueError as e:
        raise _Invalid(str(e)) from None
    return v


def _label_key(v: str) -> str:
    if v and not _LABEL_KEY.fullmatch(v):
        raise _Invalid(f"{show(v)} is not a label key")
    return v


def _read_listen_range(t: _Table, inherit: _Inherit) -> ListenRange | None:
    prefix = t.get("prefix", str, _REQUIRED, _prefix)
    if t.has("address"):
        t.seen.add("address")
        t.error("address", "is for [[bgp.peer]]; a listen range has a prefix")
    options = _read_peer_options(t, inherit, ListenRange)
    if options.get("passive") is False:
        t.error("passive", "false is impossible: dynamic neighbours are only accepted")
    if prefix is not None:
        _check_local_address(t, prefix.network_address, options.get("local_address"))
    return _done(t, lambda: ListenRange(prefix=prefix, **options))


def _peer_address(v: str) -> IPAddress:
    addr = _address(v)
    if addr.is_unspecified or addr.is_multicast:
        raise _Invalid(f"{show(v)} is not a unicast address")
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local and not addr.scope_id:
        raise _Invalid(f"{show(v)} is link-local and needs a zone, e.g. {v}%eth0")
    return addr


def _check_local_address(t: _Table, peer: IPAddress, local: IPAddress | None) -> None:
    if local is not None and local.version != peer.version:
        t.error(
            "local_address", f'"{local}" is IPv{local.version} but the peer is IPv{peer.version}'
        )


def _read_peer_options(t: _Table, inherit: _Inherit, kind: type[PeerOptions]) -> dict[str, Any]:
    """Every key a static peer and a listen range share, with [bgp] defaults inherited."""
    bgp = inherit.bgp

    def d(key: str) -> Any:
        return default_of(kind, key)

    hold = t.get("hold_time", int, bgp["hold_time"], _hold_time)
    ka_default = hold // 3 if t.has("hold_time") and hold is not None else bgp["keepalive"]
    keepalive = t.get("keepalive", int, ka_default, _int_range(0, 65535))
    if t.has("keepalive"):
        keepalive = _check_keepalive(t, hold, keepalive, "hold_time")
    # A peer_selector entry's AS defaults to each selected node's (written 0, as dumped).
    selected = kind is SelectedPeer
    asn_default, asn_conv = (d("asn"), _asn_or_zero) if selected else (_REQUIRED, _asn)
    out = {
        "asn": t.get("asn", int, asn_default, asn_conv),
        "local_address": t.get("local_address", str, None, _optional_address),
        "port": t.get("port", int, d("port"), _port),
        "passive": t.get("passive", bool, d("passive")),
        "password": t.get("password", str, d("password"), _password),
        "ttl_security": t.get("ttl_security", int, d("ttl_security"), _int_range(0, 254)),
        "multihop": t.get("multihop", int, d("multihop"), _int_range(1, 255)),
        "route_reflector_client": t.get(
            "route_reflector_client", bool, d("route_reflector_client")
        ),
        "keep_original_next_hop": t.get(
            "keep_original_next_hop", bool, d("keep_original_next_hop")
        ),
        "families": t.get_list("families", d("families"), _family),
        "import_policy": t.get("import", str, d("import_policy"), _policy_ref(inherit, False)),
        "export_policy": t.get("export", str, d("export_policy"), _policy_ref(inherit, True)),
        "max_prefixes": t.get("max_prefixes", int, d("max_prefixes"), _int_range(0, AS_MAX)),
        "shutdown_message": t.get(
            "shutdown_message", str, d("shutdown_message"), _shutdown_message
        ),
        "hold_time": hold,
        "keepalive": keepalive,
        "connect_retry_max": _connect_retry_max(t, bgp),
        "graceful_restart": t.get("graceful_restart", bool, bgp["graceful_restart"]),
        "long_lived_stale_time": t.get(
            "long_lived_stale_time",
            int,
            bgp["long_lived_stale_time"],
            _int_range(0, LLGR_TIME_MAX),
        ),
        "add_path": t.get("add_path", str, bgp["add_path"], _named(ADD_PATH_NAMES)),
        "add_path_send_max": t.get(
            "add_path_send_max", int, d("add_path_send_max"), _int_range(0, 65535)
        ),
        "soft_reconfiguration": t.get("soft_reconfiguration", bool, d("soft_reconfiguration")),
        "enforce_first_as": t.get("enforce_first_as", bool, d("enforce_first_as")),
        "local_asn": t.get("local_asn", int, d("local_asn"), _asn_or_zero),
        # FRR's allowas-in takes 1..10; more than that is a loop, not a topology.
        "allow_own_as": t.get("allow_own_as", int, d("allow_own_as"), _int_range(0, 10)),
        **_read_bfd(t, bgp),
    }
    _check_peer_options(t, out)
    return out


def _asn_or_zero(v: int) -> int:
    return 0 if v == 0 else _asn(v)


def _optional_address(v: str) -> IPAddress | None:
    return None if v == "" else _address(v)


def _policy_ref(inherit: _Inherit, export: bool) -> Callable[[str], str]:
    builtins = ("all", "none", "local") if export else ("all", "none")

    def conv(v: str) -> str:
        if v in builtins or v in inherit.policies:
            return v
        if v == "local":
            raise _Invalid('"local" applies to export only')
        choices = " | ".join(f'"{b}"' for b in builtins)
        raise _Invalid(f"{show(v)} is neither {choices} nor the name of a [[policy]]")

    return conv


def _connect_retry_max(t: _Table, bgp: dict[str, Any]) -> int | None:
    """The cap of the retry back-off: at least `bgp.connect_retry`, where it starts."""
    value: int | None = t.get(
        "connect_retry_max", int, bgp["connect_retry_max"], _int_range(1, 65535)
    )
    first = bgp["connect_retry"]
    if t.has("connect_retry_max") and value is not None and first is not None and value < first:
        t.error("connect_retry_max", f"{value} is below bgp.connect_retry ({first})")
        return None
    return value


def _check_peer_options(t: _Table, out: dict[str, Any]) -> None:
    families = out["families"]
    if families is not None and (not families or len(set(families)) != len(families)):
        t.error(
            "families",
            f"{show([toml_name(f) for f in families])} must list ipv4 and/or ipv6 once each",
        )
    if out["bfd"] and out["multihop"] not in (None, 1):
        t.error(
            "bfd",
            "needs a directly connected peer (multihop = 1): BFD here is single hop (RFC 5881)",
        )
    if out["ttl_security"] and out["multihop"] not in (None, 1):
        t.error(
            "ttl_security", "cannot be combined with multihop (GTSM sends with TTL 255, RFC 5082)"
        )


def _read_bfd(t: _Table, defaults: dict[str, Any]) -> dict[str, Any]:
    """`bfd`, `bfd_interval_ms`, `bfd_multiplier` (RFC 5880 §6.8.1: DesiredMinTxInterval and
    RequiredMinRxInterval, DetectMult), each defaulting to `defaults` ([bgp]'s values)."""
    return {
        "bfd": t.get("bfd", bool, defaults["bfd"]),
        "bfd_interval_ms": t.get(
            "bfd_interval_ms", int, defaults["bfd_interval_ms"], _int_range(10, 60000)
        ),
        "bfd_multiplier": t.get(
            "bfd_multiplier", int, defaults["bfd_multiplier"], _int_range(1, 255)
        ),
    }
