"""A path's age (``Path.since``): when this session first announced the attribute set.

``show routes`` prints it as AGE. It is the path's time, shared by every prefix
announced with the same attributes (docs/control-api.md says so).
"""

from __future__ import annotations

from ribkit import V4, announce, attrs, key, make_rib, peer

from bgp.wire.prefix import key_from_network
from rib.show import routes


def test_a_path_is_stamped_with_the_time_it_first_arrived() -> None:
    rib = make_rib()
    p = peer(rib, "192.0.2.1", 65001)
    rib.handle_timer(100.0)  # the RIB's clock moves only as callers hand time in
    announce(rib, p, ["10.1.0.0/24"], attrs())
    rib.handle_timer(130.0)
    announce(rib, p, ["10.2.0.0/24"], attrs())  # the same attributes: the same path
    announce(rib, p, ["10.3.0.0/24"], attrs(med=5))  # a new attribute set: a new path
    since = {r["prefix"]: r["paths"][0]["since"] for r in routes(rib)}
    assert since == {"10.1.0.0/24": 100.0, "10.2.0.0/24": 100.0, "10.3.0.0/24": 130.0}


def test_a_new_session_starts_the_age_again() -> None:
    rib = make_rib()
    p = peer(rib, "192.0.2.1", 65001)
    rib.handle_timer(10.0)
    announce(rib, p, ["10.1.0.0/24"], attrs())
    facts = rib.peers[p].facts
    assert facts is not None
    rib.peer_down(p, now=20.0)
    rib.peer_up(p, facts, now=50.0)
    announce(rib, p, ["10.1.0.0/24"], attrs())
    assert rib.loc[V4][key("10.1.0.0/24")].since == 50.0  # type: ignore[union-attr]


def test_originated_routes_take_the_callers_time() -> None:
    rib = make_rib()
    rib.originate("10.244.0.0/26", now=7.5)
    entry = rib.loc[V4][key_from_network("10.244.0.0/26")[1]]
    assert entry.since == 7.5  # type: ignore[union-attr]
