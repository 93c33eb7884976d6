"""``Rib.all_eor_received`` / ``on_all_eor`` and ``Rib.peer_summary``: what the daemon
reads of the RIB instead of ``PeerState`` (a restarted node sweeps its stale kernel
routes once every graceful-restart peer's End-of-RIB is in, RFC 4724 §4.1/§4.2)."""

from __future__ import annotations

from typing import Any

from ribkit import V4, V6, facts, make_rib, peer

from rib import Rib


def gr(bgp_id: str, families: tuple[Any, ...] = (V4,), **kw: Any) -> Any:
    fams = dict.fromkeys(families, True)
    return facts(bgp_id=bgp_id, families=families, gr_restart_time=120, gr_families=fams, **kw)


def rib_with_calls() -> tuple[Rib, list[int]]:
    calls: list[int] = []
    rib = make_rib()
    rib.on_all_eor = lambda: calls.append(1)
    return rib, calls


def test_the_callback_comes_once_the_last_family_of_the_last_peer_is_in() -> None:
    calls: list[int] = []
    rib = Rib(make_rib().settings, on_all_eor=lambda: calls.append(1))  # given at construction
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1", (V4, V6)), families=(V4, V6))
    b = peer(rib, "192.0.2.2", 65002, fx=gr("192.0.2.2"))
    assert not rib.all_eor_received()
    rib.end_of_rib(a, V4)
    rib.end_of_rib(b, V4)
    assert not rib.all_eor_received() and calls == []  # a's IPv6 is still due
    rib.end_of_rib(a, V6)
    assert rib.all_eor_received() and calls == [1]
    rib.end_of_rib(a, V6)  # a repeat changes nothing: no second call
    assert calls == [1]


def test_peers_with_restart_state_set_are_waited_for_unlike_deferral() -> None:
    """§4.1 (a) leaves them out of selection deferral; the kernel's stale routes still
    carry their traffic until their routes are back, so this waits for them."""
    rib, calls = rib_with_calls()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1", gr_restarting=True))
    assert not rib.all_eor_received()
    rib.end_of_rib(a, V4)
    assert calls == [1]


def test_peers_without_graceful_restart_down_or_disabled_bring_nothing_to_wait_for() -> None:
    rib, calls = rib_with_calls()
    peer(rib, "192.0.2.2", 65002, fx=facts(bgp_id="192.0.2.2", families=(V4,)))  # no GR
    peer(rib, "192.0.2.3", 65003, up=False)  # configured, not up
    assert rib.all_eor_received()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1", (V4, V6)), families=(V4, V6))
    rib.end_of_rib(a, V4)
    assert not rib.all_eor_received()
    rib.flush_family(a, V6)  # RFC 4760 §7: IPv6 disabled for the session
    assert rib.all_eor_received() and calls == [1]


def test_the_laggard_going_down_or_removed_completes_it() -> None:
    rib, calls = rib_with_calls()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    b = peer(rib, "192.0.2.2", 65002, fx=gr("192.0.2.2"))
    c = peer(rib, "192.0.2.3", 65003, fx=gr("192.0.2.3"))
    rib.end_of_rib(a, V4)
    rib.peer_down(b, graceful=True)
    assert not rib.all_eor_received() and calls == []
    rib.remove_peer(c)
    assert rib.all_eor_received() and calls == [1]
    rib.peer_up(b, gr("192.0.2.2"))  # back: its End-of-RIB is due again
    assert not rib.all_eor_received()
    rib.end_of_rib(b, V4)
    assert calls == [1, 1]


def test_peer_summary_reads_a_peer_without_its_state() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1", (V4, V6)), families=(V4, V6))
    rib.end_of_rib(a, V4)
    rib.flush_family(a, V6)
    s = rib.peer_summary(a)
    assert s is not None
    assert (s.key, s.up, s.graceful_restart) == (a, True, True)
    assert s.families == {V4} and s.disabled == {V6} and s.eor_received == {V4}
    assert s.stale == frozenset()
    rib.peer_down(a, graceful=True)
    s = rib.peer_summary(a)
    assert s is not None and not s.up and s.stale == {V4}
    assert [x.key for x in rib.peer_summaries()] == [a]
    assert rib.peer_summary("192.0.2.99") is None
