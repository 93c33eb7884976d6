"""RFC 4760 §7 / RFC 7606 §2, §7.11: AFI/SAFI disable flushes a family from one peer
and ignores that family's later routes from it until the session resets.

The malformed UPDATEs are built by hand from the RFC layouts and go through the
real codec (``decode_update``) and ``RibAdapter``, as a session hands them over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network

from ribkit import V4, V6, announce, attrs, drain, facts, key, make_rib, peer

from bgp.events import SessionDown
from bgp.negotiate import Negotiated
from bgp.wire import Action, CodecContext, Family, PathAttributes
from bgp.wire.update import Update, decode_update
from rib import builtin
from rib.adapter import PeerHandles, RibAdapter
from rib.settings import PeerPolicy

FEEDER = "192.0.2.1"
V6NH = bytes.fromhex("20010db8000000000000000000000001")


def _attr(flags: int, code: int, value: bytes) -> bytes:
    return struct.pack("!BBB", flags, code, len(value)) + value


def _v6(text: str) -> bytes:
    net = IPv6Network(text)
    return bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) // 8]


def _update(attrs_: bytes = b"", nlri: bytes = b"") -> bytes:
    body = struct.pack("!H", 0) + struct.pack("!H", len(attrs_)) + attrs_ + nlri
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


BASE = _attr(0x40, 1, b"\x00") + _attr(0x40, 2, b"\x02\x01" + (65001).to_bytes(4, "big"))


def v6_update(prefix: str, nh: bytes = V6NH) -> bytes:
    """IPv6 unicast in MP_REACH_NLRI (RFC 4760 §3); a next hop of 12 octets is malformed."""
    mp = struct.pack("!HBB", 2, 1, len(nh)) + nh + b"\x00" + _v6(prefix)
    return _update(BASE + _attr(0x80, 14, mp))


def v4_update(prefix: str) -> bytes:
    net, ln = prefix.split("/")
    octets = bytes(int(x) for x in net.split("."))
    nlri = bytes((int(ln),)) + octets[: (int(ln) + 7) // 8]
    return _update(BASE + _attr(0x40, 3, bytes((192, 0, 2, 1))), nlri)


@dataclass
class Handle:
    key: str
    local_address: None = None  # no session socket: next hop self is the node's address

    def wake(self) -> None:
        pass


def _neg() -> Negotiated:
    return Negotiated(
        peer_as=65001,
        peer_router_id=IPv4Address(FEEDER),
        hold_time=90,
        keepalive=30,
        families=frozenset({Family.IPV4_UNICAST, Family.IPV6_UNICAST}),
        ctx=CodecContext(as4=True, ebgp=True, local_as=65000, peer_as=65001),
        route_refresh=True,
        enhanced_route_refresh=False,
        peer_restart=None,
        add_path_rx=frozenset(),
        add_path_tx=frozenset(),
    )


def decoded(raw: bytes) -> Update:
    ctx = CodecContext(as4=True, ebgp=True, local_as=65000, peer_as=65001)
    return decode_update(raw, ctx)


def adapter_with_feeder() -> tuple[RibAdapter, Handle, Negotiated]:
    handles = PeerHandles()
    rib = make_rib(handles)
    ad = RibAdapter(
        rib,
        handles,
        local4=IPv4Address("10.0.0.1"),
        clock=lambda: 1.0,
        policy_for=lambda k, asn: PeerPolicy.make(k, asn, export_policy=builtin("all")),
    )
    h, neg = Handle(FEEDER), _neg()
    ad.peer_up(h, neg)
    return ad, h, neg


def test_malformed_mp_reach_is_afi_safi_disable() -> None:
    u = decoded(v6_update("2001:db8:2::/48", nh=V6NH[:12]))
    assert u.action == Action.AFI_SAFI_DISABLE and u.disabled is Family.IPV6_UNICAST


def test_disabled_family_flushed_and_later_routes_ignored_until_reset() -> None:
    ad, h, neg = adapter_with_feeder()
    rib = ad.rib
    ad.updates_received(
        h, [decoded(v6_update("2001:db8:1::/48")), decoded(v4_update("10.1.0.0/16"))]
    )
    assert key("2001:db8:1::/48") in rib.loc[V6]
    ad.updates_received(h, [decoded(v6_update("2001:db8:2::/48", nh=V6NH[:12]))])
    assert rib.loc[V6] == {}  # flushed
    ad.updates_received(h, [decoded(v6_update("2001:db8:3::/48"))])
    assert rib.loc[V6] == {}  # ignored for the rest of the session
    assert rib.peers[FEEDER].counts.get(V6, 0) == 0
    ad.updates_received(h, [decoded(v4_update("10.2.0.0/16"))])
    assert set(rib.loc[V4]) == {key("10.1.0.0/16"), key("10.2.0.0/16")}  # IPv4 unaffected
    ad.peer_down(h, SessionDown(6, 2, "shutdown", False, True))
    ad.peer_up(h, neg)
    ad.updates_received(h, [decoded(v6_update("2001:db8:3::/48"))])
    assert set(rib.loc[V6]) == {key("2001:db8:3::/48")}  # a new session accepts it again


def test_the_same_update_and_batch_after_disable_are_ignored() -> None:
    """Routes of the family later in the same batch are ignored as well."""
    ad, h, _ = adapter_with_feeder()
    bad = decoded(v6_update("2001:db8:2::/48", nh=V6NH[:12]))
    ad.updates_received(h, [bad, decoded(v6_update("2001:db8:4::/48"))])
    assert ad.rib.loc[V6] == {}


def test_other_peers_are_told_of_the_withdrawal_only() -> None:
    rib = make_rib()
    a = peer(rib, FEEDER, 65001)
    m = peer(rib, "192.0.2.2", 65002)
    v6a = PathAttributes(
        origin=0,
        as_path=((2, (65001,)),),
        mp_next_hop=(IPv6Network("2001:db8::1/128").network_address,),
    )
    announce(rib, a, ["2001:db8:1::/48"], v6a)
    announce(rib, a, ["203.0.113.0/24"], attrs())
    assert set(drain(rib, m).announced) == {"2001:db8:1::/48", "203.0.113.0/24"}
    rib.flush_family(a, V6)
    out = drain(rib, m)
    assert out.withdrawn == ["2001:db8:1::/48"] and out.announced == {}
    announce(rib, a, ["2001:db8:5::/48"], v6a)
    assert drain(rib, m).announced == {}


def test_add_path_and_soft_reconfiguration_routes_ignored_too() -> None:
    rib = make_rib()
    a = peer(rib, FEEDER, 65001, soft_reconfiguration=True)
    rib.flush_family(a, V4)
    rib.receive(a, V4, (), attrs(), [(7).to_bytes(4, "big") + key("10.1.0.0/16")], add_path=True)
    rib.receive(a, V4, (), attrs(), [key("10.2.0.0/16")])
    rib.flush()
    assert rib.loc[V4] == {}
    assert not rib.peers[a].pre_policy.get(V4)


def test_graceful_down_keeps_no_stale_routes_of_a_disabled_family() -> None:
    rib = make_rib()
    fx = facts(gr_restart_time=120, gr_families={V4: True, V6: True})
    a = peer(rib, FEEDER, 65001, fx=fx)
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.flush_family(a, V4)
    rib.peer_down(a, 10.0, graceful=True)
    assert rib.peers[a].stale == {V6}


def test_restarting_speaker_stops_waiting_for_a_disabled_familys_end_of_rib() -> None:
    """RFC 4724 §4.1: deferral waits for each GR peer's End-of-RIB per family; a family
    disabled for the session will not bring routes, so it is not waited for."""
    rib = make_rib(restarting=True)
    fx = facts(gr_restart_time=120, gr_families={V4: True, V6: True})
    a = peer(rib, FEEDER, 65001, fx=fx)
    rib.end_of_rib(a, V4)
    assert rib.deferred == {V6}
    rib.flush_family(a, V6)
    assert rib.converged
