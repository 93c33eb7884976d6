"""``rib.batch``: the builder's promotion rules and each shape's general form."""

from __future__ import annotations

from ipaddress import IPv4Address

from ribkit import V4, attrs, key

from rib.batch import Announced, BatchBuilder, Changed, Withdrawn
from rib.path import Path, Source

SRC = Source("192.0.2.1", address=IPv4Address("192.0.2.1"), asn=65001, ebgp=True)
P = Path(SRC.slot(0), attrs(), V4, 100)
Q = Path(SRC.slot(0), attrs((65001, 7)), V4, 100)
K1, K2, K3 = key("10.0.1.0/24"), key("10.0.2.0/24"), key("10.0.3.0/24")


def test_new_prefixes_stay_runs_of_one_path() -> None:
    b = BatchBuilder()
    b.announce_new(P, [K1, K2])
    b.announce_new(Q, [K3])
    batch = b.take()
    assert batch == Announced([(P, [K1, K2]), (Q, [K3])])
    assert batch.as_changes() == Changed({K1: P, K2: P, K3: Q}, {})
    assert batch.fib_changes() == {K1: P.nexthops, K2: P.nexthops, K3: Q.nexthops}
    assert b.take() is None  # the builder starts empty again


def test_a_first_withdrawal_is_kept_as_it_came() -> None:
    b = BatchBuilder()
    assert b.withdraw_only([K1, K2], [P, Q], {P, Q})
    assert not b.withdraw_only([K3], [P], {P})  # a second change: the caller generalises
    batch = b.take()
    assert batch == Withdrawn([K1, K2], [P, Q], {P, Q})
    assert batch.as_changes() == Changed({K1: None, K2: None}, {K1: P, K2: Q})
    assert batch.fib_changes() == {K1: (), K2: ()}


def test_anything_after_a_plain_shape_promotes_to_changed() -> None:
    b = BatchBuilder()
    assert b.withdraw_only([K1], [P], {P})
    b.announce_new(Q, [K2])
    assert not b.plain
    assert b.take() == Changed({K1: None, K2: Q}, {K1: P})
    b.announce_new(P, [K1])
    b.changes().changed[K2] = None
    assert b.take() == Changed({K1: P, K2: None}, {})


def test_an_empty_general_batch_is_nothing_to_flush() -> None:
    b = BatchBuilder()
    b.changes()
    assert b.take() is None
