"""Graceful restart in the RIB: stale routes, long-lived stale routes, selection deferral.

Why one module: these are the RIB's timers and the state they act on — a
peer's restart and stale times (RFC 4724 §4.2), its long-lived stale phase
(RFC 9494 §4.2) and our own selection deferral (RFC 4724 §4.1) — the part of
``rib.core.Rib`` that ``get_timer``/``handle_timer`` drive. They are plain
functions over a ``Rib``'s state (its peers, Loc-RIB and ``deferred`` set);
they change routes only through the Rib's own withdraw/announce/sweep steps,
so the batch and the update groups see them like any other change.

Long-lived graceful restart (RFC 9494), helper side: when a peer's restart
time ends (at once if it is 0, or for a family its GR capability omits) its stale
routes of each family it announced LLGR for are kept for the long-lived
stale time (the smaller of its and ours) instead of being swept (§4.2): a
route carrying NO_LLGR goes now, every other one is replaced by a copy with
the LLGR_STALE community, still stale (the old generation), which the
decision process ranks below any other path (§4.4, ``rib.bestpath``) and
which is sent only to peers with the LLGR capability (§4.3, ``rib.export``).
While such a route is still the best one, the FIB keeps it (same next hop,
so the kernel route is not touched). End-of-RIB after the peer returns, a
family the new OPEN does not preserve, or the end of the long-lived time
sweeps them.

Selection deferral (RFC 4724 §4.1) is per family: a family is selected (its
routes reach the FIB and update groups, then our End-of-RIB goes out) once
every configured peer of that family is up and has sent its End-of-RIB —
peers without the graceful-restart capability, peers that are restarting
themselves, and peers that did not negotiate the family excepted — or when
the deferral timer ends. A configured peer that is not up yet is waited for
(until the timer): it may still come back with routes. ``Rib.converged`` turns
true and ``on_converged`` is called once when no family is deferred any more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bgp.wire.constants import Family, WellKnownCommunity
from rib.path import Path
from rib.settings import SessionFacts

if TYPE_CHECKING:
    from rib.core import Rib
    from rib.peer import PeerState

__all__ = [
    "check_deferral",
    "end_of_rib",
    "fire",
    "next_deadline",
    "session_down",
    "session_up",
]

_LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)
_NO_LLGR = int(WellKnownCommunity.NO_LLGR)


def session_up(rib: Rib, st: PeerState, facts: SessionFacts, now: float) -> None:
    """A peer with stale routes is back (RFC 4724 §4.2, RFC 9494 §4.2 alike):
    families its new OPEN no longer preserves are flushed now; long-lived stale
    families keep their own deadline until End-of-RIB, the others get the
    stale-path time."""
    if not st.stale:
        return
    gone = {f for f in st.stale if not _preserved(facts, f)}
    if gone:
        rib._sweep(st, gone)
        st.stale -= gone
        for f in gone:
            st.llgr.pop(f, None)
    short = st.stale - st.llgr.keys()
    st.stale_deadline = now + rib.settings.stale_time if short else None


def session_down(rib: Rib, st: PeerState, graceful: bool, now: float) -> None:
    """A session ended: keep the routes of the families graceful restart or
    LLGR preserves as stale (RFC 4724 §4.2, RFC 9494 §4.2), sweep the rest."""
    facts = st.facts
    gr: set[Family] = set()
    llgr: set[Family] = set()
    if graceful and facts is not None:
        ours = set(facts.families) - st.disabled
        if facts.gr_restart_time > 0:
            gr = set(facts.gr_families) & ours
        llgr = {f for f, (t, _) in facts.llgr.items() if t > 0} & ours
    keep = gr | llgr
    gone = set(Family) - keep
    rib._sweep(st, gone, everything=True)
    for f in gone:
        st.pre_policy.pop(f, None)
        st.llgr.pop(f, None)
    st.stale -= gone
    if keep:
        st.stale |= keep
        rib._new_generation(st, keep)
        for f in gr:  # a new failure: restart time first, then a new long-lived phase
            st.llgr.pop(f, None)
        # RFC 9494 §4.2: no restart time (or no GR for the family): long-lived now.
        _start_llgr(rib, st, llgr - gr, now)
        assert facts is not None
        st.stale_deadline = now + facts.gr_restart_time if gr else None


def end_of_rib(rib: Rib, st: PeerState, family: Family) -> None:
    """RFC 4724 §4.2: the peer's End-of-RIB sweeps its stale routes of ``family``."""
    st.eor_received.add(family)
    if family in st.stale:
        rib._sweep(st, {family})
        st.stale.discard(family)
        st.llgr.pop(family, None)
        if not st.stale:
            st.stale_deadline = None


def next_deadline(rib: Rib) -> float | None:
    """The earliest deadline (GR restart/stale timers, long-lived stale times,
    deferral), or None."""
    peers = rib.peers.values()
    times = [st.stale_deadline for st in peers if st.stale_deadline is not None]
    times += [t for st in peers for t in st.llgr.values()]
    if rib.defer_deadline is not None:
        times.append(rib.defer_deadline)
    return min(times) if times else None


def fire(rib: Rib, now: float) -> None:
    """Act on every deadline that has passed (the caller flushes)."""
    for st in rib.peers.values():
        if st.stale_deadline is not None and st.stale_deadline <= now:
            _restart_time_over(rib, st, now)
        over = {f for f, t in st.llgr.items() if t <= now}
        if over:
            # RFC 9494 §4.2: the long-lived stale time is over, the routes go.
            rib._sweep(st, over)
            st.stale -= over
            for f in over:
                del st.llgr[f]
    if rib.defer_deadline is not None and rib.defer_deadline <= now:
        _end_deferral(rib, set(rib.deferred))  # RFC 4724 §4.1 (b)


def _restart_time_over(rib: Rib, st: PeerState, now: float) -> None:
    """RFC 4724 §4.2: restart time (or stale-path time) over: stale routes go,
    except the families of a peer still down that negotiated LLGR, which
    enter the long-lived phase (RFC 9494 §4.2)."""
    st.stale_deadline = None
    short = st.stale - st.llgr.keys()
    f = st.facts
    llgr = set() if st.up or f is None else {x for x in short if f.llgr.get(x, (0,))[0] > 0}
    rib._sweep(st, short - llgr)
    st.stale -= short - llgr
    _start_llgr(rib, st, llgr, now)


def _start_llgr(rib: Rib, st: PeerState, families: set[Family], now: float) -> None:
    """RFC 9494 §4.2: the peer's stale routes of ``families`` become long-lived
    stale: NO_LLGR ones go, the others carry LLGR_STALE from now on."""
    facts = st.facts
    if not families or facts is None:
        return
    src = st.source
    for fam in families:
        st.llgr[fam] = now + facts.llgr[fam][0]
        gen = src.gens.get(fam, 0)
        by_path: dict[Path, list[bytes]] = {}
        for k, e in rib.loc[fam].items():
            for p in (e,) if isinstance(e, Path) else e.paths:
                if p.source is src and p.gen < gen:
                    by_path.setdefault(p, []).append(k)
        for p, keys in by_path.items():
            if _NO_LLGR in p.attrs.communities:
                rib._withdraw(st, fam, p.slot, keys)
            elif not p.llgr:
                rib._announce(st, fam, _llgr_stale(p, rib.settings.default_local_pref), keys)


def _llgr_stale(p: Path, default_local_pref: int) -> Path:
    """A copy of stale path ``p`` with LLGR_STALE (RFC 9494 §4.2), still of its
    old generation, so End-of-RIB or the long-lived timer sweeps it. Not interned
    among the source's current paths: a fresh UPDATE never finds it."""
    attrs = p.attrs.replace(communities=tuple(sorted((*p.attrs.communities, _LLGR_STALE))))
    cost = p.igp_cost if p.eligible else None
    q = Path(p.slot, attrs, p.family, default_local_pref, cost, p.since)
    q.gen = p.gen
    return q


def check_deferral(rib: Rib, now: float) -> None:
    """End the deferral of every family whose peers have all sent End-of-RIB (RFC 4724 §4.1)."""
    done = {f for f in rib.deferred if _family_ready(rib, f)}
    if done:
        _end_deferral(rib, done)


def _family_ready(rib: Rib, fam: Family) -> bool:
    """RFC 4724 §4.1 (a): End-of-RIB for ``fam`` from all peers, "excluding the ones
    that do not advertise the graceful restart capability or the ones with the
    Restart State bit set"; a configured peer not up yet is still awaited."""
    for st in rib.peers.values():
        if fam not in st.policy.families:
            continue
        f = st.facts
        if not st.up or f is None:
            return False
        if not f.does_gr or f.gr_restarting or fam not in f.families or fam in st.disabled:
            continue
        if fam not in st.eor_received:
            return False
    return True


def _end_deferral(rib: Rib, families: set[Family]) -> None:
    """Select ``families`` now: every prefix goes to the groups and the FIB.

    RFC 4724 §4.1: the routes go out first, then our End-of-RIB. A woken
    session pulls at once (within ``wake``), and a member whose group has
    nothing dirty sends End-of-RIB; so the table reaches the groups (the
    flush) before any member is woken. Woken earlier, a member sent
    End-of-RIB ahead of our routes: the peer swept our stale routes and got
    them back a moment later, deleting and re-adding them in its kernel."""
    rib.deferred -= families
    groups = [g for g in rib.groups.values() if g.family in families]
    for fam in families:
        # Every prefix, and nothing was sent while deferred.
        rib._batches[fam].start_over(dict(rib.loc[fam]))
    for g in groups:
        # Entries noted while deferred may be outdated: the current ones
        # (or None for prefixes gone since) reach the groups at the flush.
        g.reset_dirty(g.dirty)
    rib.flush()
    for g in groups:
        for m in g.members:  # wake even with an empty table: our End-of-RIB
            m.idle = False
            rib.wake(m.peer_key)
    if not rib.deferred:
        rib.defer_deadline = None
        if rib.on_converged is not None:
            rib.on_converged()


def _preserved(facts: SessionFacts, family: Family) -> bool:
    """The F bit of the family in the peer's new OPEN: graceful restart's or
    long-lived graceful restart's (RFC 4724 §4.2, RFC 9494 §4.2)."""
    return facts.gr_families.get(family, False) or facts.llgr.get(family, (0, False))[1]
