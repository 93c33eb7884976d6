"""A readable reference for what the update groups send (tests only).

``expected(rib, peer, family)`` recomputes, from the Loc-RIB alone, what one
peer should have been told: prefix (with ADD-PATH, ``prefix#path-id``) ->
outbound attributes. It knows nothing of update groups, dirty sets, kept
batches or chunks: every rule is written out once, plainly, so the fast
paths of ``rib.adjout`` and ``rib.core`` can be checked against it
(``tests/property/test_rib_outbound.py``), the way the codec's fast paths
are checked against ``decode_update``.

While selection is deferred for the family (RFC 4724 §4.1) nothing is sent.
Otherwise the rules, in the order they apply to a candidate path for one prefix:

1. Which paths: without ADD-PATH the best path (``Rib.best``: eligible, RFC
   4271 §9.1.2.1); with ADD-PATH (RFC 7911 §3) the eligible paths in ranked
   order, the first ``add_path_send`` of them that export allows (-1: all).
2. Split horizon: a route is not sent back to the peer it came from. Only
   where its group computes attributes per path alone (no ADD-PATH and an
   export policy that does not look at prefixes); elsewhere the peer's own
   loop checks drop it (RFC 4271 §9.1.2, RFC 4456 §8).
3. RFC 1997: NO_ADVERTISE goes nowhere; NO_EXPORT and NO_EXPORT_SUBCONFED
   not to eBGP peers.
4. RFC 4271 §9.2 and RFC 4456 §6: iBGP-learned routes go to iBGP peers only
   through a route reflector — a client's to everyone, a non-client's to
   clients only.
5. The peer's export policy, evaluated with the prefix.
6. To eBGP (RFC 4271 §5.1): confederation segments dropped (RFC 5065 §5),
   our AS prepended, LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST removed, MED
   kept only when the policy set it (or the route is ours), next hop self
   unless kept (policy ``keep`` or an address, or ``keep_original_next_hop``).
7. To iBGP: LOCAL_PREF present (§5.1.5), reflected routes carry
   ORIGINATOR_ID and our cluster id (RFC 4456 §8), next hop self when the
   policy says so or the route has none.
8. A next hop the session cannot carry becomes next hop self, or the route
   is not sent.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from bgp.wire import Family, PathAttributes
from bgp.wire.attributes import prepend
from bgp.wire.prefix import key_to_str
from rib import Rib
from rib.bestpath import Ranked
from rib.core import PeerState
from rib.path import Path
from rib.policy import NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED

__all__ = ["expected", "outbound", "paths_to_send"]

Address = IPv4Address | IPv6Address
CONFED_SEGMENTS = (3, 4)  # AS_CONFED_SEQUENCE, AS_CONFED_SET (RFC 5065 §3)


def expected(rib: Rib, peer: str, family: Family) -> dict[str, PathAttributes]:
    """What ``peer`` should have been told of ``family``, recomputed from the Loc-RIB."""
    st = rib.peers[peer]
    told: dict[str, PathAttributes] = {}
    if family in rib.deferred:
        return told  # RFC 4724 §4.1: nothing is sent before selection is done
    for key in rib.loc[family]:
        name = key_to_str(family, key)
        for tx_id, attrs in paths_to_send(rib, st, family, key):
            told[name if tx_id is None else f"{name}#{tx_id}"] = attrs
    return told


def add_path_send(st: PeerState, family: Family) -> int:
    """How many paths per prefix go to this peer: 0 without ADD-PATH, N, or -1 all.

    Whether path identifiers are sent is settled by the session's OPENs (RFC 7911
    §4): with them, a configured 0 (changed at run time) sends the best path alone."""
    if st.facts is None or family not in st.facts.add_path_tx:
        return 0
    return st.policy.add_path_send or 1


def paths_to_send(
    rib: Rib, st: PeerState, family: Family, key: bytes
) -> list[tuple[int | None, PathAttributes]]:
    """(ADD-PATH id or None, outbound attributes) of each path sent for ``key``."""
    limit = add_path_send(st, family)
    if limit == 0:
        best = rib.best(family, key)
        if best is None:
            return []
        policy = st.policy.export_policy
        if best.source is st.source and not policy.prefix_dependent:
            return []  # split horizon
        attrs = outbound(rib, st, family, key, best)
        return [] if attrs is None else [(None, attrs)]
    sent: list[tuple[int | None, PathAttributes]] = []
    for path in ranked_paths(rib, family, key):
        if not path.eligible or (limit > 0 and len(sent) >= limit):
            break
        attrs = outbound(rib, st, family, key, path)
        if attrs is not None:
            sent.append((path.slot.tx_id, attrs))
    return sent


def ranked_paths(rib: Rib, family: Family, key: bytes) -> tuple[Path, ...]:
    """Every path of ``key`` in the Loc-RIB, best first (ineligible ones last)."""
    entry = rib.loc[family].get(key)
    if entry is None:
        return ()
    if isinstance(entry, Ranked):
        return entry.paths
    return (entry,)


def peer_kind(st: PeerState) -> str:
    """ "ebgp", "client" (an iBGP route-reflector client) or "ibgp"."""
    if st.source.ebgp:
        return "ebgp"
    return "client" if st.source.rr_client else "ibgp"


def source_kind(path: Path) -> str:
    """ "local", "ebgp", "client" or "ibgp": where the path was learned."""
    src = path.source
    if src.local:
        return "local"
    if src.ebgp:
        return "ebgp"
    return "client" if src.rr_client else "ibgp"


def may_send(src: str, dst: str, reflector: bool) -> bool:
    """RFC 4271 §9.2 and RFC 4456 §6 (rule 4 of the module docstring)."""
    if dst == "ebgp" or src in ("local", "ebgp"):
        return True
    if not reflector:
        return False
    return src == "client" or dst == "client"


def next_hop_self(st: PeerState, family: Family) -> tuple[Address, ...]:
    """Our address on the session for ``family``'s routes (none if we have none)."""
    facts = st.facts
    assert facts is not None
    local = facts.local_address
    if family is Family.IPV4_UNICAST:
        return (local,) if isinstance(local, IPv4Address) else ()
    if facts.local_address6 is not None:
        return (facts.local_address6,)
    return (local,) if isinstance(local, IPv6Address) else ()


def outbound(
    rib: Rib, st: PeerState, family: Family, key: bytes, path: Path
) -> PathAttributes | None:
    """The attributes ``path`` is sent with to ``st``'s peer for ``key``, or None."""
    dst = peer_kind(st)
    comms = path.attrs.communities
    if NO_ADVERTISE in comms:
        return None
    if dst == "ebgp" and (NO_EXPORT in comms or NO_EXPORT_SUBCONFED in comms):
        return None
    src = source_kind(path)
    if not may_send(src, dst, rib.reflector):
        return None
    verdict = st.policy.export_policy.evaluate(
        family,
        key,
        path.attrs,
        local=path.local,
        peer=path.source.address,
        local_as=rib.settings.local_as,
    )
    if verdict is None:
        return None
    nh_self = next_hop_self(st, family)
    attrs = verdict.attrs
    directive = verdict.next_hop
    explicit = isinstance(directive, IPv4Address | IPv6Address)
    if dst == "ebgp":
        med = attrs.med
        if med is not None and not path.local and med == path.attrs.med:
            med = None  # RFC 4271 §5.1.4: a MED learned from another AS stays there
        segments = tuple(s for s in attrs.as_path or () if s[0] not in CONFED_SEGMENTS)
        attrs = attrs.replace(
            local_pref=None,
            originator_id=None,
            cluster_list=(),
            med=med,
            as_path=prepend(segments, rib.settings.local_as),
        )
        keep = explicit or directive == "keep"
        if st.policy.keep_original_next_hop and directive != "self" and path.nexthop:
            keep = True
        if not keep and nh_self:
            attrs = attrs.with_next_hop(family, *nh_self)
    else:
        if attrs.local_pref is None:
            attrs = attrs.replace(local_pref=path.lp)
        if src in ("client", "ibgp"):
            originator = attrs.originator_id or IPv4Address(path.source.bgp_id)
            attrs = attrs.replace(
                originator_id=originator, cluster_list=(rib.cluster_id, *attrs.cluster_list)
            )
        wants_self = directive == "self" or (not path.nexthop and not explicit)
        if wants_self and nh_self:
            attrs = attrs.with_next_hop(family, *nh_self)
    if not carries(family, attrs):
        if nh_self:
            attrs = attrs.with_next_hop(family, *nh_self)
        if not carries(family, attrs):
            return None
    return attrs


def carries(family: Family, attrs: PathAttributes) -> bool:
    """True if the next hop is of the route's own address family."""
    nh = attrs.nexthop(family)
    if family is Family.IPV4_UNICAST:
        return isinstance(nh, IPv4Address)
    return isinstance(nh, IPv6Address)
