"""``podbgp show routes``: the Loc-RIB as plain dicts (stable ``--json`` shape).

Each prefix: its family, the best path with the decision step that made it
win (``rib.bestpath``), the ECMP next hops handed to the FIB, and every
candidate path with the step at which it lost. Built on demand, never on the
hot path.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

from bgp.wire.constants import Family
from bgp.wire.prefix import key_from_network, key_to_str
from rib.bestpath import ONLY_PATH, Ranked
from rib.core import Rib
from rib.path import Path

__all__ = ["routes"]

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
        "ecmp_next_hops": [str(ip_address(nh)) for nh in ecmp],
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
