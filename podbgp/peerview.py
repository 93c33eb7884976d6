"""`podbgp show peer ADDRESS`: one peer in detail (what `show bgp neighbor X` and
`gobgp neighbor X` show), as plain data for the control API.

Built from three read-only sources: the speaker's `Peer` (settings, the session's
negotiated facts and the peer's OPEN, message counters, last error), our own OPEN
for the peer's current settings (`bgp.negotiate.build_open`, the capabilities we
send), and the RIB's per-peer counts (`rib.show.peer_routes`). Capabilities are
written out in words, one per line, with their RFC numbers' terms: multiprotocol
families (RFC 4760), route refresh (RFC 2918, 7313), extended message (RFC 8654),
extended next hop (RFC 8950), graceful restart (RFC 4724; N bit RFC 8538), 4-octet AS
(RFC 6793), ADD-PATH (RFC 7911), long-lived graceful restart (RFC 9494), FQDN.
"""

from __future__ import annotations

from typing import Any

from bgp.negotiate import build_open
from bgp.speaker import Peer
from bgp.wire.capabilities import (
    AddPathCapability,
    Capability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
    FqdnCapability,
    GracefulRestartCapability,
    LongLivedGracefulRestartCapability,
    MultiprotocolCapability,
    RouteRefreshCapability,
)
from bgp.wire.constants import Family
from rib.show import PeerRoutes

__all__ = ["describe_capability", "detail"]

_AFI = {1: "ipv4", 2: "ipv6"}
_SAFI = {1: "unicast", 2: "multicast", 4: "labeled-unicast", 128: "vpn"}
_ADD_PATH = {1: "receive", 2: "send", 3: "send+receive"}
# Codes some speakers still send beside the standard ones (IANA: "deprecated").
_PRE_STANDARD = {128: "route-refresh (pre-standard, code 128)"}


def _family(afi: int, safi: int) -> str:
    return f"{_AFI.get(afi, f'afi{afi}')}-{_SAFI.get(safi, f'safi{safi}')}"


def _gr(cap: GracefulRestartCapability) -> str:
    """``restart time 120 s, flags R; ipv4-unicast (forwarding preserved)``."""
    flags = "".join(f for f, on in (("R", cap.restarting), ("N", cap.notification)) if on)
    fams = ", ".join(
        _family(a, s) + (" (forwarding preserved)" if fwd else "") for a, s, fwd in cap.families
    )
    return (
        f"restart time {cap.restart_time} s"
        + (f", flags {flags}" if flags else "")
        + (f"; {fams}" if fams else "; no families (helper only)")
    )


def describe_capability(cap: Capability) -> str:
    """One capability in words, e.g. ``multiprotocol: ipv4-unicast``."""
    if isinstance(cap, MultiprotocolCapability):
        return f"multiprotocol: {_family(cap.afi, cap.safi)}"
    if isinstance(cap, FourOctetAsCapability):
        return f"4-octet-as: {cap.asn}"
    if isinstance(cap, GracefulRestartCapability):
        return "graceful-restart: " + _gr(cap)
    if isinstance(cap, AddPathCapability):
        entries = (f"{_family(a, s)} {_ADD_PATH.get(m, str(m))}" for a, s, m in cap.entries)
        return "add-path: " + ", ".join(entries)
    if isinstance(cap, ExtendedNextHopCapability):
        entries = (f"{_family(a, s)} via {_AFI.get(n, n)}" for a, s, n in cap.entries)
        return "extended-nexthop: " + ", ".join(entries)
    if isinstance(cap, LongLivedGracefulRestartCapability):
        entries = (f"{_family(a, s)} stale {t} s" for a, s, _f, t in cap.entries)
        return "long-lived-graceful-restart: " + ", ".join(entries)
    if isinstance(cap, FqdnCapability):
        return f"fqdn: {cap.hostname}" + (f".{cap.domain}" if cap.domain else "")
    flags = {
        RouteRefreshCapability: "route-refresh",
        EnhancedRouteRefreshCapability: "enhanced-route-refresh",
        ExtendedMessageCapability: "extended-message",
    }
    known = flags.get(type(cap)) or _PRE_STANDARD.get(cap.code)
    return known or f"capability {cap.code}: {cap.value().hex() or '(empty)'}"


def _received_open(peer: Peer) -> list[str] | None:
    """The capabilities of the peer's OPEN on the current session (None before one)."""
    session = peer.established or peer.main
    fsm = session.fsm if session is not None else None
    msg = fsm.peer_open if fsm is not None and fsm.negotiated is not None else None
    return None if msg is None else [describe_capability(c) for c in msg.capabilities]


def _timers(peer: Peer) -> dict[str, Any]:
    """Configured timers (RFC 4271 §10) and, while a session is open, the negotiated ones."""
    s = peer.settings
    neg = peer.negotiated
    return {
        "configured": {
            "hold_time": s.hold_time,
            "keepalive": s.keepalive if s.keepalive is not None else s.hold_time // 3,
            "connect_retry": s.connect_retry,
            "connect_retry_max": s.connect_retry_max,
            "delay_open": s.delay_open,
        },
        "negotiated": (
            {"hold_time": neg.hold_time, "keepalive": neg.keepalive} if neg is not None else None
        ),
    }


def _graceful_restart(peer: Peer, routes: PeerRoutes | None) -> dict[str, Any]:
    """Both ends' RFC 4724 state: ours as configured, the peer's from its OPEN."""
    s = peer.settings
    neg = peer.negotiated
    theirs = neg.peer_restart if neg is not None else None
    return {
        "local": {
            "enabled": s.graceful_restart,
            "restart_time": s.restart_time,
            "restarting": s.restarting,
        },
        "peer": None if theirs is None else _gr(theirs),
        "stale_families": list(routes.stale) if routes else [],
        "end_of_rib_received": list(routes.eor_received) if routes else [],
    }


def _routes(routes: PeerRoutes | None) -> dict[str, Any] | None:
    if routes is None:
        return None
    return {
        "received": routes.received,
        "received_pre_policy": routes.received_pre_policy,
        "advertised": routes.advertised,
    }


def detail(
    row: dict[str, Any], peer: Peer, local_as: int, router_id: str, routes: PeerRoutes | None
) -> dict[str, Any]:
    """`row` (the peer's `show peers` object) with timers, both OPENs' capabilities,
    per-family route counts and graceful-restart state added."""
    ours = build_open(local_as, router_id, peer.settings)
    families = [f.name.lower() for f in peer.settings.families if isinstance(f, Family)]
    return {
        **row,
        "families_configured": families,
        "timers": _timers(peer),
        "capabilities": {
            "sent": [describe_capability(c) for c in ours.capabilities],
            "received": _received_open(peer),
        },
        "routes": _routes(routes),
        "graceful_restart": _graceful_restart(peer, routes),
    }
