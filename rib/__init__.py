"""rib — routes, policy, best-path selection and what to tell each peer.

Parts and data flow (DESIGN.md: ``bgp/ ──updates──► rib/ ──► bgp/ (peers)``)::

    UPDATE (bgp.wire.Update, per batch)
      │  rib.adapter        session events → Rib calls (the only module that knows bgp.speaker)
      ▼
    Rib.receive             loop checks (RFC 4271 §9.1.2, RFC 4456 §8) + import policy,
      │                     once per attribute set → one interned Path (rib.path)
      ▼
    Loc-RIB  loc[family]    prefix key → Path | Ranked (all candidates; doubles as the
      │                     post-policy Adj-RIB-In); Ranked from rib.bestpath (RFC 4271 §9.1)
      ▼  Rib.flush          the batch (rib.batch: new prefixes in runs, withdrawals, or
      │                     prefix → new entry and the entry before) to every update
      │                     group; FIB callback
    UpdateGroup (rib.adjout)  export rules (rib.export, rib.reflect) + export policy;
      │                     Adj-RIB-Out = Loc-RIB as of the group's last build (a table
      │                     of its own only for ADD-PATH and prefix-dependent export);
      │                     UPDATEs encoded once per group when pulled
      ▼
    Member.pull             same bytes objects to every member of a group

Modules: ``settings`` (typed settings), ``policy`` ([[policy]] engine),
``path`` (route model), ``bestpath`` (decision process), ``batch`` (a batch's
changes, typed by shape), ``reflect`` (RFC 4456
rules as pure functions), ``export`` (eBGP/iBGP attribute rules, the RFC 8326
graceful-shutdown export modes of ``podbgp drain``), ``adjout``
(update groups), ``core`` (the ``Rib``: tables, graceful restart RFC 4724,
long-lived graceful restart RFC 9494,
enhanced route refresh RFC 7313, max-prefix RFC 4486, ADD-PATH RFC 7911),
``show`` (``podbgp show routes``), ``adapter`` (session sink/pull glue),
``heap`` (glibc mmap threshold pinned for the big table dicts).

On import, a route is ignored when its AS_PATH loops (RFC 4271 §9.1.2), it
loops through reflection (RFC 4456 §8), or its next hop is one of our own
addresses (RFC 4271 §6.3); a family disabled by RFC 7606 AFI/SAFI disable
stays ignored for the rest of that session (RFC 4760 §7).
``Rib.advertised(peer)`` counts what each peer is told, per family, without a scan.
"""

from rib.bestpath import STEPS, Ranked, rank
from rib.core import PeerState, Rib
from rib.path import Path, Source
from rib.policy import Policy, PolicyError, Verdict, builtin
from rib.settings import PeerPolicy, RibSettings, SessionFacts

__all__ = [
    "STEPS",
    "Path",
    "PeerPolicy",
    "PeerState",
    "Policy",
    "PolicyError",
    "Ranked",
    "Rib",
    "RibSettings",
    "SessionFacts",
    "Source",
    "Verdict",
    "builtin",
    "rank",
]
