"""Property: after any sequence of announcements and withdrawals from several peers,
the Loc-RIB holds exactly the model's paths, peer counts match, and a monitor that
pulled everything was told exactly the best paths (RFC 4271 §9.1, §9.2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ribkit import V4, attrs, drain, key, make_rib, peer

PREFIXES = [f"203.0.{i}.0/24" for i in range(6)]
PEERS = [("192.0.2.1", 65001), ("192.0.2.2", 65002), ("192.0.2.3", 65003)]
op = st.tuples(
    st.integers(0, len(PEERS) - 1),
    st.booleans(),
    st.lists(st.integers(0, len(PREFIXES) - 1), min_size=1, max_size=4, unique=True),
    st.integers(0, 3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=30))
def test_table_matches_model(ops: list[tuple[int, bool, list[int], int]]) -> None:
    rib = make_rib()
    keys = [peer(rib, a, asn) for a, asn in PEERS]
    mon = peer(rib, "192.0.2.9", 65009)
    seen: dict[str, tuple[int, ...]] = {}
    model: dict[tuple[int, str], int] = {}
    for who, is_ann, idx, plen in ops:
        pfx = [PREFIXES[i] for i in idx]
        if is_ann:
            path = (PEERS[who][1],) + (7,) * plen
            rib.receive(keys[who], V4, (), attrs(path, nh=PEERS[who][0]), [key(p) for p in pfx])
            for p in pfx:
                model[(who, p)] = plen
        else:
            rib.receive(keys[who], V4, [key(p) for p in pfx])
            for p in pfx:
                model.pop((who, p), None)
        rib.flush()
        out = drain(rib, mon)
        for p in out.withdrawn:
            seen.pop(p, None)
        for p, a in out.announced.items():
            seen[p] = a.as_path[0][1] if a.as_path else ()
    for i, k in enumerate(keys):
        assert rib.peers[k].counts.get(V4, 0) == sum(1 for (w, _) in model if w == i)
    for p in PREFIXES:
        cands = {w: ln for (w, q), ln in model.items() if q == p}
        e = rib.loc[V4].get(key(p))
        if not cands:
            assert e is None and p not in seen
            continue
        best = rib.best(V4, key(p))
        assert best is not None
        # shortest AS path, then lowest router id (= peer address here)
        want = min(cands, key=lambda w: (cands[w], w))
        assert best.source.key == keys[want]
        assert seen[p] == (65000, PEERS[want][1]) + (7,) * cands[want]
