"""Config → the parts' own settings: one place that maps `podbgp.config` onto `rib`.

Each function takes validated, typed config values and builds the typed value a
lower layer takes, with no text in between (podbgp may import downward; the
parts never import podbgp).
"""

from __future__ import annotations

from bgp.wire.constants import Family, Origin
from podbgp import config
from rib.policy import Match as RibMatch
from rib.policy import Policy as RibPolicy
from rib.policy import Rule as RibRule
from rib.policy import SetActions as RibSet
from rib.policy import neighbor_condition, prefix_condition

FAMILIES = {config.Family.IPV4: Family.IPV4_UNICAST, config.Family.IPV6: Family.IPV6_UNICAST}
ORIGINS = {o: Origin[o.name] for o in config.Origin}


def rib_policy(p: config.Policy) -> RibPolicy:
    """A `[[policy]]` as the RIB evaluates it (first matching rule wins)."""
    return RibPolicy(
        p.name,
        tuple(_rule(r) for r in p.rules),
        default_accept=p.default_action == config.PolicyAction.ACCEPT,
    )


def _rule(r: config.Rule) -> RibRule:
    return RibRule(_match(r.match), r.action == config.PolicyAction.ACCEPT, _set(r.set))


def _match(m: config.Match) -> RibMatch:
    any_length = RibMatch()
    prefix, ge, le = (
        (None, any_length.ge, any_length.le)
        if m.prefix is None
        else prefix_condition(m.prefix, m.ge, m.le)
    )
    return RibMatch(
        prefix=prefix,
        ge=ge,
        le=le,
        communities=() if m.community is None else (m.community.packed,),
        large_communities=() if m.large_community is None else (_large(m.large_community),),
        as_path=m.as_path,
        family=None if m.family is None else FAMILIES[m.family],
        neighbor=None if m.neighbor is None else neighbor_condition(m.neighbor),
        origin=None if m.origin is None else int(ORIGINS[m.origin]),
    )


def _set(s: config.SetActions) -> RibSet:
    return RibSet(
        local_pref=s.local_pref,
        med=s.med,
        community_add=tuple(c.packed for c in s.community_add),
        community_remove=tuple(c.packed for c in s.community_remove),
        large_community_add=tuple(_large(c) for c in s.large_community_add),
        large_community_remove=tuple(_large(c) for c in s.large_community_remove),
        as_path_prepend=s.as_path_prepend,
        next_hop=s.next_hop,
    )


def _large(c: config.LargeCommunity) -> tuple[int, int, int]:
    return (c.global_admin, c.local1, c.local2)
