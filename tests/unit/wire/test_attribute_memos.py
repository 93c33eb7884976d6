"""``PathAttributes`` memoises its hash and its encoding per AS number width (RFC 6793).

The memos live in the object (slots, not a dict per instance: a full table holds
a few attribute sets per distinct path). They must never leak between the two
widths, nor into a copy made with ``replace``.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from bgp.wire import CodecContext
from bgp.wire.attributes import PathAttributes

AS4 = CodecContext(as4=True)
AS2 = CodecContext(as4=False)


def _attrs() -> PathAttributes:
    # A 4-octet AS: the 2-octet encoding carries AS_TRANS and AS4_PATH (RFC 6793 §4.2.2).
    return PathAttributes(
        origin=0,
        as_path=((2, (4_200_000_001, 65001)),),
        next_hop=IPv4Address("192.0.2.1"),
        communities=(65001 << 16 | 1,),
    )


def test_each_width_keeps_its_own_encoding_in_either_order() -> None:
    want4, want2 = _attrs().encode(AS4), _attrs().encode(AS2)
    assert want4 != want2
    a = _attrs()
    assert (a.encode(AS2), a.encode(AS4), a.encode(AS2), a.encode(AS4)) == (
        want2,
        want4,
        want2,
        want4,
    )


def test_a_replaced_copy_encodes_and_hashes_its_own_fields() -> None:
    a = _attrs()
    a.encode(AS4), a.encode(AS2), hash(a)  # fill the memos
    b = a.replace(med=7)
    assert b.encode(AS4) == PathAttributes(**{**_fields(a), "med": 7}).encode(AS4)
    assert b.encode(AS4) != a.encode(AS4)
    assert b.encode(AS2) != a.encode(AS2)
    assert b != a
    assert hash(a.replace(med=None)) == hash(a) and a.replace(med=None) == a


def test_hash_is_memoised_and_agrees_with_equality() -> None:
    a, b = _attrs(), _attrs()
    assert hash(a) == hash(a) == hash(b)
    assert len({a, b, _attrs()}) == 1


def _fields(a: PathAttributes) -> dict[str, object]:
    names = (
        "origin", "as_path", "next_hop", "med", "local_pref", "atomic_aggregate",
        "aggregator", "communities", "ext_communities", "large_communities",
        "originator_id", "cluster_list", "mp_next_hop", "unknown",
    )  # fmt: skip
    return {n: getattr(a, n) for n in names}
