"""Property tests: the validator agrees with the written rules on arbitrary values,
and nothing but ConfigError ever comes out of it."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podbgp.cmd_check import format_toml
from podbgp.config import ConfigError, load_config_dict, load_config_text

NODE = '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'


def outcome(text: str) -> list[str]:
    try:
        load_config_text(text)
    except ConfigError as e:
        return list(e.errors)
    return []


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_as_numbers(asn: int) -> None:
    errors = outcome(f'[node]\nname = "n"\nasn = {asn}\naddress = "10.0.0.1/24"\n')
    valid = 1 <= asn <= 2**32 - 1 and asn != 23456
    assert errors == [] if valid else len(errors) == 1 and errors[0].startswith(f"node.asn: {asn} ")


@given(st.integers(-5, 70000), st.integers(-5, 70000))
def test_hold_time_and_keepalive(hold: int, keepalive: int) -> None:
    errors = outcome(NODE + f"[bgp]\nhold_time = {hold}\nkeepalive = {keepalive}\n")
    hold_ok = hold == 0 or 3 <= hold <= 65535
    ka_ok = 0 <= keepalive <= 65535 and (hold == 0 or 1 <= keepalive < hold)
    assert (errors == []) == (hold_ok and ka_ok)
    assert all(e.startswith(("bgp.hold_time: ", "bgp.keepalive: ")) for e in errors)


@given(
    st.integers(0, 32),
    st.one_of(st.none(), st.integers(0, 40)),
    st.one_of(st.none(), st.integers(0, 40)),
)
def test_prefix_length_range(plen: int, ge: int | None, le: int | None) -> None:
    prefix = ipaddress.IPv4Network((0x0A000000 >> (32 - plen) << (32 - plen) if plen else 0, plen))
    match = f'prefix = "{prefix}"'
    match += f", ge = {ge}" if ge is not None else ""
    match += f", le = {le}" if le is not None else ""
    errors = outcome(NODE + f'[[policy]]\nname = "p"\n[[policy.rule]]\nmatch = {{ {match} }}\n')
    lo = plen if ge is None else ge
    hi = 32 if le is None else le
    valid = plen <= lo <= hi <= 32
    assert (errors == []) == valid
    assert all(e.startswith("policy[0].rule[0].match.") for e in errors)


peers = st.lists(
    st.fixed_dictionaries(
        {
            "asn": st.integers(1, 2**32 - 1).filter(lambda a: a != 23456),
            "port": st.integers(1, 65535),
            "passive": st.booleans(),
            "password": st.text(
                st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20
            ),
            "ttl_security": st.integers(0, 254),
            "families": st.sampled_from([["ipv4"], ["ipv6"], ["ipv6", "ipv4"]]),
            "max_prefixes": st.integers(0, 10**6),
            "shutdown_message": st.text(max_size=30),
            "hold_time": st.sampled_from([0, 3, 9, 90, 65535]),
        }
    ),
    max_size=5,
)


@settings(max_examples=50)
@given(peers)
def test_round_trip_of_generated_peers(specs: list[dict[str, Any]]) -> None:
    raw: dict[str, Any] = {
        "node": {"name": "n", "asn": 64512, "address": "10.0.0.1/24"},
        "bgp": {"peer": [{"address": f"10.1.0.{i + 1}", **s} for i, s in enumerate(specs)]},
    }
    cfg = load_config_dict(raw)
    assert load_config_text(format_toml(cfg.to_dict())) == cfg


KEYS = [
    "node",
    "bgp",
    "peer",
    "policy",
    "rule",
    "match",
    "set",
    "ipam",
    "pool",
    "name",
    "asn",
    "address",
    "prefix",
    "ge",
    "le",
    "cidr",
    "families",
    "listen",
    "metrics",
    "protocol",
]
scalars = st.one_of(
    st.integers(-(2**33), 2**33), st.booleans(), st.text(max_size=12), st.floats(allow_nan=False)
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=5))
def test_arbitrary_documents_raise_only_config_error(raw: dict[str, Any]) -> None:
    try:
        load_config_dict(raw)
    except ConfigError as e:
        assert e.errors
        assert all(isinstance(m, str) and ": " in m for m in e.errors)
