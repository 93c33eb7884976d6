"""A prefix repeated in one UPDATE (or in merged withdrawals) is applied once.

Found by the atheris target (tests/fuzz): a withdrawal listing a prefix twice
raised KeyError out of ``Rib.receive`` through ``RibAdapter.updates_received``,
and an announcement listing one twice counted it twice towards the peer's
prefix total (max-prefix, ``show peers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from ribkit import V4, announce, attrs, drain, key, make_rib, peer, withdraw

from bgp.negotiate import Negotiated
from bgp.wire import CodecContext, Family
from bgp.wire.update import decode_update
from rib import builtin
from rib.adapter import PeerHandles, RibAdapter
from rib.settings import PeerPolicy

MARKER = b"\xff" * 16


def test_prefix_repeated_in_one_announcement_counts_once() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    drain(rib, b)
    announce(rib, a, ["10.1.0.0/16", "10.1.0.0/16"], attrs((65001,)))
    assert rib.peers[a].counts[V4] == 1
    assert list(drain(rib, b).announced) == ["10.1.0.0/16"]
    withdraw(rib, a, ["10.1.0.0/16"])
    assert rib.peers[a].counts[V4] == 0 and rib.loc[V4] == {}


def test_prefix_repeated_in_one_withdrawal_is_withdrawn_once() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, ["10.1.0.0/16", "10.2.0.0/16"], attrs((65001,)))
    drain(rib, b)
    withdraw(rib, a, ["10.1.0.0/16", "10.1.0.0/16"])
    assert rib.peers[a].counts[V4] == 1
    assert list(rib.loc[V4]) == [key("10.2.0.0/16")]
    assert drain(rib, b).withdrawn == ["10.1.0.0/16"]


@dataclass
class Handle:
    key: str
    local_address: None = None  # no session socket: next hop self is the node's address

    def wake(self) -> None:
        pass


def _neg() -> Negotiated:
    return Negotiated(
        peer_as=65001,
        peer_router_id=IPv4Address("192.0.2.1"),
        hold_time=90,
        keepalive=30,
        families=frozenset({Family.IPV4_UNICAST}),
        ctx=CodecContext(as4=True, ebgp=True, local_as=65000, peer_as=65001),
        route_refresh=True,
        enhanced_route_refresh=False,
        peer_restart=None,
        add_path_rx=frozenset(),
        add_path_tx=frozenset(),
    )


def _update(withdrawn: bytes, path_attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    body = len(withdrawn).to_bytes(2, "big") + withdrawn
    body += len(path_attrs).to_bytes(2, "big") + path_attrs + nlri
    return MARKER + (19 + len(body)).to_bytes(2, "big") + b"\x02" + body


def test_wire_update_withdrawing_a_prefix_twice_through_the_adapter() -> None:
    handles = PeerHandles()
    rib = make_rib(handles)
    ad = RibAdapter(
        rib,
        handles,
        clock=lambda: 1.0,
        policy_for=lambda k, asn: PeerPolicy.make(k, asn, export_policy=builtin("all")),
    )
    h, neg = Handle("192.0.2.1"), _neg()
    ad.peer_up(h, neg)
    ctx = neg.ctx
    # ORIGIN IGP, AS_PATH (65001), NEXT_HOP 192.0.2.1
    attrs_ = bytes.fromhex("40010100" + "4002060201" + "0000fde9" + "400304c0000201")
    ten = bytes.fromhex("100a01")  # 10.1.0.0/16
    ad.updates_received(h, [decode_update(_update(b"", attrs_, ten + ten), ctx)])
    assert rib.peers[h.key].counts[V4] == 1
    ad.updates_received(h, [decode_update(_update(ten + ten), ctx)])
    assert rib.loc[V4] == {} and rib.peers[h.key].counts[V4] == 0
