"""Property: without pools, `FibFeed` converts a RIB batch in C (`_plain_whole`, for a
batch of only announcements or only withdrawals) exactly as key by key
(`plain_each`): the same destinations, reaches and withdrawals, in the same order; and
a destination is the key's prefix (for IPv4, the RIB's key object itself)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.wire.constants import Family
from fib.model import Dest, Prefix, Reach, pack_addr
from podbgp.fibfeed import _PAD4, _PAD16, FibFeed, PoolTable

HOPS = [pack_addr(a) for a in ("10.0.0.2", "10.0.0.3", "fd00::2")]


class _Recorder:
    """Stands in for the reconciler: keeps what `update_remote` is given."""

    def __init__(self) -> None:
        self.batches: list[dict[Dest, Reach | None]] = []

    def update_remote(self, changes: dict[Dest, Reach | None]) -> None:
        self.batches.append(changes)


@st.composite
def rib_key(draw: st.DrawFn, width: int) -> bytes:
    """A RIB key: the prefix length, then the address bytes it covers (RFC 4271 §4.3)."""
    length = draw(st.integers(0, width))
    return bytes([length]) + draw(st.binary(min_size=(length + 7) // 8, max_size=(length + 7) // 8))


hops = st.lists(st.sampled_from(HOPS), min_size=1, max_size=2, unique=True).map(tuple)


@st.composite
def batch(draw: st.DrawFn) -> tuple[Family, dict[bytes, tuple[bytes, ...]], frozenset[bytes]]:
    family = draw(st.sampled_from([Family.IPV4_UNICAST, Family.IPV6_UNICAST]))
    keys = draw(st.lists(rib_key(32 if family is Family.IPV4_UNICAST else 128), max_size=12,
                         unique=True))  # fmt: skip
    kind = draw(st.sampled_from(["announce", "withdraw", "mixed"]))
    value = {"announce": hops, "withdraw": st.just(()), "mixed": st.just(()) | hops}[kind]
    changes = {k: draw(value) for k in keys}
    own = frozenset(draw(st.sets(st.sampled_from(keys), max_size=2))) if keys else frozenset()
    return family, changes, own


def _feed() -> FibFeed:
    return FibFeed(_Recorder(), lambda: PoolTable([]), lambda: None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(batch())
def test_whole_batch_converts_as_key_by_key(
    case: tuple[Family, dict[bytes, tuple[bytes, ...]], frozenset[bytes]],
) -> None:
    family, changes, own = case
    pad = _PAD4 if family is Family.IPV4_UNICAST else _PAD16
    whole = _feed()._plain_whole(pad, own, changes)
    each = _feed().plain_each(pad, own, changes)
    announces = all(changes.values()) and own.isdisjoint(changes)
    withdraws = bool(changes) and not any(changes.values())
    if announces or withdraws:
        assert whole is not None
    if whole is not None:
        assert list(whole.items()) == list(each.items())
    # each key's dest is its prefix (the address padded to the family's width), and an
    # IPv4 one is the RIB's key itself
    width = 4 if family is Family.IPV4_UNICAST else 16
    assert [Prefix.of_dest(d) for d in each] == [
        Prefix(k[1:] + bytes(width + 1 - len(k)), k[0]) for k in changes
    ]
    if width == 4:
        assert all(d is k for d, k in zip(each, changes, strict=True))


def test_best_paths_interns_reaches_on_either_path() -> None:
    feed, rec = _feed(), _Recorder()
    feed.reconciler = rec  # type: ignore[assignment]
    a, b = bytes([24, 10, 244, 1]), bytes([24, 10, 244, 2])
    feed.best_paths(Family.IPV4_UNICAST, {a: (HOPS[0],), b: (HOPS[0],)})  # whole
    feed.best_paths(Family.IPV4_UNICAST, {a: (), b: (HOPS[0],)})  # key by key
    first, second = rec.batches
    assert first[Prefix(bytes([10, 244, 1, 0]), 24).dest] is second[b]  # IPv4: the RIB's keys
    assert second[a] is None
