"""A table of kernel routes stored as shared shapes: one dict entry per route.

The reconciler holds every owned route twice (desired and installed), half a
million or a million of them. As `KernelRoute` tuples that is a 9-slot tuple
per route and table (~120 B each), although all but the destination is the
same for every route behind one next-hop set. `RouteTable` keeps, per route
key, only a reference to its *shape*, the route's fields after the
destination (`KernelRoute[2:]`: kind, hops, scope, protocol, table, metric,
nexthop object). Shapes are interned in a pool shared by the reconciler's
tables, so a million routes behind four next hops share four shape objects
between desired and installed state, and "is the installed route the wanted
one?" is mostly an identity test.

It is a `MutableMapping[RouteKey, KernelRoute]`: readers that are not hot (a
snapshot, `podbgp explain`, tests, nexthop re-binding) see ordinary routes,
built on access. The reconciler's per-route loops use `shapes` directly; the
readable per-route rules (`Reconciler._op_for`) go through the mapping, and a
property test holds the two equal (tests/property/test_fib_bulk.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping, MutableSet

from fib.model import KernelRoute, Nexthop, RouteKey, dest_addr, route_key

# KernelRoute's fields 2..8: (kind, nexthops, scope, protocol, table, priority, nh_id).
Shape = tuple[int, tuple[Nexthop, ...], int, int, int, int, int]
_new = tuple.__new__
POOL_LIMIT = 65536  # distinct shapes kept interned; beyond that the pool starts afresh


class ShapePool:
    """Interns shapes so that equal ones are one object (identity is only a shortcut:
    every comparison falls back to equality, so a pool that starts afresh is safe)."""

    __slots__ = ("_shapes",)

    def __init__(self) -> None:
        self._shapes: dict[Shape, Shape] = {}

    def intern(self, shape: Shape) -> Shape:
        found = self._shapes.get(shape)
        if found is not None:
            return found
        if len(self._shapes) >= POOL_LIMIT:  # hops come and go; keep the pool bounded
            self._shapes.clear()
        self._shapes[shape] = shape
        return shape

    def __len__(self) -> int:
        return len(self._shapes)


def shape_of(route: KernelRoute) -> Shape:
    return route[2:]


def route_of(key: RouteKey, shape: Shape) -> KernelRoute:
    """The route a key and shape stand for (the key's metric, if any, is the shape's)."""
    dest = key if isinstance(key, bytes) else key[0]
    return _new(KernelRoute, (dest_addr(dest), dest[0], *shape))


class RouteTable(MutableMapping[RouteKey, KernelRoute]):
    """Routes by key, stored as interned shapes (see the module docstring)."""

    __slots__ = ("pool", "shapes")

    def __init__(self, pool: ShapePool, routes: Iterable[KernelRoute] = ()) -> None:
        self.pool = pool
        self.shapes: dict[RouteKey, Shape] = {}
        intern, shapes = pool.intern, self.shapes
        for route in routes:
            shapes[route_key(route)] = intern(route[2:])

    def __getitem__(self, key: RouteKey) -> KernelRoute:
        return route_of(key, self.shapes[key])

    def get(self, key: RouteKey, default: KernelRoute | None = None) -> KernelRoute | None:  # type: ignore[override]
        shape = self.shapes.get(key)
        return default if shape is None else route_of(key, shape)

    def __setitem__(self, key: RouteKey, route: KernelRoute) -> None:
        self.shapes[key] = self.pool.intern(route[2:])

    def __delitem__(self, key: RouteKey) -> None:
        del self.shapes[key]

    def __contains__(self, key: object) -> bool:
        return key in self.shapes

    def __iter__(self) -> Iterator[RouteKey]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __repr__(self) -> str:
        return f"RouteTable({len(self.shapes)} routes, {len(self.pool)} shapes)"


class DirtyKeys(MutableSet[RouteKey]):
    """Route keys waiting to be written, in the order they were marked.

    A set to its readers, kept as a log: marking appends (a key marked twice is
    logged twice), `take` hands the log over whole and the pass removes repeats
    chunk by chunk; a key's second visit finds its route written and does nothing.

    Why a log. Order: a BGP batch's routes are marked together and were stored
    together (a dict keeps its entries in insertion order, and the key objects
    were made in arrival order), so a pass over a million keys in marking order
    walks the tables' memory in sequence, where a `set`'s hash order jumps across
    it at every key (a withdrawal of 1M routes through the daemon: 4.0 → 3.4 s).
    Memory: a withdrawal outruns the kernel's deletes by up to the whole table, and
    a list holds that backlog in 8 bytes a key where a set takes ~32 and an ordered
    dict ~41 (docs/benchmarks.md)."""

    __slots__ = ("_log",)

    def __init__(self, keys: Iterable[RouteKey] = ()) -> None:
        self._log: list[RouteKey] = list(keys)

    def add(self, key: RouteKey) -> None:
        self._log.append(key)

    def update(self, keys: Iterable[RouteKey]) -> None:
        self._log.extend(keys)

    def discard(self, key: RouteKey) -> None:
        if key in self._log:
            self._log = [k for k in self._log if k != key]

    def take(self) -> list[RouteKey]:
        """The log (repeats included), leaving no key marked."""
        log, self._log = self._log, []
        return log

    def clear(self) -> None:
        self._log = []

    def marks(self) -> int:
        """How many marks wait (a key marked twice counts twice): a bound, in O(1)."""
        return len(self._log)

    def __bool__(self) -> bool:
        return bool(self._log)

    # A set's view (tests, debugging): each key once, in the order it was first marked.
    def __contains__(self, key: object) -> bool:
        return key in self._log

    def __iter__(self) -> Iterator[RouteKey]:
        return iter(dict.fromkeys(self._log))

    def __len__(self) -> int:
        return len(set(self._log))

    def __repr__(self) -> str:
        return f"DirtyKeys({len(self._log)} marks)"


__all__ = ["DirtyKeys", "RouteTable", "Shape", "ShapePool", "route_of", "shape_of"]
