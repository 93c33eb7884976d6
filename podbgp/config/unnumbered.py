"""`[[bgp.peer]]`'s unnumbered keys: `interface`, a link-local or absent `address`,
`neighbor_discovery` and its interval, `extended_nexthop` (docs/configuration.md,
*Unnumbered peering*)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from bgp.ndp import Discovery
from bgp.settings import link_peer_address
from podbgp.config.reader import _REQUIRED, _enum, _int_range, _Invalid, _Table, default_of, show
from podbgp.config.schema import IPAddress, Peer

__all__ = ["link_name", "peer_address", "read_unnumbered", "unnumbered_address"]


def peer_address(t: _Table, numbered: Callable[[str], Any]) -> tuple[Any, str | None]:
    """A peer's `address` and `interface` ("" for a numbered peer, None if invalid).
    A zoned link-local `address` alone (fe80::2%eth1) is unnumbered on its zone."""
    interface = t.get("interface", str, "", link_name)
    if interface != "" or not t.has("address"):
        return unnumbered_address(t, interface), interface
    address = t.get("address", str, _REQUIRED, numbered)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        interface = address.scope_id
    return address, interface


def link_name(v: str) -> str:
    """A Linux interface name: 1..15 bytes, no '/', ':', '%' or whitespace (dev_valid_name)."""
    if not v:
        return ""
    if len(v.encode()) > 15 or v in (".", "..") or any(c in v for c in "/:% \t\n"):
        raise _Invalid(f"{show(v)} is not an interface name")
    return v


def unnumbered_address(t: _Table, interface: str | None) -> IPAddress | None:
    """`address` of a peer with `interface`: a link-local one (its zone the interface),
    or none at all, the neighbour then found on the link."""
    if not t.has("address"):
        if interface is None:  # a bad interface, reported already
            t.seen.add("address")
            return None
        if not interface:
            t.seen.add("address")
            t.error("address", "is required (or peer_selector, for in-cluster peers chosen "
                    "by label; or interface, for an unnumbered peer)")  # fmt: skip
            return None
        t.seen.add("address")
        return ipaddress.IPv6Address(link_peer_address(interface))
    raw = t.get("address", str, _REQUIRED)
    if raw is None:
        return None
    host, _, zone = raw.partition("%")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        t.error("address", f"{show(raw)} is not an IP address")
        return None
    if not (isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local) or addr == _FE80:
        t.error("address", f"{show(raw)} is not an IPv6 link-local address, which "
                "an unnumbered peer (interface) needs; or leave it out to find the neighbour")  # fmt: skip
        return None
    if zone and zone != interface:
        t.error("address", f"the zone of {show(raw)} is not the interface {show(interface)}")
        return None
    return ipaddress.IPv6Address(f"{addr}%{interface}")


_FE80 = ipaddress.IPv6Address("fe80::")


def read_unnumbered(t: _Table, interface: str) -> dict[str, Any]:
    """`neighbor_discovery` (only without an address), its interval, `extended_nexthop`
    (on by default for an unnumbered peer: RFC 8950 carries its IPv4 routes)."""
    discovers = bool(interface) and not t.has("address")
    mode = t.get("neighbor_discovery", str, default_of(Peer, "neighbor_discovery"),
                 _enum(Discovery))  # fmt: skip
    if t.has("neighbor_discovery") and not discovers:
        t.error("neighbor_discovery", "is only for a peer with interface and no address")
    interval = t.get("neighbor_discovery_interval", int,
                     default_of(Peer, "neighbor_discovery_interval"), _int_range(1, 1800))  # fmt: skip
    enh = t.get("extended_nexthop", bool, bool(interface))
    return {
        "interface": interface,
        "neighbor_discovery": mode,
        "neighbor_discovery_interval": interval,
        "extended_nexthop": enh,
    }
