"""The speaker's side of unnumbered peering, without sockets: names, matching an incoming
link-local connection to the peer of its link, and the settings' checks."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from bgp.ndp import Discovery
from bgp.settings import PeerSettings, SpeakerSettings, link_peer_address
from bgp.speaker import Speaker, _norm, _zoned

from .support import Sink


def speaker(*peers: PeerSettings) -> Speaker:
    sp = Speaker(SpeakerSettings(65000, "10.0.0.1"), Sink(), lambda p, n: None)  # type: ignore[arg-type, return-value]
    for ps in peers:
        sp.add_peer(ps)
    return sp


def discovered(interface: str = "eth1") -> PeerSettings:
    return PeerSettings(link_peer_address(interface), 65001, interface=interface,
                        discovery=Discovery.RA)  # fmt: skip


def test_a_link_local_address_keeps_its_zone_and_a_global_one_loses_it() -> None:
    assert _norm("fe80::2%eth1") == "fe80::2%eth1"
    assert _norm("FE80::0002%eth1") == "fe80::2%eth1"
    assert _norm("2001:db8::2%eth1") == "2001:db8::2"
    assert _norm("::ffff:10.0.0.2") == "10.0.0.2"
    assert link_peer_address("eth1") == "fe80::%eth1"


def test_an_accepted_sockaddr_names_its_link_by_scope_id() -> None:
    assert _zoned(("fe80::2", 179, 0, 1)) == "fe80::2%lo"  # ifindex 1 is lo in any namespace
    assert _zoned(("10.0.0.2", 179)) == "10.0.0.2"
    assert _zoned(("2001:db8::2", 179, 0, 0)) == "2001:db8::2"


def test_incoming_connection_on_the_link_is_the_discovered_peer() -> None:
    sp = speaker(discovered("eth1"), discovered("eth2"))
    peer = sp._link_peer("fe80::2%eth1")
    assert peer is not None and peer.key == "fe80::%eth1"
    assert peer.neighbour == IPv6Address("fe80::2")  # learned from the connection
    # Once known, another address on that link is not this peer's neighbour.
    assert sp._link_peer("fe80::3%eth1") is None
    assert sp._link_peer("fe80::3%eth3") is None  # no peer on eth3
    assert sp._link_peer("fe80::3") is None  # no zone: no link
    other = sp._link_peer("fe80::3%eth2")
    assert other is not None and other.key == "fe80::%eth2"


def test_fixed_neighbour_is_matched_by_its_own_name() -> None:
    ps = PeerSettings("fe80::2%eth1", 65001, interface="eth1")
    sp = speaker(ps)
    assert sp.peer("fe80::2%eth1") is not None
    assert sp.peers["fe80::2%eth1"].neighbour == IPv6Address("fe80::2")
    assert sp._link_peer("fe80::2%eth1") is None  # not a discovering peer: found by name


def test_heard_neighbour_is_kept_while_none_is_up() -> None:
    sp = speaker(discovered())
    peer = sp.peers["fe80::%eth1"]
    peer.neighbour_heard(IPv6Address("fe80::2"))  # no session: no dial (main is None)
    assert peer.neighbour == IPv6Address("fe80::2")
    peer.neighbour_heard(IPv6Address("fe80::3"))
    assert peer.neighbour == IPv6Address("fe80::3")


def test_no_neighbour_yet_is_a_connect_failure_not_a_crash() -> None:
    peer = speaker(discovered()).peers["fe80::%eth1"]
    with pytest.raises(OSError, match="no neighbour found on eth1 yet"):
        peer.dial_socket(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"address": "10.0.0.2", "interface": "eth1"}, "an unnumbered peer's address is IPv6 link-local"),
        ({"address": "2001:db8::2", "interface": "eth1"}, "an unnumbered peer's address is IPv6 link-local"),
        ({"address": "10.0.0.2", "discovery": Discovery.ND}, "neighbour discovery needs an interface"),
    ],
)  # fmt: skip
def test_settings_checks(kw: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PeerSettings(asn=65001, **kw)  # type: ignore[arg-type]


def test_an_unnumbered_peer_is_found_by_its_interface_name() -> None:
    sp = speaker(discovered("eth1"), PeerSettings("fe80::2%eth2", 65001, interface="eth2"))
    one, two = sp.peer("eth1"), sp.peer("eth2")
    assert one is not None and one.key == "fe80::%eth1"
    assert two is not None and two.key == "fe80::2%eth2"
    assert sp.peer("eth3") is None and sp.peer("fe80::%eth1") is one
