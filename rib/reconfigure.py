"""Policy changes at run time: a peer's new policies, or a new export mode, without a reset.

A new import policy is applied to the peer's stored pre-policy routes (soft
reconfiguration) or to the routes it re-sends after the caller's
ROUTE-REFRESH (RFC 2918), where a route the new policy rejects withdraws the
peer's earlier path; a new export policy, or a new export mode (RFC 8326
drain and undrain), moves the peer to another update group and sends only
the difference (``rib.adjout``, ``Member.switch``).

Plain functions over a ``Rib`` (``Rib.set_policy`` and ``Rib.set_export_mode``
call them); routes change only through the Rib's own import steps, so the
batch and the update groups see them like any other change. The caller
flushes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from rib.export import ExportMode
from rib.settings import PeerPolicy, SessionFacts

if TYPE_CHECKING:
    from rib.adjout import Member
    from rib.core import Rib
    from rib.peer import PeerState

__all__ = ["change_export_mode", "change_policy"]


def change_export_mode(rib: Rib, mode: ExportMode) -> None:
    """Move every member to the update group of ``mode`` (the mode is part of
    every group's key), so each peer gets the difference."""
    rib.export_mode = mode
    for st in rib.peers.values():
        if st.up and st.facts is not None:
            for fam, m in list(st.members.items()):
                _regroup(rib, st, fam, m, st.facts)


def change_policy(rib: Rib, st: PeerState, policy: PeerPolicy) -> None:
    """Give a known peer ``policy``; identity (address, AS, RR client) may not change."""
    old = st.policy
    if (policy.key, policy.asn, policy.route_reflector_client) != (
        old.key,
        old.asn,
        old.route_reflector_client,
    ):
        raise ValueError(f"peer {old.key}: address, AS or RR-client role changed; re-add the peer")
    st.policy = policy
    if (policy.import_policy, policy.soft_reconfiguration) != (
        old.import_policy,
        old.soft_reconfiguration,
    ):
        _reimport(rib, st)
    facts = st.facts
    if st.up and facts is not None:
        for fam, m in list(st.members.items()):
            _regroup(rib, st, fam, m, facts)


def _reimport(rib: Rib, st: PeerState) -> None:
    """Apply the (new) import policy to stored pre-policy routes (soft reconfiguration)."""
    st.imports.clear()  # verdicts of the old policy
    if not st.policy.soft_reconfiguration:
        st.pre_policy.clear()
        st.pre_add_path.clear()
        return
    if not st.up or st.over_limit:
        return
    for fam, pre in st.pre_policy.items():
        by_attrs: dict[PathAttributes, list[bytes]] = {}
        for nlri, a in pre.items():
            lst = by_attrs.get(a)
            if lst is None:
                by_attrs[a] = [nlri]
            else:
                lst.append(nlri)
        for a, nlris in by_attrs.items():
            if fam in st.pre_add_path:
                rib._receive_add_path(st, fam, (), a, nlris)
            else:
                rib._apply(st, fam, a, nlris)


def _regroup(rib: Rib, st: PeerState, fam: Family, m: Member, facts: SessionFacts) -> None:
    """Move ``m`` to the update group its (new) export policy belongs to."""
    old = m.group
    gkey = rib._group_key(st, fam, facts)
    if old is None or old.key == gkey:
        return
    new = rib.groups.get(gkey)
    fresh = new is None
    if new is None:
        new = rib._new_group(st, fam, facts, gkey)
    if fam in rib.deferred:
        # Nothing was sent yet (RFC 4724 §4.1): an ordinary join.
        rib._leave(old, m)
        new.join(m)
    else:
        if fresh:
            new.prime()  # know what the new policy sends before diffing
        before = old.told_for_switch(m)
        m.switch(new, before)
        if not old.members and rib.groups.get(old.key) is old:
            del rib.groups[old.key]
    m.idle = False
    rib.wake(st.policy.key)
