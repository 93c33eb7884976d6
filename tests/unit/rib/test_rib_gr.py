"""Graceful restart (RFC 4724) both roles and enhanced route refresh (RFC 7313), fake clock."""

from __future__ import annotations

from ribkit import V4, V6, announce, attrs, drain, facts, key, make_rib, peer, withdraw

GR = {"gr_restart_time": 120, "gr_families": {V4: True, V6: True}}


def gr_facts(bgp_id: str, **kw: object) -> object:
    return facts(bgp_id=bgp_id, **{**GR, **kw})  # type: ignore[arg-type]


def test_helper_keeps_stale_routes_replaces_and_sweeps_at_eor() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1"))  # type: ignore[arg-type]
    m = peer(rib, "192.0.2.3", 65003)
    announce(rib, a, ["203.0.113.0/24", "203.0.114.0/24"], attrs())
    drain(rib, m)
    rib.peer_down(a, now=10.0, graceful=True)
    # Routes stay, marked stale; nothing reaches the third peer.
    assert len(rib.loc[V4]) == 2
    assert all(p.stale for p in rib.loc[V4].values())  # type: ignore[union-attr]
    assert drain(rib, m).withdrawn == []
    assert rib.get_timer() == 130.0  # restart time
    rib.peer_up(a, gr_facts("192.0.2.1"), now=20.0)  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())  # comes back: replaced, fresh
    fresh = rib.loc[V4][key("203.0.113.0/24")]
    assert not fresh.stale  # type: ignore[union-attr]
    out = drain(rib, m)
    assert out.withdrawn == []
    rib.end_of_rib(a, V4, now=21.0)
    assert list(rib.loc[V4]) == [key("203.0.113.0/24")]
    assert drain(rib, m).withdrawn == ["203.0.114.0/24"]


def test_helper_sweeps_everything_when_restart_time_runs_out() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1"))  # type: ignore[arg-type]
    m = peer(rib, "192.0.2.3", 65003)
    announce(rib, a, ["203.0.113.0/24"], attrs())
    drain(rib, m)
    rib.peer_down(a, now=0.0, graceful=True)
    rib.handle_timer(119.0)
    assert len(rib.loc[V4]) == 1
    rib.handle_timer(120.0)
    assert rib.loc[V4] == {}
    assert drain(rib, m).withdrawn == ["203.0.113.0/24"]
    assert rib.get_timer() is None


def test_helper_stale_timer_after_reconnect_without_eor() -> None:
    rib = make_rib(stale_time=300.0)
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1"))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.peer_down(a, now=0.0, graceful=True)
    rib.peer_up(a, gr_facts("192.0.2.1"), now=5.0)  # type: ignore[arg-type]
    assert rib.get_timer() == 305.0
    rib.handle_timer(305.0)
    assert rib.loc[V4] == {}


def test_helper_flushes_families_without_forwarding_state() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1"))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.peer_down(a, now=0.0, graceful=True)
    # RFC 4724 §4.2: F bit clear for IPv4 in the new OPEN → stale IPv4 routes go now.
    rib.peer_up(a, gr_facts("192.0.2.1", gr_families={V6: True}), now=1.0)  # type: ignore[arg-type]
    assert rib.loc[V4] == {}


def test_non_graceful_down_flushes_even_with_gr() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1"))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.peer_down(a, now=0.0, graceful=False)  # e.g. NOTIFICATION, RFC 4724 §4.2
    assert rib.loc[V4] == {}


def test_restarting_speaker_defers_selection_and_eor_until_peers_eor() -> None:
    fib: list[object] = []
    rib = make_rib(restarting=True, deferral_time=60.0)
    rib.fib = lambda fam, ch: fib.append(ch)
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1", families=(V4,)))  # type: ignore[arg-type]
    m = peer(rib, "192.0.2.3", 65003, fx=gr_facts("192.0.2.3", families=(V4,)))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())
    # RFC 4724 §4.1: no UPDATE, no End-of-RIB, no FIB change before the peers' EoR.
    assert drain(rib, m).announced == {} and drain(rib, m).eor == []
    assert fib == []
    rib.end_of_rib(a, V4, now=1.0)
    assert rib.deferring  # m is GR-capable too and still owes its EoR
    rib.end_of_rib(m, V4, now=2.0)
    assert not rib.deferring
    assert fib == [{key("203.0.113.0/24"): (attrs().next_hop.packed,)}]  # type: ignore[union-attr]


def test_restarting_speaker_waits_for_every_gr_peer() -> None:
    rib = make_rib(restarting=True, deferral_time=60.0)
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1", families=(V4,)))  # type: ignore[arg-type]
    m = peer(rib, "192.0.2.3", 65003, fx=gr_facts("192.0.2.3", families=(V4,)))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.end_of_rib(a, V4, now=1.0)
    assert rib.deferring
    assert drain(rib, m).eor == []
    rib.end_of_rib(m, V4, now=2.0)
    assert not rib.deferring
    out = drain(rib, m)
    assert list(out.announced) == ["203.0.113.0/24"]
    assert out.eor == [V4]  # our own EoR only after our routes


def test_restarting_speaker_deferral_timer() -> None:
    rib = make_rib(restarting=True, deferral_time=60.0)
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1", families=(V4,)))  # type: ignore[arg-type]
    m = peer(rib, "192.0.2.3", 65003, fx=facts(bgp_id="192.0.2.3", families=(V4,)))
    announce(rib, a, ["203.0.113.0/24"], attrs())
    assert rib.get_timer() == 60.0
    rib.handle_timer(59.0)
    assert rib.deferring
    rib.handle_timer(60.0)
    assert not rib.deferring
    assert "203.0.113.0/24" in drain(rib, m).announced


def test_enhanced_route_refresh_stale_sweep() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.3", 65003)
    announce(rib, a, ["203.0.113.0/24", "203.0.114.0/24"], attrs())
    drain(rib, m)
    rib.route_refresh(a, V4, 1, now=0.0)  # BoRR
    announce(rib, a, ["203.0.113.0/24"], attrs())
    assert drain(rib, m).withdrawn == []
    rib.route_refresh(a, V4, 2, now=1.0)  # EoRR: the rest was not re-advertised
    assert list(rib.loc[V4]) == [key("203.0.113.0/24")]
    assert drain(rib, m).withdrawn == ["203.0.114.0/24"]


def test_route_refresh_request_resends_with_borr_eorr() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.3", 65003, fx=facts(bgp_id="192.0.2.3", enhanced_refresh=True))
    announce(rib, a, ["203.0.113.0/24"], attrs())
    drain(rib, m)
    rib.route_refresh(m, V4, 0)
    out = drain(rib, m)
    assert list(out.announced) == ["203.0.113.0/24"]
    assert out.refresh == [1, 2]  # BoRR ... EoRR (RFC 7313 §4)


def test_withdraw_while_stale_removes_stale_path() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=gr_facts("192.0.2.1"))  # type: ignore[arg-type]
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.peer_down(a, now=0.0, graceful=True)
    rib.peer_up(a, gr_facts("192.0.2.1"), now=1.0)  # type: ignore[arg-type]
    withdraw(rib, a, ["203.0.113.0/24"])
    assert rib.loc[V4] == {}
