"""The edge from the RIB to the FIB: best-path changes straight into the reconciler.

The RIB reports each batch of best-path changes as ``(family, {key: hops})``:
a key is the packed prefix (its length, then the address bytes that length
covers: the NLRI form of RFC 4271 §4.3), hops are packed next-hop addresses,
``()`` meaning "no route". The FIB wants a `fib.model.Dest` (a length octet and
the address: for IPv4 the RIB's key itself, for IPv6 the address padded to 16
bytes) and a `Reach` (next hops plus the encapsulation of the pool the prefix
lies in). `FibFeed.best_paths` does that conversion in one pass per batch
without `ipaddress` objects or strings (DESIGN.md performance rule 2): an IPv4
key passes through untouched (the very object the RIB holds, its hash cached),
the hop tuple too, and `Reach` values are interned so that a million prefixes
behind four next hops share four objects and the reconciler plans four times.

Pools: a prefix takes the modes of the longest pool that contains it
(`PoolTable`, built once per config; config validation keeps pools from
overlapping, the table would pick the most specific anyway). A prefix in no
pool is a plain unencapsulated route. This node's own announced blocks never
become remote routes (reflection can bring them back).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from operator import add

from bgp.wire.constants import Family
from bgp.wire.prefix import key_from_network
from fib.model import Dest, Encap, Reach, dest_addr
from fib.reconciler import Reconciler

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Modes = tuple[Encap, Encap]  # (ipip, vxlan)
PLAIN: Modes = (Encap.NEVER, Encap.NEVER)
# What makes a RIB key a `Dest`, by the number of address bytes in the key: nothing for
# IPv4 (the key is the dest), the padding to 16 address bytes for IPv6.
_PAD4 = (b"",) * 5
_PAD16 = tuple(bytes(16 - n) for n in range(17))
_EMPTY = ().__eq__  # no hops: a withdrawal


class PoolTable:
    """Longest-prefix match from a prefix to its pool's (ipip, vxlan) modes.

    One dict per pool length and family, keyed by the pool's network as an
    integer; a look-up tries the lengths present, longest first, that are no
    longer than the prefix itself (a prefix lies in a pool only if it is at
    least as long). With no pools every look-up is a single test."""

    def __init__(self, pools: Iterable[tuple[IPNetwork, Encap, Encap]]) -> None:
        self._tables: dict[int, list[tuple[int, dict[int, Modes]]]] = {4: [], 6: []}
        by_len: dict[tuple[int, int], dict[int, Modes]] = {}
        for net, ipip, vxlan in pools:
            by_len.setdefault((net.version, net.prefixlen), {})[
                int(net.network_address) >> (net.max_prefixlen - net.prefixlen)
            ] = (ipip, vxlan)
        for (version, plen), table in sorted(by_len.items(), key=lambda kv: -kv[0][1]):
            self._tables[version].append((plen, table))

    def __bool__(self) -> bool:
        return bool(self._tables[4] or self._tables[6])

    def modes(self, addr: bytes, length: int) -> Modes:
        """The modes of the longest pool containing `addr`/`length`; PLAIN outside pools."""
        tables = self._tables[4 if len(addr) == 4 else 6]
        if not tables:
            return PLAIN
        value = int.from_bytes(addr, "big")
        width = len(addr) * 8
        for plen, table in tables:
            if plen <= length:
                found = table.get(value >> (width - plen))
                if found is not None:
                    return found
        return PLAIN


class FibFeed:
    """Turns the RIB's best-path batches into `Reconciler.update_remote` calls."""

    def __init__(
        self,
        reconciler: Reconciler,
        pools: Callable[[], PoolTable],
        wake: Callable[[], None],
        own: Callable[[], frozenset[IPNetwork]] = frozenset,
    ) -> None:
        self.reconciler = reconciler
        self.pools = pools
        self.wake = wake
        self._own = own
        self._own_seen: frozenset[IPNetwork] | None = None
        self._own_keys: dict[Family, frozenset[bytes]] = {}
        self._reach: dict[tuple[tuple[bytes, ...], Modes], Reach] = {}
        self._plain: dict[tuple[bytes, ...], Reach] = {}  # the PLAIN part of _reach, by hops

    def best_paths(self, family: Family, changes: Mapping[bytes, tuple[bytes, ...]]) -> None:
        """One RIB batch: set or remove the remote route of every changed key."""
        pad = _PAD4 if family is Family.IPV4_UNICAST else _PAD16
        own = self._own_keys_of(family)
        pools = self.pools()  # the running config's (a reload may change the modes)
        out: dict[Dest, Reach | None] | None
        if pools:
            out = self._with_pools(pools, pad, own, changes)
        else:  # no pools: every route is plain, interned by its hops alone
            out = self._plain_whole(pad, own, changes)
            if out is None:
                out = self.plain_each(pad, own, changes)
        self.reconciler.update_remote(out)
        self.wake()

    def plain_each(
        self, pad: tuple[bytes, ...], own: frozenset[bytes],
        changes: Mapping[bytes, tuple[bytes, ...]],
    ) -> dict[Dest, Reach | None]:  # fmt: skip
        """Without pools, key by key: the readable rules `_plain_whole` follows."""
        out: dict[Dest, Reach | None] = {}
        plain = self._plain
        for key, hops in changes.items():
            dest = key + pad[len(key) - 1]
            if not hops or key in own:
                out[dest] = None
            else:
                out[dest] = plain.get(hops) or self._intern(hops, PLAIN)
        return out

    def _plain_whole(
        self, pad: tuple[bytes, ...], own: frozenset[bytes],
        changes: Mapping[bytes, tuple[bytes, ...]],
    ) -> dict[Dest, Reach | None] | None:  # fmt: skip
        """`plain_each` for a batch that is all announcements of none of this node's
        blocks, or all withdrawals, built in C (`map`); None for any other batch."""
        keys, hops = changes.keys(), changes.values()
        dests: Iterable[Dest] = keys  # IPv4: the RIB's keys are the dests
        if pad is not _PAD4:  # IPv6: the address bytes padded to 16, by the key's length
            by_key_length = (b"", *pad)
            dests = map(add, keys, map(by_key_length.__getitem__, map(len, keys)))
        if () not in hops:
            if not own.isdisjoint(keys):
                return None
            for new in set(hops) - self._plain.keys():  # hops not seen before
                self._intern(new, PLAIN)
            reaches = list(map(self._plain.get, hops))
            if None in reaches:  # the tables started afresh meanwhile (`_intern`)
                return None
            return dict(zip(dests, reaches, strict=True))
        if hops and all(map(_EMPTY, hops)):
            return dict.fromkeys(dests)
        return None

    def pools_changed(self) -> int:
        """The pools changed (a reload, the cluster's resources): re-plan the remote routes
        whose pool modes are now different, and only those; returns how many."""
        pools = self.pools()
        out: dict[Dest, Reach | None] = {}
        for dest, reach in self.reconciler.inputs.remote.items():
            modes = pools.modes(dest_addr(dest), dest[0]) if pools else PLAIN
            if modes != (reach.ipip, reach.vxlan):
                hops = reach.next_hops
                out[dest] = self._reach.get((hops, modes)) or self._intern(hops, modes)
        if out:
            self.reconciler.update_remote(out)
            self.wake()
        return len(out)

    def _with_pools(
        self, pools: PoolTable, pad: tuple[bytes, ...], own: frozenset[bytes],
        changes: Mapping[bytes, tuple[bytes, ...]],
    ) -> dict[Dest, Reach | None]:  # fmt: skip
        out: dict[Dest, Reach | None] = {}
        reach_of, modes_of = self._reach, pools.modes
        for key, hops in changes.items():
            dest = key + pad[len(key) - 1]
            if not hops or key in own:
                out[dest] = None
                continue
            modes = modes_of(dest_addr(dest), key[0])
            out[dest] = reach_of.get((hops, modes)) or self._intern(hops, modes)
        return out

    def _intern(self, hops: tuple[bytes, ...], modes: Modes) -> Reach:
        if len(self._reach) > 65536:  # next hops come and go; keep the tables bounded
            self._reach.clear()
            self._plain.clear()
        reach = self._reach[(hops, modes)] = Reach(tuple(sorted(hops)), *modes)
        if modes == PLAIN:
            self._plain[hops] = reach
        return reach

    def _own_keys_of(self, family: Family) -> frozenset[bytes]:
        """This node's announced blocks as RIB keys (recomputed when the set changes)."""
        own = self._own()
        if own is not self._own_seen:
            self._own_seen = own
            keys: dict[Family, set[bytes]] = {
                Family.IPV4_UNICAST: set(),
                Family.IPV6_UNICAST: set(),
            }
            for net in own:
                fam, key = key_from_network(net)
                keys[fam].add(key)
            self._own_keys = {fam: frozenset(ks) for fam, ks in keys.items()}
        return self._own_keys.get(family, frozenset())


__all__ = ["FibFeed", "PoolTable"]
