"""Route reflection rules (RFC 4456) and iBGP/eBGP advertisement, as tables."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from ribkit import LOCAL_AS, attrs

from rib.reflect import Kind, as_path_loop, reflect_attrs, reflection_loop, should_advertise

L, E, C, N = Kind.LOCAL, Kind.EBGP, Kind.CLIENT, Kind.NONCLIENT

# (source kind, destination kind, we are a reflector, advertised?, citation)
TABLE = [
    (L, E, False, True, "local routes go everywhere"),
    (L, N, False, True, "local routes go everywhere"),
    (E, E, False, True, "RFC 4271 §9.2: eBGP routes to all peers"),
    (E, N, False, True, "RFC 4271 §9.2: eBGP routes to iBGP peers"),
    (N, E, False, True, "RFC 4271 §9.2: iBGP routes to eBGP peers"),
    (N, N, False, False, "RFC 4271 §9.2: no iBGP to iBGP without reflection"),
    (N, N, True, False, "RFC 4456 §6 (1): non-client routes not to non-clients"),
    (N, C, True, True, "RFC 4456 §6 (1): non-client routes to clients"),
    (C, N, True, True, "RFC 4456 §6 (2): client routes to non-clients"),
    (C, C, True, True, "RFC 4456 §6 (2): client routes to clients"),
    (E, C, True, True, "RFC 4456 §6 (3): eBGP routes to clients"),
    (E, N, True, True, "RFC 4456 §6 (3): eBGP routes to non-clients"),
    (C, E, True, True, "client routes to eBGP peers"),
]


@pytest.mark.parametrize(
    ("src", "dst", "rr", "ok", "why"),
    TABLE,
    ids=[t[4] + f" {t[0].name}->{t[1].name}" for t in TABLE],
)
def test_should_advertise(src: Kind, dst: Kind, rr: bool, ok: bool, why: str) -> None:
    assert should_advertise(src, dst, rr) is ok, why


def test_reflect_sets_originator_and_prepends_cluster() -> None:
    a = attrs(clusters=("9.9.9.9",))
    out = reflect_attrs(a, IPv4Address("1.1.1.1"), IPv4Address("10.0.0.7"))
    assert out.originator_id == IPv4Address("10.0.0.7")
    assert out.cluster_list == (IPv4Address("1.1.1.1"), IPv4Address("9.9.9.9"))


def test_reflect_keeps_existing_originator() -> None:
    # RFC 4456 §8: ORIGINATOR_ID is set only if not already present.
    a = attrs(originator="10.0.0.3")
    out = reflect_attrs(a, IPv4Address("1.1.1.1"), IPv4Address("10.0.0.7"))
    assert out.originator_id == IPv4Address("10.0.0.3")


@pytest.mark.parametrize(
    ("originator", "clusters", "looped"),
    [
        ("10.0.0.1", (), True),  # our router id as ORIGINATOR_ID
        (None, ("5.5.5.5", "1.1.1.1"), True),  # our cluster id in CLUSTER_LIST
        ("10.0.0.2", ("5.5.5.5",), False),
        (None, (), False),
    ],
)
def test_reflection_loop(originator: str | None, clusters: tuple[str, ...], looped: bool) -> None:
    a = attrs(originator=originator, clusters=clusters)
    why = reflection_loop(a, IPv4Address("10.0.0.1"), IPv4Address("1.1.1.1"))
    assert (why is not None) is looped


def test_as_path_loop() -> None:
    assert as_path_loop(attrs((65001, LOCAL_AS, 3)), LOCAL_AS)
    assert not as_path_loop(attrs((65001, 3)), LOCAL_AS)
