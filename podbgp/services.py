"""Service addresses announced over BGP: ranges from every node, local-policy /32s from the
nodes with a live endpoint (Calico's service IP advertisement, MetalLB's BGP mode).

Two inputs:

- ``[[service]]`` ranges in the config (cluster IPs, external IPs, load-balancer IPs):
  every node announces each range, so the fabric reaches the cluster's services
  through any node;
- per-address ``ServiceRecord``s in the datastore (``podbgp service set``, or a
  controller writing the same JSON), each with its endpoints (pod addresses) and a
  traffic policy. ``cluster``: the address is announced by every node (unless a range
  already covers it), since any node forwards to an endpoint anywhere. ``local``:
  only the nodes holding a live endpoint announce it, as a /32 (/128), so the ToR
  does ECMP across exactly those nodes and traffic keeps its source address
  (Kubernetes' ``externalTrafficPolicy: Local``).

An endpoint is live on a node while its address is allocated to that node in IPAM:
a pod deleted (CNI DEL) releases its address, and every node sees the change through
the datastore's watch; a pod whose network namespace vanished is released by the
node's leak collector. ``announcements`` is the pure rule (tested as tables);
``follow`` keeps a node's announcements current from the datastore, event-driven.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

from ipam.block import Block
from ipam.model import BLOCKS, ROOT
from ipam.store.base import Put, Store, StoreIdentityError, WatchCompacted

__all__ = [
    "SERVICES",
    "Announce",
    "ServiceFeed",
    "ServiceRange",
    "ServiceRecord",
    "TrafficPolicy",
    "announcements",
]

log = logging.getLogger("podbgp.announce")

SERVICES = ROOT + "services/"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# What a node announces: prefix -> communities (RFC 1997, as 32-bit values).
Announce = dict[IPNetwork, tuple[int, ...]]


class TrafficPolicy(StrEnum):
    """Which nodes announce a service address (Kubernetes' external traffic policy)."""

    CLUSTER = "cluster"  # every node
    LOCAL = "local"  # the nodes with a live endpoint, as a host route


@dataclass(frozen=True, slots=True)
class ServiceRange:
    """A ``[[service]]`` range every node announces."""

    cidr: IPNetwork
    communities: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One service's addresses, endpoints and policy, as the datastore holds it."""

    name: str
    addresses: tuple[IPAddress, ...]
    traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    endpoints: tuple[IPAddress, ...] = ()
    communities: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "addresses": [str(a) for a in self.addresses],
            "traffic_policy": str(self.traffic_policy),
            "endpoints": [str(e) for e in self.endpoints],
            "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in self.communities],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ServiceRecord:
        """Raises ValueError (with the field) on a malformed record."""
        try:
            return cls(
                name=str(d["name"]),
                addresses=tuple(ipaddress.ip_address(a) for a in d["addresses"]),
                traffic_policy=TrafficPolicy(d.get("traffic_policy", "cluster")),
                endpoints=tuple(ipaddress.ip_address(e) for e in d.get("endpoints", ())),
                communities=tuple(parse_community(c) for c in d.get("communities", ())),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"service record: missing or wrong field {exc}") from None


def parse_community(text: str | int) -> int:
    """``ASN:VALUE`` (16 bits each) as the 32-bit value (RFC 1997)."""
    if isinstance(text, int) and not isinstance(text, bool) and 0 <= text <= 0xFFFFFFFF:
        return text
    asn, sep, value = str(text).partition(":")
    try:
        a, v = int(asn), int(value)
    except ValueError:
        a = v = -1
    if not sep or not (0 <= a <= 0xFFFF and 0 <= v <= 0xFFFF):
        raise ValueError(f"{text!r} is not a community (ASN:VALUE, 16 bits each)")
    return a << 16 | v


def record_key(name: str) -> str:
    return SERVICES + quote(name, safe="")


def _host(a: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(a)


def _covered(a: IPAddress, ranges: Iterable[ServiceRange]) -> bool:
    return any(a.version == r.cidr.version and a in r.cidr for r in ranges)


def announcements(
    ranges: Sequence[ServiceRange],
    records: Iterable[ServiceRecord],
    local_pods: frozenset[IPAddress],
) -> Announce:
    """What one node announces for services (see the module docstring)."""
    out: Announce = {r.cidr: r.communities for r in ranges}
    for rec in records:
        local = rec.traffic_policy is TrafficPolicy.LOCAL
        if local and not any(e in local_pods for e in rec.endpoints):
            continue
        for a in rec.addresses:
            if rec.traffic_policy is TrafficPolicy.CLUSTER and _covered(a, ranges):
                continue
            out[_host(a)] = rec.communities
    return out


# -- the datastore ---------------------------------------------------------------------------
async def put_record(store: Store, rec: ServiceRecord) -> None:
    await store.txn([], [_put(rec)])


def _put(rec: ServiceRecord) -> Put:
    return Put(record_key(rec.name), json.dumps(rec.to_json(), sort_keys=True).encode())


async def delete_record(store: Store, name: str) -> bool:
    kv = await store.get(record_key(name))
    if kv is None:
        return False
    return await store.delete_cas(kv.key, kv.mod_revision)


async def list_records(store: Store) -> tuple[list[ServiceRecord], int]:
    """Every well-formed record (a malformed one is logged and skipped) and the revision."""
    kvs, rev = await store.list_prefix(SERVICES)
    out = []
    for kv in kvs:
        try:
            out.append(ServiceRecord.from_json(json.loads(kv.value)))
        except ValueError as exc:
            log.warning("service %s ignored: %s", unquote(kv.key[len(SERVICES) :]), exc)
    return out, rev


async def local_pods(store: Store, node: str) -> tuple[frozenset[IPAddress], int]:
    """The addresses IPAM has allocated to ``node``, and the revision read."""
    kvs, rev = await store.list_prefix(BLOCKS)
    mine: set[IPAddress] = set()
    for kv in kvs:
        block = Block.from_json(json.loads(kv.value))
        mine.update(a for a, alloc in block.held() if alloc.node == node)
    return frozenset(mine), rev


async def _next_change(store: Store, services_read: int, blocks_read: int) -> None:
    """Returns at the first change under the services prefix after ``services_read`` or
    under the blocks prefix after ``blocks_read``: each from the revision its own list
    was read at, so a record written between the two reads is not skipped."""
    watches: list[AsyncIterator[Any]] = [
        store.watch(SERVICES, services_read + 1),
        store.watch(BLOCKS, blocks_read + 1),
    ]
    tasks = [asyncio.ensure_future(anext(w)) for w in watches]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            exc = t.exception()
            if exc is not None and not isinstance(exc, WatchCompacted | StopAsyncIteration):
                raise exc
    finally:
        for t in tasks:
            t.cancel()
        for w in watches:
            with contextlib.suppress(Exception):
                await w.aclose()  # type: ignore[attr-defined]


class ServiceFeed:
    """Keeps ``apply`` told of this node's service announcements, from the datastore.

    ``run`` reads the records and this node's pods, applies, and waits for the next
    change under either prefix (event-driven, the store's watch). ``set_ranges`` takes a
    reloaded config's ranges and applies at once."""

    def __init__(
        self,
        store: Store,
        node: str,
        ranges: Sequence[ServiceRange],
        apply: Callable[[Announce], None],
        retry: float = 2.0,
    ) -> None:
        self.store = store
        self.node = node
        self.ranges = tuple(ranges)
        self.apply = apply
        self.retry = retry
        self.records: list[ServiceRecord] = []
        self.mine: frozenset[IPAddress] = frozenset()
        self.current: Announce = {}

    def _push(self) -> None:
        want = announcements(self.ranges, self.records, self.mine)
        if want != self.current:
            self.current = want
            self.apply(want)

    def set_ranges(self, ranges: Sequence[ServiceRange]) -> None:
        self.ranges = tuple(ranges)
        self._push()

    async def run(self) -> None:
        while True:
            try:
                self.records, rev1 = await list_records(self.store)
                self.mine, rev2 = await local_pods(self.store, self.node)
                self._push()
                await _next_change(self.store, rev1, rev2)
            except (asyncio.CancelledError, StoreIdentityError):
                raise  # identity: the daemon reports it once and restarts this when it is back
            except Exception as exc:  # the datastore away: keep what is announced, retry
                log.warning("services: %s; retrying in %.0f s", exc, self.retry)
                await asyncio.sleep(self.retry)
