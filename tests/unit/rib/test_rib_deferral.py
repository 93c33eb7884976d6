"""Restarting speaker's selection deferral (RFC 4724 §4.1): when it ends, per family,
and the ``converged`` / ``on_converged`` signal the daemon waits for."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from ribkit import V4, V6, announce, attrs, decode_out, drain, facts, make_rib, peer

from rib import Rib
from rib.adapter import PeerHandles, RibAdapter


def gr(bgp_id: str, families: tuple[Any, ...] = (V4,), **kw: Any) -> Any:
    fams = dict.fromkeys(families, True)
    return facts(bgp_id=bgp_id, families=families, gr_restart_time=120, gr_families=fams, **kw)


def restarting(**kw: Any) -> tuple[Rib, list[int]]:
    rib = make_rib(restarting=True, deferral_time=60.0, **kw)
    calls: list[int] = []
    rib.on_converged = lambda: calls.append(1)
    return rib, calls


def test_configured_peer_not_up_is_waited_for_until_the_timer() -> None:
    rib, calls = restarting()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    peer(rib, "192.0.2.2", 65002, up=False, families=(V4,))  # configured, not up yet
    rib.end_of_rib(a, V4, now=1.0)
    assert rib.deferring and not rib.converged and calls == []
    rib.handle_timer(60.0)  # RFC 4724 §4.1 (b)
    assert rib.converged and calls == [1]
    assert rib.get_timer() is None


def test_late_peer_that_comes_up_and_sends_eor_ends_deferral() -> None:
    rib, calls = restarting()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    b = peer(rib, "192.0.2.2", 65002, up=False, families=(V4,))
    rib.end_of_rib(a, V4, now=1.0)
    rib.peer_up(b, gr("192.0.2.2"), now=2.0)
    assert rib.deferring
    rib.end_of_rib(b, V4, now=3.0)
    assert rib.converged and calls == [1]


def test_peers_without_gr_or_restarting_are_not_waited_for() -> None:
    rib, calls = restarting()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    peer(rib, "192.0.2.2", 65002, fx=facts(bgp_id="192.0.2.2", families=(V4,)))  # no GR
    peer(rib, "192.0.2.3", 65003, fx=gr("192.0.2.3", gr_restarting=True))  # restarting too
    assert rib.deferring
    rib.end_of_rib(a, V4, now=1.0)
    assert rib.converged and calls == [1]


def test_gr_capable_helper_with_restart_time_zero_is_waited_for() -> None:
    rib, _ = restarting()
    # Capability present (helper only): it still sends End-of-RIB, so it is awaited.
    fx = facts(bgp_id="192.0.2.1", families=(V4,), gr_capable=True)
    a = peer(rib, "192.0.2.1", 65001, fx=fx)
    assert rib.deferring
    rib.end_of_rib(a, V4, now=1.0)
    assert rib.converged


def test_all_non_gr_peers_up_ends_deferral_at_once() -> None:
    rib, calls = restarting()
    peer(rib, "192.0.2.2", 65002, fx=facts(bgp_id="192.0.2.2", families=(V4,)))
    assert rib.converged and calls == [1]


def test_deferral_is_per_family() -> None:
    rib, calls = restarting()
    fib: list[Any] = []
    rib.fib = lambda fam, ch: fib.append(fam)
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1", (V4, V6)))
    m = peer(rib, "192.0.2.9", 65009, fx=facts(bgp_id="192.0.2.9"))
    announce(rib, a, ["203.0.113.0/24"], attrs())
    announce(rib, a, ["2001:db8::/32"], attrs(nh="2001:db8::1"))
    rib.end_of_rib(a, V4, now=1.0)
    assert rib.deferred == {V6} and calls == []
    assert fib == [V4]
    out = drain(rib, m)
    assert list(out.announced) == ["203.0.113.0/24"] and out.eor == [V4]
    rib.end_of_rib(a, V6, now=2.0)
    assert rib.converged and calls == [1]
    out = drain(rib, m)
    assert list(out.announced) == ["2001:db8::/32"] and out.eor == [V6]


def test_removing_an_awaited_peer_ends_deferral() -> None:
    rib, calls = restarting()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    b = peer(rib, "192.0.2.2", 65002, up=False, families=(V4,))
    rib.end_of_rib(a, V4, now=1.0)
    rib.remove_peer(b, now=2.0)
    assert rib.converged and calls == [1]


def test_empty_table_still_gets_our_eor_when_deferral_ends() -> None:
    rib, _ = restarting()
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    woken: list[str] = []
    rib.wake = woken.append
    assert drain(rib, a).eor == []
    rib.end_of_rib(a, V4, now=1.0)
    assert a in woken  # the session is told to pull: our End-of-RIB is due
    assert drain(rib, a).eor == [V4]


def _messages(blob: bytes) -> list[bytes]:
    """A pulled blob split into its BGP messages (length at octets 16-17, RFC 4271 §4.1)."""
    out = []
    while blob:
        length = int.from_bytes(blob[16:18], "big")
        out.append(blob[:length])
        blob = blob[length:]
    return out


def test_our_routes_go_out_before_our_eor_when_sessions_pull_at_once() -> None:
    """RFC 4724 §4.1: when the deferral ends the restarting speaker sends its routes,
    then End-of-RIB. A session pulls as soon as it is woken (``bgp.session.Session.pump``
    runs inside ``wake``), here inside the End-of-RIB that ends the deferral. Before the
    fix each peer got our End-of-RIB first, swept our stale routes and got them back a
    moment later: its kernel deleted and re-added them (issue 13 item 4)."""
    rib, _ = restarting()
    rib.originate("10.244.90.128/26")
    a = peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    b = peer(rib, "192.0.2.2", 65002, fx=gr("192.0.2.2"))
    sent: dict[str, list[str]] = {a: [], b: []}

    def pump(key: str) -> None:
        while blobs := rib.pull(key, 1 << 20):
            for msg in (m for blob in blobs for m in _messages(blob)):
                out = decode_out([msg])
                sent[key] += [f"announce {p}" for p in out.announced]
                sent[key] += [f"withdraw {p}" for p in out.withdrawn]
                sent[key] += [f"End-of-RIB {f.name}" for f in out.eor]

    rib.wake = pump
    rib.end_of_rib(a, V4, now=1.0)
    assert sent == {a: [], b: []}  # still deferred: b owes its End-of-RIB
    rib.end_of_rib(b, V4, now=2.0)
    assert rib.converged
    for key in (a, b):
        assert sent[key] == ["announce 10.244.90.128/26", "End-of-RIB IPV4_UNICAST"], sent


def test_routes_before_eor_when_the_deferral_timer_ends_it() -> None:
    """The same order when the deferral ends by its timer (RFC 4724 §4.1 (b))."""
    rib, _ = restarting()
    rib.originate("10.244.90.128/26")
    peer(rib, "192.0.2.1", 65001, fx=gr("192.0.2.1"))
    sent: list[str] = []

    def pump(key: str) -> None:
        while blobs := rib.pull(key, 1 << 20):
            for msg in (m for blob in blobs for m in _messages(blob)):
                out = decode_out([msg])
                sent.extend([f"announce {p}" for p in out.announced]
                             + [f"End-of-RIB {f.name}" for f in out.eor])  # fmt: skip

    rib.wake = pump
    rib.handle_timer(60.0)
    assert rib.converged
    assert sent == ["announce 10.244.90.128/26", "End-of-RIB IPV4_UNICAST"], sent


def test_not_restarting_is_converged_from_the_start() -> None:
    rib = make_rib()
    assert rib.converged and not rib.deferring and rib.get_timer() is None


def test_adapter_starts_the_deferral_timer_on_its_clock() -> None:
    handles = PeerHandles()
    rib = make_rib(handles, restarting=True, deferral_time=60.0)
    armed: list[tuple[float, Any]] = []
    RibAdapter(
        rib,
        handles,
        local4=IPv4Address("10.0.0.1"),
        clock=lambda: 1000.0,
        call_at=lambda t, cb: armed.append((t, cb)),
    )
    # Armed at once, even if no peer ever comes up.
    assert [t for t, _ in armed] == [1060.0]
    armed[0][1]()  # the loop fires it (clock still 1000: too early, re-armed)
    assert rib.deferring
    rib.handle_timer(1060.0)
    assert rib.converged
