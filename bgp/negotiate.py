"""OPEN building, OPEN validation and capability negotiation (pure functions).

The codec (``bgp.wire.decode_open``) already rejects what is wrong in the OPEN
itself: version ≠ 4 (RFC 4271 §6.2, data = 2-octet version 4), hold time 1 or
2, BGP identifier 0 (RFC 6286 §2.1) and optional parameters other than
capabilities (RFC 5492 §4 → Unsupported Optional Parameter). What needs our
configuration is checked here, raising ``OpenMessageError``:

- peer AS (RFC 4271 §6.2 Bad Peer AS), the real AS being the 4-octet AS
  capability if sent (RFC 6793 §4.1); AS 0 (RFC 7607 §2); a 4-octet capability announcing
  AS_TRANS, or a 2-octet My AS other than AS_TRANS that disagrees with a
  capability AS below 65536, is also Bad Peer AS;
- BGP identifier equal to ours on an iBGP session (RFC 6286 §2.2);
- required capabilities (RFC 5492 §5 Unsupported Capability): podbgp needs
  at least one address family in common; the data lists the MP capabilities
  we offered.

``negotiate`` then turns both OPENs into a ``Negotiated`` record and the
session's ``CodecContext``: the common families (IPv4 unicast implied when the
peer sent no MP capability, RFC 4760 §8), 4-octet AS, ADD-PATH per family and
direction (RFC 7911 §4), extended message (RFC 8654), extended next hop (RFC
8950), graceful restart (RFC 4724), route refresh (RFC 2918) and enhanced route
refresh (RFC 7313), and the hold time: the smaller of the two, keepalive a
third of it unless configured lower (RFC 4271 §4.2, §10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bgp.errors import OpenMessageError, OpenSubcode
from bgp.settings import PeerSettings
from bgp.wire.capabilities import (
    FORWARDING_STATE,
    AddPathCapability,
    AddPathMode,
    Capability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
    GracefulRestartCapability,
    LongLivedGracefulRestartCapability,
    MultiprotocolCapability,
    RouteRefreshCapability,
    encode_capability,
)
from bgp.wire.constants import AFI_IPV4, AFI_IPV6, AS_TRANS, SAFI_UNICAST, Family
from bgp.wire.context import CodecContext
from bgp.wire.messages import Open

__all__ = ["LongLived", "Negotiated", "build_open", "negotiate", "validate_open"]


@dataclass(frozen=True, slots=True)
class LongLived:
    """One family of the peer's long-lived graceful restart capability (RFC 9494 §3):
    ``stale_time`` already capped by ours (0: we keep nothing long-lived), and its
    F bit (forwarding state preserved)."""

    family: Family
    stale_time: int
    forwarding: bool


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both OPENs agree on; ``ctx`` is the codec context of the session.

    ``peer_restart`` is the peer's graceful-restart capability (None if not
    sent, or if we do not do graceful restart with it): its restart time and
    which families kept forwarding state. ``graceful_notification``: both
    sides set the N bit (RFC 8538 §2), so NOTIFICATIONs other than Hard
    Reset end the session gracefully (``bgp.restart``). ``long_lived``: the
    peer's LLGR capability for the session's families, when graceful restart
    was negotiated with it (RFC 9494 §4.1; empty if it sent none). ``sent_open`` /
    ``received_open``: both OPENs as they were exchanged, for a BMP Peer Up (RFC 7854
    §4.10) and ``show peer``; not part of equality.
    """

    peer_as: int
    peer_router_id: IPv4Address
    hold_time: int
    keepalive: int
    families: frozenset[Family]
    ctx: CodecContext
    route_refresh: bool
    enhanced_route_refresh: bool
    peer_restart: GracefulRestartCapability | None
    add_path_rx: frozenset[Family]
    add_path_tx: frozenset[Family]
    graceful_notification: bool = False
    long_lived: tuple[LongLived, ...] = ()
    sent_open: Open | None = field(default=None, compare=False, repr=False)
    received_open: Open | None = field(default=None, compare=False, repr=False)

    @property
    def ebgp(self) -> bool:
        return self.ctx.ebgp

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``show peers --json``."""
        return {
            "hold_time": self.hold_time,
            "keepalive": self.keepalive,
            "families": sorted(f.name.lower() for f in self.families),
            "four_octet_as": self.ctx.as4,
            "extended_message": self.ctx.extended_message,
            "extended_nexthop": self.ctx.extended_nexthop_ipv4,
            "route_refresh": self.route_refresh,
            "enhanced_route_refresh": self.enhanced_route_refresh,
            "graceful_restart": self.peer_restart is not None,
            "graceful_notification": self.graceful_notification,
            "long_lived_graceful_restart": {
                ll.family.name.lower(): ll.stale_time for ll in self.long_lived
            },
            "add_path_rx": sorted(f.name.lower() for f in self.add_path_rx),
            "add_path_tx": sorted(f.name.lower() for f in self.add_path_tx),
        }


def build_open(local_as: int, router_id: str, peer: PeerSettings) -> Open:
    """Our OPEN for ``peer``: the capabilities its settings ask for (RFC 5492)."""
    caps: list[Capability] = [MultiprotocolCapability.for_family(f) for f in peer.families]
    if peer.route_refresh:
        caps += [RouteRefreshCapability(), EnhancedRouteRefreshCapability()]
    if peer.extended_message:
        caps.append(ExtendedMessageCapability())
    if peer.extended_nexthop and Family.IPV4_UNICAST in peer.families:
        caps.append(ExtendedNextHopCapability(((AFI_IPV4, SAFI_UNICAST, AFI_IPV6),)))
    if peer.graceful_restart:
        # RFC 4724 §3: after a restart, R set and F set for families whose
        # routes stayed in the kernel (podbgp keeps them for every family);
        # RFC 8538 §2: N when NOTIFICATIONs may end the session gracefully.
        fams = tuple((f.afi, f.safi, peer.restarting) for f in peer.families)
        n_bit = peer.graceful_notification
        caps.append(GracefulRestartCapability(peer.restart_time, peer.restarting, n_bit, fams))
        if peer.long_lived_stale_time:
            # RFC 9494 §3: every family, F as for graceful restart, our stale time.
            fbit = FORWARDING_STATE if peer.restarting else 0
            caps.append(LongLivedGracefulRestartCapability(tuple(
                (f.afi, f.safi, fbit, peer.long_lived_stale_time) for f in peer.families
            )))  # fmt: skip
    caps.append(FourOctetAsCapability(local_as))
    mode = peer.add_path.value
    if mode:
        caps.append(AddPathCapability(tuple((f.afi, f.safi, mode) for f in peer.families)))
    return Open.build(local_as, peer.hold_time, router_id, tuple(caps))


def _peer_as(msg: Open) -> int:
    """The sender's AS per RFC 6793 §4.1, or Bad Peer AS if the two fields disagree."""
    caps = msg.find(FourOctetAsCapability)
    if not caps:
        return msg.asn
    asn = caps[0].asn if isinstance(caps[0], FourOctetAsCapability) else msg.asn
    if asn == AS_TRANS:
        raise OpenMessageError(OpenSubcode.BAD_PEER_AS, reason="4-octet AS capability is AS_TRANS")
    if asn <= 0xFFFF and msg.asn != asn:
        raise OpenMessageError(
            OpenSubcode.BAD_PEER_AS, reason=f"My AS {msg.asn} but 4-octet AS {asn}"
        )
    if asn > 0xFFFF and msg.asn != AS_TRANS:
        raise OpenMessageError(
            OpenSubcode.BAD_PEER_AS, reason=f"My AS {msg.asn} is not AS_TRANS for AS {asn}"
        )
    return asn


def _families(msg: Open) -> frozenset[Family]:
    mps = [c for c in msg.capabilities if isinstance(c, MultiprotocolCapability)]
    if not mps:
        return frozenset({Family.IPV4_UNICAST})  # RFC 4760 §8: no MP capability
    fams = (Family.of(c.afi, c.safi) for c in mps)
    return frozenset(f for f in fams if f is not None)


def validate_open(msg: Open, local_as: int, router_id: str, peer: PeerSettings) -> int:
    """Check the peer's OPEN against our settings; return the peer's AS."""
    asn = _peer_as(msg)
    if asn == 0:
        # RFC 7607 §2: AS 0 as the peer's AS is Bad Peer AS, configured or not.
        raise OpenMessageError(OpenSubcode.BAD_PEER_AS, reason="peer AS 0 (RFC 7607)")
    if peer.asn and asn != peer.asn:
        raise OpenMessageError(
            OpenSubcode.BAD_PEER_AS, reason=f"peer AS {asn}, expected {peer.asn}"
        )
    if asn == local_as and msg.router_id == IPv4Address(router_id):
        raise OpenMessageError(
            OpenSubcode.BAD_BGP_IDENTIFIER,
            reason=f"iBGP peer uses our BGP identifier {router_id}",
        )
    if not _families(msg) & set(peer.families):
        offered = b"".join(
            encode_capability(MultiprotocolCapability.for_family(f)) for f in peer.families
        )
        raise OpenMessageError(
            OpenSubcode.UNSUPPORTED_CAPABILITY, offered, reason="no address family in common"
        )
    return asn


def _add_path(
    msg: Open, peer: PeerSettings, fams: frozenset[Family]
) -> tuple[frozenset[Family], frozenset[Family]]:
    """RFC 7911 §4: we receive path ids when we offered receive and the peer send."""
    caps = [c for c in msg.capabilities if isinstance(c, AddPathCapability)]
    theirs = caps[0] if caps else None
    rx: set[Family] = set()
    tx: set[Family] = set()
    for fam in fams:
        mode = theirs.mode(fam) if theirs else 0
        if peer.add_path.receive and mode & AddPathMode.SEND:
            rx.add(fam)
        if peer.add_path.send and mode & AddPathMode.RECEIVE:
            tx.add(fam)
    return frozenset(rx), frozenset(tx)


def _has(msg: Open, cls: type[Capability]) -> bool:
    return any(isinstance(c, cls) for c in msg.capabilities)


def _ext_nexthop(msg: Open, peer: PeerSettings) -> bool:
    if not peer.extended_nexthop:
        return False
    for cap in msg.capabilities:
        if (
            isinstance(cap, ExtendedNextHopCapability)
            and (AFI_IPV4, SAFI_UNICAST, AFI_IPV6) in cap.entries
        ):
            return True
    return False


def hold_and_keepalive(ours: int, theirs: int, keepalive: int | None) -> tuple[int, int]:
    """Negotiated hold time (the smaller, RFC 4271 §4.2) and the keepalive interval.

    Keepalive is a third of the hold time (RFC 4271 §10) unless a smaller one
    is configured; with hold time 0 no keepalives are sent.
    """
    hold = min(ours, theirs)
    if hold == 0:
        return 0, 0
    third = max(1, hold // 3)
    return hold, min(keepalive, third) if keepalive else third


def negotiate(
    ours: Open, theirs: Open, local_as: int, peer: PeerSettings, peer_as: int
) -> Negotiated:
    """Combine both OPENs (already validated) into the session's facts."""
    fams = _families(theirs) & frozenset(peer.families)
    rx, tx = _add_path(theirs, peer, fams)
    as4 = _has(theirs, FourOctetAsCapability)
    ext_msg = peer.extended_message and _has(theirs, ExtendedMessageCapability)
    rr = peer.route_refresh and _has(theirs, RouteRefreshCapability)
    err = rr and _has(theirs, EnhancedRouteRefreshCapability)
    grs = [c for c in theirs.capabilities if isinstance(c, GracefulRestartCapability)]
    gr = grs[0] if grs and peer.graceful_restart else None
    hold, keep = hold_and_keepalive(ours.hold_time, theirs.hold_time, peer.keepalive)
    ctx = CodecContext(
        as4=as4,
        add_path_ipv4=Family.IPV4_UNICAST in rx,
        add_path_ipv6=Family.IPV6_UNICAST in rx,
        add_path_send_ipv4=Family.IPV4_UNICAST in tx,
        add_path_send_ipv6=Family.IPV6_UNICAST in tx,
        extended_message=ext_msg,
        extended_nexthop_ipv4=_ext_nexthop(theirs, peer),
        ebgp=peer_as != local_as,
        local_as=local_as,
        peer_as=peer_as,
        enforce_first_as=peer.enforce_first_as,
    )
    return Negotiated(
        peer_as=peer_as,
        peer_router_id=theirs.router_id,
        hold_time=hold,
        keepalive=keep,
        families=fams,
        ctx=ctx,
        route_refresh=rr,
        enhanced_route_refresh=err,
        peer_restart=gr,
        add_path_rx=rx,
        add_path_tx=tx,
        graceful_notification=gr is not None and gr.notification and peer.graceful_notification,
        long_lived=_long_lived(theirs, fams, peer.long_lived_stale_time) if gr else (),
        sent_open=ours,
        received_open=theirs,
    )


def _long_lived(msg: Open, fams: frozenset[Family], ours: int) -> tuple[LongLived, ...]:
    """The peer's LLGR capability for the session's families (RFC 9494 §3), its stale
    times capped by ``ours``. Called only when graceful restart was negotiated: the
    LLGR capability goes with the GR capability (RFC 9494 §4.1), whose restart
    time may be 0 for "long-lived at once"."""
    caps = msg.find(LongLivedGracefulRestartCapability)
    cap = caps[0] if caps else None
    if not isinstance(cap, LongLivedGracefulRestartCapability):
        return ()
    out = []
    for afi, safi, flags, stale in cap.entries:
        fam = Family.of(afi, safi)
        if fam in fams:
            out.append(LongLived(fam, min(stale, ours), bool(flags & FORWARDING_STATE)))
    return tuple(out)
