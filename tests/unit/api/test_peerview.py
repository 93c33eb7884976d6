"""`show peer`'s capabilities in words (podbgp.peerview.describe_capability)."""

from __future__ import annotations

from bgp.wire.capabilities import (
    AddPathCapability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
    FqdnCapability,
    GracefulRestartCapability,
    LongLivedGracefulRestartCapability,
    MultiprotocolCapability,
    RouteRefreshCapability,
    UnknownCapability,
)
from podbgp.peerview import describe_capability


def test_every_capability_in_words() -> None:
    cases = [
        (MultiprotocolCapability(2, 1), "multiprotocol: ipv6-unicast"),
        (RouteRefreshCapability(), "route-refresh"),
        (EnhancedRouteRefreshCapability(), "enhanced-route-refresh"),
        (ExtendedMessageCapability(), "extended-message"),
        (FourOctetAsCapability(4200000001), "4-octet-as: 4200000001"),
        (GracefulRestartCapability(120, True, True, ((1, 1, True), (2, 1, False))),
         "graceful-restart: restart time 120 s, flags RN; ipv4-unicast (forwarding preserved), "
         "ipv6-unicast"),
        (GracefulRestartCapability(90), "graceful-restart: restart time 90 s; no families "
         "(helper only)"),
        (AddPathCapability(((1, 1, 3), (2, 1, 1))),
         "add-path: ipv4-unicast send+receive, ipv6-unicast receive"),
        (ExtendedNextHopCapability(((1, 1, 2),)), "extended-nexthop: ipv4-unicast via ipv6"),
        (LongLivedGracefulRestartCapability(((1, 1, 0, 3600),)),
         "long-lived-graceful-restart: ipv4-unicast stale 3600 s"),
        (FqdnCapability("tor", "lab"), "fqdn: tor.lab"),
        (UnknownCapability(128, b""), "route-refresh (pre-standard, code 128)"),
        (UnknownCapability(200, b"\x01\x02"), "capability 200: 0102"),
    ]  # fmt: skip
    assert [describe_capability(c) for c, _ in cases] == [text for _, text in cases]
