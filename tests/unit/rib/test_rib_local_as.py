"""Per-peer local AS (RFC 7705 §3, no-prepend + replace) and allow_own_as (RFC 4271
§9.1.2 relaxed) in the RIB, in memory."""

from __future__ import annotations

import pytest
from ribkit import LOCAL_AS, V4, announce, attrs, drain, make_rib, peer

from rib.reflect import as_path_loop

MIGRATED = 65100  # the AS presented to one peer


def test_export_to_a_local_as_peer_carries_only_the_local_as() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    old = peer(rib, "192.0.2.2", 65002, local_as=MIGRATED)
    plain = peer(rib, "192.0.2.3", 65003)
    drain(rib, old), drain(rib, plain)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, 7)))
    # §3.2 "replace": the node's AS is not added, the local AS is, once.
    assert drain(rib, old).announced["203.0.113.0/24"].as_path == ((2, (MIGRATED, 65001, 7)),)
    # Other peers in another update group, with the node's own AS as usual.
    assert drain(rib, plain).announced["203.0.113.0/24"].as_path == ((2, (LOCAL_AS, 65001, 7)),)


def test_own_routes_to_a_local_as_peer() -> None:
    rib = make_rib()
    old = peer(rib, "192.0.2.2", 65002, local_as=MIGRATED)
    rib.originate("10.244.0.0/26")
    assert drain(rib, old).announced["10.244.0.0/26"].as_path == ((2, (MIGRATED,)),)


def test_routes_from_a_local_as_peer_are_not_prepended_and_loop_on_it() -> None:
    rib = make_rib()
    old = peer(rib, "192.0.2.2", 65002, local_as=MIGRATED)
    other = peer(rib, "192.0.2.3", 65003)
    drain(rib, other)
    announce(rib, old, ["203.0.113.0/24"], attrs((65002,)))
    announce(rib, old, ["203.0.114.0/24"], attrs((65002, MIGRATED, 9)))
    # §3.1 "no prepend": passed on with the node's AS only, not the local one as well.
    got = drain(rib, other).announced
    assert got["203.0.113.0/24"].as_path == ((2, (LOCAL_AS, 65002)),)
    assert "203.0.114.0/24" not in got  # the local AS in the path is a loop
    assert len(rib.loc[V4]) == 1


@pytest.mark.parametrize(
    ("path", "allowed", "accepted"),
    [
        ((65001, LOCAL_AS), 0, False),  # RFC 4271 §9.1.2
        ((65001, LOCAL_AS), 1, True),
        ((65001, LOCAL_AS, 7, LOCAL_AS), 1, False),
        ((65001, LOCAL_AS, 7, LOCAL_AS), 2, True),
        ((65001, 7), 0, True),
    ],
)
def test_allow_own_as(path: tuple[int, ...], allowed: int, accepted: bool) -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, allow_own_as=allowed)
    announce(rib, a, ["203.0.113.0/24"], attrs(path))
    assert (len(rib.loc[V4]) == 1) is accepted


@pytest.mark.parametrize(
    ("segments", "allowed", "also", "looped"),
    [
        (((2, (1, 2)),), 0, 0, False),
        (((2, (1, LOCAL_AS)),), 0, 0, True),
        (((2, (1, LOCAL_AS)),), 1, 0, False),
        # AS_SET members count too, and across segments
        (((2, (LOCAL_AS,)), (1, (3, LOCAL_AS))), 1, 0, True),
        (((2, (LOCAL_AS,)), (1, (3, LOCAL_AS))), 2, 0, False),
        # the per-peer local AS counts like ours
        (((2, (1, MIGRATED)),), 0, MIGRATED, True),
        (((2, (LOCAL_AS, MIGRATED)),), 1, MIGRATED, True),
        (((2, (LOCAL_AS, MIGRATED)),), 2, MIGRATED, False),
        # no AS_PATH at all (a local route)
        ((), 0, 0, False),
    ],
)
def test_as_path_loop_counts(
    segments: tuple[tuple[int, tuple[int, ...]], ...], allowed: int, also: int, looped: bool
) -> None:
    a = attrs(()).replace(as_path=segments)
    assert as_path_loop(a, LOCAL_AS, allowed, also) is looped
