"""Long-lived graceful restart (RFC 9494), helper side, with a fake clock: the
long-lived phase after the restart time (or at once), NO_LLGR, LLGR_STALE least
preferred and only sent to LLGR peers, End-of-RIB and the long-lived timer."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from ribkit import V4, V6, announce, attrs, drain, facts, key, peer

from bgp.wire.constants import WellKnownCommunity
from rib import Rib, RibSettings

LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)
NO_LLGR = int(WellKnownCommunity.NO_LLGR)
P1, P2 = "203.0.113.0/24", "198.51.100.0/24"


def rib_with_fib() -> tuple[Rib, list[dict[bytes, tuple[bytes, ...]]]]:
    calls: list[dict[bytes, tuple[bytes, ...]]] = []
    rib = Rib(RibSettings(local_as=65000, router_id=IPv4Address("10.0.0.1")),
              fib=lambda fam, ch: calls.append(dict(ch)))  # fmt: skip
    return rib, calls


def llgr_facts(bgp_id: str, restart: int = 120, stale: int = 3600, fbit: bool = True,
               **kw: Any) -> Any:  # fmt: skip
    return facts(bgp_id=bgp_id, gr_restart_time=restart,
                 gr_families={V4: True, V6: True} if restart else {},
                 llgr={V4: (stale, fbit), V6: (stale, fbit)}, **kw)  # fmt: skip


def entry_paths(rib: Rib, prefix: str) -> list[Any]:
    e = rib.loc[V4].get(key(prefix))
    if e is None:
        return []
    return [e] if e.__class__.__name__ == "Path" else list(e.paths)  # type: ignore[union-attr]


def setup(**kw: Any) -> tuple[Rib, list[Any], str, str, str]:
    rib, fib = rib_with_fib()
    a = peer(rib, "192.0.2.1", 65001, fx=llgr_facts("192.0.2.1", **kw))
    helper = peer(rib, "192.0.2.2", 65002, fx=llgr_facts("192.0.2.2"))  # LLGR-capable
    plain = peer(rib, "192.0.2.3", 65003)  # no LLGR capability
    announce(rib, a, [P1], attrs(nh="192.0.2.1"))
    announce(rib, a, [P2], attrs(nh="192.0.2.1", communities=(NO_LLGR,)))
    for p in (helper, plain):
        drain(rib, p)
    fib.clear()
    return rib, fib, a, helper, plain


def test_restart_time_then_long_lived_phase_then_swept() -> None:
    rib, fib, a, helper, plain = setup()
    rib.peer_down(a, now=0.0, graceful=True)
    assert rib.get_timer() == 120.0  # RFC 4724 restart time first
    rib.handle_timer(119.0)
    assert all(not p.llgr for p in entry_paths(rib, P1))
    rib.handle_timer(120.0)
    # RFC 9494 §4.2: NO_LLGR routes go; the others carry LLGR_STALE, still stale.
    assert entry_paths(rib, P2) == []
    (p,) = entry_paths(rib, P1)
    assert p.llgr and p.stale and LLGR_STALE in p.attrs.communities
    assert rib.get_timer() == 120.0 + 3600.0
    # The kernel keeps the route: same next hop handed to the FIB; P2 removed.
    merged: dict[bytes, tuple[bytes, ...]] = {}
    for c in fib:
        merged.update(c)
    assert merged[key(P1)] == (IPv4Address("192.0.2.1").packed,) and merged[key(P2)] == ()
    # §4.3: re-sent with the community to an LLGR peer, withdrawn from the other.
    out = drain(rib, helper)
    assert LLGR_STALE in out.announced[P1].communities and out.withdrawn == [P2]
    out = drain(rib, plain)
    assert sorted(out.withdrawn) == sorted([P1, P2]) and out.announced == {}
    rib.handle_timer(3719.0)
    assert entry_paths(rib, P1)
    rib.handle_timer(3720.0)
    assert entry_paths(rib, P1) == [] and rib.get_timer() is None
    assert drain(rib, helper).withdrawn == [P1]


def test_restart_time_zero_starts_the_long_lived_phase_at_once() -> None:
    rib, _, a, _, _ = setup(restart=0)
    rib.peer_down(a, now=5.0, graceful=True)
    (p,) = entry_paths(rib, P1)
    assert p.llgr and entry_paths(rib, P2) == []
    assert rib.get_timer() == 3605.0


def test_long_lived_stale_route_is_least_preferred() -> None:
    rib, _, a, helper, _ = setup()
    # The helper's path: longer AS_PATH and lower LOCAL_PREF, so it loses at first.
    announce(rib, helper, [P1], attrs((65002, 65009, 65010), nh="192.0.2.2", lp=10))
    assert rib.best(V4, key(P1)).source.key == a  # type: ignore[union-attr]
    rib.peer_down(a, now=0.0, graceful=True)
    assert rib.best(V4, key(P1)).source.key == a  # type: ignore[union-attr]  # GR: still best
    rib.handle_timer(120.0)
    best = rib.best(V4, key(P1))
    assert best is not None and best.source.key == helper
    e = rib.loc[V4][key(P1)]
    assert e.reasons == ("not-llgr-stale", "not-llgr-stale")  # type: ignore[union-attr]


def test_return_and_end_of_rib_sweep_what_was_not_sent_again() -> None:
    rib, _, a, _helper, _ = setup()
    announce(rib, a, ["192.0.2.128/25"], attrs(nh="192.0.2.1"))
    rib.peer_down(a, now=0.0, graceful=True)
    rib.handle_timer(120.0)
    rib.peer_up(a, llgr_facts("192.0.2.1"), now=200.0)
    # Kept (F bit set) until End-of-RIB; the long-lived deadline still stands.
    assert entry_paths(rib, P1)[0].llgr
    assert rib.get_timer() == 3720.0
    announce(rib, a, [P1], attrs(nh="192.0.2.1"))
    (fresh,) = entry_paths(rib, P1)
    assert not fresh.llgr and not fresh.stale
    rib.end_of_rib(a, V4, now=201.0)
    assert entry_paths(rib, "192.0.2.128/25") == [] and entry_paths(rib, P1) == [fresh]
    assert a not in [k for k, st in rib.peers.items() if st.llgr.get(V4)]


def test_return_without_forwarding_state_flushes_at_once() -> None:
    rib, _, a, _, _ = setup()
    rib.peer_down(a, now=0.0, graceful=True)
    rib.handle_timer(120.0)
    fx = llgr_facts("192.0.2.1", fbit=False)
    fx.gr_families.clear()
    rib.peer_up(a, fx, now=300.0)
    assert entry_paths(rib, P1) == []


def test_no_long_lived_time_negotiated_sweeps_at_restart_time() -> None:
    rib, _, a, _, _ = setup(stale=0)  # e.g. ours is 0: the capability is only heard
    rib.peer_down(a, now=0.0, graceful=True)
    rib.handle_timer(120.0)
    assert entry_paths(rib, P1) == [] and rib.get_timer() is None


def test_a_notification_flushes_even_with_llgr() -> None:
    rib, _, a, _, _ = setup(restart=0)
    rib.peer_down(a, now=0.0, graceful=False)
    assert rib.loc[V4] == {} and rib.get_timer() is None


def test_received_llgr_stale_route_is_least_preferred_and_kept_from_plain_peers() -> None:
    rib, _, _a, helper, plain = setup()
    other = peer(rib, "192.0.2.4", 65004, fx=llgr_facts("192.0.2.4"))
    drain(rib, other)
    announce(rib, helper, ["192.0.2.0/26"], attrs(nh="192.0.2.2", communities=(LLGR_STALE,)))
    assert drain(rib, plain).announced == {}
    assert LLGR_STALE in drain(rib, other).announced["192.0.2.0/26"].communities
    announce(rib, other, ["192.0.2.0/26"], attrs((65004, 1, 2, 3), nh="192.0.2.4", lp=1))
    assert rib.best(V4, key("192.0.2.0/26")).source.key == other  # type: ignore[union-attr]


def test_session_facts_carry_the_negotiated_long_lived_times() -> None:
    from bgp.negotiate import build_open, negotiate
    from bgp.settings import PeerSettings
    from bgp.wire.capabilities import GracefulRestartCapability as Gr
    from bgp.wire.capabilities import LongLivedGracefulRestartCapability as Llgr
    from bgp.wire.capabilities import MultiprotocolCapability as Mp
    from bgp.wire.messages import Open
    from rib.adapter import facts_from_negotiated

    ps = PeerSettings("192.0.2.1", 65001, graceful_restart=True, long_lived_stale_time=90)
    theirs = Open(65001, 90, IPv4Address("192.0.2.1"),
                  (Mp(1, 1), Gr(5, families=((1, 1, True),)), Llgr(((1, 1, 0x80, 300),))))  # fmt: skip
    neg = negotiate(build_open(65000, "10.0.0.1", ps), theirs, 65000, ps, 65001)
    fx = facts_from_negotiated(neg, None, None)
    assert fx.llgr == {V4: (90, True)} and fx.gr_restart_time == 5


def test_a_second_failure_before_end_of_rib_starts_a_new_cycle() -> None:
    rib, _, a, _, _ = setup()
    rib.peer_down(a, now=0.0, graceful=True)
    rib.handle_timer(120.0)  # long-lived until 3720
    rib.peer_up(a, llgr_facts("192.0.2.1"), now=200.0)
    announce(rib, a, ["192.0.2.128/25"], attrs(nh="192.0.2.1"))  # new in this session
    rib.peer_down(a, now=210.0, graceful=True)  # down again, no End-of-RIB
    assert rib.get_timer() == 330.0  # the restart time again
    rib.handle_timer(330.0)
    # Both the old long-lived route and the new session's route are long-lived stale now.
    assert entry_paths(rib, P1)[0].llgr and entry_paths(rib, "192.0.2.128/25")[0].llgr
    assert rib.get_timer() == 330.0 + 3600.0
    rib.handle_timer(3930.0)
    assert rib.loc[V4] == {}
