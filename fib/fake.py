"""An in-memory kernel implementing `fib.kernel.Kernel`, for unit tests of the reconciler.

It keeps the kernel's rules that matter to the reconciler: a route's identity
in a table is (prefix, metric) whatever its protocol, a create-or-replace
overwrites any route with that identity, a delete that names a protocol only
removes a route of that protocol (ESRCH otherwise), a route through a missing
device is refused with ENODEV, and every change, ours or someone else's, is
echoed as an event. Tests change the table "from outside" with `external_*`,
count writes, and inject failures.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field

from fib.kernel import (
    DELETE,
    Event,
    KernelError,
    LinkEvent,
    Overrun,
    RouteEvent,
    RouteFailure,
    RouteOp,
    Unsupported,
)
from fib.model import FdbEntry, IpipSpec, KernelRoute, Neighbour, Nexthop, RouteKey, VxlanSpec


@dataclass
class FakeKernel:
    """The kernel state the FIB touches, in dicts."""

    links: dict[str, int] = field(default_factory=lambda: {"lo": 65536, "eth0": 1500})
    ipip_supported: bool = True
    tables: dict[int, dict[RouteKey, KernelRoute]] = field(default_factory=dict)
    neighbours: set[Neighbour] = field(default_factory=set)
    fdb: set[FdbEntry] = field(default_factory=set)
    devices: dict[str, VxlanSpec | IpipSpec] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    route_writes: int = 0  # route ops received through write_routes
    write_calls: int = 0
    dumps: int = 0
    fail_next_write: KernelError | None = None
    refuse: dict[RouteKey, int] = field(default_factory=dict)  # key → errno for writes to it

    def table(self, table: int) -> dict[RouteKey, KernelRoute]:
        return self.tables.setdefault(table, {})

    # -- Kernel interface --------------------------------------------------------------------
    def dump_routes(self, table: int) -> list[KernelRoute]:
        self.dumps += 1
        return list(self.table(table).values())

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        if self.fail_next_write is not None:
            exc, self.fail_next_write = self.fail_next_write, None
            raise exc
        self.write_calls += 1
        failures = []
        for op, route in ops:
            self.route_writes += 1
            err = self._apply(op, route)
            if err:
                failures.append(RouteFailure(op, route, err))
        return failures

    def _apply(self, op: int, route: KernelRoute) -> int:
        if route.key in self.refuse:
            return self.refuse[route.key]
        rows = self.table(route.table)
        if op == DELETE:
            have = rows.get(route.key)
            if have is None or (route.protocol and have.protocol != route.protocol):
                return errno.ESRCH
            del rows[route.key]
            self.events.append(RouteEvent(True, have))
            return 0
        if any(h.dev and h.dev not in self.links for h in route.nexthops):
            return errno.ENODEV
        stored = route._replace(nexthops=tuple(self._resolve(h) for h in route.nexthops))
        rows[route.key] = stored
        self.events.append(RouteEvent(False, stored))
        return 0

    @staticmethod
    def _resolve(hop: Nexthop) -> Nexthop:
        """The real kernel fills in the device of a plain `via` hop; pretend it is eth0."""
        return hop._replace(dev="eth0") if hop.gateway and not hop.dev else hop

    def link_mtu(self, name: str) -> int | None:
        return self.links.get(name)

    def ensure_vxlan(self, spec: VxlanSpec) -> bool:
        return self._ensure(spec.name, spec)

    def ensure_ipip(self, spec: IpipSpec) -> bool:
        if not self.ipip_supported:
            raise Unsupported("kernel has no IP-in-IP (fake)")
        return self._ensure(spec.name, spec)

    def _ensure(self, name: str, spec: VxlanSpec | IpipSpec) -> bool:
        if self.devices.get(name) == spec and self.links.get(name) == spec.mtu:
            return False
        self.devices[name] = spec
        self.links[name] = spec.mtu
        self.events.append(LinkEvent(False, name))
        return True

    def dump_neighbours(self, dev: str) -> set[Neighbour]:
        return {n for n in self.neighbours if n.dev == dev}

    def write_neighbours(self, add: Sequence[Neighbour], remove: Sequence[Neighbour]) -> None:
        self.neighbours.difference_update(remove)
        self.neighbours.update(add)

    def dump_fdb(self, dev: str) -> set[FdbEntry]:
        return {e for e in self.fdb if e.dev == dev}

    def write_fdb(self, add: Sequence[FdbEntry], remove: Sequence[FdbEntry]) -> None:
        self.fdb.difference_update(remove)
        self.fdb.update(add)

    def read_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    def event_fd(self) -> int | None:
        return None

    def close(self) -> None:
        pass

    # -- test helpers: someone else changes the kernel --------------------------------------
    def external_replace(self, route: KernelRoute) -> None:
        self.table(route.table)[route.key] = route
        self.events.append(RouteEvent(False, route))

    def external_delete(self, route: KernelRoute) -> None:
        have = self.table(route.table).pop(route.key)
        self.events.append(RouteEvent(True, have))

    def external_link_delete(self, name: str) -> None:
        del self.links[name]
        self.events.append(LinkEvent(True, name))

    def overflow(self) -> None:
        self.events.append(Overrun("fake overflow"))
