"""The Loc-RIB changes of one batch, in the cheapest shape that holds them.

A batch is what changed in one family's Loc-RIB between two ``Rib.flush``
calls. Most batches are one of two plain shapes, and keeping them as they came
saves a dict entry per prefix on the way to the update groups and the FIB:

- ``Announced(runs)``: only new prefixes were announced, each once, in runs of
  ``(path, keys)`` sharing one ``Path`` (a table being learned);
- ``Withdrawn(keys, olds, distinct)``: only withdrawals, each prefix once and
  each holding just the withdrawing slot's ``Path`` before (``olds``, one per key;
  ``distinct``: the set of them) — a peer going away, or a withdrawal run;
- ``Changed(changed, old)``: anything else — prefix -> its entry after the
  batch (None: no route left), and for prefixes that had one, the entry before
  the batch's first change (what an update group compares with).

Each shape turns into the general one with ``as_changes()``. ``BatchBuilder``
(one per family in the ``Rib``) owns the promotion rules: it starts empty,
takes the first change in the cheapest shape that fits, and promotes to
``Changed`` as soon as a change does not fit the shape it holds. Update groups
receive the batch as built and may keep a plain shape until they encode it
(``rib.adjout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

from rib.bestpath import Ranked
from rib.path import Path

__all__ = [
    "Announced",
    "Batch",
    "BatchBuilder",
    "Changed",
    "Entry",
    "Withdrawn",
    "best_of",
    "nexthops_of",
]

Entry = Path | Ranked
Hops = dict[bytes, tuple[bytes, ...]]


def best_of(e: Entry | None) -> Path | None:
    """The best eligible path of a Loc-RIB entry, or None."""
    if e is None:
        return None
    if isinstance(e, Path):
        return e if e.eligible else None
    return e.best


def nexthops_of(e: Entry | None) -> tuple[bytes, ...]:
    """The ECMP next hops of a Loc-RIB entry (empty: no usable route)."""
    if e is None:
        return ()
    if isinstance(e, Path):
        return e.nexthops if e.eligible else ()
    return e.nexthops


@dataclass(frozen=True, slots=True)
class Changed:
    """The general shape: prefix -> entry after the batch (None: gone), and prefix ->
    entry before the batch's first change for those that had one."""

    changed: dict[bytes, Entry | None]
    old: dict[bytes, Entry]

    def as_changes(self) -> Changed:
        return self

    def fib_changes(self) -> Hops:
        """Prefix -> ECMP next hops after the batch, for the FIB callback."""
        return {k: nexthops_of(e) for k, e in self.changed.items()}

    def __len__(self) -> int:
        return len(self.changed)


@dataclass(frozen=True, slots=True)
class Announced:
    """Only new prefixes, each once: runs of (path, keys)."""

    runs: list[tuple[Path, list[bytes]]]

    def as_changes(self) -> Changed:
        changed: dict[bytes, Entry | None] = {}
        for path, keys in self.runs:
            changed.update(zip(keys, repeat(path)))
        return Changed(changed, {})

    def fib_changes(self) -> Hops:
        hops: Hops = {}
        for path, keys in self.runs:
            hops.update(dict.fromkeys(keys, nexthops_of(path)))
        return hops

    def __len__(self) -> int:
        return sum(len(keys) for _, keys in self.runs)


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """Only withdrawals of distinct prefixes that each held one path alone, of the
    withdrawing slot (``olds``, one per key; ``distinct``: the set of them)."""

    keys: list[bytes]
    olds: list[Path]
    distinct: set[Path]

    def as_changes(self) -> Changed:
        old: dict[bytes, Entry] = dict(zip(self.keys, self.olds, strict=True))
        return Changed(dict.fromkeys(old), old)

    def fib_changes(self) -> Hops:
        return dict.fromkeys(self.keys, ())

    def __len__(self) -> int:
        return len(self.keys)


Batch = Announced | Withdrawn | Changed


class BatchBuilder:
    """One family's batch while it is being built (see module docstring)."""

    __slots__ = ("batch",)

    def __init__(self) -> None:
        self.batch: Batch | None = None

    def announce_new(self, path: Path, keys: list[bytes]) -> None:
        """``keys`` were not in the table and now hold ``path`` alone."""
        b = self.batch
        if b is None:
            self.batch = Announced([(path, keys)])
        elif isinstance(b, Announced):
            b.runs.append((path, keys))
        else:
            self.changes().changed.update(zip(keys, repeat(path)))

    def withdraw_only(self, keys: list[bytes], olds: list[Path], distinct: set[Path]) -> bool:
        """Take a withdrawal as ``Withdrawn`` if it is the batch's first change; False
        if the batch holds something already (the caller records it in ``changes()``)."""
        if self.batch is not None:
            return False
        self.batch = Withdrawn(keys, olds, distinct)
        return True

    def changes(self) -> Changed:
        """The batch in the general shape, promoted if it was a plain one."""
        b = self.batch
        if isinstance(b, Changed):
            return b
        c = Changed({}, {}) if b is None else b.as_changes()
        self.batch = c
        return c

    @property
    def plain(self) -> bool:
        """True while the batch is empty or still in a plain shape."""
        return not isinstance(self.batch, Changed)

    def start_over(self, changed: dict[bytes, Entry | None]) -> None:
        """Replace the batch by ``changed`` with nothing sent before (end of deferral)."""
        self.batch = Changed(changed, {})

    def take(self) -> Batch | None:
        """The batch built so far (None if nothing changed); the builder starts empty."""
        b = self.batch
        self.batch = None
        if b is None or (isinstance(b, Changed) and not b.changed):
            return None
        return b
