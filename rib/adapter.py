"""Glue between the session layer (``bgp.events`` protocols) and the RIB core.

The speaker calls a ``RouteSink`` with decoded UPDATEs and pulls bytes from a
``RouteSource`` per peer; ``RibAdapter`` is both (the sink, and the factory
of sources) and translates to ``rib.Rib`` calls, so neither side depends on
the other's names. It imports no socket or asyncio code: the clock and a
``call_at(deadline, callback)`` scheduler are injected by the composition
root (``podbgp.daemon``), which also supplies the ``PeerPolicy`` of dynamic
neighbours.

The way back, from the RIB to a peer (``wake`` when something is pending for
it, ``max_prefix_exceeded``), goes through ``PeerHandles``: the speaker's
handles by key, built first and given to both the ``Rib`` (its callbacks, at
construction) and the adapter (which registers each handle as its session
comes up), so neither is patched after it is made.

Session facts: ``Negotiated`` (``bgp.negotiate``) becomes ``SessionFacts``.
A session whose ``SessionDown`` says ``graceful`` (a TCP loss from a peer
that announced graceful restart, RFC 4724 §4.2, or a NOTIFICATION other than
Hard Reset with the N bit both ways, RFC 8538 §4) keeps its routes stale; any
other end flushes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING

from bgp.events import PeerHandle, SessionDown
from bgp.wire.constants import Family
from bgp.wire.update import Update
from rib.core import Rib
from rib.settings import PeerPolicy, SessionFacts

if TYPE_CHECKING:
    from bgp.negotiate import Negotiated

__all__ = ["PeerHandles", "PeerSource", "RibAdapter", "facts_from_negotiated"]

Address = IPv4Address | IPv6Address


def facts_from_negotiated(
    neg: Negotiated,
    local4: IPv4Address | None,
    local6: IPv6Address | None,
    link_local: IPv6Address | None = None,
) -> SessionFacts:
    """``SessionFacts`` from a ``bgp.negotiate.Negotiated``."""
    gr = neg.peer_restart
    gr_fams: dict[Family, bool] = {}
    if gr is not None:
        for afi, safi, fwd in gr.families:
            fam = Family.of(afi, safi)
            if fam is not None:
                gr_fams[fam] = bool(fwd)
    return SessionFacts(
        families=tuple(sorted(neg.families)),
        bgp_id=IPv4Address(int(neg.peer_router_id)),
        as4=neg.ctx.as4,
        add_path_rx=tuple(sorted(neg.add_path_rx)),
        add_path_tx=tuple(sorted(neg.add_path_tx)),
        gr_restart_time=gr.restart_time if gr is not None else 0,
        gr_families=gr_fams,
        gr_restarting=bool(gr.restarting) if gr is not None else False,
        enhanced_refresh=bool(neg.enhanced_route_refresh),
        local_address=local4,
        local_address6=local6,
        link_local=link_local,
        extended_nexthop=neg.ctx.extended_nexthop_ipv4,
        max_message_len=neg.ctx.max_message_len,
        gr_capable=gr is not None,
        llgr={ll.family: (ll.stale_time, ll.forwarding) for ll in neg.long_lived},
    )


class PeerSource:
    """The ``RouteSource`` of one peer: ready-encoded UPDATEs from its update groups."""

    def __init__(self, rib: Rib, key: str) -> None:
        self.rib = rib
        self.key = key

    def pull(self, max_bytes: int) -> bytes:
        blobs = self.rib.pull(self.key, max_bytes)
        if len(blobs) == 1:
            return blobs[0]  # the group's shared object, not a copy
        return b"".join(blobs)


class PeerHandles:
    """The speaker's peers by key, as the RIB calls back into them (module docstring).

    Pass ``wake`` and ``max_prefix_exceeded`` to ``Rib`` at construction;
    ``on_max_prefix(handle, limit)`` is the owner's answer to a peer over its
    prefix limit.
    """

    def __init__(self, on_max_prefix: Callable[[PeerHandle, int], None] | None = None) -> None:
        self.on_max_prefix = on_max_prefix
        self._by_key: dict[str, PeerHandle] = {}

    def add(self, peer: PeerHandle) -> None:
        """The handle of a session that came up (a later one replaces it)."""
        self._by_key[peer.key] = peer

    def get(self, key: str) -> PeerHandle | None:
        return self._by_key.get(key)

    def wake(self, key: str) -> None:
        """Something is pending for ``key``: it pulls when its socket can take more."""
        h = self._by_key.get(key)
        if h is not None:
            h.wake()

    def max_prefix_exceeded(self, key: str, limit: int) -> None:
        h = self._by_key.get(key)
        if h is not None and self.on_max_prefix is not None:
            self.on_max_prefix(h, limit)


class RibAdapter:
    """``RouteSink`` + ``SourceFactory`` over a ``Rib`` (see module docstring).

    ``handles`` must be the ``PeerHandles`` whose callbacks ``rib`` was built with.
    """

    def __init__(
        self,
        rib: Rib,
        handles: PeerHandles,
        *,
        local4: IPv4Address | None = None,
        local6: IPv6Address | None = None,
        clock: Callable[[], float] = time.monotonic,
        call_at: Callable[[float, Callable[[], None]], object] | None = None,
        policy_for: Callable[[str, int], PeerPolicy] | None = None,
    ) -> None:
        self.rib = rib
        self.handles = handles
        self.local4 = local4
        self.local6 = local6
        self.clock = clock
        self.call_at = call_at
        self.policy_for = policy_for or (lambda key, asn: PeerPolicy(ip_address(key), asn))
        self._armed: float | None = None
        if rib.deferring:
            # RFC 4724 §4.1: the deferral timer runs on our clock from start-up, and is
            # armed now so it ends even if no peer ever comes up.
            rib.start_deferral(clock())
            self._arm()

    # ------------------------------------------------------------ RouteSink

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        key = peer.key
        self.handles.add(peer)
        if key not in self.rib.peers:
            self.rib.add_peer(self.policy_for(key, negotiated.peer_as))
        local4, local6 = self._locals(peer)
        link_local = None
        if local6 is not None and local6.is_link_local:
            # An unnumbered session: a global address on its link (if any) is the
            # global next hop, the socket's link-local one the second (RFC 2545 §3).
            link_local, local6 = local6, getattr(peer, "link_global", None)
        facts = facts_from_negotiated(negotiated, local4, local6, link_local)
        self.rib.peer_up(key, facts, self.clock())
        self._arm()

    def _locals(self, peer: PeerHandle) -> tuple[IPv4Address | None, IPv6Address | None]:
        """Our end of the session for its family, the node's address for the other one.

        Next hop self (RFC 4271 §5.1.3) is the address the peer reached us at; the
        node's configured address stands in only for the family the session's own
        socket is not (IPv6 routes over an IPv4 session, RFC 4760).
        """
        addr = peer.local_address
        if isinstance(addr, IPv4Address):
            return addr, self.local6
        if isinstance(addr, IPv6Address):
            return self.local4, addr
        return self.local4, self.local6

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        self.rib.receive_updates(peer.key, updates, self.clock())

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        self.rib.end_of_rib(peer.key, family, self.clock())
        self._arm()

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        self.rib.route_refresh(peer.key, family, subtype, self.clock())
        self._arm()

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        # bgp.restart decided whether the routes stay stale (RFC 4724 §4.2, RFC 8538 §4).
        self.rib.peer_down(peer.key, self.clock(), graceful=reason.graceful)
        self._arm()

    # ------------------------------------------------------------ SourceFactory

    def __call__(self, peer: PeerHandle, negotiated: Negotiated) -> PeerSource:
        self.handles.add(peer)
        return PeerSource(self.rib, peer.key)

    # ------------------------------------------------------------ timers

    def _arm(self) -> None:
        deadline = self.rib.get_timer()
        if deadline is None or self.call_at is None:
            return
        if self._armed is not None and self._armed <= deadline:
            return
        self._armed = deadline
        self.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._armed = None
        self.rib.handle_timer(self.clock())
        self._arm()
