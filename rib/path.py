"""The route model: where a path came from (``Source``) and the path itself (``Path``).

A ``Path`` is one candidate route *without* its prefix: the source it came
from, the ADD-PATH identifier it was received with, and its attributes after
import policy. Every prefix announced in one UPDATE shares the same ``Path``
object, and paths are interned per source, so a table of a million prefixes
holds only as many ``Path`` objects as there are distinct (source, path id,
attribute set) triples (DESIGN.md performance rule 1). The Loc-RIB maps a
prefix key to a ``Path`` (the common single-path case) or to an interned
``bestpath.Ranked`` holding several.

The decision inputs of RFC 4271 §9.1.2.2 are computed once per ``Path`` when it
is interned, so the decision process compares plain ints.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from itertools import count
from typing import Any

from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family, SegmentType, WellKnownCommunity

__all__ = ["ORIGIN_NAMES", "Path", "Source", "describe_attrs", "hop_text", "neighbor_as"]

Address = IPv4Address | IPv6Address
_LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)


class Source:
    """Where paths come from: a peer session, or the RIB itself (``local``: originated
    here; each ``Rib`` has its own, ``Rib.local``).

    ``tx_ids`` numbers the source's slots for ADD-PATH (``Slot.tx_id``); the RIB
    gives all its sources one counter, so the ids are unique in the speaker.
    ``gens`` counts, per family, the peer's sessions (and enhanced route refreshes); paths
    interned in an older generation are stale (RFC 4724 §4.2, RFC 7313 §4).
    """

    __slots__ = (
        "address",
        "address_int",
        "asn",
        "bgp_id",
        "ebgp",
        "gens",
        "key",
        "local",
        "paths",
        "rr_client",
        "slots",
        "tx_ids",
    )

    def __init__(
        self,
        key: str,
        *,
        address: Address | None = None,
        asn: int = 0,
        ebgp: bool = False,
        rr_client: bool = False,
        local: bool = False,
        tx_ids: Iterator[int] | None = None,
    ) -> None:
        self.key = key
        self.tx_ids = tx_ids if tx_ids is not None else count(1)
        self.address = address
        # RFC 4271 §9.1.2.2 (g): lowest peer address; IPv4 sorts before IPv6.
        self.address_int = 0 if address is None else int(address) + ((address.version - 4) << 128)
        self.asn = asn
        self.ebgp = ebgp
        self.rr_client = rr_client
        self.local = local
        self.bgp_id = 0
        # Family -> generation; paths of an older generation are stale.
        self.gens: dict[Family, int] = {}
        # (family, path id, attrs) -> Path for the current generation.
        self.paths: dict[tuple[Family, int, PathAttributes], Path] = {}
        # received path id -> slot (the identity a later UPDATE replaces).
        self.slots: dict[int, Slot] = {}

    def __repr__(self) -> str:
        return f"Source({self.key!r})"

    def slot(self, path_id: int) -> Slot:
        """The slot of ``path_id`` from this source (created on first use)."""
        s = self.slots.get(path_id)
        if s is None:
            s = self.slots[path_id] = Slot(self, path_id, next(self.tx_ids))
        return s


class Slot:
    """One (source, received path id) pair: a newer path in the same slot replaces the older.

    ``tx_id`` is the path identifier this path is sent with to ADD-PATH
    peers (RFC 7911 §3): stable while the slot lives, unique in this speaker.
    """

    __slots__ = ("path_id", "source", "tx_id")

    def __init__(self, source: Source, path_id: int, tx_id: int) -> None:
        self.source = source
        self.path_id = path_id
        self.tx_id = tx_id

    def __repr__(self) -> str:
        return f"Slot({self.source.key!r}, {self.path_id})"


def neighbor_as(attrs: PathAttributes) -> int:
    """The leftmost AS of the AS_PATH's first AS_SEQUENCE (RFC 4271 §9.1.2.2 c); 0 if none.

    Confederation segments are skipped (RFC 5065 §5.3).
    """
    for stype, asns in attrs.as_path or ():
        if stype == SegmentType.AS_SEQUENCE:
            return asns[0]
        if stype == SegmentType.AS_SET:
            return 0
    return 0


class Path:
    """One candidate route (without its prefix); interned, immutable by convention."""

    __slots__ = (
        "__weakref__",
        "as_len",
        "attrs",
        "cl_len",
        "ebgp",
        "eligible",
        "family",
        "gen",
        "igp_cost",
        "llgr",
        "local",
        "lp",
        "med",
        "neigh_as",
        "nexthop",
        "nexthops",
        "origin",
        "peer_addr",
        "rid",
        "since",
        "slot",
        "source",
    )

    def __init__(
        self,
        slot: Slot,
        attrs: PathAttributes,
        family: Family,
        default_local_pref: int,
        igp_cost: int | None = 0,
        since: float = 0.0,
    ) -> None:
        src = slot.source
        # When this path was first received (the RIB's clock). Paths are shared by
        # every prefix announced with the same attributes from the same session, so
        # this is the age of the path, not of each prefix: a prefix that joins an
        # older path shows that path's age (a time per prefix would cost ~60 B/route).
        self.since = since
        self.slot = slot
        self.source = src
        self.family = family
        self.gen = src.gens.get(family, 0)
        self.attrs = attrs
        self.local = src.local
        self.ebgp = src.ebgp
        self.lp = default_local_pref if attrs.local_pref is None else attrs.local_pref
        # RFC 9494 §4.4: a long-lived stale route is the least preferred of all.
        self.llgr = _LLGR_STALE in attrs.communities
        self.as_len = attrs.as_path_length
        self.origin = 0 if attrs.origin is None else attrs.origin
        self.med = 0 if attrs.med is None else attrs.med  # RFC 4271 §9.1.2.2 c: missing = 0
        self.neigh_as = neighbor_as(attrs) if not src.local else 0
        # RFC 4456 §9: ORIGINATOR_ID stands in for the BGP Identifier.
        self.rid = int(attrs.originator_id) if attrs.originator_id is not None else src.bgp_id
        self.cl_len = len(attrs.cluster_list)
        self.peer_addr = src.address_int
        nh = attrs.nexthop(family)
        self.nexthop: bytes = nh.packed if nh is not None else b""
        if nh is not None and nh.version == 6 and nh.is_link_local:
            self.nexthop += _link_of(src)
        self.nexthops: tuple[bytes, ...] = (self.nexthop,) if self.nexthop else ()
        self.igp_cost = 0 if igp_cost is None else igp_cost
        # RFC 4271 §9.1.2.1: a route whose next hop cannot be resolved is not eligible.
        self.eligible = igp_cost is not None

    def __repr__(self) -> str:
        return f"Path({self.source.key!r}, id={self.slot.path_id}, nh={self.nexthop.hex()})"

    @property
    def stale(self) -> bool:
        """True if the path predates the source's current generation (RFC 4724, RFC 7313)."""
        return self.gen < self.source.gens.get(self.family, 0)

    def describe(self) -> dict[str, Any]:
        """Plain-data view for ``show routes``."""
        return {
            "peer": self.source.key,
            "path_id": self.slot.path_id,
            **describe_attrs(self.attrs),
            "local_pref": self.lp,
            "ebgp": self.ebgp,
            "local": self.local,
            "eligible": self.eligible,
            "stale": self.stale,
            "llgr_stale": self.llgr,
            "since": self.since,
        }


def _link_of(src: Source) -> bytes:
    """The interface a link-local next hop is on: the link of the session it was
    learned over (RFC 2545 §3; RFC 4291 §2.5.6: a link-local address is unique on its
    link only). Appended to the 16 address bytes, so that two links' fe80::1 are two
    next hops and the FIB routes each through its own device (``fib.model.split_hop``).
    Empty for a session over a global address."""
    addr = src.address
    scope = addr.scope_id if isinstance(addr, IPv6Address) else None
    return scope.encode() if scope else b""


def hop_text(hop: bytes) -> str:
    """A next hop as ``Path.nexthop`` holds it, for humans: '10.0.0.1', 'fe80::1%eth1'."""
    if len(hop) > 16:
        return f"{IPv6Address(hop[:16])}%{hop[16:].decode()}"
    return str(IPv4Address(hop) if len(hop) == 4 else IPv6Address(hop))


ORIGIN_NAMES = ("igp", "egp", "incomplete")  # RFC 4271 §5.1.1


def describe_attrs(a: PathAttributes, family: Family | None = None) -> dict[str, Any]:
    """Plain data of an attribute set (``show routes``, received or advertised).

    The next hop is the one for ``family``; without one, NEXT_HOP if present, else the
    MP_REACH_NLRI one. ``local_pref`` and ``med`` are None when the attribute is absent.
    """
    from bgp.wire.attributes import as_path_str

    if family is None:
        family = Family.IPV4_UNICAST if a.next_hop is not None else Family.IPV6_UNICAST
    nh = a.nexthop(family)
    origin = a.origin if a.origin is not None else 0
    return {
        "next_hop": str(nh) if nh is not None else "",
        "as_path": as_path_str(a.as_path),
        "origin": ORIGIN_NAMES[origin] if origin < 3 else "?",
        "local_pref": a.local_pref,
        "med": a.med,
        "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in a.communities],
        "large_communities": [f"{x}:{y}:{z}" for x, y, z in a.large_communities],
        "originator_id": str(a.originator_id) if a.originator_id is not None else None,
        "cluster_list": [str(c) for c in a.cluster_list],
    }
