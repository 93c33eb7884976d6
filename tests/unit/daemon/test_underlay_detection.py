"""`podbgp.underlay` as tables: which address each detection method picks from a given
set of interfaces, what `resolve` fills in, and the MTUs derived from the underlay."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from fib.model import LinkAddress
from podbgp.config import load_config_text
from podbgp.config.reader import _Invalid
from podbgp.config.sections import _detection
from podbgp.underlay import (
    Detected,
    IPAddress,
    Mtus,
    NoAddress,
    Underlay,
    derived_mtus,
    detect,
    resolve,
    underlay_mtus,
)


def link(index: int, name: str, address: str, *, up: bool = True, mtu: int = 1500,
         scope: int = 0, tentative: bool = False) -> LinkAddress:  # fmt: skip
    return LinkAddress(index, name, up, mtu, address, scope, tentative)


# A node with the usual clutter: loopback, docker, a pod veth, a tunnel, a down link,
# a link-local only link, and three real uplinks.
HOST = [
    link(1, "lo", "127.0.0.1/8", scope=254, mtu=65536),
    link(1, "lo", "::1/128", scope=254, mtu=65536),
    link(2, "docker0", "172.17.0.1/16"),
    link(3, "veth12ab", "10.9.9.9/32"),
    link(4, "cali0123456789a", "169.254.1.1/32"),
    link(5, "tunl0", "10.244.0.1/32"),
    link(6, "kube-ipvs0", "10.96.0.1/32"),
    link(7, "eth9", "10.8.0.5/24", up=False),
    link(8, "eth0", "fe80::1/64", scope=253),
    link(8, "eth0", "192.168.1.10/24", mtu=9000),
    link(8, "eth0", "fd00:1::10/64", mtu=9000),
    link(9, "ens5", "10.0.0.20/24", mtu=1400),
    link(9, "ens5", "fd00:2::20/64", mtu=1400, tentative=True),
    link(10, "bond0", "10.1.0.30/16"),
]


class Table:
    """A kernel given as a table: the addresses and the routes' source addresses."""

    def __init__(self, addresses: Sequence[LinkAddress],
                 routes: dict[str, tuple[str, str]] | None = None) -> None:  # fmt: skip
        self._addresses = list(addresses)
        self.routes = routes or {}

    def addresses(self) -> Sequence[LinkAddress]:
        return self._addresses

    def route_source(self, destination: IPAddress) -> tuple[IPAddress, str] | None:
        for prefix, (src, dev) in self.routes.items():
            if destination in ipaddress.ip_network(prefix):
                return ipaddress.ip_address(src), dev
        return None


ROUTES = {
    "10.0.0.0/24": ("10.0.0.20", "ens5"),
    "10.1.0.0/16": ("10.1.0.30", "bond0"),
    "0.0.0.0/0": ("192.168.1.10", "eth0"),
    "fd00:2::/64": ("fd00:1::10", "eth0"),  # a source on another interface than the route's
}


@pytest.mark.parametrize(
    ("method", "version", "address", "interface", "mtu"),
    [
        ("first-found", 4, "192.168.1.10/24", "eth0", 9000),
        ("first-found", 6, "fd00:1::10/64", "eth0", 9000),
        ("interface=ens.*", 4, "10.0.0.20/24", "ens5", 1400),
        ("interface=bond[0-9],ens.*", 4, "10.0.0.20/24", "ens5", 1400),  # interface order
        ("interface=bond0", 4, "10.1.0.30/16", "bond0", 1500),
        ("interface=docker0", 4, "172.17.0.1/16", "docker0", 1500),  # named: not skipped
        ("skip-interface=eth.*", 4, "10.0.0.20/24", "ens5", 1400),
        ("skip-interface=eth.*,ens.*", 4, "10.1.0.30/16", "bond0", 1500),
        ("can-reach=10.0.0.254", 4, "10.0.0.20/24", "ens5", 1400),
        ("can-reach=10.1.200.1", 4, "10.1.0.30/16", "bond0", 1500),
        ("can-reach=8.8.8.8", 4, "192.168.1.10/24", "eth0", 9000),
        ("can-reach=fd00:2::1", 6, "fd00:1::10/64", "eth0", 9000),
        ("cidr=10.0.0.0/16", 4, "10.0.0.20/24", "ens5", 1400),
        # cidr= and interface= look at every interface, as Calico's do: the operator named it
        ("cidr=10.0.0.0/8", 4, "10.9.9.9/32", "veth12ab", 1500),
        ("cidr=172.16.0.0/12,10.1.0.0/16", 4, "172.17.0.1/16", "docker0", 1500),
    ],
)
def test_each_method_picks(method: str, version: int, address: str, interface: str,
                           mtu: int) -> None:  # fmt: skip
    got = detect(_detection(version)(method), version, Table(HOST, ROUTES))
    assert got == Detected(ipaddress.ip_interface(address), interface, mtu)


@pytest.mark.parametrize(
    ("method", "version", "message"),
    [
        ("interface=wlan.*", 4, "interface=wlan.* found no IPv4 address (interfaces with a global "
         "IPv4 address: bond0, cali0123456789a, docker0, ens5, eth0, kube-ipvs0, tunl0, veth12ab)"),
        ("cidr=10.200.0.0/16", 4, "cidr=10.200.0.0/16 found no IPv4 address"),
        ("can-reach=fd00:9::1", 6, "can-reach=fd00:9::1 found no IPv6 address"),
        ("interface=ens5", 6, "interface=ens5 found no IPv6 address"),  # only tentative there
        ("interface=eth9", 4, "interface=eth9 found no IPv4 address"),  # down
    ],
)  # fmt: skip
def test_nothing_found_says_which_method(method: str, version: int, message: str) -> None:
    with pytest.raises(NoAddress) as e:
        detect(_detection(version)(method), version, Table(HOST, ROUTES))
    assert str(e.value).startswith(message)


def test_first_found_skips_every_container_and_tunnel_interface() -> None:
    clutter = [a for a in HOST if a.ifname not in ("eth0", "ens5", "bond0")]
    with pytest.raises(NoAddress):
        detect(_detection(4)("first-found"), 4, Table(clutter))


def test_a_method_string_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(_Invalid):
        _detection(4)("nearest")


NODE = '[node]\nname = "n1"\nasn = 64512\n'


def test_resolve_fills_the_address_and_the_router_id() -> None:
    cfg = load_config_text(NODE + 'address = "auto"\naddress_detection = "interface=ens5"\n'
                           'address6 = "auto"\n')  # fmt: skip
    resolved, underlay = resolve(cfg, Table(HOST, ROUTES))
    assert str(resolved.node.address) == "10.0.0.20/24"
    assert str(resolved.node.router_id) == "10.0.0.20"
    assert str(resolved.node.address6) == "fd00:1::10/64"
    assert resolved.node.address_detection == cfg.node.address_detection  # still followed
    assert underlay.primary == Detected(ipaddress.ip_interface("10.0.0.20/24"), "ens5", 1400)


def test_resolve_keeps_a_configured_router_id_and_finds_a_configured_address() -> None:
    cfg = load_config_text(NODE + 'address = "auto"\nrouter_id = "1.2.3.4"\n')
    resolved, _ = resolve(cfg, Table(HOST))
    assert str(resolved.node.router_id) == "1.2.3.4"
    fixed = load_config_text(NODE + 'address = "10.1.0.30/16"\n')
    same, underlay = resolve(fixed, Table(HOST))
    assert same == fixed
    assert underlay.v4 == Detected(ipaddress.ip_interface("10.1.0.30/16"), "bond0", 1500)


def test_ipv6_detection_alone_needs_a_router_id() -> None:
    cfg = load_config_text(NODE + 'address6 = "auto"\nrouter_id = "1.1.1.1"\n')
    assert str(resolve(cfg, Table(HOST))[0].node.address6) == "fd00:1::10/64"


@pytest.mark.parametrize(
    ("underlay", "version", "pools", "want"),
    [
        (1500, 4, [], Mtus(1500, 1500, 1480, 1450)),
        (9000, 4, ['vxlan_mode = "Always"'], Mtus(9000, 8950, 8980, 8950)),
        (1400, 4, ['ipip_mode = "CrossSubnet"'], Mtus(1400, 1380, 1380, 1350)),
        (1400, 4, ['ipip_mode = "Always"', 'vxlan_mode = "Always"'], Mtus(1400, 1350, 1380, 1350)),
        (9000, 6, ['vxlan_mode = "Always"'], Mtus(9000, 8930, 8980, 8930)),
        (1500, 4, ['vxlan_mode = "Always"\ndisabled = true'], Mtus(1500, 1500, 1480, 1450)),
    ],
)
def test_derived_mtus(underlay: int, version: int, pools: list[str], want: Mtus) -> None:
    text = NODE + 'address = "10.0.0.1/24"\naddress6 = "fd00::1/64"\n'
    for i, p in enumerate(pools):
        text += f'[[ipam.pool]]\ncidr = "10.{240 + i}.0.0/16"\n{p}\n'
    cfg = load_config_text(text)
    assert derived_mtus(underlay, version, cfg.ipam.pools) == want


def test_configured_mtus_win_and_warn_when_above_the_underlay() -> None:
    text = (NODE + 'address = "10.0.0.1/24"\n[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
            'vxlan_mode = "Always"\n[fib]\npod_mtu = 1450\nvxlan_mtu = 1400\nipip_mtu = 1200\n')  # fmt: skip
    cfg = load_config_text(text)
    small = Underlay(Detected(ipaddress.ip_interface("10.0.0.1/24"), "eth0", 1400))
    mtus, warnings = underlay_mtus(cfg, small)
    assert mtus == Mtus(1400, 1450, 1200, 1400)
    assert warnings == [
        "fib.pod_mtu = 1450 is above the 1350 the underlay carries (eth0 MTU 1400); larger "
        "packets will be dropped or fragmented",
        "fib.vxlan_mtu = 1400 is above the 1350 the underlay carries (eth0 MTU 1400); larger "
        "packets will be dropped or fragmented",
    ]
    jumbo = Underlay(Detected(ipaddress.ip_interface("10.0.0.1/24"), "eth0", 9000))
    assert underlay_mtus(cfg, jumbo)[1] == []
    assert underlay_mtus(cfg, Underlay()) == (Mtus(1500, 1450, 1200, 1400), [])
