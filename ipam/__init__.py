"""IPAM: pools -> blocks -> addresses, kept in a revisioned store (SQLite or etcd).

Parts, from the bottom up:

* `ipam.block` -- pure arithmetic: carve a pool into blocks, hand out and take
  back addresses inside a block (longest-free order, per-allocation sequence
  numbers), check the invariant that every address is free or allocated,
  exactly once.
* `ipam.store` -- the datastore: a small key-value interface with revisions,
  multi-key compare-and-swap transactions and watch (`ipam.store.base`),
  implemented on SQLite (`ipam.store.sqlite`, one host, many processes) and
  on etcd v3 (`ipam.store.etcd`, a cluster).
* `ipam.identity` -- the store's identity: a cluster ID written once by an
  explicit init (never by opening a store), the node's record of the cluster
  it joined, and `GuardedStore`, whose every write and watch re-checks it, so
  a missing, replaced or foreign store stops allocation instead of handing
  out live pods' addresses again.
* `ipam.model` -- pool configuration (``[ipam]``, ``[[ipam.pool]]``), the key
  layout, the error types.
* `ipam.allocator` -- `Ipam`: allocate (affine blocks, claim, borrow),
  assign a specific address, release by address or handle, release empty
  blocks, remove a node, garbage-collect leaks, check consistency. Every write
  is a CAS on the revisions it read, retried only on conflict.
* `ipam.nodes` -- the node registry the daemon builds its BGP mesh from.
* `ipam.lifecycle` -- a node's record held by a lease: lapsed, gone (out of
  every mesh and forwarding table), removed (blocks released); cordon.
* `ipam.leaks` -- this node's pods whose network namespace is gone, released
  after a grace.
* `ipam.consistency` -- every inconsistency between blocks, handles,
  affinities and nodes, and its repair in CAS steps.
* `ipam.announce` -- what a node originates (its blocks, borrowed /32s) and
  the blackholes it installs, as a value and as a stream of changes.
* `ipam.etcdlab` -- throwaway etcd servers for tests and benchmarks.

Data flow: the CNI plugin (through the daemon or `podbgp ipam`) calls
`Ipam.allocate`; the store's watch feeds `watch_announcements`, whose values the
daemon hands to the RIB (prefixes to originate) and to the FIB (blackholes).
`ipam` imports nothing from bgp/, rib/, fib/ or podbgp/.
"""

from __future__ import annotations

from ipam.allocator import AddressInfo, Assigned, GcReport, Ipam, Released
from ipam.announce import (
    Announcement,
    announcement,
    node_prefixes,
    watch_announcements,
    watch_node_blocks,
)
from ipam.model import (
    AddressInUse,
    ConfigError,
    Exhausted,
    IpamConfig,
    IpamError,
    NodeRemoved,
    NotInPool,
    Pool,
    PoolNotUsable,
    PoolUse,
    RemovalSuperseded,
    Reservation,
    Reserved,
    TooManyConflicts,
)
from ipam.nodes import Node, NodeRegistry

__all__ = [
    "AddressInUse",
    "AddressInfo",
    "Announcement",
    "Assigned",
    "ConfigError",
    "Exhausted",
    "GcReport",
    "Ipam",
    "IpamConfig",
    "IpamError",
    "Node",
    "NodeRegistry",
    "NodeRemoved",
    "NotInPool",
    "Pool",
    "PoolNotUsable",
    "PoolUse",
    "Released",
    "RemovalSuperseded",
    "Reservation",
    "Reserved",
    "TooManyConflicts",
    "announcement",
    "node_prefixes",
    "watch_announcements",
    "watch_node_blocks",
]
