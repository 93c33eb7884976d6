"""Two podbgp speakers over an unnumbered link (IPv6 link-local addresses only), each in
its own namespace: every way of finding the neighbour (router advertisements, an echo
to all-nodes, a fixed link-local address) against every other, and the session comes
up with extended next hop (RFC 8950) whichever side dials first."""

from __future__ import annotations

import pytest
from sessions_harness import V4, V6, SpeakerThread

from bgp.ndp import Discovery
from bgp.settings import PeerSettings, SpeakerSettings, link_peer_address
from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = [pytest.mark.interop, pytest.mark.root]


def link_local(ns: Netns) -> str:
    out = ns.ip("-6", "-o", "addr", "show", "dev", "eth1", "scope", "link")
    return out.split("inet6 ")[1].split("/")[0]


def settings(mode: str, other_ll: str, asn: int) -> PeerSettings:
    common = {"interface": "eth1", "families": (V4, V6), "extended_nexthop": True,
              "hold_time": 9, "connect_retry": 1.0, "discovery_interval": 1.0}  # fmt: skip
    if mode == "fixed":
        return PeerSettings(f"{other_ll}%eth1", asn, **common)  # type: ignore[arg-type]
    return PeerSettings(link_peer_address("eth1"), asn, discovery=Discovery(mode), **common)  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode_a", "mode_b"), [("ra", "ra"), ("nd", "nd"), ("ra", "nd"),
                                                ("fixed", "ra"), ("fixed", "nd")])  # fmt: skip
def test_speakers_find_each_other(netns: NetnsGroup, mode_a: str, mode_b: str) -> None:
    a, b = netns.add("a"), netns.add("b")
    for ns in (a, b):
        ns.sysctl("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    netns.veth(a, "eth1", b, "eth1")
    ll_a, ll_b = link_local(a), link_local(b)
    pa, pb = settings(mode_a, ll_b, 65002), settings(mode_b, ll_a, 65001)
    sa = SpeakerSettings(asn=65001, router_id="10.0.0.1", listen=("::",))
    sb = SpeakerSettings(asn=65002, router_id="10.0.0.2", listen=("::",))
    with SpeakerThread(a.name, sa, [pa]) as one, SpeakerThread(b.name, sb, [pb]) as two:
        for node, peer, other_ll in ((one, pa, ll_b), (two, pb, ll_a)):
            node.wait_established(peer.address, timeout=30)
            stats = node.stats(peer.address)
            assert stats["interface"] == "eth1" and stats["neighbour"] == other_ll
            assert stats["negotiated"]["extended_nexthop"] is True
            assert stats["remote"].startswith(other_ll)
