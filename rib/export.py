"""What a path looks like on its way out to one kind of peer (RFC 4271 §5.1, RFC 4456).

An ``Exporter`` belongs to one update group: every member shares the export
policy, the peer kind (eBGP, RR client, iBGP non-client), the next-hop
behaviour and the address used as "self", so one outbound attribute set per
path serves them all. Results are cached per ``Path`` (when the policy does
not look at prefixes) and interned, so equal outbound sets are one object and
are encoded once.

Rules applied, in order:
- NO_ADVERTISE routes go nowhere; NO_EXPORT and NO_EXPORT_SUBCONFED routes
  not to eBGP peers (RFC 1997); LLGR_STALE routes only to peers that
  advertised the long-lived graceful restart capability (RFC 9494 §4.3; the
  optional partial-deployment exception of §4.6 is not implemented);
- the source/destination rule of ``rib.reflect.should_advertise``;
- the export policy (``rib.policy``);
- towards eBGP (RFC 4271 §5.1.2 to §5.1.5): our AS prepended, next hop self
  (unless ``keep_original_next_hop`` or the policy says ``keep``), LOCAL_PREF,
  ORIGINATOR_ID and CLUSTER_LIST removed, a MED learned from another AS removed
  (§5.1.4) unless the policy set one;
- towards iBGP: LOCAL_PREF always present (§5.1.5), next hop kept unless the
  policy says ``self`` or the route is ours without one; reflected routes get
  ORIGINATOR_ID/CLUSTER_LIST (RFC 4456 §8);
- the node's ``ExportMode`` last: while it drains (``podbgp drain``), every
  route carries GRACEFUL_SHUTDOWN (RFC 8326 §4.2), and towards iBGP also
  LOCAL_PREF 0, since an iBGP receiver takes LOCAL_PREF as sent rather than
  lowering it itself (RFC 8326 §4.1 puts that rule on eBGP sessions); once the
  traffic has moved, ``WITHDRAW_ALL`` withdraws everything before the sessions
  close.
"""

from __future__ import annotations

from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from bgp.wire.attributes import PathAttributes, next_hop_changes, prepend
from bgp.wire.constants import Family, WellKnownCommunity
from rib.path import Path
from rib.policy import NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED, Policy, Verdict
from rib.reflect import Kind, reflect_attrs, should_advertise

__all__ = ["ExportMode", "Exporter", "kind_of_source"]

Address = IPv4Address | IPv6Address
# "Not cached yet" (an object nothing else holds; typed as a cache value).
_MISS = PathAttributes()
_GSHUT = int(WellKnownCommunity.GRACEFUL_SHUTDOWN)
_LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)


class ExportMode(Enum):
    """What the node tells every peer (``Rib.set_export_mode``, ``podbgp drain``)."""

    NORMAL = "normal"
    GRACEFUL_SHUTDOWN = "graceful-shutdown"  # RFC 8326 §4.2: tagged, still announced
    WITHDRAW_ALL = "withdraw-all"  # drained: nothing, before the sessions close


_CONFED = frozenset({3, 4})  # AS_CONFED_SEQUENCE, AS_CONFED_SET (RFC 5065 §3)


def kind_of_source(path: Path) -> Kind:
    """The ``Kind`` of the source a path was learned from."""
    src = path.source
    if src.local:
        return Kind.LOCAL
    if src.ebgp:
        return Kind.EBGP
    return Kind.CLIENT if src.rr_client else Kind.NONCLIENT


class Exporter:
    """Outbound attributes for one update group (see module docstring)."""

    def __init__(
        self,
        family: Family,
        dst: Kind,
        policy: Policy,
        *,
        local_as: int,
        router_id: IPv4Address,
        cluster_id: IPv4Address | None,
        reflector: bool,
        next_hop_self: tuple[Address, ...],
        keep_next_hop: bool = False,
        mode: ExportMode = ExportMode.NORMAL,
        llgr: bool = False,
        extended_nexthop: bool = False,
    ) -> None:
        self.family = family
        self.dst = dst
        self.policy = policy
        self.local_as = local_as
        self.router_id = router_id
        self.cluster_id = cluster_id or router_id
        self.reflector = reflector
        self.nh_self = next_hop_self
        self.keep_nh = keep_next_hop
        self.mode = mode
        self.llgr = llgr  # the peers advertised LLGR: they may get LLGR_STALE routes
        self.ext_nh = extended_nexthop  # IPv4 routes may carry an IPv6 next hop (RFC 8950)
        self.per_prefix = policy.prefix_dependent
        self.cache: dict[Path, PathAttributes | None] = {}
        self._intern: dict[PathAttributes, PathAttributes] = {}

    def out(self, path: Path, key: bytes = b"") -> PathAttributes | None:
        """The attributes to send for ``path`` (for prefix ``key``), or None to withdraw."""
        if not self.per_prefix:
            hit = self.cache.get(path, _MISS)
            if hit is not _MISS:
                return hit
        res = self._compute(path, key)
        if not self.per_prefix:
            if len(self.cache) > 200_000:
                self.cache.clear()
            self.cache[path] = res
        return res

    def _compute(self, path: Path, key: bytes) -> PathAttributes | None:
        if self.mode is ExportMode.WITHDRAW_ALL:
            return None
        attrs = path.attrs
        comms = attrs.communities
        ebgp = self.dst is Kind.EBGP
        if comms and (
            NO_ADVERTISE in comms
            or (ebgp and (NO_EXPORT in comms or NO_EXPORT_SUBCONFED in comms))
            or (not self.llgr and _LLGR_STALE in comms)
        ):
            return None
        src = kind_of_source(path)
        if not should_advertise(src, self.dst, self.reflector):
            return None
        verdict = self.policy.evaluate(
            self.family,
            key,
            attrs,
            local=path.local,
            peer=path.source.address,
            local_as=self.local_as,
        )
        if verdict is None:
            return None
        out = self._ebgp(path, verdict) if ebgp else self._ibgp(path, src, verdict)
        if not self._fits(out):
            # A next hop the session cannot carry (an IPv6 next hop on an IPv4 route
            # without RFC 8950 extended next hop, an IPv4 one on an IPv6 route, another
            # link's link-local one, none at all for a kept local route): next hop
            # self, or do not advertise.
            out = self._self(out)
            if not self._fits(out):
                return None
        if self.mode is ExportMode.GRACEFUL_SHUTDOWN:
            out = self._graceful_shutdown(out)
        return self._intern.setdefault(out, out)

    def _graceful_shutdown(self, attrs: PathAttributes) -> PathAttributes:
        """RFC 8326 §4.2: tag the route; towards iBGP lower LOCAL_PREF to 0 as well."""
        changes: dict[str, Any] = {}
        if _GSHUT not in attrs.communities:
            changes["communities"] = tuple(sorted((*attrs.communities, _GSHUT)))
        if self.dst is not Kind.EBGP:
            changes["local_pref"] = 0
        return attrs.replace(**changes) if changes else attrs

    def _fits(self, attrs: PathAttributes) -> bool:
        nh = attrs.nexthop(self.family)
        if isinstance(nh, IPv6Address) and nh.is_link_local and nh not in self.nh_self:
            # RFC 2545 §3: a link-local next hop means something on its own link only.
            return False
        if self.family is Family.IPV4_UNICAST:
            return isinstance(nh, IPv4Address) or (self.ext_nh and isinstance(nh, IPv6Address))
        return isinstance(nh, IPv6Address)

    def _self(self, attrs: PathAttributes) -> PathAttributes:
        if not self.nh_self:
            return attrs
        return attrs.with_next_hop(self.family, *self.nh_self)

    def _ebgp(self, path: Path, verdict: Verdict) -> PathAttributes:
        attrs = verdict.attrs
        med_set = attrs.med is not None and (path.local or attrs.med != path.attrs.med)
        med = attrs.med if med_set else None
        # Every change is gathered first: one copy of the attribute set, not one per rule.
        changes: dict[str, Any] = {}
        if (
            attrs.local_pref is not None
            or attrs.originator_id is not None
            or attrs.cluster_list
            or attrs.med != med
        ):
            changes.update(local_pref=None, originator_id=None, cluster_list=(), med=med)
        segs = attrs.as_path or ()
        if any(t in _CONFED for t, _ in segs):
            # RFC 5065 §5: confederation segments never leave towards an eBGP peer.
            segs = tuple(g for g in segs if g[0] not in _CONFED)
        changes["as_path"] = prepend(segs, self.local_as)
        nh = verdict.next_hop
        keep = isinstance(nh, IPv4Address | IPv6Address) or (
            nh == "keep" or (self.keep_nh and nh != "self" and path.nexthop)
        )
        if not keep and self.nh_self:
            changes.update(next_hop_changes(self.family, self.nh_self))
        return attrs.replace(**changes)

    def _ibgp(self, path: Path, src: Kind, verdict: Verdict) -> PathAttributes:
        attrs = verdict.attrs
        if attrs.local_pref is None:
            attrs = attrs.replace(local_pref=path.lp)
        if src in (Kind.CLIENT, Kind.NONCLIENT):
            oid = IPv4Address(path.source.bgp_id)
            attrs = reflect_attrs(attrs, self.cluster_id, oid)
        nh = verdict.next_hop
        if nh == "self" or (not path.nexthop and not isinstance(nh, IPv4Address | IPv6Address)):
            return self._self(attrs)
        return attrs
