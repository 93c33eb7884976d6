"""Keys for addresses chosen per workload and for the detected underlay: `[[ipam.pool]]`
`namespace_selector` / `allowed_uses`, `[[ipam.reservation]]`, `node.address = "auto"`
with `address_detection`, and the `[fib]` MTUs — values read and errors named by path."""

from __future__ import annotations

import ipaddress

import pytest

from ipam.model import PoolUse
from podbgp import wiring
from podbgp.config import ConfigError, load_config_text
from podbgp.config.schema import ROUTER_ID_FROM_ADDRESS, AddressDetection, DetectMethod

NODE = '[node]\nname = "n1"\nasn = 64512\n'


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config_text(text)
    return list(e.value.errors)


def test_pool_selectors_and_uses_are_read_and_reach_ipam() -> None:
    cfg = load_config_text(
        NODE + 'address = "10.0.0.1/24"\n'
        '[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
        '[[ipam.pool]]\ncidr = "10.250.0.0/24"\n'
        "namespace_selector = 'projectcalico.org/name == \"legacy\"'\n"
        '[[ipam.pool]]\ncidr = "10.99.0.0/24"\nallowed_uses = ["tunnel"]\n'
    )
    default, legacy, tunnel = wiring.ipam_config(cfg).pools
    assert default.namespace_selector == "all()"
    assert default.allowed_uses == (PoolUse.WORKLOAD, PoolUse.TUNNEL)
    assert legacy.namespace_selector == 'projectcalico.org/name == "legacy"'
    assert tunnel.allowed_uses == (PoolUse.TUNNEL,)


def test_reservations_are_flattened_for_ipam_with_their_names() -> None:
    cfg = load_config_text(
        NODE + 'address = "10.0.0.1/24"\n[[ipam.pool]]\ncidr = "10.244.0.0/16"\n'
        '[[ipam.reservation]]\nname = "gw"\ncidrs = ["10.244.0.1", "10.244.1.0/28"]\n'
        '[[ipam.reservation]]\ncidrs = ["fd00::5"]\n'
    )
    got = wiring.ipam_config(cfg).reservations
    assert [(str(r.cidr), r.name) for r in got] == [
        ("10.244.0.1/32", "gw"),
        ("10.244.1.0/28", "gw"),
        ("fd00::5/128", ""),
    ]
    dumped = cfg.to_dict()["ipam"]["reservation"]
    assert dumped == [
        {"name": "gw", "cidrs": ["10.244.0.1/32", "10.244.1.0/28"]},
        {"name": "", "cidrs": ["fd00::5/128"]},
    ]


@pytest.mark.parametrize(
    ("pool", "error"),
    [
        ("namespace_selector = 'a ~ b'", 'ipam.pool[0].namespace_selector: "a ~ b": unsupported'),
        ('allowed_uses = ["pods"]', 'ipam.pool[0].allowed_uses[0]: "pods" is not one of'),
        ("allowed_uses = []", "ipam.pool[0].allowed_uses: [] must list workload and/or tunnel"),
        (
            'allowed_uses = ["tunnel", "tunnel"]',
            'ipam.pool[0].allowed_uses: ["tunnel", "tunnel"] must list',
        ),
    ],
)
def test_pool_key_errors_name_their_path(pool: str, error: str) -> None:
    errors = _errors(
        NODE + 'address = "10.0.0.1/24"\n[[ipam.pool]]\ncidr = "10.244.0.0/16"\n' + pool
    )
    assert any(e.startswith(error) for e in errors), errors


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("cidrs = []", "ipam.reservation[0].cidrs: must list at least one"),
        ('name = "x"', "ipam.reservation[0].cidrs: is required"),
        ('cidrs = ["10.0.0.1/8"]', 'ipam.reservation[0].cidrs[0]: "10.0.0.1/8" has host bits'),
        ('cidrs = ["nope"]', 'ipam.reservation[0].cidrs[0]: "nope/32" is not an IP prefix'),
        ("cidrs = [1]", "ipam.reservation[0].cidrs[0]: 1 is an integer"),
    ],
)
def test_reservation_errors_name_their_path(table: str, error: str) -> None:
    errors = _errors(NODE + 'address = "10.0.0.1/24"\n[[ipam.reservation]]\n' + table)
    assert any(e.startswith(error) for e in errors), errors


def test_reservation_names_are_unique() -> None:
    errors = _errors(
        NODE + 'address = "10.0.0.1/24"\n'
        '[[ipam.reservation]]\nname = "a"\ncidrs = ["10.0.0.9"]\n'
        '[[ipam.reservation]]\nname = "a"\ncidrs = ["10.0.0.8"]\n'
    )
    assert errors == ['ipam.reservation[1].name: "a" is already ipam.reservation[0]']


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("first-found", AddressDetection()),
        (
            "interface=eth.*,ens[0-9]+",
            AddressDetection(DetectMethod.INTERFACE, patterns=()),  # patterns compared below
        ),
        ("can-reach=10.0.0.254", AddressDetection(
            DetectMethod.CAN_REACH, destination=ipaddress.ip_address("10.0.0.254"))),
        ("cidr=10.0.0.0/24, 10.1.0.0/16", AddressDetection(
            DetectMethod.CIDR,
            cidrs=(ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("10.1.0.0/16")))),
    ],
)  # fmt: skip
def test_address_auto_reads_each_method(text: str, want: AddressDetection) -> None:
    cfg = load_config_text(NODE + f'address = "auto"\naddress_detection = "{text}"\n')
    got = cfg.node.address_detection
    assert got is not None and got.method == want.method
    assert cfg.node.address is None
    assert cfg.node.router_id == ROUTER_ID_FROM_ADDRESS
    if want.method is DetectMethod.INTERFACE:
        assert [p.pattern for p in got.patterns] == ["eth.*", "ens[0-9]+"]
    else:
        assert got == want
    dumped = cfg.to_dict()["node"]
    assert dumped["address"] == "auto" and "router_id" not in dumped
    assert dumped["address_detection"] == str(got)


def test_address_auto_defaults_to_first_found_and_satisfies_the_mesh() -> None:
    cfg = load_config_text(NODE + 'address = "auto"\nrouter_id = "1.1.1.1"\n')
    assert cfg.node.address_detection == AddressDetection()
    assert str(cfg.node.router_id) == "1.1.1.1"


@pytest.mark.parametrize(
    ("node", "error"),
    [
        (
            'address = "10.0.0.1/24"\naddress_detection = "first-found"',
            'node.address_detection: is only read with node.address = "auto"',
        ),
        ('address = "auto"\naddress_detection = "magic"', 'node.address_detection: "magic" is not'),
        (
            'address = "auto"\naddress_detection = "can-reach=fd00::1"',
            "node.address_detection: \"can-reach=fd00::1\": fd00::1 is not a unicast IPv4",
        ),
        (
            'address = "auto"\naddress_detection = "can-reach=1.1.1.1,2.2.2.2"',
            "node.address_detection: \"can-reach=1.1.1.1,2.2.2.2\": can-reach takes one",
        ),
        ('address = "auto"\naddress_detection = "interface"', "node.address_detection: \"interface\": interface needs"),
        ('address = "auto"\naddress_detection = "interface=("', 'node.address_detection: "(" is not a regular'),
        ('address = "auto"\naddress_detection = "cidr=fd00::/64"', 'node.address_detection: "cidr=fd00::/64": fd00::/64 is not IPv4'),
        ('address = "auto"\naddress_detection = "first-found=eth0"', "node.address_detection: \"first-found=eth0\": first-found takes no"),
        ('address6 = "auto"\naddress6_detection = "cidr=10.0.0.0/8"', 'node.address6_detection: "cidr=10.0.0.0/8": 10.0.0.0/8 is not IPv6'),
    ],
)  # fmt: skip
def test_address_detection_errors_name_their_path(node: str, error: str) -> None:
    errors = _errors(NODE + node + '\nrouter_id = "1.1.1.1"\n')
    assert any(e.startswith(error) for e in errors), errors


def test_mtu_keys() -> None:
    cfg = load_config_text(
        NODE + 'address = "10.0.0.1/24"\n[fib]\npod_mtu = 1400\nvxlan_mtu = 8950\n'
    )
    assert (cfg.fib.pod_mtu, cfg.fib.ipip_mtu, cfg.fib.vxlan_mtu) == (1400, 0, 8950)
    errors = _errors(NODE + 'address = "10.0.0.1/24"\n[fib]\nipip_mtu = 20\n')
    assert errors == [
        "fib.ipip_mtu: 20 is not an MTU (0 = derived from the underlay, or 68..65535)"
    ]
