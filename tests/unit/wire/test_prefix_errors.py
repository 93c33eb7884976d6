"""Compact prefix keys, printable prefixes, error enums."""

from __future__ import annotations

import pytest

from bgp.errors import (
    CeaseSubcode,
    ErrorCode,
    FsmSubcode,
    MessageHeaderSubcode,
    OpenSubcode,
    RouteRefreshSubcode,
    UpdateSubcode,
    subcode_enum,
)
from bgp.wire import Family, Prefix, join_path_id, key_from_network, key_to_str, split_path_id


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("10.0.0.0/24", b"\x18\x0a\x00\x00"),
        ("0.0.0.0/0", b"\x00"),
        ("192.0.2.128/25", b"\x19\xc0\x00\x02\x80"),
        ("2001:db8::/32", b"\x20\x20\x01\x0d\xb8"),
        ("::/0", b"\x00"),
        ("2001:db8::1/128", b"\x80" + bytes.fromhex("20010db8000000000000000000000001")),
    ],
)
def test_key_round_trip(text: str, key: bytes) -> None:
    fam, k = key_from_network(text)
    assert k == key
    assert key_to_str(fam, k) == text
    p = Prefix.from_str(text)
    assert str(p) == text and p.key == key and p.length == int(text.split("/")[1])
    assert str(p.network) == text


def test_path_id_helpers() -> None:
    nlri = join_path_id(7, b"\x18\x0a\x00\x00")
    assert split_path_id(nlri) == (7, b"\x18\x0a\x00\x00")
    p = Prefix.from_nlri(Family.IPV4_UNICAST, nlri, add_path=True)
    assert (str(p), p.path_id, p.nlri(True)) == ("10.0.0.0/24", 7, nlri)
    assert repr(p) == "Prefix('10.0.0.0/24', path_id=7)"


def test_family_numbers() -> None:
    assert (Family.IPV6_UNICAST.afi, Family.IPV6_UNICAST.safi) == (2, 1)
    assert Family.of(1, 1) is Family.IPV4_UNICAST and Family.of(1, 128) is None


def test_error_codes_match_the_registries() -> None:
    assert [int(c) for c in ErrorCode] == [1, 2, 3, 4, 5, 6, 7]
    assert MessageHeaderSubcode.BAD_MESSAGE_TYPE == 3
    assert OpenSubcode.UNSUPPORTED_CAPABILITY == 7 and OpenSubcode.UNACCEPTABLE_HOLD_TIME == 6
    assert UpdateSubcode.MALFORMED_AS_PATH == 11 and UpdateSubcode.INVALID_NETWORK_FIELD == 10
    assert FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED == 3
    assert CeaseSubcode.ADMINISTRATIVE_SHUTDOWN == 2 and CeaseSubcode.HARD_RESET == 9
    assert RouteRefreshSubcode.INVALID_MESSAGE_LENGTH == 1
    assert subcode_enum(6) is CeaseSubcode and subcode_enum(42) is None
