"""Policy changes at run time (``Rib.set_policy``), both directions, with and without
soft reconfiguration; and split horizon towards the peer a route came from."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from ribkit import (
    LOCAL_AS,
    V4,
    announce,
    attrs,
    decode_out,
    drain,
    facts,
    key,
    make_rib,
    peer,
    withdraw,
)

import rib.adjout.group as adjout_group
from rib import PeerPolicy, Policy, Rib, builtin

P1, P2, P3 = "203.0.113.0/24", "198.51.100.0/24", "192.0.2.128/25"


def pol(*rules: dict[str, Any], default: str = "accept", name: str = "p") -> Policy:
    return Policy.from_data({"name": name, "rule": list(rules), "default_action": default})


def reject(prefix: str, name: str = "no-p") -> Policy:
    return pol({"match": {"prefix": prefix}, "action": "reject"}, name=name)


def policy_of(rib: Rib, k: str, **change: Any) -> PeerPolicy:
    """The peer's current ``PeerPolicy`` with some fields changed."""
    from dataclasses import replace

    return replace(rib.peers[k].policy, **change)


def loc_peers(rib: Rib, prefix: str) -> list[str]:
    e = rib.loc[V4].get(key(prefix))
    if e is None:
        return []
    paths = [e] if e.__class__.__name__ == "Path" else e.paths  # type: ignore[union-attr]
    return sorted(p.source.key for p in paths)


# ---------------------------------------------------------------- import, soft reconfiguration


def test_soft_reconfiguration_reapplies_stored_routes_both_ways() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, soft_reconfiguration=True)
    m = peer(rib, "192.0.2.9", 65009)
    announce(rib, a, [P1, P2], attrs())
    drain(rib, m)
    rib.set_policy(a, policy_of(rib, a, import_policy=reject(P1)))
    assert loc_peers(rib, P1) == [] and loc_peers(rib, P2) == [a]
    out = drain(rib, m)
    assert out.withdrawn == [P1] and out.announced == {}  # P2 not re-sent
    rib.set_policy(a, policy_of(rib, a, import_policy=builtin("all")))
    assert loc_peers(rib, P1) == [a]
    out = drain(rib, m)
    assert list(out.announced) == [P1] and out.withdrawn == []


def test_soft_reconfiguration_forgets_withdrawn_routes() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, soft_reconfiguration=True)
    announce(rib, a, [P1, P2], attrs())
    withdraw(rib, a, [P1])
    rib.set_policy(a, policy_of(rib, a, import_policy=pol(name="other")))
    assert loc_peers(rib, P1) == []  # a withdrawn route is not resurrected
    assert loc_peers(rib, P2) == [a]


def test_soft_reconfiguration_set_actions_change_attributes() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, soft_reconfiguration=True)
    i = peer(rib, "10.0.0.2", LOCAL_AS)
    announce(rib, a, [P1], attrs())
    assert drain(rib, i).announced[P1].local_pref == 100
    lp = pol({"match": {"prefix": P1}, "set": {"local_pref": 300}}, name="lp")
    rib.set_policy(a, policy_of(rib, a, import_policy=lp))
    best = rib.best(V4, key(P1))
    assert best is not None and best.lp == 300
    assert drain(rib, i).announced[P1].local_pref == 300


def test_soft_reconfiguration_with_add_path_receive() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, soft_reconfiguration=True)
    nl = [(1).to_bytes(4, "big") + key(P1), (2).to_bytes(4, "big") + key(P1)]
    rib.receive(a, V4, (), attrs(), nl, add_path=True)
    rib.flush()
    assert len(rib.loc[V4][key(P1)].paths) == 2  # type: ignore[union-attr]
    rib.set_policy(a, policy_of(rib, a, import_policy=reject(P1)))
    assert key(P1) not in rib.loc[V4]
    rib.set_policy(a, policy_of(rib, a, import_policy=builtin("all")))
    assert len(rib.loc[V4][key(P1)].paths) == 2  # type: ignore[union-attr]


def test_turning_soft_reconfiguration_off_drops_pre_policy_routes() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, soft_reconfiguration=True)
    announce(rib, a, [P1], attrs())
    assert rib.peers[a].pre_policy[V4]
    rib.set_policy(a, policy_of(rib, a, soft_reconfiguration=False))
    assert rib.peers[a].pre_policy == {}
    assert loc_peers(rib, P1) == [a]


# ---------------------------------------------------------------- import, ROUTE-REFRESH


def test_without_soft_reconfiguration_re_received_rejected_routes_withdraw() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009)
    announce(rib, a, [P1, P2], attrs())
    drain(rib, m)
    rib.set_policy(a, policy_of(rib, a, import_policy=reject(P1)))
    # Nothing stored to re-apply: the table stays until the peer re-sends (ROUTE-REFRESH).
    assert loc_peers(rib, P1) == [a]
    assert drain(rib, m).withdrawn == []
    announce(rib, a, [P1, P2], attrs())  # the refreshed routes
    assert loc_peers(rib, P1) == [] and loc_peers(rib, P2) == [a]
    out = drain(rib, m)
    assert out.withdrawn == [P1] and out.announced == {}


def test_without_soft_reconfiguration_cached_verdicts_are_dropped() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    a1 = attrs(communities=(65001 << 16 | 7,))
    announce(rib, a, [P1], a1)
    no7 = pol({"match": {"community": "65001:7"}, "action": "reject"}, name="no7")
    rib.set_policy(a, policy_of(rib, a, import_policy=no7))
    announce(rib, a, [P1], a1)  # same attribute set as before: must not hit the old verdict
    assert loc_peers(rib, P1) == []


def test_enhanced_refresh_after_import_change_sweeps_unsent() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=facts(bgp_id="192.0.2.1", enhanced_refresh=True))
    announce(rib, a, [P1, P2], attrs())
    rib.set_policy(a, policy_of(rib, a, import_policy=reject(P1)))
    rib.route_refresh(a, V4, 1)  # BoRR
    announce(rib, a, [P1, P2], attrs())
    rib.route_refresh(a, V4, 2)  # EoRR
    assert loc_peers(rib, P1) == [] and loc_peers(rib, P2) == [a]
    assert not any(p.stale for p in rib.loc[V4].values())  # type: ignore[union-attr]


# ---------------------------------------------------------------- export


def test_export_change_withdraws_disallowed_keeps_unchanged() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009)
    announce(rib, a, [P1, P2, P3], attrs())
    assert set(drain(rib, m).announced) == {P1, P2, P3}
    rib.set_policy(m, policy_of(rib, m, export_policy=reject(P3)))
    out = drain(rib, m)
    assert out.withdrawn == [P3]
    assert out.announced == {}  # unchanged routes are not re-sent
    assert out.eor == []  # End-of-RIB was sent once, at the start
    # A later change to a still-allowed prefix flows through the new group.
    announce(rib, a, [P1], attrs((65001, 9)))
    assert list(drain(rib, m).announced) == [P1]
    announce(rib, a, [P3], attrs((65001, 9)))
    assert drain(rib, m).announced == {}


def test_export_change_announces_newly_allowed_and_changed() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009)
    rib.set_policy(m, policy_of(rib, m, export_policy=reject(P2)))
    announce(rib, a, [P1, P2], attrs())
    assert list(drain(rib, m).announced) == [P1]
    med = pol({"match": {"prefix": P1}, "set": {"med": 42}}, name="med")
    rib.set_policy(m, policy_of(rib, m, export_policy=med))
    out = drain(rib, m)
    assert set(out.announced) == {P1, P2}
    assert out.announced[P1].med == 42 and out.announced[P2].med is None


def test_export_change_joins_existing_group_and_drops_empty_one() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m1 = peer(rib, "192.0.2.8", 65008)
    m2 = peer(rib, "192.0.2.9", 65009)
    rib.set_policy(m2, policy_of(rib, m2, export_policy=reject(P2)))
    announce(rib, a, [P1, P2], attrs())
    drain(rib, m1)
    drain(rib, m2)
    before = len(rib.groups)
    rib.set_policy(m1, policy_of(rib, m1, export_policy=reject(P2)))
    assert rib.peers[m1].members[V4].group is rib.peers[m2].members[V4].group
    out = drain(rib, m1)
    assert out.withdrawn == [P2] and out.announced == {}
    # m1's old group (export "all") still has peer a in it; no group was added.
    assert len(rib.groups) == before


def test_export_change_with_unread_updates_converges() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009)
    m2 = peer(rib, "192.0.2.8", 65008)
    announce(rib, a, [P1, P2], attrs())
    drain(rib, m2)  # builds the group's UPDATEs; m has not read them yet
    withdraw(rib, a, [P1])
    drain(rib, m2)
    rib.set_policy(m, policy_of(rib, m, export_policy=reject(P2)))
    out = drain(rib, m)
    # The old group's pending UPDATEs first (announce P1, P2; withdraw P1), then the diff.
    assert set(out.announced) == {P1, P2}
    assert out.withdrawn == [P1, P2]
    assert V4 in out.eor


def test_export_change_while_catching_up_resends_pending() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    announce(rib, a, [P1, P2], attrs())
    m = peer(rib, "192.0.2.9", 65009)  # joins an existing group: catch-up pending
    other = pol({"match": {"prefix": P1}, "set": {"med": 5}}, name="med5")
    rib.set_policy(m, policy_of(rib, m, export_policy=other))
    out = drain(rib, m)
    assert set(out.announced) == {P1, P2}  # never sent before: announced, not skipped
    assert out.announced[P1].med == 5


def test_export_change_while_deferring_is_a_plain_join() -> None:
    rib = make_rib(restarting=True, deferral_time=60.0)
    gr = facts(bgp_id="192.0.2.1", families=(V4,), gr_restart_time=120, gr_families={V4: True})
    a = peer(rib, "192.0.2.1", 65001, fx=gr)
    m = peer(rib, "192.0.2.9", 65009, fx=facts(bgp_id="192.0.2.9", families=(V4,)))
    announce(rib, a, [P1, P2], attrs())
    assert rib.deferring  # a owes its End-of-RIB
    rib.set_policy(m, policy_of(rib, m, export_policy=reject(P2)))
    assert drain(rib, m).announced == {}
    rib.handle_timer(60.0)
    out = drain(rib, m)
    assert list(out.announced) == [P1] and out.withdrawn == [] and out.eor == [V4]


def test_export_change_of_a_down_peer_applies_at_next_session() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009, up=False)
    announce(rib, a, [P1, P2], attrs())
    rib.set_policy(m, policy_of(rib, m, export_policy=reject(P2)))
    rib.peer_up(m, facts(bgp_id="192.0.2.9"))
    assert list(drain(rib, m).announced) == [P1]


def test_set_policy_refuses_identity_change_and_adds_unknown_peer() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    with pytest.raises(ValueError, match="re-add"):
        rib.set_policy(a, policy_of(rib, a, asn=65111))
    rib.set_policy("192.0.2.5", PeerPolicy.make("192.0.2.5", 65005))
    assert "192.0.2.5" in rib.peers


# ---------------------------------------------------------------- split horizon


def test_routes_are_not_sent_back_to_their_source() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    drain(rib, a)
    drain(rib, b)
    announce(rib, a, [P1], attrs((65001,), nh="192.0.2.1"))
    assert drain(rib, a).announced == {}
    assert list(drain(rib, b).announced) == [P1]
    withdraw(rib, a, [P1])
    assert drain(rib, a).withdrawn == []  # a never had it from us
    assert drain(rib, b).withdrawn == [P1]


def test_source_gets_withdrawal_when_its_route_takes_over() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, b, [P1], attrs((65002, 7), nh="192.0.2.2"))
    assert list(drain(rib, a).announced) == [P1]  # b's route, through us
    announce(rib, a, [P1], attrs((65001,), nh="192.0.2.1"))  # shorter: a's route wins
    out = drain(rib, a)
    assert out.withdrawn == [P1] and out.announced == {}
    out = drain(rib, b)
    assert out.announced[P1].as_path == ((2, (LOCAL_AS, 65001)),)
    withdraw(rib, a, [P1])  # b's route is best again: a gets it back
    assert list(drain(rib, a).announced) == [P1]


def test_catch_up_skips_own_routes() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, [P1], attrs((65001,), nh="192.0.2.1"))
    announce(rib, b, [P2], attrs((65002,), nh="192.0.2.2"))
    drain(rib, b)
    rib.route_refresh(a, V4, 0)  # re-sends the group's routes, minus a's own
    drain(rib, a)
    rib.route_refresh(a, V4, 0)
    assert list(drain(rib, a).announced) == [P2]


# ---------------------------------------------------------------- ADD-PATH send at run time


def test_add_path_send_turned_off_keeps_path_ids_until_the_session_resets() -> None:
    """RFC 7911 §4: whether NLRI carry path identifiers is settled by the OPENs. A
    reload that sets ``add_path_send = 0`` cannot take that back on a running
    session: the peer still expects identifiers, so it gets the best path alone,
    with one (an UPDATE without them would not parse: a session reset)."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(
        rib,
        "192.0.2.2",
        65002,
        add_path_send=2,
        fx=facts(bgp_id="192.0.2.2", add_path_tx=(V4,)),
    )
    announce(rib, a, [P1], attrs((65001,), nh="192.0.2.1"))
    assert [n.split("#")[0] for n in drain(rib, b, add_path=True).announced] == [P1]
    rib.set_policy(b, policy_of(rib, b, add_path_send=0))
    announce(rib, a, [P2], attrs((65001,), nh="192.0.2.1"))
    out = drain(rib, b, add_path=True)  # raises if an UPDATE lacks path identifiers
    assert [n.split("#")[0] for n in out.announced] == [P2]


def test_two_export_switches_before_a_pull_still_withdraw_what_add_path_sent() -> None:
    """An ADD-PATH peer switches policy twice before it pulls: the second switch must
    compare with what the peer really holds for prefixes the first had not reached
    yet (withdrawing those needs their path identifiers), not treat them as unknown."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(
        rib,
        "192.0.2.2",
        65002,
        add_path_send=2,
        fx=facts(bgp_id="192.0.2.2", add_path_tx=(V4,)),
    )
    announce(rib, a, [P1], attrs((65001,), nh="192.0.2.1"))
    told = drain(rib, b, add_path=True)
    assert [n.split("#")[0] for n in told.announced] == [P1]
    withdraw(rib, a, [P1])  # not pulled yet
    rib.set_policy(b, policy_of(rib, b, export_policy=reject(P2)))
    rib.set_policy(b, policy_of(rib, b, export_policy=builtin("all")))
    out = drain(rib, b, add_path=True)
    assert list(told.announced) == out.withdrawn


def test_a_third_switch_withdraws_what_an_unread_update_announced_meanwhile() -> None:
    """Switched twice before its catch-up reached P1, the peer's old group then builds
    an UPDATE announcing P1 that the peer has not read. The third switch sends that
    UPDATE first, so the peer has P1 whatever the group before told it: a policy
    refusing P1 withdraws it."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009)
    m2 = peer(rib, "192.0.2.8", 65008)  # keeps group "all" alive and builds its UPDATEs
    announce(rib, a, [P1], attrs((65001,), nh="192.0.2.1"))
    med5 = pol({"match": {"prefix": P2}, "set": {"med": 5}}, name="med5")
    rib.set_policy(m, policy_of(rib, m, export_policy=med5))
    rib.set_policy(m, policy_of(rib, m, export_policy=builtin("all")))
    drain(rib, m2)  # the UPDATE announcing P1, unread by m
    rib.set_policy(m, policy_of(rib, m, export_policy=reject(P1)))
    out = drain(rib, m)
    assert list(out.announced) == [P1]  # the unread UPDATE
    assert out.withdrawn == [P1]  # then the difference


def test_two_export_switches_back_and_forth_before_a_pull_send_nothing() -> None:
    """Switched away and back before pulling anything, with no UPDATE of the group
    in between: the peer still has what it had, so nothing is sent again."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.9", 65009)
    announce(rib, a, [P1, P2], attrs((65001,), nh="192.0.2.1"))
    assert set(drain(rib, m).announced) == {P1, P2}
    med5 = pol({"match": {"prefix": P1}, "set": {"med": 5}}, name="med5")
    rib.set_policy(m, policy_of(rib, m, export_policy=med5))
    rib.set_policy(m, policy_of(rib, m, export_policy=builtin("all")))
    out = drain(rib, m)
    assert (out.announced, out.withdrawn) == ({}, [])


def test_a_switch_after_a_refresh_mid_switch_withdraws_what_the_first_switch_sent() -> None:
    """A ROUTE-REFRESH during a policy switch restarts the catch-up with every prefix,
    including the one the switch already sent. Switched back afterwards, the peer
    holds that prefix's path (from the switch), not what the group before told it
    (nothing): when the route is gone, its path id is withdrawn."""
    with patch.object(adjout_group, "CHUNK", 1):  # the switch sends one prefix per pull
        rib = make_rib()
        a = peer(rib, "192.0.2.1", 65001)
        b = peer(
            rib,
            "192.0.2.2",
            65002,
            add_path_send=2,
            fx=facts(bgp_id="192.0.2.2", add_path_tx=(V4,)),
        )
        announce(rib, a, [P1, P2], attrs((65001,), nh="192.0.2.1"))
        rib.set_policy(b, policy_of(rib, b, export_policy=reject(P3)))  # before any pull
        first = decode_out(rib.pull(b, 1), add_path=True)  # the switch's first prefix
        assert len(first.announced) == 1 and first.withdrawn == []
        rib.route_refresh(b, V4, 0)
        withdraw(rib, a, [P1, P2])
        rib.set_policy(b, policy_of(rib, b, export_policy=builtin("all")))
        out = drain(rib, b, add_path=True)
        assert out.withdrawn == list(first.announced)
        assert out.announced == {}
