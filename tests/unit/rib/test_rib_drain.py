"""RFC 8326 graceful shutdown in the RIB: the export modes of ``podbgp drain`` /
``undrain`` (every route re-sent tagged, then withdrawn, then re-sent untagged) and
the receive-side rule (GRACEFUL_SHUTDOWN → LOCAL_PREF 0, after import policy)."""

from __future__ import annotations

from typing import Any

from ribkit import V4, announce, attrs, drain, key, make_rib, peer

from bgp.wire.constants import WellKnownCommunity
from rib import Policy
from rib.export import ExportMode

GSHUT = int(WellKnownCommunity.GRACEFUL_SHUTDOWN)
OWN = ["10.244.1.0/26", "10.244.1.64/26"]
LEARNED = "203.0.113.0/24"


def _rib(**kw: Any) -> Any:
    rib = make_rib(**kw)
    for p in OWN:
        rib.originate(p)
    return rib


def test_drain_resends_every_route_tagged_then_withdraws_then_undrain_untags() -> None:
    rib = _rib()
    ebgp = peer(rib, "192.0.2.1", 65001)  # export "all"
    ibgp = peer(rib, "192.0.2.2", 65000)
    src = peer(rib, "192.0.2.3", 65003)
    announce(rib, src, [LEARNED], attrs(communities=(65003 << 16 | 7,)))
    first = drain(rib, ebgp)
    assert set(first.announced) == {*OWN, LEARNED}
    assert all(GSHUT not in a.communities for a in first.announced.values())
    drain(rib, ibgp)

    rib.set_export_mode(ExportMode.GRACEFUL_SHUTDOWN)
    tagged = drain(rib, ebgp)
    # Everything again (the attributes changed), each with the community added.
    assert set(tagged.announced) == {*OWN, LEARNED} and tagged.withdrawn == []
    assert all(GSHUT in a.communities for a in tagged.announced.values())
    assert 65003 << 16 | 7 in tagged.announced[LEARNED].communities  # kept
    assert all(a.local_pref is None for a in tagged.announced.values())  # eBGP: no LP
    to_ibgp = drain(rib, ibgp)
    # iBGP takes LOCAL_PREF as sent: 0 makes the whole AS move (RFC 8326 §4.2).
    assert {p: a.local_pref for p, a in to_ibgp.announced.items()} == dict.fromkeys(
        [*OWN, LEARNED], 0
    )

    rib.set_export_mode(ExportMode.WITHDRAW_ALL)
    gone = drain(rib, ebgp)
    assert sorted(gone.withdrawn) == sorted([*OWN, LEARNED]) and gone.announced == {}
    assert set(rib.advertised(ebgp).values()) == {0}

    rib.set_export_mode(ExportMode.NORMAL)
    back = drain(rib, ebgp)
    assert set(back.announced) == {*OWN, LEARNED}
    assert all(GSHUT not in a.communities for a in back.announced.values())


def test_a_peer_that_comes_up_while_draining_gets_tagged_routes() -> None:
    rib = _rib()
    rib.set_export_mode(ExportMode.GRACEFUL_SHUTDOWN)
    late = peer(rib, "192.0.2.9", 65009)
    out = drain(rib, late)
    assert set(out.announced) == set(OWN)
    assert all(GSHUT in a.communities for a in out.announced.values())


def test_a_route_that_already_carries_the_community_is_not_tagged_twice() -> None:
    rib = make_rib()
    rib.originate(OWN[0], communities=[GSHUT])
    p = peer(rib, "192.0.2.1", 65001)
    drain(rib, p)
    rib.set_export_mode(ExportMode.GRACEFUL_SHUTDOWN)
    # Same outbound attributes as before: nothing to re-send.
    assert drain(rib, p).announced == {}


def test_caught_up_and_originated_to() -> None:
    rib = _rib()
    p = peer(rib, "192.0.2.1", 65001, export="local")
    src = peer(rib, "192.0.2.3", 65003)
    announce(rib, src, [LEARNED], attrs())
    assert sorted(rib.originated_to(p)[V4]) == sorted(key(x) for x in OWN)
    rib.set_export_mode(ExportMode.GRACEFUL_SHUTDOWN)
    assert not rib.caught_up(p)
    drain(rib, p)
    assert rib.caught_up(p)
    assert rib.originated_to("192.0.2.77") == {}


# ---------------------------------------------------------------- receiving the community


def _two_paths(rib: Any) -> tuple[str, str]:
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, b, [LEARNED], attrs((65002, 65010), nh="192.0.2.2"))
    return a, b


def test_received_graceful_shutdown_gets_local_pref_zero_and_loses() -> None:
    rib = make_rib()
    a, b = _two_paths(rib)
    # a's path is shorter, so it would win; tagged, it has LOCAL_PREF 0 and loses.
    announce(rib, a, [LEARNED], attrs((65001,), communities=(GSHUT,)))
    best = rib.best(V4, key(LEARNED))
    assert best is not None and best.source.key == b
    entry = rib.loc[V4][key(LEARNED)]
    tagged = next(p for p in entry.paths if p.source.key == a)  # type: ignore[union-attr]
    assert tagged.lp == 0 and tagged.attrs.local_pref == 0
    assert entry.reasons[1] == "local-pref"  # type: ignore[union-attr]
    # The same peer without the tag wins again.
    announce(rib, a, [LEARNED], attrs((65001,)))
    assert rib.best(V4, key(LEARNED)).source.key == a  # type: ignore[union-attr]


def test_the_rule_runs_after_import_policy_and_can_be_turned_off() -> None:
    raise_lp = Policy.from_data(
        {"name": "lp200", "rule": [{"action": "accept", "set": {"local_pref": 200}}]}
    )
    rib = make_rib()
    a, b = _two_paths(rib)
    st = rib.peers[a]
    from dataclasses import replace

    rib.set_policy(a, replace(st.policy, import_policy=raise_lp))
    announce(rib, a, [LEARNED], attrs((65001,), communities=(GSHUT,)))
    assert rib.best(V4, key(LEARNED)).source.key == b  # type: ignore[union-attr]

    off = make_rib(honor_graceful_shutdown=False)
    a, b = _two_paths(off)
    announce(off, a, [LEARNED], attrs((65001,), communities=(GSHUT,)))
    best = off.best(V4, key(LEARNED))
    assert best is not None and best.source.key == a and best.lp == 100


def test_a_policy_that_adds_the_community_drains_the_peer_from_this_side() -> None:
    tag = Policy.from_data(
        {
            "name": "gs",
            "rule": [{"action": "accept", "set": {"community_add": ["graceful-shutdown"]}}],
        }
    )
    rib = make_rib()
    a, b = _two_paths(rib)
    from dataclasses import replace

    rib.set_policy(a, replace(rib.peers[a].policy, import_policy=tag))
    announce(rib, a, [LEARNED], attrs((65001,)))
    assert rib.best(V4, key(LEARNED)).source.key == b  # type: ignore[union-attr]


def test_add_path_peer_gets_every_path_again_tagged_then_withdrawn() -> None:
    from ribkit import facts

    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    ap = peer(rib, "10.0.0.9", 65000, add_path_send=-1,
              fx=facts(bgp_id="10.0.0.9", add_path_tx=(V4,)))  # fmt: skip
    announce(rib, a, [LEARNED], attrs((65001,), nh="192.0.2.1"))
    announce(rib, b, [LEARNED], attrs((65002, 65003), nh="192.0.2.2"))
    assert len(drain(rib, ap, add_path=True).announced) == 2
    rib.set_export_mode(ExportMode.GRACEFUL_SHUTDOWN)
    out = drain(rib, ap, add_path=True)
    assert len(out.announced) == 2 and out.withdrawn == []
    assert all(GSHUT in x.communities and x.local_pref == 0 for x in out.announced.values())
    rib.set_export_mode(ExportMode.WITHDRAW_ALL)
    out = drain(rib, ap, add_path=True)
    assert len(out.withdrawn) == 2 and out.announced == {}
