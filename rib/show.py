"""The RIB's read side for ``podbgp show``: plain dicts in a stable ``--json`` shape.

``routes``: the Loc-RIB. Each prefix: its family, the best path with the
decision step that made it win (``rib.bestpath``), the ECMP next hops handed
to the FIB, and every candidate path with the step at which it lost.

Per peer (the views of ``show routes --peer X --received/--advertised``):
``received`` is its post-policy Adj-RIB-In (RFC 4271 §3.2) — the Loc-RIB
paths whose source is the peer, since the Loc-RIB table holds them
(``rib.core``); ``received_pre_policy`` what it sent before import policy,
kept only with ``soft_reconfiguration``; ``advertised`` its Adj-RIB-Out, the
attributes its update group last built for it (``rib.adjout.Told``), after
export policy and the eBGP/iBGP rewrites, less what split horizon keeps from
it. ``peer_routes`` counts the same per family for ``show peers``.

Everything here is built on demand, never on the hot path, and only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any

from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.prefix import join_path_id, key_from_network, key_to_network, key_to_str
from rib.bestpath import ONLY_PATH, Ranked
from rib.core import PeerState, Rib
from rib.path import Path, describe_attrs, hop_text

__all__ = [
    "NotKept",
    "PeerRoutes",
    "add_path_peers",
    "adj_rib_in",
    "advertised",
    "loc_rib",
    "peer_path",
    "peer_routes",
    "received",
    "received_pre_policy",
    "routes",
]

_FAMILIES = {"ipv4": Family.IPV4_UNICAST, "ipv6": Family.IPV6_UNICAST}


def _entry(family: Family, key: bytes, e: Path | Ranked) -> dict[str, Any]:
    paths: tuple[Path, ...]
    reasons: tuple[str, ...]
    if isinstance(e, Path):
        paths, reasons = (e,), (ONLY_PATH if e.eligible else "next-hop-unreachable",)
        best = e if e.eligible else None
        ecmp = e.nexthops if e.eligible else ()
    else:
        paths, reasons, best, ecmp = e.paths, e.reasons, e.best, e.nexthops
    rows = []
    for p, why in zip(paths, reasons, strict=True):
        row = p.describe()
        row["best"] = p is best
        row["reason"] = why
        rows.append(row)
    return {
        "prefix": key_to_str(family, key),
        "family": "ipv4" if family is Family.IPV4_UNICAST else "ipv6",
        "best": rows[0] if best is not None else None,
        "reason": reasons[0] if best is not None else None,
        "ecmp_next_hops": [hop_text(nh) for nh in ecmp],
        "paths": rows,
    }


def _lookup(rib: Rib, text: str) -> list[tuple[Family, bytes]]:
    """Exact prefix, or the longest prefix covering an address."""
    if "/" in text:
        return [key_from_network(str(ip_network(text, strict=False)))]
    addr = ip_address(text)
    fam = Family.IPV4_UNICAST if addr.version == 4 else Family.IPV6_UNICAST
    for ln in range(addr.max_prefixlen, -1, -1):
        net = ip_network(f"{addr}/{ln}", strict=False)
        f, k = key_from_network(net)
        if k in rib.loc[fam]:
            return [(f, k)]
    return []


def routes(
    rib: Rib,
    *,
    family: str | None = None,
    prefix: str | None = None,
    peer: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Routes matching the filters, sorted by family and prefix, as plain data."""
    fams = [_FAMILIES[family]] if family else list(Family)
    if prefix is not None:
        keys = [(f, k) for f, k in _lookup(rib, prefix) if f in fams]
    else:
        keys = [(f, k) for f in fams for k in rib.loc[f]]
    out = []
    for f, k in keys:
        e = rib.loc[f].get(k)
        if e is None:
            continue
        if peer is not None:
            ps = (e,) if isinstance(e, Path) else e.paths
            if not any(p.source.key == peer for p in ps):
                continue
        out.append((f, k, e))
    out.sort(key=lambda t: (t[0], t[1][1:].ljust(16, b"\0"), t[1][0]))
    if limit is not None:
        out = out[:limit]
    return [_entry(f, k, e) for f, k, e in out]


def loc_rib(
    rib: Rib, family: Family, peer: str | None = None
) -> list[tuple[bytes, tuple[Path, ...]]]:
    """A snapshot of the Loc-RIB for a table dump (``podbgp.mrt``): each prefix key with
    every candidate path, best first. These are the post-policy Adj-RIBs-In of all
    peers plus what is originated here, since the table holds them all (``rib.core``);
    ``peer`` keeps one peer's paths only (its post-policy Adj-RIB-In). The paths are
    immutable, so the snapshot stays consistent while the RIB moves on."""
    out = []
    for k, e in list(rib.loc[family].items()):
        paths = (e,) if isinstance(e, Path) else e.paths
        if peer is not None:
            paths = tuple(p for p in paths if p.source.key == peer)
        if paths:
            out.append((k, paths))
    return out


def add_path_peers(rib: Rib, family: Family) -> frozenset[str]:
    """Peers whose current session receives ``family`` with path identifiers (RFC 7911)."""
    return frozenset(
        key
        for key, st in rib.peers.items()
        if st.facts is not None and family in st.facts.add_path_rx
    )


def peer_path(rib: Rib, family: Family, key: bytes, peer: str, path_id: int = 0) -> Path | None:
    """The path ``peer`` holds for one prefix after import policy (its post-policy
    Adj-RIB-In entry: with ADD-PATH, the one of ``path_id``), None if it has none."""
    e = rib.loc[family].get(key)
    if e is None:
        return None
    for p in (e,) if isinstance(e, Path) else e.paths:
        if p.source.key == peer and p.slot.path_id == path_id:
            return p
    return None


def adj_rib_in(
    rib: Rib, peer: str, family: Family, *, pre_policy: bool
) -> list[tuple[bytes, PathAttributes]] | None:
    """A snapshot of one peer's Adj-RIB-In as NLRI in the session's receive form (with
    ADD-PATH, the path identifier first, RFC 7911 §3) and their attributes: before
    import policy (None when not kept: no soft reconfiguration) or after it."""
    st = _peer(rib, peer)
    if pre_policy:
        if not st.policy.soft_reconfiguration:
            return None
        return list(st.pre_policy.get(family, {}).items())
    add_path = st.facts is not None and family in st.facts.add_path_rx
    out = []
    for k, e in list(rib.loc[family].items()):
        for p in (e,) if isinstance(e, Path) else e.paths:
            if p.source is st.source:
                out.append((join_path_id(p.slot.path_id, k) if add_path else k, p.attrs))
    return out


# -- per peer -------------------------------------------------------------------------------
class NotKept(LookupError):
    """Pre-policy routes are not kept for this peer (no ``soft_reconfiguration``)."""


@dataclass(frozen=True, slots=True)
class PeerRoutes:
    """Route counts of one peer by family name (``ipv4``/``ipv6``).

    ``received``: in the RIB after import policy; ``received_pre_policy``: as the
    peer sent them (None: not kept, no soft reconfiguration); ``advertised``: its
    Adj-RIB-Out. ``stale``: families whose routes are kept by graceful restart
    (RFC 4724 §4.2) awaiting the peer's End-of-RIB; ``eor_received``: families whose
    End-of-RIB arrived in this session."""

    up: bool
    received: dict[str, int]
    received_pre_policy: dict[str, int] | None
    advertised: dict[str, int]
    stale: tuple[str, ...]
    eor_received: tuple[str, ...]

    def total(self, what: str) -> int:
        counts: dict[str, int] | None = getattr(self, what)
        return sum(counts.values()) if counts else 0


def _name(family: Family) -> str:
    return "ipv4" if family is Family.IPV4_UNICAST else "ipv6"


def peer_routes(rib: Rib, peer: str) -> PeerRoutes | None:
    """Counts of one peer (None: the RIB does not know it)."""
    st = rib.peers.get(peer)
    if st is None:
        return None
    pre = None
    if st.policy.soft_reconfiguration:
        pre = {_name(f): len(d) for f, d in st.pre_policy.items()}
    return PeerRoutes(
        up=st.up,
        received={_name(f): n for f, n in st.counts.items()},
        received_pre_policy=pre,
        advertised={_name(f): n for f, n in rib.advertised(peer).items()},
        stale=tuple(sorted(_name(f) for f in st.stale)),
        eor_received=tuple(sorted(_name(f) for f in st.eor_received)),
    )


def _peer(rib: Rib, peer: str) -> PeerState:
    st = rib.peers.get(peer)
    if st is None:
        raise KeyError(peer)
    return st


def _match(prefix: str | None) -> Callable[[Family, bytes], bool]:
    """A filter on (family, key): the exact prefix, or every prefix covering an address."""
    if prefix is None:
        return lambda f, k: True
    if "/" in prefix:
        want = key_from_network(str(ip_network(prefix, strict=False)))
        return lambda f, k: (f, k) == want
    addr = ip_address(prefix)
    fam = Family.IPV4_UNICAST if addr.version == 4 else Family.IPV6_UNICAST
    return lambda f, k: f is fam and addr in key_to_network(f, k)


def _families(family: str | None) -> list[Family]:
    return [_FAMILIES[family]] if family else list(Family)


def _sorted(
    rows: Iterable[tuple[Family, bytes, dict[str, Any]]], limit: int | None
) -> list[dict[str, Any]]:
    out = sorted(
        rows, key=lambda t: (t[0], t[1][1:].ljust(16, b"\0"), t[1][0], t[2].get("path_id", 0))
    )
    if limit is not None:
        out = out[:limit]
    return [{"prefix": key_to_str(f, k), "family": _name(f), **row} for f, k, row in out]


def received(
    rib: Rib,
    peer: str,
    *,
    family: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The peer's routes after import policy (post-policy Adj-RIB-In), one row per path."""
    src = _peer(rib, peer).source
    match = _match(prefix)
    rows = []
    for f in _families(family):
        for k, e in rib.loc[f].items():
            paths = (e,) if isinstance(e, Path) else e.paths
            best = rib.best(f, k)
            for p in paths:
                if p.source is src and match(f, k):
                    rows.append((f, k, {**p.describe(), "best": p is best}))
    return _sorted(rows, limit)


def received_pre_policy(
    rib: Rib,
    peer: str,
    *,
    family: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The peer's routes as it sent them, before import policy (soft reconfiguration)."""
    st = _peer(rib, peer)
    if not st.policy.soft_reconfiguration:
        raise NotKept(peer)
    match = _match(prefix)
    rows = []
    for f in _families(family):
        add_path = f in st.pre_add_path
        for k, attrs in st.pre_policy.get(f, {}).items():
            # With ADD-PATH the key starts with the 4-octet path identifier (RFC 7911 §3).
            path_id, key = (int.from_bytes(k[:4], "big"), k[4:]) if add_path else (0, k)
            if match(f, key):
                rows.append((f, key, {"path_id": path_id, **describe_attrs(attrs, f)}))
    return _sorted(rows, limit)


def advertised(
    rib: Rib,
    peer: str,
    *,
    family: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The peer's Adj-RIB-Out: each prefix with the attributes it was sent (with ADD-PATH,
    one row per path, ``path_id`` the identifier it was sent with). Empty while down."""
    st = _peer(rib, peer)
    if not st.up:
        return []
    match = _match(prefix)
    rows = []
    for f in _families(family):
        m = st.members.get(f)
        if m is None or m.group is None:
            continue
        told = m.group.told()
        for k in told.keys():  # noqa: SIM118 (Told.keys is a function, not dict.keys)
            if not match(f, k):
                continue
            value = told.get(k, m.source)
            for path_id, attrs in _sent(value):
                rows.append((f, k, {"path_id": path_id, **describe_attrs(attrs, f)}))
    return _sorted(rows, limit)


def _sent(value: Any) -> list[tuple[int, PathAttributes]]:
    """``Told.get``'s answer as (path id, attributes) pairs: none, one, or ADD-PATH's."""
    if value is None:
        return []
    if isinstance(value, PathAttributes):
        return [(0, value)]
    return list(value)
