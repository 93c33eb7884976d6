"""Pool configuration: defaults, and errors that name the key's path."""

from __future__ import annotations

import pytest

from ipam import ConfigError, IpamConfig, Pool
from ipam.model import selector_matches


def test_defaults() -> None:
    cfg = IpamConfig.parse({"pool": [{"cidr": "10.244.0.0/16"}, {"cidr": "fd00:10::/48"}]})
    v4, v6 = cfg.pools
    assert (v4.block_size, v6.block_size) == (26, 122)
    assert v4.ipip_mode == "Never" and v4.node_selector == "all()" and not v4.disabled
    assert cfg.max_blocks_per_node == 20 and not cfg.strict_affinity


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pool": [{"cidr": "10.0.0.0/33"}]}, r"ipam\.pool\[0\]\.cidr"),
        ({"pool": [{}]}, r"ipam\.pool\[0\]\.cidr: required"),
        (
            {"pool": [{"cidr": "10.0.0.0/16"}, {"cidr": "10.0.0.0/24", "block_size": 33}]},
            r"ipam\.pool\[1\]\.block_size",
        ),
        ({"pool": [{"cidr": "10.0.0.0/24", "block_size": 16}]}, r"ipam\.pool\[0\]\.block_size"),
        ({"pool": [{"cidr": "10.0.0.0/16", "ipip_mode": "Sometimes"}]}, r"ipip_mode"),
        (
            {"pool": [{"cidr": "10.0.0.0/16", "ipip_mode": "Always", "vxlan_mode": "Always"}]},
            r"cannot both",
        ),
        ({"pool": [{"cidr": "10.0.0.0/16", "colour": "red"}]}, r"ipam\.pool\[0\]\.colour"),
        ({"pool": [{"cidr": "10.0.0.0/16", "node_selector": "rack in {a}"}]}, "node_selector"),
        ({"pool": [{"cidr": "10.0.0.0/16"}, {"cidr": "10.0.128.0/17"}]}, "overlaps"),
        ({"max_blocks_per_node": 0}, "max_blocks_per_node"),
        ({"strict_affinity": "yes"}, "strict_affinity"),
    ],
)
def test_errors_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IpamConfig.parse(raw)


def test_selectors() -> None:
    labels = {"rack": "r1", "zone": "z"}
    assert selector_matches("all()", labels) and selector_matches("", labels)
    assert selector_matches('rack == "r1" && has(zone)', labels)
    assert not selector_matches('rack != "r1"', labels)
    assert selector_matches("!has(gpu)", labels) and not selector_matches("has(gpu)", labels)
    assert Pool.parse({"cidr": "10.0.0.0/8", "node_selector": "has(x)"}).node_selector == "has(x)"


def test_a_pool_smaller_than_the_default_block_is_one_block() -> None:
    """The same default as podbgp.config (a /30 pool that `check` accepts)."""
    from ipam.model import Pool as P

    assert P.parse({"cidr": "10.250.0.0/30"}).block_size == 30
    assert P.parse({"cidr": "10.250.0.0/16"}).block_size == 26
    assert P.parse({"cidr": "fd00::/124"}).block_size == 124
