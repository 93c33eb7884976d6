"""What podbgp writes as MRT, an independent reader (mrtparse) reads back the same."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st
from mrtread import Row, read_table

from bgp.monitor.mrt import MrtPeer, RibEntry, encode_peer_index_table, encode_rib
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.prefix import key_from_network

asns = st.integers(1, 2**32 - 1)
v4 = st.integers(1, 2**32 - 2).map(IPv4Address)
v6 = st.integers(1, 2**128 - 2).map(IPv6Address)
peers = st.lists(st.builds(MrtPeer, v4, st.one_of(v4, v6), asns), min_size=1, max_size=4)


@st.composite
def routes(draw: st.DrawFn, family: Family) -> tuple[str, PathAttributes]:
    bits = 32 if family is Family.IPV4_UNICAST else 128
    ln = draw(st.integers(0, bits))
    addr = draw(st.integers(0, 2**bits - 1))
    kind = IPv4Network if family is Family.IPV4_UNICAST else IPv6Network
    net = kind((addr, ln), strict=False)
    path = tuple(draw(st.lists(asns, min_size=0, max_size=5)))
    as_path = ((2, path),) if path else ()  # iBGP: no segment at all
    comms = tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=3, unique=True)))
    if family is Family.IPV4_UNICAST:
        attrs = PathAttributes(origin=0, as_path=as_path, next_hop=draw(v4), communities=comms)
    else:
        attrs = PathAttributes(
            origin=0, as_path=as_path, mp_next_hop=(draw(v6),), communities=comms
        )
    return str(net), attrs


@settings(max_examples=60, deadline=None)
@given(
    peers,
    st.lists(st.one_of(routes(Family.IPV4_UNICAST), routes(Family.IPV6_UNICAST)), max_size=8),
    st.booleans(),
    st.data(),
)
def test_table_dump_reads_back(
    table_peers: list[MrtPeer],
    table: list[tuple[str, PathAttributes]],
    add_path: bool,
    data: st.DataObject,
) -> None:
    out = encode_peer_index_table(1, IPv4Address("10.0.0.1"), "podbgp", table_peers)
    want = []
    for seq, (prefix, attrs) in enumerate(table):
        family, key = key_from_network(prefix)
        index = data.draw(st.integers(0, len(table_peers) - 1))
        path_id = data.draw(st.integers(0, 2**32 - 1)) if add_path else None
        out += encode_rib(2, seq, family, key, [RibEntry(index, 3, attrs, path_id)], add_path)
        peer = table_peers[index]
        nh = attrs.nexthop(family)
        comms = tuple(f"{c >> 16}:{c & 0xFFFF}" for c in attrs.communities)
        path = attrs.as_path[0][1] if attrs.as_path else ()
        want.append(Row(prefix, str(peer.address), peer.asn, str(nh), path, path_id, comms))
    got_peers, rows = read_table(out)
    assert [(p["peer_ip"], int(p["peer_as"]), p["peer_bgp_id"]) for p in got_peers] == [
        (str(p.address), p.asn, str(p.bgp_id)) for p in table_peers
    ]
    assert rows == want
