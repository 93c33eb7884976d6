"""``show routes`` data and the session adapter (real codec objects, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from ribkit import V4, announce, attrs, make_rib, peer

from bgp.events import SessionDown
from bgp.negotiate import Negotiated
from bgp.wire import CodecContext, Family
from bgp.wire.capabilities import GracefulRestartCapability
from bgp.wire.update import decode_update
from rib.adapter import PeerHandles, RibAdapter
from rib.settings import PeerPolicy
from rib.show import routes


def test_show_routes_best_with_reason_and_losers() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, 5), nh="192.0.2.1"))
    announce(rib, b, ["203.0.113.0/24"], attrs((65002,), nh="192.0.2.2"))
    announce(rib, a, ["198.51.100.0/24"], attrs((65001,), nh="192.0.2.1"))
    rows = routes(rib, family="ipv4")
    assert [r["prefix"] for r in rows] == ["198.51.100.0/24", "203.0.113.0/24"]
    r = rows[1]
    assert r["best"]["peer"] == b and r["reason"] == "as-path-length"
    assert [(p["peer"], p["best"], p["reason"]) for p in r["paths"]] == [
        (b, True, "as-path-length"),
        (a, False, "as-path-length"),
    ]
    assert r["ecmp_next_hops"] == ["192.0.2.2"]
    assert rows[0]["reason"] == "only-path"
    assert [x["prefix"] for x in routes(rib, prefix="203.0.113.7")] == ["203.0.113.0/24"]
    assert [x["prefix"] for x in routes(rib, peer=b)] == ["203.0.113.0/24"]
    assert routes(rib, family="ipv6") == []


@dataclass
class Handle:
    key: str
    woken: int = 0
    local_address: None = None  # no session socket: next hop self is the node's address

    def wake(self) -> None:
        self.woken += 1


def _neg(asn: int, rid: str, gr: bool = False) -> Negotiated:
    cap = GracefulRestartCapability(120, False, False, ((1, 1, True),)) if gr else None
    return Negotiated(
        peer_as=asn,
        peer_router_id=IPv4Address(rid),
        hold_time=90,
        keepalive=30,
        families=frozenset({Family.IPV4_UNICAST}),
        ctx=CodecContext(as4=True, ebgp=True, local_as=65000, peer_as=asn),
        route_refresh=True,
        enhanced_route_refresh=False,
        peer_restart=cap,
        add_path_rx=frozenset(),
        add_path_tx=frozenset(),
    )


def _update(ctx: CodecContext) -> bytes:
    from bgp.wire.update import encode_announce

    return encode_announce(attrs((65001,), nh="192.0.2.1"), V4, [b"\x18\xcb\x00\x71"], ctx)[0]


def test_adapter_end_to_end_with_wakes_and_graceful_down() -> None:
    handles = PeerHandles()
    rib = make_rib(handles)
    timers: list[float] = []
    ad = RibAdapter(
        rib,
        handles,
        local4=IPv4Address("10.0.0.1"),
        clock=lambda: 5.0,
        call_at=lambda t, cb: timers.append(t),
        policy_for=lambda key, asn: PeerPolicy.make(
            key, asn, export_policy=__import__("rib").builtin("all")
        ),
    )
    fa, mo = Handle("192.0.2.1"), Handle("192.0.2.2")
    na, nm = _neg(65001, "192.0.2.1", gr=True), _neg(65002, "192.0.2.2")
    src_m = ad(mo, nm)
    ad.peer_up(fa, na)
    ad.peer_up(mo, nm)
    assert src_m.pull(1 << 16)  # End-of-RIB
    assert src_m.pull(1 << 16) == b""
    ctx = na.ctx
    ad.updates_received(fa, [decode_update(_update(ctx), ctx)])
    assert mo.woken >= 1
    out = src_m.pull(1 << 16)
    u = decode_update(out, CodecContext(as4=True))
    assert u.attrs is not None and u.attrs.as_path == ((2, (65000, 65001)),)
    assert u.attrs.next_hop == IPv4Address("10.0.0.1")
    ad.peer_down(fa, SessionDown(0, 0, "closed", None, True, graceful=True))  # a GR peer's TCP loss
    assert len(rib.loc[V4]) == 1 and timers == [125.0]
    ad.peer_down(mo, SessionDown(6, 2, "shutdown", False, True))
    assert rib.peers["192.0.2.2"].up is False
