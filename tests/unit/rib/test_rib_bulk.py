"""Bulk paths of the RIB: a batch larger than one build step, and bulk
withdrawals and announcements that meet prefixes holding other peers' paths.

``Rib._withdraw`` pops every key first and puts back what was not only the
withdrawing slot's path; ``Rib._announce`` inserts with ``setdefault`` and
falls back per prefix where one existed; ``UpdateGroup.build`` takes
``CHUNK`` prefixes at a time from a larger dirty dict. Each test checks the
Loc-RIB, the per-peer counts, ``Rib.advertised`` and what a third peer was
told (RFC 4271 §9.1.3, §9.2: it ends with exactly the best paths).
"""

from __future__ import annotations

from ribkit import V4, attrs, drain, key, make_rib, peer

from rib.adjout import CHUNK

N = CHUNK * 2 + 100  # more than two build steps
PREFIXES = [f"10.{i >> 8}.{i & 0xFF}.0/24" for i in range(N)]
SHARED = PREFIXES[::7]  # prefixes where a second peer has a path too


def test_batch_larger_than_a_build_step_reaches_the_peer_whole() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    mon = peer(rib, "192.0.2.3", 65003)
    drain(rib, mon)
    rib.receive(a, V4, (), attrs((65001,)), [key(p) for p in PREFIXES[: N // 2]])
    rib.receive(a, V4, (), attrs((65001, 7)), [key(p) for p in PREFIXES[N // 2 :]])
    rib.flush()
    g = rib.peers[mon].members[V4].group
    assert g is not None and len(g.dirty) > CHUNK
    out = drain(rib, mon)
    assert sorted(out.announced) == sorted(PREFIXES)
    assert rib.advertised(mon)[V4] == N and rib.advertised(a)[V4] == 0
    rib.receive(a, V4, [key(p) for p in PREFIXES])  # one merged withdrawal run
    rib.flush()
    out = drain(rib, mon)
    assert sorted(out.withdrawn) == sorted(PREFIXES) and not out.announced
    assert rib.loc[V4] == {} and rib.peers[a].counts[V4] == 0
    assert rib.advertised(mon)[V4] == 0


def test_bulk_withdrawal_puts_back_other_peers_paths() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    mon = peer(rib, "192.0.2.3", 65003)
    rib.receive(a, V4, (), attrs((65001,)), [key(p) for p in PREFIXES])
    # b's paths are longer: a's stay best where both have one.
    rib.receive(b, V4, (), attrs((65002, 9, 9), nh="192.0.2.2"), [key(p) for p in SHARED])
    rib.flush()
    drain(rib, mon)
    unknown = ["172.16.0.0/16"]
    keys = [key(p) for p in PREFIXES + unknown + PREFIXES[:5]]  # unknown and repeated too
    rib.receive(a, V4, keys)
    rib.flush()
    assert set(rib.loc[V4]) == {key(p) for p in SHARED}
    assert all(rib.best(V4, key(p)).source.key == b for p in SHARED)  # type: ignore[union-attr]
    assert rib.peers[a].counts[V4] == 0 and rib.peers[b].counts[V4] == len(SHARED)
    out = drain(rib, mon)
    assert sorted(out.withdrawn) == sorted(set(PREFIXES) - set(SHARED))
    assert sorted(out.announced) == sorted(SHARED)
    assert all(v.as_path[0][1][:2] == (65000, 65002) for v in out.announced.values())
    assert rib.advertised(mon)[V4] == len(SHARED)
    assert rib.advertised(b)[V4] == 0  # split horizon: its own routes only


def test_bulk_announcement_over_existing_paths() -> None:
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001)
    b = peer(rib, "192.0.2.2", 65002)
    mon = peer(rib, "192.0.2.3", 65003)
    rib.receive(b, V4, (), attrs((65002, 9, 9), nh="192.0.2.2"), [key(p) for p in SHARED])
    rib.flush()
    drain(rib, mon)
    # One UPDATE from a: new prefixes, prefixes b has, and a repeat.
    rib.receive(a, V4, (), attrs((65001,)), [key(p) for p in PREFIXES + PREFIXES[:3]])
    rib.flush()
    assert len(rib.loc[V4]) == N
    assert rib.peers[a].counts[V4] == N and rib.peers[b].counts[V4] == len(SHARED)
    assert all(rib.best(V4, key(p)).source.key == a for p in PREFIXES)  # type: ignore[union-attr]
    out = drain(rib, mon)
    assert sorted(out.announced) == sorted(PREFIXES) and not out.withdrawn
    assert {v.as_path[0][1][:2] for v in out.announced.values()} == {(65000, 65001)}
    # b is now told a's routes where it had its own (split horizon lifts).
    assert rib.advertised(b)[V4] == N
    assert rib.advertised(a)[V4] == 0


def test_a_withdrawal_costs_a_group_that_sent_nothing_nothing() -> None:
    """A peer with export "none" withdraws its table: its group never sent a route, so
    the withdrawal is not turned into dirty entries to compare (work for nothing);
    what the group sends afterwards is still exactly right."""
    rib = make_rib()
    a = peer(rib, "192.0.2.1", 65001, export="none")
    mon = peer(rib, "192.0.2.3", 65003)
    rib.receive(a, V4, (), attrs((65001,)), [key(p) for p in PREFIXES])
    rib.flush()
    assert not drain(rib, a).announced and rib.advertised(a)[V4] == 0
    assert sorted(drain(rib, mon).announced) == sorted(PREFIXES)
    g = rib.peers[a].members[V4].group
    assert g is not None
    rib.receive(a, V4, [key(p) for p in PREFIXES])
    rib.flush()
    assert not g.dirty and not g.build()  # nothing kept or dirty: nothing to compare
    out = drain(rib, a)
    assert not out.withdrawn and not out.announced
    assert sorted(drain(rib, mon).withdrawn) == sorted(PREFIXES)
    # a withdrawal meeting a change not yet built goes the ordinary way
    b = peer(rib, "192.0.2.2", 65002)
    rib.receive(b, V4, (), attrs((65002,), nh="192.0.2.2"), [key(p) for p in SHARED])
    rib.flush()
    rib.receive(b, V4, [key(p) for p in SHARED])
    rib.flush()
    assert not drain(rib, a).announced and not drain(rib, mon).announced
