"""What the session core reports, and the narrow interface to whatever consumes routes.

The FSM (``bgp.fsm``) returns these frozen dataclasses from ``next_event()``.
The asyncio shell turns them into calls on a ``RouteSink`` (inbound) and pulls
outbound bytes from a ``RouteSource`` (one per peer). The RIB implements both;
the session knows nothing else about it.

Inbound, the sink is called:

- ``peer_up(peer, negotiated)`` once the session is Established;
- ``updates_received(peer, updates)`` per bounded batch of decoded UPDATEs
  (the shell processes at most ``Session.BATCH_BYTES`` of input, then yields
  to the event loop, so keepalives and hold timers keep running while a full
  table streams in); consecutive UPDATEs that only withdraw arrive merged
  into one ``Update`` (withdrawals commute), so per-UPDATE work in the sink
  is per run of withdrawals;
- ``end_of_rib(peer, family)`` (RFC 4724 §2), ``route_refresh(peer, family,
  subtype)`` (RFC 2918, RFC 7313: the RIB re-sends Adj-RIB-Out, framed by
  BoRR/EoRR when asked), ``peer_down(peer, reason)``.

Outbound is pull-based for back-pressure: when the transport is below its
high-water mark (after ``resume_writing``, after a received batch, when the
RIB calls ``peer.wake()``) the shell calls ``source.pull(max_bytes)`` and
writes what it returns, ready-encoded UPDATE bytes (whole messages), or
``b""`` when nothing is pending. Nothing is encoded for a slow peer until its
socket can take more, so memory does not grow with the slowest peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Protocol

from bgp.wire.constants import Family
from bgp.wire.update import Update

if TYPE_CHECKING:
    from bgp.negotiate import Negotiated

__all__ = [
    "ConnectRequested",
    "DisconnectRequested",
    "EndOfRib",
    "FsmEvent",
    "OpenReceived",
    "PeerHandle",
    "RouteRefreshReceived",
    "RouteSink",
    "RouteSource",
    "SessionDown",
    "SessionEstablished",
    "SourceFactory",
    "UpdatesReceived",
]


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """The shell must (re)start an outgoing TCP connection, aborting any pending one."""


@dataclass(frozen=True, slots=True)
class DisconnectRequested:
    """The shell must write what ``data_to_send()`` holds, then close the connection."""


@dataclass(frozen=True, slots=True)
class OpenReceived:
    """A valid OPEN arrived: the peer object checks for a connection collision (RFC 4271 §6.8).

    The machine is paused until the shell calls ``resume`` (no collision, or this
    connection wins) or ``collision_dump`` (it loses): nothing is answered or
    consumed before that decision (``bgp.fsm``)."""

    router_id: int
    asn: int


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """The session reached Established; ``negotiated.ctx`` is its ``CodecContext``."""

    negotiated: Negotiated

    @property
    def hold_time(self) -> int:
        return self.negotiated.hold_time

    @property
    def peer_router_id(self) -> str:
        return str(self.negotiated.peer_router_id)


@dataclass(frozen=True, slots=True)
class UpdatesReceived:
    """Consecutive decoded UPDATEs in arrival order; End-of-RIB markers are separate
    events and consecutive withdraw-only UPDATEs are merged into one ``Update``."""

    updates: list[Update]


@dataclass(frozen=True, slots=True)
class EndOfRib:
    family: Family


@dataclass(frozen=True, slots=True)
class RouteRefreshReceived:
    family: Family
    subtype: int


@dataclass(frozen=True, slots=True)
class SessionDown:
    """The connection ended. ``sent`` tells who sent the NOTIFICATION (None: none was).

    ``code``/``subcode`` are 0 when no NOTIFICATION was exchanged (TCP closed,
    connect failures); for a Hard Reset they are Cease/9 and ``inner`` holds
    the code and subcode it carries (RFC 8538 §3). ``was_established`` tells
    the shell whether to report ``peer_down`` to the sink. ``graceful``: the
    peer's routes stay as stale (``bgp.restart.graceful_end``). ``message`` is
    the RFC 9003 shutdown communication, whole. ``operator``: an operator's
    action (or our own stop) ended it, which is not a flap.
    """

    code: int
    subcode: int
    reason: str
    sent: bool | None
    was_established: bool
    graceful: bool = False
    message: str = ""
    inner: tuple[int, int] | None = None
    operator: bool = False

    @property
    def direction(self) -> str:
        return {True: "sent", False: "received", None: "none"}[self.sent]


FsmEvent = (
    ConnectRequested
    | DisconnectRequested
    | OpenReceived
    | SessionEstablished
    | UpdatesReceived
    | EndOfRib
    | RouteRefreshReceived
    | SessionDown
)


class PeerHandle(Protocol):
    """What the RIB sees of a peer: an identity, a way to ask for a pull, and counters.

    ``prefixes_in`` / ``prefixes_out`` are plain ints the RIB keeps current
    (accepted prefixes from, and advertised prefixes to, this peer); the
    speaker only reports them in ``stats()``.
    """

    prefixes_in: int
    prefixes_out: int

    @property
    def key(self) -> str:
        """Stable identity: the peer's address."""
        ...

    @property
    def local_address(self) -> IPv4Address | IPv6Address | None:
        """Our end of the established session (the socket's own address), None when down.

        Next hop self announces it (RFC 4271 §5.1.3): it is the address the peer
        reaches us at, which need not be the node's configured one (another
        interface, a ``local_address``, the kernel's choice of source).
        """
        ...

    @property
    def link_global(self) -> IPv6Address | None:
        """On an unnumbered session (``local_address`` link-local): a global IPv6
        address on the session's link, the global next hop beside the link-local
        one (RFC 2545 §3); None when the link has none, or the session is numbered."""
        ...

    def wake(self) -> None:
        """Something became pending for this peer: pull when the socket can take it."""
        ...


class RouteSink(Protocol):
    """Inbound interface the RIB implements (see the module docstring)."""

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None: ...

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None: ...

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None: ...

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None: ...

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None: ...


class RouteSource(Protocol):
    """Outbound: ready-encoded UPDATE bytes for one peer, pulled when the socket can take them."""

    def pull(self, max_bytes: int) -> bytes:
        """Whole UPDATE messages totalling about ``max_bytes`` at most; ``b""`` when idle."""
        ...


class SourceFactory(Protocol):
    """Called when a session is Established to get that peer's ``RouteSource``."""

    def __call__(self, peer: PeerHandle, negotiated: Negotiated) -> RouteSource: ...
