"""Route reflection (RFC 4456) and the iBGP/eBGP advertisement rules, as pure functions.

``should_advertise(src, dst, reflector)`` says whether a best path learned
from a peer of kind ``src`` may be sent to a peer of kind ``dst``
(RFC 4271 §9.2 and RFC 4456 §6):

- locally originated and eBGP-learned routes go to every peer;
- iBGP-learned routes never go to iBGP peers (RFC 4271 §9.2: full mesh),
  unless this node is a route reflector (RFC 4456 §6):
  from a client → to clients and non-clients; from a non-client → to clients only;
- to eBGP peers everything goes (subject to policy).

``reflect_attrs`` adds ORIGINATOR_ID (if absent) and prepends the cluster id
to CLUSTER_LIST (RFC 4456 §8); ``reflection_loop`` is the receive-side check
of the same section; ``as_path_loop`` the AS_PATH check of RFC 4271 §9.1.2.
"""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv4Address

from bgp.wire.attributes import PathAttributes

__all__ = ["Kind", "as_path_loop", "reflect_attrs", "reflection_loop", "should_advertise"]


class Kind(IntEnum):
    """Where a route came from, or where it goes."""

    LOCAL = 0
    EBGP = 1
    CLIENT = 2  # iBGP peer that is our route-reflector client
    NONCLIENT = 3  # any other iBGP peer


def should_advertise(src: Kind, dst: Kind, reflector: bool) -> bool:
    """RFC 4271 §9.2 / RFC 4456 §6: may a ``src`` route be sent to a ``dst`` peer?"""
    if dst is Kind.EBGP or src in (Kind.LOCAL, Kind.EBGP):
        return True
    if not reflector:
        return False  # RFC 4271 §9.2: iBGP routes are not passed to iBGP peers
    if src is Kind.CLIENT:
        return True  # RFC 4456 §6 (2): to non-clients and clients
    return dst is Kind.CLIENT  # RFC 4456 §6 (1): non-client routes to clients only


def reflect_attrs(
    attrs: PathAttributes, cluster_id: IPv4Address, originator_id: IPv4Address
) -> PathAttributes:
    """The attributes a reflected route carries (RFC 4456 §8).

    ORIGINATOR_ID is set to the router id of the route's originator in the AS
    (the iBGP peer it came from) unless already present; the cluster id is
    prepended to CLUSTER_LIST.
    """
    oid = attrs.originator_id if attrs.originator_id is not None else originator_id
    return attrs.replace(originator_id=oid, cluster_list=(cluster_id, *attrs.cluster_list))


def reflection_loop(
    attrs: PathAttributes, router_id: IPv4Address, cluster_id: IPv4Address | None
) -> str | None:
    """Why an iBGP route must be ignored (RFC 4456 §8), or None.

    A route carrying our own router id as ORIGINATOR_ID, or our cluster id in
    CLUSTER_LIST, has looped.
    """
    if attrs.originator_id is not None and attrs.originator_id == router_id:
        return "ORIGINATOR_ID is our router id (RFC 4456 §8)"
    if cluster_id is not None and cluster_id in attrs.cluster_list:
        return "our cluster id in CLUSTER_LIST (RFC 4456 §8)"
    return None


def as_path_loop(attrs: PathAttributes, local_as: int, allowed: int = 0, also: int = 0) -> bool:
    """True if the AS_PATH holds ``local_as`` (or ``also``, a per-peer local AS, RFC 7705)
    more than ``allowed`` times: RFC 4271 §9.1.2 excludes a route whose AS_PATH holds our
    AS; ``allowed`` relaxes that for topologies that reuse one AS on several sites (FRR's
    allowas-in). Every occurrence counts, in AS_SEQUENCE and AS_SET alike."""
    own = (local_as, also) if also and also != local_as else (local_as,)
    seen = 0
    for _, asns in attrs.as_path or ():
        seen += sum(1 for a in asns if a in own)
        if seen > allowed:
            return True
    return False
