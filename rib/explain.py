"""Why the RIB sends a prefix to a peer or not, and why it took a peer's path or not.

The read side of ``podbgp explain``: for one prefix, each peer gets an
``ExportVerdict`` naming the first rule of ``rib.export.Exporter`` that stops
the best path on its way to that peer (or ``SENT``), the policy rule that
decided (``rib.policy.Policy.decide``), and what its Adj-RIB-Out actually
holds. ``import_verdict`` says the same of a path a peer sent us, when soft
reconfiguration kept it.

``Exporter.out`` stays the one fast answer; the steps here are its readable
twin, in its order, and tests/property/test_rib_explain.py holds them to it:
whenever a step here stops a path, ``out`` gives nothing for it. The last rule
(a next hop the session cannot carry, RFC 8950/RFC 2545) is read from ``out``
itself, since only the exporter knows the session's next-hop addresses.

Built on demand for one prefix, never on the hot path; only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family, WellKnownCommunity
from rib.adjout import PlainGroup
from rib.core import Rib
from rib.export import Exporter, ExportMode, kind_of_source
from rib.path import Path, describe_attrs
from rib.peer import PeerState
from rib.policy import NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED, Decision
from rib.reflect import Kind, should_advertise

__all__ = ["ExportStep", "ExportVerdict", "export_step", "export_verdicts", "import_verdict"]

_LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)


class ExportStep(StrEnum):
    """Where a route stops on its way to one peer (``SENT``: it does not)."""

    SENT = "sent"
    SESSION_DOWN = "session-down"
    FAMILY = "family-not-negotiated"
    NO_ROUTE = "no-best-path"
    DRAINED = "withdraw-all"  # podbgp drain, RFC 8326: everything withdrawn
    NO_ADVERTISE = "no-advertise"  # RFC 1997
    NO_EXPORT = "no-export"  # RFC 1997, towards eBGP
    LLGR_STALE = "llgr-stale"  # RFC 9494 §4.3: only to LLGR-capable peers
    SPLIT_HORIZON = "learned-from-this-peer"
    IBGP_RULE = "ibgp-not-reflected"  # RFC 4271 §9.2, RFC 4456 §6
    POLICY = "export-policy"
    NEXT_HOP = "next-hop-unusable"  # the session cannot carry it (RFC 8950, RFC 2545)


_WHY = {
    ExportStep.SENT: "sent",
    ExportStep.SESSION_DOWN: "the session is not Established",
    ExportStep.FAMILY: "the session does not carry this address family",
    ExportStep.NO_ROUTE: "the RIB has no usable path for this prefix",
    ExportStep.DRAINED: "the node is drained (podbgp drain): every route is withdrawn",
    ExportStep.NO_ADVERTISE: "NO_ADVERTISE community (RFC 1997)",
    ExportStep.NO_EXPORT: "NO_EXPORT community and this is an eBGP peer (RFC 1997)",
    ExportStep.LLGR_STALE: "LLGR-stale route and the peer did not advertise LLGR (RFC 9494 §4.3)",
    ExportStep.SPLIT_HORIZON: "the best path was learned from this peer",
    ExportStep.IBGP_RULE: "an iBGP route is not passed to an iBGP peer unless reflected"
    " (RFC 4271 §9.2, RFC 4456 §6)",
    ExportStep.POLICY: "the export policy rejects it",
    ExportStep.NEXT_HOP: "no next hop this session can carry (RFC 8950, RFC 2545)",
}


def export_step(exporter: Exporter, path: Path, key: bytes) -> tuple[ExportStep, Decision | None]:
    """The first rule of ``exporter`` that stops ``path`` for ``key`` (``SENT`` if none),
    and the policy's decision when the policy was reached."""
    if exporter.mode is ExportMode.WITHDRAW_ALL:
        return ExportStep.DRAINED, None
    comms = path.attrs.communities
    if NO_ADVERTISE in comms:
        return ExportStep.NO_ADVERTISE, None
    if exporter.dst is Kind.EBGP and (NO_EXPORT in comms or NO_EXPORT_SUBCONFED in comms):
        return ExportStep.NO_EXPORT, None
    if not exporter.llgr and _LLGR_STALE in comms:
        return ExportStep.LLGR_STALE, None
    if not should_advertise(kind_of_source(path), exporter.dst, exporter.reflector):
        return ExportStep.IBGP_RULE, None
    decision = exporter.policy.decide(
        exporter.family, key, path.attrs, local=path.local, peer=path.source.address
    )
    if not decision.accepted:
        return ExportStep.POLICY, decision
    if exporter.out(path, key) is None:
        return ExportStep.NEXT_HOP, decision
    return ExportStep.SENT, decision


@dataclass(frozen=True, slots=True)
class ExportVerdict:
    """One peer's answer for one prefix: where the best path stops, and what was sent."""

    peer: str
    step: ExportStep
    policy: Decision | None
    sent: tuple[dict[str, Any], ...]  # the Adj-RIB-Out's rows for the prefix (ADD-PATH: several)

    @property
    def advertised(self) -> bool:
        return bool(self.sent)

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "step": str(self.step),
            "why": _WHY[self.step],
            "policy": None if self.policy is None else self.policy.to_json(),
            "advertised": self.advertised,
            "sent": list(self.sent),
        }


def _sent_rows(st: PeerState, family: Family, key: bytes) -> tuple[dict[str, Any], ...]:
    m = st.members.get(family)
    if not st.up or m is None or m.group is None:
        return ()
    value = m.group.told().get(key, m.source)
    if value is None:
        return ()
    pairs = [(0, value)] if isinstance(value, PathAttributes) else list(value)
    return tuple({"path_id": pid, **describe_attrs(a, family)} for pid, a in pairs)


def _verdict(rib: Rib, name: str, st: PeerState, family: Family, key: bytes) -> ExportVerdict:
    sent = _sent_rows(st, family, key)
    if not st.up:
        return ExportVerdict(name, ExportStep.SESSION_DOWN, None, sent)
    m = st.members.get(family)
    if family not in st.families or m is None or m.group is None:
        return ExportVerdict(name, ExportStep.FAMILY, None, sent)
    best = rib.best(family, key)
    if best is None:
        return ExportVerdict(name, ExportStep.NO_ROUTE, None, sent)
    if best.source is st.source and isinstance(m.group, PlainGroup):
        # Only plain groups keep a peer's own routes from it; the tabled ones send them
        # and leave them to the peer's loop checks (rib.adjout.tabled).
        return ExportVerdict(name, ExportStep.SPLIT_HORIZON, None, sent)
    step, decision = export_step(m.group.exporter, best, key)
    return ExportVerdict(name, step, decision, sent)


def export_verdicts(rib: Rib, family: Family, key: bytes) -> list[ExportVerdict]:
    """Every configured peer's verdict on the prefix ``key``, in peer order."""
    return [_verdict(rib, name, st, family, key) for name, st in sorted(rib.peers.items())]


def import_verdict(rib: Rib, peer: str, family: Family, key: bytes) -> dict[str, Any]:
    """What ``peer`` sent for ``key`` and whether its import policy took it.

    Needs the pre-policy copy (``soft_reconfiguration``); without it only the
    accepted paths are known (``rib.show.received``)."""
    st = rib.peers[peer]
    if not st.policy.soft_reconfiguration:
        return {"kept": False, "why": "pre-policy routes are not kept (soft_reconfiguration)"}
    rows = []
    add_path = family in st.pre_add_path
    for k, attrs in st.pre_policy.get(family, {}).items():
        path_id, pkey = (int.from_bytes(k[:4], "big"), k[4:]) if add_path else (0, k)
        if pkey != key:
            continue
        decision = st.policy.import_policy.decide(
            family, key, attrs, local=False, peer=st.policy.address
        )
        rows.append({
            "path_id": path_id,
            **describe_attrs(attrs, family),
            "import": decision.to_json(),
        })  # fmt: skip
    return {"kept": True, "paths": rows}
