"""`[[bgp.peer]] interface = ...`: unnumbered peering's keys, their defaults and errors."""

from __future__ import annotations

import ipaddress

import pytest

from bgp.ndp import Discovery
from podbgp.config import ConfigError, load_config_dict, load_config_text
from podbgp.wiring import peer_settings

NODE = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'


def peer(body: str) -> str:
    return NODE + "[[bgp.peer]]\nasn = 65000\n" + body


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    return list(info.value.errors)


def test_interface_alone_discovers_the_neighbour_by_router_advertisements() -> None:
    cfg = load_config_text(peer('interface = "eth1"\n'))
    [p] = cfg.bgp.peers
    assert p.interface == "eth1" and p.discovers
    assert p.address == ipaddress.IPv6Address("fe80::%eth1")
    assert p.neighbor_discovery is Discovery.RA and p.neighbor_discovery_interval == 10
    assert p.extended_nexthop  # on by default for an unnumbered peer (RFC 8950)
    ps = peer_settings(cfg, p, str(p.address))
    assert (ps.interface, ps.discovery, ps.extended_nexthop) == ("eth1", Discovery.RA, True)
    assert ps.fixed_neighbour is None


def test_fixed_link_local_address_with_interface() -> None:
    for addr in ('"fe80::2"', '"fe80::2%eth1"'):
        cfg = load_config_text(peer(f'interface = "eth1"\naddress = {addr}\n'))
        [p] = cfg.bgp.peers
        assert p.address == ipaddress.IPv6Address("fe80::2%eth1") and not p.discovers
        ps = peer_settings(cfg, p, str(p.address))
        assert ps.discovery is None and ps.fixed_neighbour == ipaddress.IPv6Address("fe80::2")


def test_a_zoned_link_local_address_is_unnumbered_on_its_zone() -> None:
    cfg = load_config_text(peer('address = "fe80::2%eth3"\n'))
    [p] = cfg.bgp.peers
    assert p.interface == "eth3" and p.extended_nexthop


def test_nd_discovery_and_interval() -> None:
    cfg = load_config_text(peer('interface = "eth1"\nneighbor_discovery = "nd"\n'
                                "neighbor_discovery_interval = 2\n"))  # fmt: skip
    [p] = cfg.bgp.peers
    assert p.neighbor_discovery is Discovery.ND and p.neighbor_discovery_interval == 2


def test_numbered_peer_has_no_extended_next_hop_unless_asked() -> None:
    cfg = load_config_text(peer('address = "2001:db8::2"\nextended_nexthop = true\n'))
    [p] = cfg.bgp.peers
    assert p.extended_nexthop and not p.interface


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('interface = "eth1"\naddress = "2001:db8::2"\n',
         'bgp.peer[0].address: "2001:db8::2" is not an IPv6 link-local address, which an '
         "unnumbered peer (interface) needs; or leave it out to find the neighbour"),
        ('interface = "eth1"\naddress = "fe80::2%eth2"\n',
         'bgp.peer[0].address: the zone of "fe80::2%eth2" is not the interface "eth1"'),
        ('interface = "eth1"\naddress = "fe80::"\n',
         'bgp.peer[0].address: "fe80::" is not an IPv6 link-local address, which an '
         "unnumbered peer (interface) needs; or leave it out to find the neighbour"),
        ('interface = "a/b"\n', 'bgp.peer[0].interface: "a/b" is not an interface name'),
        ('interface = "eth1"\nneighbor_discovery = "arp"\n',
         'bgp.peer[0].neighbor_discovery: "arp" is not one of ra | nd'),
        ('address = "fe80::2%eth1"\nneighbor_discovery = "nd"\n',
         "bgp.peer[0].neighbor_discovery: is only for a peer with interface and no address"),
        ('interface = "eth1"\nneighbor_discovery_interval = 0\n',
         "bgp.peer[0].neighbor_discovery_interval: 0 is out of range 1..1800"),
        ("", "bgp.peer[0].address: is required (or peer_selector, for in-cluster peers "
             "chosen by label; or interface, for an unnumbered peer)"),
    ],
)  # fmt: skip
def test_errors_name_their_key(body: str, error: str) -> None:
    assert errors_of(peer(body)) == [error]


def test_dump_round_trips() -> None:
    for body in ('interface = "eth1"\nneighbor_discovery = "nd"\n',
                 'interface = "eth1"\naddress = "fe80::2"\n', 'address = "10.0.0.2"\n'):  # fmt: skip
        cfg = load_config_text(peer(body))
        assert load_config_dict(cfg.to_dict()) == cfg
