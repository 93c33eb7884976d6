"""The small typed interface between the reconciler and a kernel.

`fib.netlink.NetlinkKernel` implements it against the real kernel (raw
rtnetlink for routes, pyroute2 for devices, neighbours and FDB entries);
`fib.fake.FakeKernel` implements it in memory for unit tests of the
reconciler. Devices are named, never numbered: the implementation maps names
to interface indexes, so planned and dumped routes compare directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple, Protocol

from fib.model import (
    FdbEntry,
    IpipSpec,
    KernelRoute,
    Neighbour,
    NexthopObject,
    RouteKey,
    VxlanSpec,
)
from fib.table import Shape, route_of

REPLACE = 0
DELETE = 1

RouteOp = tuple[int, KernelRoute]  # (REPLACE | DELETE, route)


@dataclass(frozen=True, slots=True)
class RouteBatch:
    """Many writes of one kind, as keys and shapes instead of routes: what the reconciler
    hands the kernel for a chunk that is all first installs or all withdrawals.

    Route `i` is `route_of(keys[i], shapes[i])` (`fib.table`); a delete's shape is
    the installed route's (the delete names its protocol and table). The batch is
    `ops()`, and writing it is `write_routes(batch.ops())`, only without a route
    object and an op tuple per route: the writers encode straight from the shapes
    (tests/property/test_fib_batch.py holds them to the ops)."""

    op: int  # REPLACE or DELETE, for every route of the batch
    keys: Sequence[RouteKey]
    shapes: Sequence[Shape]

    def __len__(self) -> int:
        return len(self.keys)

    def route(self, index: int) -> KernelRoute:
        return route_of(self.keys[index], self.shapes[index])

    def ops(self) -> list[RouteOp]:
        """The batch spelled out as the `RouteOp`s it stands for (the readable form)."""
        return list(zip(repeat(self.op), map(route_of, self.keys, self.shapes)))


class RouteFailure(NamedTuple):
    """One route write the kernel refused, matched back to its request."""

    op: int
    route: KernelRoute
    errno: int


NexthopOp = tuple[int, NexthopObject]  # (REPLACE | DELETE, object)


class NexthopFailure(NamedTuple):
    """One nexthop object write the kernel refused."""

    op: int
    obj: NexthopObject
    errno: int


class RouteEvent(NamedTuple):
    """A route appeared, changed (deleted=False) or disappeared in the kernel."""

    deleted: bool
    route: KernelRoute


class LinkEvent(NamedTuple):
    """A device appeared, changed or disappeared."""

    deleted: bool
    name: str


class Overrun(NamedTuple):
    """Events were lost (the socket buffer overflowed): only a full resync is safe now."""

    reason: str


class NexthopEvent(NamedTuple):
    """A nexthop object appeared, changed or disappeared (RTNLGRP_NEXTHOP).

    The kernel says nothing about the routes that go with a deleted object
    (IPv4 flushes them silently), nor about objects it flushes itself when
    their device goes down or loses its carrier."""

    deleted: bool
    obj: NexthopObject


Event = RouteEvent | LinkEvent | Overrun | NexthopEvent


class KernelError(Exception):
    """A netlink exchange failed as a whole (not one route): state is unknown, resync."""


class Unsupported(KernelError):
    """The kernel lacks a feature (e.g. no ipip module: CONFIG_NET_IPIP unset)."""


class Kernel(Protocol):
    """What the reconciler needs from a kernel."""

    def dump_routes(self, table: int) -> list[KernelRoute]:
        """Every IPv4 and IPv6 route in `table`, of every protocol."""
        ...

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        """Apply replaces and deletes in batches; return the ones the kernel refused.

        Raises KernelError when the batch's outcome is unknown (lost replies)."""
        ...

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        """`write_routes(batch.ops())`, built from the batch's keys and shapes; failures
        carry the route each refused key stands for (`RouteBatch.route`)."""
        ...

    def dump_nexthops(self) -> list[NexthopObject]:
        """Every nexthop object, of every protocol; raises Unsupported on a kernel
        without them (< 5.3)."""
        ...

    def write_nexthops(self, ops: Sequence[NexthopOp]) -> list[NexthopFailure]:
        """Create-or-replace and delete nexthop objects, in order, in one batch;
        return the ones the kernel refused (KernelError when the outcome is unknown)."""
        ...

    def link_mtu(self, name: str) -> int | None:
        """The device's MTU, or None if it does not exist."""
        ...

    def ensure_vxlan(self, spec: VxlanSpec) -> bool:
        """Create or correct the VXLAN device; True if something changed."""
        ...

    def ensure_ipip(self, spec: IpipSpec) -> bool:
        """Create or correct tunl0; raises Unsupported without IP-in-IP in the kernel."""
        ...

    def dump_neighbours(self, dev: str) -> set[Neighbour]:
        """Permanent neighbour entries on `dev`."""
        ...

    def write_neighbours(self, add: Sequence[Neighbour], remove: Sequence[Neighbour]) -> None: ...

    def dump_fdb(self, dev: str) -> set[FdbEntry]:
        """Permanent unicast FDB entries with a remote destination on `dev`."""
        ...

    def write_fdb(self, add: Sequence[FdbEntry], remove: Sequence[FdbEntry]) -> None: ...

    def read_events(self) -> list[Event]:
        """Events received since the last call (non-blocking)."""
        ...

    def event_fd(self) -> int | None:
        """A file descriptor that becomes readable when events arrive (None: poll)."""
        ...

    def close(self) -> None: ...
