"""Policy engine: matching (prefix ge/le, communities, AS path, ...) and setting."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from ribkit import V4, V6, attrs, key

from rib.policy import (
    NO_EXPORT,
    Policy,
    PolicyError,
    builtin,
    parse_community,
    parse_large_community,
)


def pol(*rules: dict[str, object], default: str = "reject") -> Policy:
    return Policy.from_data({"name": "t", "rule": list(rules), "default_action": default})


@pytest.mark.parametrize(
    ("match", "prefix", "ok"),
    [
        ({"prefix": "10.244.0.0/16"}, "10.244.0.0/16", True),
        ({"prefix": "10.244.0.0/16"}, "10.244.1.0/24", False),  # exact without ge/le
        ({"prefix": "10.244.0.0/16", "ge": 26, "le": 32}, "10.244.3.64/26", True),
        ({"prefix": "10.244.0.0/16", "ge": 26, "le": 32}, "10.244.3.0/24", False),
        ({"prefix": "10.244.0.0/16", "ge": 26}, "10.244.3.7/32", True),  # le defaults to 32
        ({"prefix": "10.244.0.0/16", "le": 24}, "10.244.3.0/24", True),
        ({"prefix": "10.244.0.0/16", "le": 24}, "10.245.0.0/24", False),  # outside
        ({"prefix": "0.0.0.0/0", "le": 32}, "192.0.2.0/24", True),
    ],
)
def test_prefix_match(match: dict[str, object], prefix: str, ok: bool) -> None:
    p = pol({"match": match, "action": "accept"})
    assert p.prefix_dependent
    assert (p.evaluate(V4, key(prefix), attrs()) is not None) is ok


def test_prefix_match_is_per_family() -> None:
    p = pol({"match": {"prefix": "2001:db8::/32", "le": 64}, "action": "accept"})
    assert p.evaluate(V6, key("2001:db8:1::/48"), attrs(nh="2001:db8::1")) is not None
    assert p.evaluate(V4, key("10.0.0.0/8"), attrs()) is None


def test_community_and_large_community_match() -> None:
    p = pol(
        {"match": {"community": "64512:100"}, "action": "accept"},
        {"match": {"large_community": "64512:1:2"}, "action": "accept"},
    )
    c = parse_community("64512:100")
    assert p.evaluate(V4, b"", attrs(communities=(c,))) is not None
    assert p.evaluate(V4, b"", attrs(communities=(c + 1,))) is None
    la = attrs().replace(large_communities=(parse_large_community("64512:1:2"),))
    assert p.evaluate(V4, b"", la) is not None


def test_as_path_regex_match() -> None:
    p = pol({"match": {"as_path": "^65001 .*65099$"}, "action": "accept"})
    assert p.evaluate(V4, b"", attrs((65001, 3, 65099))) is not None
    assert p.evaluate(V4, b"", attrs((65002, 65099))) is None


def test_first_match_wins_and_reject_rule() -> None:
    p = pol(
        {"match": {"prefix": "10.0.0.0/8", "le": 32}, "action": "reject"},
        {"match": {}, "action": "accept"},
    )
    assert p.evaluate(V4, key("10.1.0.0/16"), attrs()) is None
    assert p.evaluate(V4, key("192.0.2.0/24"), attrs()) is not None


def test_default_action() -> None:
    assert pol().evaluate(V4, b"", attrs()) is None
    assert pol(default="accept").evaluate(V4, b"", attrs()) is not None


def test_set_actions() -> None:
    p = pol(
        {
            "match": {},
            "action": "accept",
            "set": {
                "local_pref": 200,
                "med": 10,
                "community_add": ["64512:1", "no-export"],
                "community_remove": ["65001:5"],
                "large_community_add": ["64512:7:7"],
                "as_path_prepend": 2,
                "next_hop": "192.0.2.99",
            },
        }
    )
    a = attrs((65001,), communities=(parse_community("65001:5"), parse_community("65001:6")))
    v = p.evaluate(V4, b"", a, local_as=64512)
    assert v is not None
    out = v.attrs
    assert out.local_pref == 200 and out.med == 10
    assert set(out.communities) == {
        parse_community("64512:1"),
        NO_EXPORT,
        parse_community("65001:6"),
    }
    assert out.large_communities == ((64512, 7, 7),)
    assert out.as_path == ((2, (64512, 64512, 65001)),)
    assert out.next_hop == IPv4Address("192.0.2.99")
    assert v.next_hop == IPv4Address("192.0.2.99")


def test_next_hop_self_and_keep_are_directives() -> None:
    for word in ("self", "keep"):
        v = pol({"action": "accept", "set": {"next_hop": word}}).evaluate(V4, b"", attrs())
        assert v is not None and v.next_hop == word
        assert v.attrs == attrs()


def test_builtins() -> None:
    assert builtin("all").evaluate(V4, b"", attrs()) is not None
    assert builtin("none").evaluate(V4, b"", attrs()) is None
    assert builtin("local").evaluate(V4, b"", attrs()) is None
    assert builtin("local").evaluate(V4, b"", attrs(), local=True) is not None
    with pytest.raises(PolicyError):
        builtin("most")


def test_bad_definitions_name_the_key() -> None:
    with pytest.raises(PolicyError, match="action"):
        pol({"action": "maybe"})
    with pytest.raises(PolicyError, match="ge"):
        pol({"match": {"prefix": "10.0.0.0/16", "ge": 8}})
    with pytest.raises(PolicyError):
        parse_community("70000:1")
