"""The BGP decision process (RFC 4271 §9.1), as ordered steps that say why.

Phase 2 (§9.1.2) first drops paths that are not eligible: a next hop that
cannot be resolved (§9.1.2.1). AS-path loops (§9.1.2) and route-reflection
loops (RFC 4456 §8) never reach the table; they are treated as withdrawn on
receipt. Among the eligible paths the tie-breaking of §9.1.2.2 runs as a
sequence of eliminations, each keeping only the candidates that are best by
one criterion. The steps, in order (``STEPS`` holds exactly these):

1. not-llgr-stale: a route without the LLGR_STALE community over one with it, before anything else (RFC 9494 §4.4)
2. local-pref: highest degree of preference, LOCAL_PREF (RFC 4271 §9.1.1, §9.1.2.2)
3. local-origin: locally originated routes over learned ones (common practice)
4. as-path-length: shortest AS_PATH; AS_SET counts 1, confederation segments 0 (RFC 4271 §9.1.2.2 a, RFC 5065 §5.3)
5. origin: lowest ORIGIN, IGP < EGP < INCOMPLETE (RFC 4271 §9.1.2.2 b)
6. med: lowest MULTI_EXIT_DISC among routes from the same neighbour AS, missing = 0 (RFC 4271 §9.1.2.2 c)
7. ebgp-over-ibgp: routes learned from external peers over internal ones (RFC 4271 §9.1.2.2 d)
8. igp-cost: lowest interior cost to the next hop (RFC 4271 §9.1.2.2 e)
9. router-id: lowest BGP Identifier, ORIGINATOR_ID when present (RFC 4271 §9.1.2.2 f, RFC 4456 §9)
10. cluster-list-length: shortest CLUSTER_LIST (RFC 4456 §9)
11. peer-address: lowest peer address (RFC 4271 §9.1.2.2 g)

Step 1 is RFC 9494's "least preferred" rule for long-lived stale routes: a path
kept past a peer's graceful-restart time carries LLGR_STALE (``Path.llgr``),
as does one received with it from another speaker, and any other path beats
it whatever its LOCAL_PREF.

The ECMP set (what the FIB installs) is every candidate still standing after
step 7 ``igp-cost``: equal through the interior cost, they differ only in
tie-breakers that do not affect forwarding. It holds at most ``max_paths``
paths with distinct next hops, best first.

The MED step is applied as §9.1.2.2 (c) words it: per neighbour AS, so the
result does not depend on the order the paths arrived in (no MED
non-determinism). With ``always_compare_med`` all paths form one group.

``rank`` orders all paths (for ADD-PATH best-N and for ``show routes``) by
repeating the elimination on what is left, and records for every path the step
at which it lost, and for the winner the step that decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from rib.path import Path

__all__ = ["ECMP_STEP", "NOT_ELIGIBLE", "ONLY_PATH", "STEPS", "Ranked", "Step", "rank", "select"]

ONLY_PATH = "only-path"
NOT_ELIGIBLE = "next-hop-unreachable"


class Step(NamedTuple):
    """One elimination: ``apply(candidates, always_compare_med)`` keeps the best ones."""

    name: str
    cite: str
    apply: Callable[[list[Path], bool], list[Path]]


def _keep_max(cands: list[Path], attr: str) -> list[Path]:
    best = max(getattr(p, attr) for p in cands)
    return [p for p in cands if getattr(p, attr) == best]


def _keep_min(cands: list[Path], attr: str) -> list[Path]:
    best = min(getattr(p, attr) for p in cands)
    return [p for p in cands if getattr(p, attr) == best]


def _not_llgr_stale(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "llgr")


def _local_pref(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_max(cands, "lp")


def _local_origin(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_max(cands, "local")


def _as_path_length(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "as_len")


def _origin(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "origin")


def _med(cands: list[Path], always_med: bool) -> list[Path]:
    if always_med:
        return _keep_min(cands, "med")
    low: dict[int, int] = {}
    for p in cands:
        m = low.get(p.neigh_as)
        if m is None or p.med < m:
            low[p.neigh_as] = p.med
    return [p for p in cands if p.med == low[p.neigh_as]]


def _ebgp(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_max(cands, "ebgp")


def _igp_cost(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "igp_cost")


def _router_id(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "rid")


def _cluster_list(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "cl_len")


def _peer_address(cands: list[Path], always_med: bool) -> list[Path]:
    return _keep_min(cands, "peer_addr")


STEPS: tuple[Step, ...] = (
    Step("not-llgr-stale", "RFC 9494 §4.4", _not_llgr_stale),
    Step("local-pref", "RFC 4271 §9.1.1, §9.1.2.2", _local_pref),
    Step("local-origin", "common practice", _local_origin),
    Step("as-path-length", "RFC 4271 §9.1.2.2 a, RFC 5065 §5.3", _as_path_length),
    Step("origin", "RFC 4271 §9.1.2.2 b", _origin),
    Step("med", "RFC 4271 §9.1.2.2 c", _med),
    Step("ebgp-over-ibgp", "RFC 4271 §9.1.2.2 d", _ebgp),
    Step("igp-cost", "RFC 4271 §9.1.2.2 e", _igp_cost),
    Step("router-id", "RFC 4271 §9.1.2.2 f, RFC 4456 §9", _router_id),
    Step("cluster-list-length", "RFC 4456 §9", _cluster_list),
    Step("peer-address", "RFC 4271 §9.1.2.2 g", _peer_address),
)
ECMP_STEP = "igp-cost"
_ECMP_INDEX = [s.name for s in STEPS].index(ECMP_STEP)


def select(
    paths: Sequence[Path], always_med: bool = False
) -> tuple[Path, str, list[Path], dict[int, str]]:
    """One round of §9.1.2.2 over eligible ``paths`` (at least one).

    Returns (winner, deciding step, the candidates left after the ECMP step,
    and for each eliminated path's ``id()`` the step that removed it).
    """
    cands = list(paths)
    lost: dict[int, str] = {}
    decided = ONLY_PATH
    ecmp = cands
    for i, step in enumerate(STEPS):
        if len(cands) > 1:
            kept = step.apply(cands, always_med)
            if len(kept) < len(cands):
                keep_ids = {id(p) for p in kept}
                for p in cands:
                    if id(p) not in keep_ids:
                        lost[id(p)] = step.name
                decided = step.name
                cands = kept
        if i == _ECMP_INDEX:
            ecmp = cands
    # Identical candidates (same source and attributes cannot happen; defensive): first wins.
    return cands[0], decided, ecmp, lost


class Ranked:
    """The decision for one set of paths, shared by every prefix with that set.

    ``paths`` best first (ineligible ones last); ``reasons[i]`` is why
    ``paths[i]`` won (i == 0) or lost; ``ecmp`` is the multipath set handed to
    the FIB and ``nexthops`` its next hops.
    """

    __slots__ = ("best", "by_slot", "ecmp", "nexthops", "paths", "reasons", "trans")

    def __init__(self, paths: tuple[Path, ...], reasons: tuple[str, ...], ecmp: tuple[Path, ...]):
        self.paths = paths
        self.reasons = reasons
        self.best: Path | None = paths[0] if paths and paths[0].eligible else None
        self.ecmp = ecmp
        self.nexthops = tuple(p.nexthop for p in ecmp if p.nexthop)
        self.by_slot = {p.slot: p for p in paths}
        # Memoised transitions, filled by the RIB (rib.core: Rib._with/_without, at most 64
        # each): path added -> entry, slot removed -> entry.
        self.trans: dict[object, object] = {}

    def __repr__(self) -> str:
        return f"Ranked({list(self.paths)!r}, {self.reasons!r})"


def rank(paths: Sequence[Path], max_paths: int = 8, always_med: bool = False) -> Ranked:
    """Order ``paths`` by repeated selection; the first round gives the ECMP set."""
    left = [p for p in paths if p.eligible]
    order: list[Path] = []
    reasons: list[str] = []
    ecmp: tuple[Path, ...] = ()
    first_lost: dict[int, str] = {}
    while left:
        win, decided, eq, lost = select(left, always_med)
        if not order:
            first_lost = lost
            ecmp = _ecmp(win, eq, max_paths)
            reasons.append(decided)
        else:
            reasons.append(first_lost.get(id(win), decided))
        order.append(win)
        left = [p for p in left if p is not win]
    for p in paths:
        if not p.eligible:
            order.append(p)
            reasons.append(NOT_ELIGIBLE)
    return Ranked(tuple(order), tuple(reasons), ecmp)


def _ecmp(win: Path, eq: list[Path], max_paths: int) -> tuple[Path, ...]:
    """The winner first, then the other ECMP candidates, distinct next hops, at most ``max_paths``."""
    out = [win]
    seen = {win.nexthop}
    for p in sorted(eq, key=lambda p: (p.rid, p.cl_len, p.peer_addr)):
        if len(out) >= max(1, max_paths):
            break
        if p is not win and p.nexthop not in seen:
            seen.add(p.nexthop)
            out.append(p)
    return tuple(out)
