"""Property: ``Rib.receive_updates`` (the batch entry the session adapter uses, with
its fast way for plain IPv4 announcements) leaves the RIB exactly where ``receive``
called per family of each UPDATE leaves it: same Loc-RIB, same per-peer counts,
same max-prefix verdict, and the same UPDATEs for a monitoring peer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ribkit import V4, V6, attrs, decode_out, key, make_rib, peer

from bgp.wire.update import Update
from rib import Rib

PREFIXES = [f"203.0.{i}.0/24" for i in range(6)] + ["2001:db8::/48", "2001:db8:1::/48"]
ATTRS = [
    attrs((65001,)),
    attrs((65001, 7)),
    attrs((65001, 65000)),  # our own AS: an AS-path loop, rejected on import
    attrs((65001,), nh="2001:db8::1"),
]

one_update = st.tuples(
    st.lists(st.integers(0, len(PREFIXES) - 1), max_size=3, unique=True),  # withdrawn
    st.one_of(st.none(), st.integers(0, len(ATTRS) - 1)),  # attribute set
    st.lists(st.integers(0, len(PREFIXES) - 1), max_size=4),  # announced (repeats allowed)
)


def _family(p: str) -> Any:
    return V6 if ":" in p else V4


def _update(wd: list[int], a: int | None, ann: list[int]) -> Update:
    unreach: dict[Any, list[bytes]] = {}
    for i in wd:
        unreach.setdefault(_family(PREFIXES[i]), []).append(key(PREFIXES[i]))
    reach: dict[Any, list[bytes]] = {}
    if a is not None:
        for i in ann:
            reach.setdefault(_family(PREFIXES[i]), []).append(key(PREFIXES[i]))
    return Update(ATTRS[a] if a is not None else None, reach, unreach)


def _setup(limit: int) -> tuple[Rib, str, str]:
    rib = make_rib()
    feeder = peer(rib, "192.0.2.1", 65001, max_prefixes=limit)
    mon = peer(rib, "192.0.2.9", 65009)
    return rib, feeder, mon


def _paths(e: Any) -> Any:
    """A Loc-RIB entry as plain data: its paths, best first (RIBs intern their own)."""
    paths = [e] if e.__class__.__name__ == "Path" else e.paths
    return tuple((p.source.key, p.slot.path_id, p.attrs, p.eligible) for p in paths)


def _state(rib: Rib, feeder: str) -> tuple[Any, ...]:
    st_ = rib.peers[feeder]
    return (
        {f: {k: _paths(e) for k, e in t.items()} for f, t in rib.loc.items()},
        dict(st_.counts),
        st_.over_limit,
    )


def _exported(rib: Rib, mon: str, prefix: str) -> bool:
    fam = _family(prefix)
    best = rib.best(fam, key(prefix))
    group = rib.peers[mon].members[fam].group
    return best is not None and group is not None and group.exporter.out(best) is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(one_update, min_size=1, max_size=4), max_size=6), st.integers(0, 5))
def test_batch_receive_matches_per_family_receive(
    batches: list[list[tuple[list[int], int | None, list[int]]]], limit: int
) -> None:
    a, fa, ma = _setup(limit)
    b, fb, mb = _setup(limit)
    told: set[str] = set()  # what the monitor of ``a`` holds, from the UPDATEs it got
    for batch in batches:
        ups = [_update(*u) for u in batch]
        a.receive_updates(fa, ups)
        for u in ups:
            for fam, items in u.unreach.items():
                b.receive(fb, fam, items)
            if u.attrs is not None:
                for fam, items in u.reach.items():
                    b.receive(fb, fam, (), u.attrs, items)
        b.flush()
        assert _state(a, fa) == _state(b, fb)
        out = decode_out(a.pull(ma, 1 << 20))
        assert out == decode_out(b.pull(mb, 1 << 20))
        told.difference_update(out.withdrawn)
        told.update(out.announced)
        # The monitor holds exactly the prefixes whose best path its group exports.
        assert told == {p for p in PREFIXES if _exported(a, ma, p)}
