"""An in-memory kernel implementing `fib.kernel.Kernel`, for unit tests of the reconciler.

It keeps the kernel's rules that matter to the reconciler: a route's identity
in a table is (prefix, metric) whatever its protocol, a create-or-replace
overwrites any route with that identity, a delete that names a protocol only
removes a route of that protocol (ESRCH otherwise), a route through a missing
device is refused with ENODEV, and every change, ours or someone else's, is
echoed as an event. Tests change the table "from outside" with `external_*`,
count writes, and inject failures.

Nexthop objects follow the kernel too (net/ipv4/nexthop.c): a single object
needs an existing device, a group needs existing single members and cannot
replace a single object (nor the reverse), a route naming a missing object is
refused with EINVAL, and a route stores its object's hops the way the kernel
dumps them in compat mode. Replacing an object re-points its routes at once;
deleting one removes it from its groups (an emptied group goes too) and
removes the routes that use it without any route event, as IPv4 does.
`nexthops_supported=False` plays a kernel older than 5.3.
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
    NexthopEvent,
    NexthopFailure,
    NexthopOp,
    Overrun,
    RouteBatch,
    RouteEvent,
    RouteFailure,
    RouteOp,
    Unsupported,
)
from fib.model import (
    FdbEntry,
    IpipSpec,
    KernelRoute,
    Neighbour,
    Nexthop,
    NexthopObject,
    NexthopSpec,
    RouteKey,
    VxlanSpec,
)
from fib.table import route_of


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
    tunnel_dumps: int = 0  # neighbour and FDB dumps
    fail_next_write: KernelError | None = None
    refuse: dict[RouteKey, int] = field(default_factory=dict)  # key → errno for writes to it
    nexthops_supported: bool = True
    nexthops: dict[int, NexthopObject] = field(default_factory=dict)
    nexthop_writes: int = 0
    nexthop_dumps: int = 0
    nexthop_write_calls: int = 0
    refuse_nexthop: dict[int, int] = field(default_factory=dict)  # id → errno

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

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        """`write_routes(batch.ops())`, a route built for each key only to be stored (the
        fake keeps routes, the real kernel's writer encodes from the shapes)."""
        if self.fail_next_write is not None:
            exc, self.fail_next_write = self.fail_next_write, None
            raise exc
        self.write_calls += 1
        self.route_writes += len(batch)
        failures = []
        op = batch.op
        for key, shape in zip(batch.keys, batch.shapes, strict=True):
            route = route_of(key, shape)
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
        if route.nh_id:
            if route.nh_id not in self.nexthops:
                return errno.EINVAL
            stored = route._replace(nexthops=self._expand(route.nh_id))
            rows[route.key] = stored
            self.events.append(RouteEvent(False, stored))
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

    def _expand(self, nh_id: int) -> tuple[Nexthop, ...]:
        """The hops a route through object `nh_id` shows (compat mode)."""
        spec = self.nexthops[nh_id].spec
        if spec.hop is not None:
            return (spec.hop,)
        out = []
        for member, weight in spec.group:
            hop = self.nexthops[member].spec.hop
            assert hop is not None
            out.append(hop._replace(weight=weight))
        return tuple(out)

    # -- nexthop objects -------------------------------------------------------------------
    def dump_nexthops(self) -> list[NexthopObject]:
        if not self.nexthops_supported:
            raise Unsupported("kernel has no nexthop objects (fake)")
        self.nexthop_dumps += 1
        return list(self.nexthops.values())

    def write_nexthops(self, ops: Sequence[NexthopOp]) -> list[NexthopFailure]:
        if self.fail_next_write is not None:
            exc, self.fail_next_write = self.fail_next_write, None
            raise exc
        self.nexthop_write_calls += 1
        failures = []
        for op, obj in ops:
            self.nexthop_writes += 1
            err = self._apply_nexthop(op, obj)
            if err:
                failures.append(NexthopFailure(op, obj, err))
        return failures

    def _apply_nexthop(self, op: int, obj: NexthopObject) -> int:
        if not self.nexthops_supported:
            return errno.EOPNOTSUPP
        if obj.id in self.refuse_nexthop:
            return self.refuse_nexthop[obj.id]
        if op == DELETE:
            if obj.id not in self.nexthops:
                return errno.ENOENT
            self._remove_nexthop(obj.id)
            return 0
        err = self._check_nexthop(obj)
        if err:
            return err
        self.nexthops[obj.id] = obj
        self._repoint(obj.id)
        self.events.append(NexthopEvent(False, obj))
        return 0

    def _check_nexthop(self, obj: NexthopObject) -> int:
        have = self.nexthops.get(obj.id)
        spec = obj.spec
        if have is not None and (have.spec.hop is None) != (spec.hop is None):
            return errno.EINVAL  # a group cannot replace a single object, nor the reverse
        if spec.hop is not None:
            return errno.ENODEV if spec.hop.dev not in self.links else 0
        for member, _weight in spec.group:
            found = self.nexthops.get(member)
            if found is None or found.spec.hop is None:
                return errno.EINVAL
        return 0

    def _repoint(self, nh_id: int) -> None:
        """Routes through `nh_id` (or a group holding it) now show its new hops."""
        groups = {i for i, o in self.nexthops.items() if any(m == nh_id for m, _ in o.spec.group)}
        users = groups | {nh_id}
        for rows in self.tables.values():
            for key, route in rows.items():
                if route.nh_id in users:
                    rows[key] = route._replace(nexthops=self._expand(route.nh_id))

    def _remove_nexthop(self, nh_id: int) -> None:
        obj = self.nexthops.pop(nh_id)
        self.events.append(NexthopEvent(True, obj))
        gone = {nh_id}
        for gid, group in list(self.nexthops.items()):
            members = tuple(m for m in group.spec.group if m[0] != nh_id)
            if members == group.spec.group:
                continue
            if members:
                self.nexthops[gid] = group._replace(spec=NexthopSpec(None, members))
                self._repoint(gid)
            else:
                gone.add(gid)
                self.events.append(NexthopEvent(True, self.nexthops.pop(gid)))
        for rows in self.tables.values():  # IPv4 flushes these routes without an event
            for key in [k for k, r in rows.items() if r.nh_id in gone]:
                del rows[key]

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
        self.tunnel_dumps += 1
        return {n for n in self.neighbours if n.dev == dev}

    def write_neighbours(self, add: Sequence[Neighbour], remove: Sequence[Neighbour]) -> None:
        self.neighbours.difference_update(remove)
        self.neighbours.update(add)

    def dump_fdb(self, dev: str) -> set[FdbEntry]:
        self.tunnel_dumps += 1
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

    def external_nexthop_delete(self, nh_id: int) -> None:
        self._remove_nexthop(nh_id)

    def carrier_loss(self, name: str) -> None:
        """The device loses its carrier: the kernel flushes nexthop objects on it (and
        their routes) without a nexthop or route event; only the link event is seen.
        (Some kernels keep the object and flush only the routes: same repair.)"""
        seen = len(self.events)
        for nh_id in [i for i, o in self.nexthops.items() if o.spec.hop and o.spec.hop.dev == name]:
            if nh_id in self.nexthops:
                self._remove_nexthop(nh_id)
        del self.events[seen:]
        self.events.append(LinkEvent(False, name))

    def overflow(self) -> None:
        self.events.append(Overrun("fake overflow"))
