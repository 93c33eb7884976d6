"""Pure block arithmetic: pools carved into blocks, addresses inside a block.

Nothing here does I/O. A pool (say 10.244.0.0/16) is cut into equal blocks of
`block_size` (say /26, 64 addresses); block *i* of a pool starts at
``pool_base + i * block_len``. Inside a block an address is named by its
*ordinal*, its offset from the block's first address.

A `Block` holds the two sets every address belongs to, exactly one each:

* ``unallocated`` -- free ordinals in the order they became free. Allocation
  takes from the front and release appends to the back, so an address is
  reused only after every other free address (longest-free order): a stale
  ARP/neighbour entry or a late packet for a deleted pod is less likely to
  reach the next pod given that address.
* ``allocations`` -- ordinal -> `Allocation` (handle, owner node, attributes and
  a per-block sequence number).

The sequence number grows with every allocation in the block and is never
reused, so a release that names (address, seq) frees the address only while
it still belongs to the same allocation: a stale release (a CNI DEL that
arrives after the address went to another pod) is refused.

`candidate_blocks` orders a pool's blocks for one node, starting at a hash of
the node's name, so nodes claiming at the same time usually try different
blocks instead of all fighting over block 0.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Smallest and largest blocks we accept (Calico's limits: /20../32, /116../128).
MIN_BLOCK = {4: 20, 6: 116}
BITS = {4: 32, 6: 128}


class BlockError(ValueError):
    """An impossible operation on a block (address outside it, not allocated...)."""


def default_block_size(version: int) -> int:
    """The default block size: /26 for IPv4, /122 for IPv6 (64 addresses each)."""
    return 26 if version == 4 else 122


def check_pool(cidr: IPNetwork, block_size: int) -> None:
    """Raise `BlockError` unless `cidr` can be cut into blocks of `block_size`."""
    bits = BITS[cidr.version]
    if not cidr.prefixlen <= block_size <= bits:
        raise BlockError(f"block_size {block_size} must be between /{cidr.prefixlen} and /{bits}")
    if block_size < MIN_BLOCK[cidr.version]:
        raise BlockError(
            f"block_size {block_size} is too large a block (smallest prefix "
            f"/{MIN_BLOCK[cidr.version]} for IPv{cidr.version})"
        )


def block_count(pool: IPNetwork, block_size: int) -> int:
    """How many blocks of `block_size` the pool holds."""
    return 1 << (block_size - pool.prefixlen)


def block_at(pool: IPNetwork, block_size: int, index: int) -> IPNetwork:
    """Block number `index` of the pool (0-based)."""
    if not 0 <= index < block_count(pool, block_size):
        raise BlockError(f"block index {index} outside {pool}")
    size = 1 << (BITS[pool.version] - block_size)
    base = int(pool.network_address) + index * size
    return ipaddress.ip_network((base, block_size))


def block_of(pool: IPNetwork, block_size: int, address: IPAddress) -> IPNetwork:
    """The block of the pool that contains `address`."""
    if address not in pool:
        raise BlockError(f"{address} is not in pool {pool}")
    return ipaddress.ip_network((address, block_size), strict=False)


def node_hash(node: str) -> int:
    """A stable hash of a node name (Python's `hash` differs between processes)."""
    return int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big")


def candidate_blocks(pool: IPNetwork, block_size: int, node: str) -> Iterator[IPNetwork]:
    """Every block of the pool once, starting at the node's hashed position."""
    n = block_count(pool, block_size)
    start = node_hash(node) % n
    for k in range(n):
        yield block_at(pool, block_size, (start + k) % n)


@dataclass(frozen=True, slots=True)
class Allocation:
    """One address handed out: to whom (handle), by which node, with what attributes."""

    handle: str
    seq: int
    node: str
    attrs: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    ts: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "seq": self.seq,
            "node": self.node,
            "attrs": dict(self.attrs),
            "ts": self.ts,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Allocation:
        return cls(
            handle=str(d["handle"]),
            seq=int(d["seq"]),
            node=str(d["node"]),
            attrs={str(k): str(v) for k, v in d.get("attrs", {}).items()},
            ts=float(d.get("ts", 0.0)),
        )


@dataclass(slots=True)
class Block:
    """A block: its CIDR, the node it is affine to, and who holds each address."""

    cidr: IPNetwork
    affinity: str | None
    next_seq: int = 1
    unallocated: list[int] = field(default_factory=list)
    allocations: dict[int, Allocation] = field(default_factory=dict)

    @classmethod
    def new(cls, cidr: IPNetwork, affinity: str | None) -> Block:
        """An empty block; every address free, in address order."""
        return cls(cidr=cidr, affinity=affinity, unallocated=list(range(cidr.num_addresses)))

    # -- addresses -----------------------------------------------------------
    @property
    def size(self) -> int:
        return self.cidr.num_addresses

    @property
    def free(self) -> int:
        return len(self.unallocated)

    @property
    def used(self) -> int:
        return len(self.allocations)

    def address(self, ordinal: int) -> IPAddress:
        if not 0 <= ordinal < self.size:
            raise BlockError(f"ordinal {ordinal} outside {self.cidr}")
        return self.cidr.network_address + ordinal

    def ordinal(self, address: IPAddress) -> int:
        if address not in self.cidr:
            raise BlockError(f"{address} is not in block {self.cidr}")
        return int(address) - int(self.cidr.network_address)

    # -- changes -------------------------------------------------------------
    def allocate(
        self,
        handle: str,
        node: str,
        attrs: dict[str, str],
        ts: float,
        reserved: AbstractSet[int] = frozenset(),
    ) -> tuple[IPAddress, Allocation] | None:
        """Take the longest-free address not in `reserved` (ordinals that must never be
        handed out); None when no such address is free."""
        at = next((i for i, o in enumerate(self.unallocated) if o not in reserved), None)
        if at is None:
            return None
        ordinal = self.unallocated.pop(at)
        return self.address(ordinal), self._take(ordinal, handle, node, attrs, ts)

    def free_outside(self, reserved: AbstractSet[int]) -> int:
        """Free addresses that are not `reserved`."""
        if not reserved:
            return len(self.unallocated)
        return sum(1 for o in self.unallocated if o not in reserved)

    def assign(
        self, address: IPAddress, handle: str, node: str, attrs: dict[str, str], ts: float
    ) -> Allocation:
        """Take one specific address; `BlockError` if it is already in use."""
        ordinal = self.ordinal(address)
        if ordinal in self.allocations:
            held = self.allocations[ordinal]
            raise BlockError(f"{address} is already allocated to handle {held.handle}")
        self.unallocated.remove(ordinal)
        return self._take(ordinal, handle, node, attrs, ts)

    def _take(
        self, ordinal: int, handle: str, node: str, attrs: dict[str, str], ts: float
    ) -> Allocation:
        alloc = Allocation(handle=handle, seq=self.next_seq, node=node, attrs=dict(attrs), ts=ts)
        self.next_seq += 1
        self.allocations[ordinal] = alloc
        return alloc

    def release(self, address: IPAddress, seq: int | None = None) -> Allocation | None:
        """Free `address`; returns what it held, or None if it was free or `seq` is stale."""
        ordinal = self.ordinal(address)
        alloc = self.allocations.get(ordinal)
        if alloc is None or (seq is not None and alloc.seq != seq):
            return None
        del self.allocations[ordinal]
        self.unallocated.append(ordinal)
        return alloc

    def holder(self, address: IPAddress) -> Allocation | None:
        return self.allocations.get(self.ordinal(address))

    def held(self) -> list[tuple[IPAddress, Allocation]]:
        """Every allocated address with its allocation, in address order."""
        return [(self.address(o), self.allocations[o]) for o in sorted(self.allocations)]

    def by_handle(self, handle: str) -> list[tuple[IPAddress, Allocation]]:
        return [(self.address(o), a) for o, a in self.allocations.items() if a.handle == handle]

    def check(self) -> None:
        """Raise `BlockError` unless every address is exactly once free or allocated."""
        free = self.unallocated
        if len(set(free)) != len(free):
            raise BlockError(f"{self.cidr}: an address is free twice")
        both = set(free) & self.allocations.keys()
        if both:
            raise BlockError(f"{self.cidr}: ordinals {sorted(both)} both free and allocated")
        if len(free) + len(self.allocations) != self.size:
            raise BlockError(f"{self.cidr}: {self.size - len(free) - self.used} addresses lost")
        if any(not 0 <= o < self.size for o in [*free, *self.allocations]):
            raise BlockError(f"{self.cidr}: ordinal out of range")
        if any(a.seq >= self.next_seq for a in self.allocations.values()):
            raise BlockError(f"{self.cidr}: sequence number from the future")

    # -- serialisation -------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "cidr": str(self.cidr),
            "affinity": self.affinity,
            "next_seq": self.next_seq,
            "unallocated": self.unallocated,
            "allocations": {str(o): a.to_json() for o, a in self.allocations.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Block:
        aff = d.get("affinity")
        return cls(
            cidr=ipaddress.ip_network(d["cidr"]),
            affinity=None if aff is None else str(aff),
            next_seq=int(d["next_seq"]),
            unallocated=[int(o) for o in d["unallocated"]],
            allocations={int(o): Allocation.from_json(a) for o, a in d["allocations"].items()},
        )
