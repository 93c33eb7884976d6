"""The RIB end to end in memory: attribute rules, reflection, update groups, ECMP, ADD-PATH, max-prefix."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address

from ribkit import (
    LOCAL_AS,
    V4,
    V6,
    announce,
    attrs,
    drain,
    facts,
    key,
    make_rib,
    peer,
    withdraw,
)

from bgp.wire import Family
from rib import Rib, RibSettings


def test_ebgp_to_ebgp_prepends_sets_next_hop_self_drops_med_and_local_pref() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    drain(rib, b)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, 7), med=50))
    out = drain(rib, b)
    got = out.announced["203.0.113.0/24"]
    assert got.as_path == ((2, (LOCAL_AS, 65001, 7)),)  # RFC 4271 §5.1.2
    assert got.next_hop == IPv4Address("10.0.0.1")  # next hop self, §5.1.3
    assert got.med is None  # §5.1.4: MED not passed to another AS
    assert got.local_pref is None  # §5.1.5: LOCAL_PREF only on iBGP


def test_keep_original_next_hop() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002, keep_original_next_hop=True)
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.77"))
    assert drain(rib, b).announced["203.0.113.0/24"].next_hop == IPv4Address("192.0.2.77")


def test_ebgp_route_to_ibgp_keeps_next_hop_and_sets_local_pref() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    i = peer(rib, "10.0.0.2", LOCAL_AS)
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.1", med=5))
    got = drain(rib, i).announced["203.0.113.0/24"]
    assert got.as_path == ((2, (65001,)),)
    assert got.next_hop == IPv4Address("192.0.2.1")
    assert got.local_pref == 100
    assert got.med == 5


def test_no_ibgp_to_ibgp_without_reflection() -> None:
    rib = make_rib()
    i1 = peer(rib, "10.0.0.2", LOCAL_AS)
    i2 = peer(rib, "10.0.0.3", LOCAL_AS)
    e = peer(rib, "192.0.2.2", 65002)
    announce(rib, i1, ["203.0.113.0/24"], attrs((), nh="10.0.0.2", lp=100))
    assert "203.0.113.0/24" not in drain(rib, i2).announced
    assert "203.0.113.0/24" in drain(rib, e).announced


def test_route_reflector_client_to_client_and_nonclient() -> None:
    rib = make_rib(cluster_id=IPv4Address("1.1.1.1"))
    c1 = peer(rib, "10.0.0.2", LOCAL_AS, route_reflector_client=True)
    c2 = peer(rib, "10.0.0.3", LOCAL_AS, route_reflector_client=True)
    n1 = peer(rib, "10.0.0.4", LOCAL_AS)
    n2 = peer(rib, "10.0.0.5", LOCAL_AS)
    announce(rib, c1, ["203.0.113.0/24"], attrs((), nh="10.0.0.2", lp=100))
    for p in (c2, n1):
        got = drain(rib, p).announced["203.0.113.0/24"]
        assert got.originator_id == IPv4Address("10.0.0.2")  # c1's BGP id
        assert got.cluster_list == (IPv4Address("1.1.1.1"),)
        assert got.next_hop == IPv4Address("10.0.0.2")
    # RFC 4456 §6: a non-client's route goes to clients only.
    drain(rib, c2)
    announce(rib, n1, ["198.51.100.0/24"], attrs((), nh="10.0.0.4", lp=100))
    assert "198.51.100.0/24" in drain(rib, c2).announced
    assert "198.51.100.0/24" not in drain(rib, n2).announced


def test_reflection_loops_are_dropped_on_receipt() -> None:
    rib = make_rib(cluster_id=IPv4Address("1.1.1.1"))
    c1 = peer(rib, "10.0.0.2", LOCAL_AS, route_reflector_client=True)
    announce(rib, c1, ["203.0.113.0/24"], attrs((), clusters=("1.1.1.1",), originator="10.0.0.9"))
    announce(rib, c1, ["203.0.114.0/24"], attrs((), originator="10.0.0.1"))
    assert rib.loc[V4] == {}


def test_as_path_loop_dropped_and_treated_as_withdraw() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001,)))
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, LOCAL_AS)))
    assert rib.loc[V4] == {}


def test_update_group_members_get_the_same_bytes_objects() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    mons = [peer(rib, f"192.0.2.{10 + i}", 65100 + i) for i in range(5)]
    for m in mons:
        drain(rib, m)
    assert len({id(g) for g in rib.groups.values() if g.family is V4}) == 1
    announce(rib, a, [f"203.0.{i}.0/24" for i in range(100)], attrs((65001,)))
    pulled = [rib.pull(m, 1 << 20) for m in mons]
    assert all(len(p) == 1 for p in pulled)
    assert len({id(p[0]) for p in pulled}) == 1  # encoded once, one object for all
    assert len(drain(rib, mons[0]).announced) == 0  # nothing left


def test_different_export_policies_form_different_groups() -> None:
    rib = make_rib()
    peer(rib, "192.0.2.1", 65001, export="all")
    peer(rib, "192.0.2.2", 65002, export="local")
    keys = {g.key for g in rib.groups.values() if g.family is V4}
    assert len(keys) == 2


def test_changes_coalesce_before_pull() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    drain(rib, b)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, 1)))
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, 2)))
    withdraw(rib, a, ["203.0.113.0/24"])
    out = drain(rib, b)
    assert out.announced == {} and out.withdrawn == []  # never sent, nothing to withdraw


def test_withdraw_and_end_of_rib() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    first = drain(rib, b)
    assert set(first.eor) == {V4, V6}  # RFC 4724 §2 after the (empty) initial table
    announce(rib, a, ["203.0.113.0/24"], attrs())
    drain(rib, b)
    withdraw(rib, a, ["203.0.113.0/24"])
    assert drain(rib, b).withdrawn == ["203.0.113.0/24"]


def test_late_joiner_catches_up_then_gets_eor() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, [f"203.0.{i}.0/24" for i in range(10)], attrs())
    drain(rib, b)
    c = peer(rib, "192.0.2.3", 65003)
    out = drain(rib, c)
    assert len(out.announced) == 10 and set(out.eor) == {V4, V6}


def test_best_path_switch_and_fallback() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    m = peer(rib, "192.0.2.3", 65003)
    announce(rib, a, ["203.0.113.0/24"], attrs((65001, 9, 9), nh="192.0.2.1"))
    announce(rib, b, ["203.0.113.0/24"], attrs((65002,), nh="192.0.2.2"))
    best = rib.best(V4, key("203.0.113.0/24"))
    assert best is not None and best.source.key == b
    assert drain(rib, m).announced["203.0.113.0/24"].as_path == ((2, (LOCAL_AS, 65002)),)
    withdraw(rib, b, ["203.0.113.0/24"])
    assert drain(rib, m).announced["203.0.113.0/24"].as_path == ((2, (LOCAL_AS, 65001, 9, 9)),)
    assert rib.peers[a].counts[V4] == 1 and rib.peers[b].counts[V4] == 0


def test_fib_callback_once_per_batch_with_ecmp_next_hops() -> None:
    calls: list[tuple[Family, dict[bytes, tuple[bytes, ...]]]] = []
    rib = make_rib(max_paths=4)
    rib.fib = lambda fam, changes: calls.append((fam, changes))
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65001)
    rib.receive(
        a, V4, (), attrs((65001,), nh="192.0.2.1"), [key("203.0.113.0/24"), key("203.0.114.0/24")]
    )
    rib.receive(b, V4, (), attrs((65001,), nh="192.0.2.2"), [key("203.0.113.0/24")])
    rib.flush()
    assert len(calls) == 1
    fam, changes = calls[0]
    assert fam is V4
    nh1, nh2 = IPv4Address("192.0.2.1").packed, IPv4Address("192.0.2.2").packed
    assert set(changes[key("203.0.113.0/24")]) == {nh1, nh2}
    assert changes[key("203.0.114.0/24")] == (nh1,)
    withdraw(rib, a, ["203.0.114.0/24"])
    assert calls[-1][1] == {key("203.0.114.0/24"): ()}


def test_unreachable_next_hop_is_not_used() -> None:
    unreachable = ip_address("192.0.2.66")

    def resolve(fam: Family, a: object) -> int | None:
        return None if a.nexthop(fam) == unreachable else 0  # type: ignore[attr-defined]

    rib = make_rib()
    rib.resolve = resolve
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.3", 65003)
    drain(rib, m)
    announce(rib, a, ["203.0.113.0/24"], attrs(nh="192.0.2.66"))
    assert rib.best(V4, key("203.0.113.0/24")) is None
    assert drain(rib, m).announced == {}


def test_ipv6_routes_via_mp_reach() -> None:
    rib = make_rib()
    a = peer(rib, "2001:db8::1", 65001, fx=facts(local="2001:db8::a", bgp_id="10.1.1.1"))
    b = peer(rib, "2001:db8::2", 65002, fx=facts(local="2001:db8::a", bgp_id="10.1.1.2"))
    announce(rib, a, ["2001:db8:100::/48"], attrs((65001,), nh="2001:db8::1"))
    got = drain(rib, b).announced["2001:db8:100::/48"]
    assert got.mp_next_hop == (ip_address("2001:db8::a"),)


def test_originate_and_local_export_policy() -> None:
    rib = make_rib()
    e = peer(rib, "192.0.2.2", 65002, export="local")
    a = peer(rib, "192.0.2.1", 65001)
    drain(rib, e)
    announce(rib, a, ["203.0.113.0/24"], attrs())
    rib.originate("10.244.1.0/26", communities=[(64512 << 16) | 300])
    out = drain(rib, e)
    assert list(out.announced) == ["10.244.1.0/26"]
    got = out.announced["10.244.1.0/26"]
    assert got.as_path == ((2, (LOCAL_AS,)),) and got.next_hop == IPv4Address("10.0.0.1")
    assert got.communities == ((64512 << 16) | 300,)
    rib.withdraw_originated("10.244.1.0/26")
    assert drain(rib, e).withdrawn == ["10.244.1.0/26"]


def test_locally_originated_wins_over_learned() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    announce(rib, a, ["10.244.1.0/26"], attrs())
    rib.originate("10.244.1.0/26")
    best = rib.best(V4, key("10.244.1.0/26"))
    assert best is not None and best.local


def test_max_prefix_calls_back_once_and_stops_accepting() -> None:
    hits: list[tuple[str, int]] = []
    rib = make_rib()
    rib.max_prefix_exceeded = lambda k, n: hits.append((k, n))
    a = peer(rib, "192.0.2.1", 65001, max_prefixes=5)
    announce(rib, a, [f"203.0.{i}.0/24" for i in range(4)], attrs())
    assert hits == []
    announce(rib, a, [f"203.1.{i}.0/24" for i in range(4)], attrs())
    assert hits == [(a, 5)]
    announce(rib, a, ["198.51.100.0/24"], attrs())
    assert key("198.51.100.0/24") not in rib.loc[V4]
    rib.peer_down(a)
    assert rib.loc[V4] == {}
    rib.peer_up(a, facts(bgp_id="192.0.2.1"))
    announce(rib, a, ["198.51.100.0/24"], attrs())
    assert key("198.51.100.0/24") in rib.loc[V4]


def test_add_path_receive_keeps_paths_apart() -> None:
    rib = make_rib()
    a = peer(rib, "10.0.0.2", LOCAL_AS, fx=facts(bgp_id="10.0.0.2", add_path_rx=(V4,)))
    k = key("203.0.113.0/24")
    pid = lambda n: n.to_bytes(4, "big") + k  # noqa: E731
    rib.receive(a, V4, (), attrs((65001,), nh="10.0.0.7", lp=100), [pid(1)], add_path=True)
    rib.receive(a, V4, (), attrs((65002, 3), nh="10.0.0.8", lp=100), [pid(2)], add_path=True)
    rib.flush()
    entry = rib.loc[V4][k]
    assert len(entry.paths) == 2  # type: ignore[union-attr]
    rib.receive(a, V4, [pid(1)], add_path=True)
    rib.flush()
    best = rib.best(V4, k)
    assert best is not None and best.slot.path_id == 2
    assert rib.peers[a].counts[V4] == 1


def test_add_path_send_best_n() -> None:
    rib = make_rib()
    srcs = [peer(rib, f"192.0.2.{i}", 65001 + i) for i in range(1, 4)]
    m = peer(
        rib, "10.0.0.9", LOCAL_AS, add_path_send=2, fx=facts(bgp_id="10.0.0.9", add_path_tx=(V4,))
    )
    drain(rib, m, add_path=True)
    for i, s in enumerate(srcs):
        announce(rib, s, ["203.0.113.0/24"], attrs((65002 + i,) + (7,) * i, nh=f"192.0.2.{i + 1}"))
    out = drain(rib, m, add_path=True)
    assert len(out.announced) == 2
    hops = {a.next_hop for a in out.announced.values()}
    assert hops == {IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")}
    withdraw(rib, srcs[0], ["203.0.113.0/24"])
    out = drain(rib, m, add_path=True)
    assert len(out.withdrawn) == 1
    assert {a.next_hop for a in out.announced.values()} == {IPv4Address("192.0.2.3")}


def test_peer_down_without_gr_removes_routes_and_tells_others() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    m = peer(rib, "192.0.2.3", 65003)
    announce(rib, a, ["203.0.113.0/24", "203.0.114.0/24"], attrs())
    drain(rib, m)
    rib.peer_down(a)
    assert sorted(drain(rib, m).withdrawn) == ["203.0.113.0/24", "203.0.114.0/24"]


def test_peer_count_matches_table(rib: Rib | None = None) -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    announce(rib, a, [f"203.0.{i}.0/24" for i in range(20)], attrs())
    announce(rib, b, [f"203.0.{i}.0/24" for i in range(10, 30)], attrs((65002,)))
    withdraw(rib, a, [f"203.0.{i}.0/24" for i in range(5)])
    assert rib.peers[a].counts[V4] == 15 and rib.peers[b].counts[V4] == 20
    assert len(rib.loc[V4]) == 25


def test_confederation_segments_never_leave_towards_ebgp() -> None:
    """RFC 5065 §5: AS_CONFED_* segments (here from an iBGP peer) are removed before our
    AS is prepended; an eBGP peer would treat the route as withdrawn (RFC 7606 §7.2)."""
    rib = make_rib()
    i = peer(rib, "10.0.0.2", LOCAL_AS)
    b = peer(rib, "192.0.2.2", 65002)
    drain(rib, b)
    confed = attrs((65010,), nh="10.0.0.2", lp=100).replace(as_path=((3, (65001,)), (2, (65010,))))
    announce(rib, i, ["203.0.113.0/24"], confed)
    got = drain(rib, b).announced["203.0.113.0/24"]
    assert got.as_path == ((2, (LOCAL_AS, 65010)),)


def test_each_rib_has_its_own_local_source_and_path_ids() -> None:
    """Two RIBs in one process (tests, harnesses) share nothing: a route one originates
    carries its own router id and default LOCAL_PREF, not the first RIB's, and each
    numbers its ADD-PATH ids from 1."""
    a = make_rib(default_local_pref=100)
    b = Rib(
        RibSettings(local_as=LOCAL_AS, router_id=IPv4Address("10.0.0.2"), default_local_pref=200)
    )
    for rib in (a, b):
        rib.originate("203.0.113.0/24")
    pa, pb = a.best(V4, key("203.0.113.0/24")), b.best(V4, key("203.0.113.0/24"))
    assert pa is not None and pb is not None
    assert (pa.lp, pa.rid) == (100, int(IPv4Address("10.0.0.1")))
    assert (pb.lp, pb.rid) == (200, int(IPv4Address("10.0.0.2")))
    assert pa.slot.tx_id == pb.slot.tx_id == 1
