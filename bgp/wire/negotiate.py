"""Derive the session's ``CodecContext`` from the two OPEN messages.

A capability counts only when both sides sent it (RFC 5492 §3): 4-octet AS
(RFC 6793 §4), extended message (RFC 8654 §3), extended next hop for IPv4
unicast NLRI with an IPv6 next hop (RFC 8950 §3). ADD-PATH is directional
(RFC 7911 §4): we receive path identifiers for a family when we said
receive and the peer said send, and send them when the reverse holds.
"""

from __future__ import annotations

from bgp.wire.capabilities import (
    AddPathCapability,
    Capability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
)
from bgp.wire.constants import AFI_IPV4, AFI_IPV6, SAFI_UNICAST, Family
from bgp.wire.context import CodecContext
from bgp.wire.messages import Open

__all__ = ["negotiate"]


def _has(msg: Open, cls: type[Capability]) -> bool:
    return any(isinstance(c, cls) for c in msg.capabilities)


def _add_path_mode(msg: Open, family: Family) -> int:
    mode = 0
    for cap in msg.capabilities:
        if isinstance(cap, AddPathCapability):
            mode |= cap.mode(family)
    return mode


def _ext_nh_v4(msg: Open) -> bool:
    want = (AFI_IPV4, SAFI_UNICAST, AFI_IPV6)
    return any(
        isinstance(c, ExtendedNextHopCapability) and want in c.entries for c in msg.capabilities
    )


def negotiate(
    local: Open,
    remote: Open,
    *,
    ebgp: bool,
    local_as: int = 0,
    peer_as: int = 0,
    confed_peer: bool = False,
) -> CodecContext:
    """The codec facts both OPENs agree on."""
    rx = {f: bool(_add_path_mode(local, f) & 1 and _add_path_mode(remote, f) & 2) for f in Family}
    tx = {f: bool(_add_path_mode(local, f) & 2 and _add_path_mode(remote, f) & 1) for f in Family}
    v4, v6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST
    return CodecContext(
        as4=_has(local, FourOctetAsCapability) and _has(remote, FourOctetAsCapability),
        add_path_ipv4=rx[v4],
        add_path_ipv6=rx[v6],
        extended_message=_has(local, ExtendedMessageCapability)
        and _has(remote, ExtendedMessageCapability),
        extended_nexthop_ipv4=_ext_nh_v4(local) and _ext_nh_v4(remote),
        ebgp=ebgp,
        local_as=local_as,
        peer_as=peer_as or remote.peer_as,
        confed_peer=confed_peer,
        add_path_send_ipv4=tx[v4],
        add_path_send_ipv6=tx[v6],
    )
