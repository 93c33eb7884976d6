"""The BGP session state machine of RFC 4271 §8, sans-IO.

No sockets, no clock, no asyncio: the shell feeds events in and carries actions out.

- In: ``start(now)``, ``stop(now, message)``, ``connection_made(now, outgoing)``,
  ``connection_lost(now)``, ``receive_data(data, now)``, ``resume(now)``,
  ``handle_timer(now)``, ``send_update_bytes(data, now)``,
  ``send_route_refresh(family, subtype, now)``, ``collision_dump(now)``,
  ``abandon(now, reason)``.
- Out: ``data_to_send()`` (bytes for the socket), ``get_timer()`` (the earliest
  deadline), ``next_event()`` (``bgp.events``: ConnectRequested,
  DisconnectRequested, OpenReceived, SessionEstablished, UpdatesReceived,
  EndOfRib, RouteRefreshReceived, SessionDown).

One ``BgpFsm`` drives one TCP connection at a time; the peer object
(``bgp.speaker.Peer``) owns a second one while a connection collision is being
resolved (§6.8). The transitions are the table ``TABLE: dict[(State, Event),
Cell]`` with the event numbers of RFC 4271 §8.1; a cell that is not in the
table is an FSM Error: in OpenSent, OpenConfirm and Established a NOTIFICATION
with code 5 and the RFC 6608 subcode of the state is sent, and the machine
returns to Idle. In Idle every event but a start is ignored (§8.2.2). Each
event carries one payload type (``PAYLOAD``: the message, the error, a
``ManualStop`` or ``TcpFailed``, or None), and each cell's handler is typed
with it.

Collisions without taking anything back (h11's pause): a valid OPEN in
OpenSent (Event 19) reports ``OpenReceived`` and stops there — no KEEPALIVE
queued, no further input consumed — until the shell has looked for a
colliding connection (§6.8) and either calls ``resume(now)``, which finishes
Event 19 (KEEPALIVE, OpenConfirm) and goes on with the input already read,
or ``collision_dump(now)``, which ends this connection with a plain Cease /
Connection Collision Resolution. The peer of a dumped connection never sees
a KEEPALIVE on it, and the shell never sees it come up.

Where this departs from the letter of §8.2.2 (each says why):

- A failed or dropped connection before Established leaves the machine in
  Active with the ConnectRetry timer running instead of Idle: that is the
  same as Idle plus an immediate AutomaticStart, which every implementation
  does, and keeps one code path for retries.
- ConnectRetry backs off: the interval doubles after each failed attempt, up
  to ``connect_retry_max``; after a session that was up for less than
  ``STABLE_AFTER`` seconds drops, the IdleHold delay (§8.1.1, attribute
  DampPeerOscillations) grows the same way, so a flapping peer slows down.
  Only real flaps are damped (``bgp.restart.damped``): after an operator's
  reset, a graceful end (the peer restarts) or a received Administrative
  Reset the session is started again at once with the first interval.
- A passive peer with ``connect_on_start`` dials once on ManualStart
  (Event 4), never on later retries: a restarted node tells its peers at
  once instead of waiting for their retry timers. With ``connect_delay`` the
  dial waits that long in Active on the ConnectRetry timer (RFC 4271 §8.2.2
  has a passive start wait there too); a connection of the peer's that comes
  first disarms it, so the two sides never dial each other at the same time.
- How the session ends — Hard Reset or not, routes kept stale or not — is
  ``bgp.restart``'s (RFC 8538); ``SessionDown`` carries the verdict.
- A header error in Established sends Message Header Error (§6.1), not the
  FSM Error listed for Event 21 in §8.2.2, because it says what went wrong.

Timers are deadlines (floats on the caller's clock): ConnectRetry, Hold,
Keepalive, DelayOpen and IdleHold. The Hold timer is set to 240 s while
waiting for the OPEN (§8.2.2 suggests 4 minutes).

Why one module past 600 lines: the table, the payload types its cells are
typed with, and the handlers it names are read side by side, as §8.2.2 is;
what is not the state machine lives elsewhere (decoding runs of UPDATEs in
``bgp.inbound``, how a session ends in ``bgp.restart``, OPEN checks and
negotiation in ``bgp.negotiate``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, Protocol, TypeVar

from bgp.errors import (
    BGPError,
    CeaseSubcode,
    ErrorCode,
    FsmError,
    FsmSubcode,
    HoldTimerExpired,
    MessageHeaderError,
    OpenMessageError,
    OpenSubcode,
)
from bgp.events import (
    ConnectRequested,
    DisconnectRequested,
    EndOfRib,
    FsmEvent,
    OpenReceived,
    RouteRefreshReceived,
    SessionDown,
    SessionEstablished,
    UpdatesReceived,
)
from bgp.inbound import decode_update_run
from bgp.negotiate import Negotiated, build_open, negotiate, validate_open
from bgp.restart import damped, graceful_end, inner_of, notification_name, outgoing
from bgp.settings import PeerSettings
from bgp.wire.constants import Family, MessageType
from bgp.wire.context import CodecContext
from bgp.wire.framer import Framer
from bgp.wire.messages import (
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from bgp.wire.update import Update

__all__ = [
    "LEGAL",
    "PAYLOAD",
    "TABLE",
    "BgpFsm",
    "Cell",
    "Counters",
    "Event",
    "ManualStop",
    "State",
    "TcpFailed",
    "Timer",
    "keep_outgoing",
]

OPEN_HOLD_TIME = 240.0  # §8.2.2: "a large value", 4 minutes suggested
STABLE_AFTER = 30.0  # a session up this long resets the back-off


class State(IntEnum):
    """RFC 4271 §8.2.2 session states."""

    IDLE = 1
    CONNECT = 2
    ACTIVE = 3
    OPEN_SENT = 4
    OPEN_CONFIRM = 5
    ESTABLISHED = 6

    @property
    def rfc_name(self) -> str:
        """The name as RFC 4271 §8.2.2 writes it (``OpenSent``): the one every view,
        log line and metric label shows, so an operator sees one spelling."""
        return "".join(word.capitalize() for word in self.name.split("_"))


class Event(IntEnum):
    """RFC 4271 §8.1 events (their numbers). 29 is ours: ROUTE-REFRESH (RFC 2918)."""

    MANUAL_START = 1
    MANUAL_STOP = 2
    AUTOMATIC_START = 3
    MANUAL_START_PASSIVE = 4
    AUTOMATIC_START_PASSIVE = 5
    AUTOMATIC_STOP = 8
    CONNECT_RETRY_TIMER_EXPIRES = 9
    HOLD_TIMER_EXPIRES = 10
    KEEPALIVE_TIMER_EXPIRES = 11
    DELAY_OPEN_TIMER_EXPIRES = 12
    IDLE_HOLD_TIMER_EXPIRES = 13
    TCP_CR_ACKED = 16
    TCP_CONNECTION_CONFIRMED = 17
    TCP_CONNECTION_FAILS = 18
    BGP_OPEN = 19
    BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING = 20
    BGP_HEADER_ERR = 21
    BGP_OPEN_MSG_ERR = 22
    OPEN_COLLISION_DUMP = 23
    NOTIF_MSG_VER_ERR = 24
    NOTIF_MSG = 25
    KEEPALIVE_MSG = 26
    UPDATE_MSG = 27
    UPDATE_MSG_ERR = 28
    ROUTE_REFRESH_MSG = 29


class Timer(IntEnum):
    """The deadlines the shell arms one ``call_at`` for."""

    CONNECT_RETRY = 1
    HOLD = 2
    KEEPALIVE = 3
    DELAY_OPEN = 4
    IDLE_HOLD = 5


_TIMER_EVENT = {
    Timer.CONNECT_RETRY: Event.CONNECT_RETRY_TIMER_EXPIRES,
    Timer.HOLD: Event.HOLD_TIMER_EXPIRES,
    Timer.KEEPALIVE: Event.KEEPALIVE_TIMER_EXPIRES,
    Timer.DELAY_OPEN: Event.DELAY_OPEN_TIMER_EXPIRES,
    Timer.IDLE_HOLD: Event.IDLE_HOLD_TIMER_EXPIRES,
}

# RFC 6608 §3: the FSM Error subcode names the state the unexpected event hit.
_FSM_SUBCODE = {
    State.OPEN_SENT: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT,
    State.OPEN_CONFIRM: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
    State.ESTABLISHED: FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED,
}

_TYPE_NAMES = {t.value: t.name.lower() for t in MessageType}


@dataclass
class Counters:
    """Per-peer message counters (shared by the peer's connections)."""

    msgs_in: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TYPE_NAMES.values(), 0))
    msgs_out: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TYPE_NAMES.values(), 0))

    def count_in(self, mtype: int, n: int = 1) -> None:
        name = _TYPE_NAMES.get(mtype)
        if name:
            self.msgs_in[name] += n

    def count_out(self, mtype: int, n: int = 1) -> None:
        name = _TYPE_NAMES.get(mtype)
        if name:
            self.msgs_out[name] += n


def keep_outgoing(local_id: int, remote_id: int, local_as: int, remote_as: int) -> bool:
    """Collision resolution (RFC 4271 §6.8, RFC 6286 §2.3): True keeps our outgoing connection.

    The connection initiated by the speaker with the higher BGP identifier
    survives; with equal identifiers (only legal between ASes), the one
    initiated by the speaker with the larger AS number.
    """
    if local_id != remote_id:
        return local_id > remote_id
    return local_as > remote_as


@dataclass(frozen=True, slots=True)
class ManualStop:
    """The payload of ManualStop (Event 2, ``BgpFsm.stop``); the fields are ``stop``'s."""

    message: str = ""
    subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN
    restart: bool = False
    hard: bool | None = None
    operator: bool = True


@dataclass(frozen=True, slots=True)
class TcpFailed:
    """The payload of TcpConnectionFails (Event 18): why, and whether it was our own
    gentle close (``BgpFsm.close``: an operator's action, not a flap)."""

    reason: str
    operator: bool = False


_NONE = type(None)

# What each event carries (the shell's entry points pass exactly these).
PAYLOAD: dict[Event, type] = {
    **dict.fromkeys(Event, _NONE),
    Event.MANUAL_STOP: ManualStop,
    Event.TCP_CONNECTION_FAILS: TcpFailed,
    Event.BGP_OPEN: Open,
    Event.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING: Open,
    Event.BGP_HEADER_ERR: BGPError,
    Event.BGP_OPEN_MSG_ERR: BGPError,
    Event.UPDATE_MSG_ERR: BGPError,
    Event.NOTIF_MSG: Notification,
    Event.NOTIF_MSG_VER_ERR: Notification,
    Event.KEEPALIVE_MSG: Keepalive,
    Event.UPDATE_MSG: Update,
    Event.ROUTE_REFRESH_MSG: RouteRefresh,
}

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Cell(Generic[P]):
    """One cell of ``TABLE``: the handler of a (state, event) pair, typed with its payload."""

    handler: Callable[[BgpFsm, float, P], None]
    payload: type[P]

    def run(self, fsm: BgpFsm, now: float, payload: object) -> None:
        if not isinstance(payload, self.payload):
            raise TypeError(f"{self.handler.__name__} takes {self.payload.__name__}, "
                            f"not {type(payload).__name__}")  # fmt: skip
        self.handler(fsm, now, payload)


class Runs(Protocol):
    """What ``TABLE`` holds: a ``Cell`` of any payload type."""

    def run(self, fsm: BgpFsm, now: float, payload: object) -> None: ...


class BgpFsm:
    """One BGP connection's state machine (see the module docstring)."""

    def __init__(
        self,
        local_as: int,
        router_id: str,
        peer: PeerSettings,
        counters: Counters | None = None,
    ) -> None:
        self.local_as = local_as
        self.router_id = router_id
        self.peer = peer
        self.counters = counters or Counters()
        self.state = State.IDLE
        self._auto_restart = True
        self.outgoing = False
        self.negotiated: Negotiated | None = None
        self.peer_open: Open | None = None
        self.established_at: float | None = None
        self._connected = False
        self._timers: dict[Timer, float] = {}
        self._out: list[bytes] = []
        self._events: deque[FsmEvent] = deque()
        self._framer = Framer()
        self._ctx = CodecContext(local_as=local_as)
        self._our_open: Open | None = None
        self._retry = peer.connect_retry
        self._paused = False  # a valid OPEN awaits the shell's collision decision

    # ------------------------------------------------------------ shell API

    @property
    def connected(self) -> bool:
        """True while this machine owns a TCP connection."""
        return self._connected

    @property
    def auto_restart(self) -> bool:
        """Whether the machine starts again by itself once this connection ends
        (RFC 4271 §8.1.1 AllowAutomaticStart). Off after a stop without restart,
        a collision lost (the other connection carries on), ``close`` and
        ``abandon``; a start turns it on again."""
        return self._auto_restart

    @property
    def paused(self) -> bool:
        """A valid OPEN was reported (``OpenReceived``) and awaits ``resume`` or
        ``collision_dump``: no input is consumed meanwhile."""
        return self._paused

    @property
    def ctx(self) -> CodecContext:
        """The codec context: negotiated once Established."""
        return self._ctx

    def start(self, now: float, passive: bool | None = None) -> None:
        """ManualStart (Event 1), or Event 4 when ``passive``."""
        passive = self.peer.passive if passive is None else passive
        self.dispatch(Event.MANUAL_START_PASSIVE if passive else Event.MANUAL_START, now)

    def start_for_incoming(self, now: float) -> None:
        """AutomaticStart_with_PassiveTcpEstablishment (Event 5): a peer connects to an Idle machine."""
        self.dispatch(Event.AUTOMATIC_START_PASSIVE, now)

    def stop(
        self,
        now: float,
        message: str = "",
        subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        restart: bool = False,
        hard: bool | None = None,
        operator: bool = True,
    ) -> None:
        """ManualStop (Event 2): Cease with an RFC 9003 shutdown communication.

        ``restart`` keeps automatic restart on (an administrative reset, Cease 4).
        ``hard``: send it as a Hard Reset (True), never (False), or as RFC 8538
        §5.1 says (None; only with N exchanged). ``operator``: an operator's
        action, not damped and not a flap; False for a stop for cause (BFD).
        """
        self.dispatch(Event.MANUAL_STOP, now, ManualStop(message, subcode, restart, hard, operator))

    def close(self, now: float, reason: str) -> None:
        """End the session without a NOTIFICATION, closing TCP gently, no automatic restart.

        The restart stop towards a graceful-restart peer without the N bit: it
        sees a TCP loss and keeps our routes (RFC 4724 §4.2), where any
        NOTIFICATION would make it drop them.
        """
        self._auto_restart = False
        self.dispatch(Event.TCP_CONNECTION_FAILS, now, TcpFailed(reason, operator=True))

    def connection_made(self, now: float, outgoing: bool) -> None:
        """Tcp_CR_Acked (Event 16, ours) or TcpConnectionConfirmed (Event 17, theirs)."""
        self.dispatch(Event.TCP_CR_ACKED if outgoing else Event.TCP_CONNECTION_CONFIRMED, now)

    def connection_lost(self, now: float, reason: str = "connection closed") -> None:
        """TcpConnectionFails (Event 18)."""
        self.dispatch(Event.TCP_CONNECTION_FAILS, now, TcpFailed(reason))

    def abandon(self, now: float, reason: str) -> None:
        """Drop the connection without a NOTIFICATION and without automatic restart.

        For a peer that restarted (RFC 4724 §4.2): its new connection takes
        over, and this one ends as a TCP loss would (TcpConnectionFails,
        Event 18), so ``SessionDown`` has code 0 and the peer's routes are
        kept as stale by whoever consumes the event.
        """
        self._auto_restart = False
        self.dispatch(Event.TCP_CONNECTION_FAILS, now, TcpFailed(reason))

    def collision_dump(self, now: float) -> None:
        """OpenCollisionDump (Event 23): this connection lost the collision."""
        self.dispatch(Event.OPEN_COLLISION_DUMP, now)

    def resume(self, now: float) -> None:
        """The shell saw ``OpenReceived`` and keeps this connection: finish Event 19
        (KEEPALIVE, OpenConfirm) and consume the input read meanwhile. A no-op
        unless ``paused``."""
        if not self._paused:
            return
        self._paused = False
        self._send(Keepalive())
        self._disarm(Timer.HOLD, Timer.DELAY_OPEN)
        self._restart_hold(now)
        self._restart_keepalive(now)
        self.state = State.OPEN_CONFIRM
        self._consume(now)

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the socket: whole messages are decoded and dispatched.

        In Established, runs of UPDATEs take a fast path (``bgp.inbound``)
        that is equivalent to dispatching Event 27 for each one; every other
        message goes through the table. While ``paused`` the bytes are only
        buffered.
        """
        if not self._connected:
            return
        self._framer.feed(data)
        self._consume(now)

    def _consume(self, now: float) -> None:
        """Dispatch every whole message buffered, until paused or disconnected."""
        framer = self._framer
        while self._connected and not self._paused:
            if self.state is State.ESTABLISHED:
                frames = framer.update_frames()
                if frames:
                    self._updates(frames, now)
                    continue
            try:
                frame = framer.next_frame()
                if frame is None:
                    return
                msg = decode_message(frame, self._ctx)
            except BGPError as err:
                self.dispatch(_error_event(err), now, err)
                return
            self.counters.count_in(frame[18])
            self.dispatch(self._message_event(msg), now, msg)

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline has passed, earliest first."""
        for timer, deadline in sorted(self._timers.items(), key=lambda kv: kv[1]):
            if deadline <= now and self._timers.get(timer) == deadline:
                del self._timers[timer]
                self.dispatch(_TIMER_EVENT[timer], now)

    def get_timer(self) -> float | None:
        """The earliest armed deadline, or None."""
        return min(self._timers.values(), default=None)

    def deadline(self, timer: Timer) -> float | None:
        """One timer's deadline (for tests and ``show peers``)."""
        return self._timers.get(timer)

    def data_to_send(self) -> bytes:
        """Everything queued for the socket since the last call."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_event(self) -> FsmEvent | None:
        """The next event for the shell, or None."""
        return self._events.popleft() if self._events else None

    def send_update_bytes(self, data: bytes, now: float) -> bool:
        """Queue ready-encoded UPDATE messages; False unless Established."""
        if self.state is not State.ESTABLISHED or not data:
            return False
        self._out.append(data)
        self.counters.count_out(MessageType.UPDATE, _count_messages(data))
        self._restart_keepalive(now)  # §8.2.2: sending an UPDATE restarts it
        return True

    def send_route_refresh(self, family: Family, subtype: int, now: float) -> bool:
        """Queue a ROUTE-REFRESH (RFC 2918 §3, RFC 7313 subtypes) if the peer supports it."""
        neg = self.negotiated
        if self.state is not State.ESTABLISHED or neg is None or not neg.route_refresh:
            return False
        self._send(RouteRefresh(family.afi, family.safi, subtype))
        return True

    def dispatch(self, event: Event, now: float, payload: object = None) -> None:
        """Run the table cell for (state, event); a missing cell is an FSM Error.

        ``payload`` is the event's ``PAYLOAD`` type (a TypeError otherwise: a
        bug in the caller, never the peer's doing).
        """
        cell = TABLE.get((self.state, event))
        if cell is None:
            cell = _IGNORE if self.state is State.IDLE else _FSM_ERROR
        cell.run(self, now, payload)

    # ------------------------------------------------------------- helpers

    def _message_event(self, msg: Message) -> Event:
        if isinstance(msg, Update):
            return Event.UPDATE_MSG
        if isinstance(msg, Keepalive):
            return Event.KEEPALIVE_MSG
        if isinstance(msg, Open):
            delayed = Timer.DELAY_OPEN in self._timers
            return Event.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING if delayed else Event.BGP_OPEN
        if isinstance(msg, Notification):
            version = (msg.code, msg.subcode) == (
                ErrorCode.OPEN_MESSAGE,
                OpenSubcode.UNSUPPORTED_VERSION_NUMBER,
            )
            return Event.NOTIF_MSG_VER_ERR if version else Event.NOTIF_MSG
        return Event.ROUTE_REFRESH_MSG

    def _send(self, msg: Message) -> None:
        self._out.append(encode_message(msg, self._ctx))
        self.counters.count_out(_msg_type(msg))

    def _arm(self, timer: Timer, deadline: float) -> None:
        self._timers[timer] = deadline

    def _disarm(self, *timers: Timer) -> None:
        for t in timers:
            self._timers.pop(t, None)

    def _restart_keepalive(self, now: float) -> None:
        neg = self.negotiated
        if neg is not None and neg.keepalive:
            self._arm(Timer.KEEPALIVE, now + neg.keepalive)

    def _restart_hold(self, now: float) -> None:
        neg = self.negotiated
        if neg is not None and neg.hold_time:
            self._arm(Timer.HOLD, now + neg.hold_time)

    def _back_off(self) -> float:
        """Return the current retry interval and double it for next time (capped)."""
        current = self._retry
        self._retry = min(
            self._retry * 2, max(self.peer.connect_retry_max, self.peer.connect_retry)
        )
        return current

    def _request_connect(self, now: float) -> None:
        self.state = State.CONNECT
        self._events.append(ConnectRequested())
        self._arm(Timer.CONNECT_RETRY, now + self._back_off())

    @property
    def _n_bit(self) -> bool:
        """RFC 8538: both sides set N in this session's OPENs."""
        return self.negotiated is not None and self.negotiated.graceful_notification

    def _down(self, now: float, end: _End, sent: bool | None, retry: bool = False) -> None:
        """Leave the connection: report, release, and go Idle (Active when ``retry``)."""
        was_up = self.state is State.ESTABLISHED
        had_session = self.state in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED)
        gr = self.negotiated is not None and self.negotiated.peer_restart is not None
        graceful = was_up and graceful_end(gr, self._n_bit, end.code, end.subcode)
        damp = damped(end.code, end.subcode, graceful, end.operator, sent, end.inner)
        if self._connected:
            self._events.append(DisconnectRequested())
        self._connected = False
        self._timers.clear()
        self._framer = Framer()
        self._ctx = CodecContext(local_as=self.local_as)
        self.negotiated = None
        self._our_open = None
        self._paused = False
        self._events.append(end.event(sent, was_up, graceful))
        up_for = now - self.established_at if self.established_at is not None else 0.0
        if (was_up and up_for >= STABLE_AFTER) or (had_session and not damp):
            self._retry = self.peer.connect_retry
        self.established_at = None
        self.state = State.IDLE
        if not self._auto_restart:
            return
        if retry and not had_session and not self.peer.passive:
            # A failed dial: wait in Active for ConnectRetry (module docstring).
            self.state = State.ACTIVE
            self._arm(Timer.CONNECT_RETRY, now + self._back_off())
        else:
            hold = self._back_off() if had_session and damp else 0.0
            self._arm(Timer.IDLE_HOLD, now + hold)

    def _notify_and_down(self, now: float, err: BGPError) -> None:
        note = Notification(err.code, err.subcode, err.data)
        if self._connected:
            wire = outgoing(note, self._n_bit)
            self._send(wire)
            self._down(now, _End.of(wire, err.reason), True)
        else:
            self._down(now, _End.of(note, err.reason), None)

    # ------------------------------------------------------------ handlers

    def _start(self, now: float, _: None) -> None:
        self._auto_restart = True
        self._disarm(Timer.IDLE_HOLD)
        if self.peer.passive:
            self.state = State.ACTIVE
        else:
            self._request_connect(now)

    def _start_passive(self, now: float, _: None) -> None:
        self._auto_restart = True
        self._disarm(Timer.IDLE_HOLD)
        self.state = State.ACTIVE

    def _start_passive_manual(self, now: float, _: None) -> None:
        """Event 4; with ``connect_on_start`` one dial as well (module docstring)."""
        self._start_passive(now, None)
        if not self.peer.connect_on_start:
            return
        if self.peer.connect_delay > 0:
            self._arm(Timer.CONNECT_RETRY, now + self.peer.connect_delay)
        else:
            self._request_connect(now)

    def _stop_idle(self, now: float, stop: ManualStop) -> None:
        self._auto_restart = stop.restart
        if not stop.restart:
            self._disarm(Timer.IDLE_HOLD)
        else:
            self._retry = self.peer.connect_retry  # an operator's reset is not damped
            if Timer.IDLE_HOLD in self._timers:
                self._arm(Timer.IDLE_HOLD, now)

    def _automatic_stop_idle(self, now: float, _: None) -> None:
        """Event 8 in Idle: as a ManualStop there, automatic restart goes off."""
        self._stop_idle(now, ManualStop())

    def _manual_stop(self, now: float, stop: ManualStop) -> None:
        self._auto_restart = stop.restart
        note = _shutdown(stop.message, stop.subcode)
        if self._connected and self._our_open is not None:
            wire = outgoing(note, self._n_bit, stop.hard)
            self._send(wire)
            self._down(now, _End.of(wire, operator=stop.operator), True)
        else:
            self._down(now, _End.of(note, operator=stop.operator), None)

    def _automatic_stop(self, now: float, _: None) -> None:
        self._manual_stop(now, ManualStop("", CeaseSubcode.UNSPECIFIC, True, None, False))

    def _connect_retry_expired(self, now: float, _: None) -> None:
        if self._connected:
            return
        if self.peer.passive:
            if self.state is State.ACTIVE:
                # connect_delay is over and the peer has not connected: the one dial.
                self._request_connect(now)
                return
            # connect_on_start's one dial timed out: abort it and wait for the peer.
            self._events.append(DisconnectRequested())
            self.state = State.ACTIVE
            return
        self._request_connect(now)  # the shell aborts the pending attempt first

    def _tcp_acked(self, now: float, _: None) -> None:
        """Event 16: our connection is up."""
        self._tcp_up(now, outgoing=True)

    def _tcp_confirmed(self, now: float, _: None) -> None:
        """Event 17: the peer's connection is up."""
        self._tcp_up(now, outgoing=False)

    def _tcp_up(self, now: float, outgoing: bool) -> None:
        self._connected = True
        self.outgoing = outgoing
        self._disarm(Timer.CONNECT_RETRY)
        if self.peer.delay_open > 0:
            self._arm(Timer.DELAY_OPEN, now + self.peer.delay_open)
            return
        self._send_open(now, None)

    def _send_open(self, now: float, _: None) -> None:
        self._our_open = build_open(self.local_as, self.router_id, self.peer)
        self._send(self._our_open)
        self._arm(Timer.HOLD, now + OPEN_HOLD_TIME)
        self.state = State.OPEN_SENT

    def _tcp_failed(self, now: float, failed: TcpFailed) -> None:
        end = _End(0, 0, failed.reason or "connection failed", operator=failed.operator)
        self._down(now, end, None, retry=True)

    def _open_during_delay(self, now: float, msg: Open) -> None:
        """Event 20: the peer spoke first while DelayOpen ran (§8.2.2 Connect/Active)."""
        self._disarm(Timer.DELAY_OPEN)
        self._send_open(now, None)
        self._open_received(now, msg)

    def _open_received(self, now: float, msg: Open) -> None:
        """Event 19, first half: a valid OPEN is reported and the machine pauses for
        the shell's collision check (module docstring); ``resume`` does the rest."""
        assert self._our_open is not None
        try:
            asn = validate_open(msg, self.local_as, self.router_id, self.peer)
        except OpenMessageError as err:
            self._notify_and_down(now, err)
            return
        self.peer_open = msg
        self.negotiated = negotiate(self._our_open, msg, self.local_as, self.peer, asn)
        self._paused = True
        self._events.append(OpenReceived(int(msg.router_id), asn))

    def _error(self, now: float, err: BGPError) -> None:
        self._notify_and_down(now, err)

    def _fsm_error(self, now: float, payload: object) -> None:
        sub = _FSM_SUBCODE.get(self.state, FsmSubcode.UNSPECIFIED)
        name = type(payload).__name__
        self._notify_and_down(now, FsmError(sub, reason=f"unexpected {name} in {self.state.name}"))

    def _hold_expired(self, now: float, _: None) -> None:
        self._notify_and_down(now, HoldTimerExpired(reason="hold timer expired"))

    def _collision_dump(self, now: float, _: None) -> None:
        """Event 23 (RFC 4271 §6.8): Cease / Connection Collision Resolution, and no
        automatic restart, since the other connection carries on. The shell
        decided on the OPEN before this connection answered it (``resume``), so
        nothing sent or reported needs taking back."""
        self._auto_restart = False
        err = BGPError(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        self._notify_and_down(now, err)

    def _notification(self, now: float, msg: Notification) -> None:
        self._down(now, _End.of(msg), False)

    def _keepalive_due(self, now: float, _: None) -> None:
        self._send(Keepalive())
        self._restart_keepalive(now)

    def _established(self, now: float, _: Keepalive) -> None:
        neg = self.negotiated
        assert neg is not None
        self._ctx = neg.ctx
        self._framer.max_message_len = neg.ctx.max_message_len
        self._restart_hold(now)
        self.state = State.ESTABLISHED
        self.established_at = now
        self._events.append(SessionEstablished(neg))

    def _keepalive_received(self, now: float, _: Keepalive) -> None:
        self._restart_hold(now)

    def _update(self, now: float, msg: Update) -> None:
        self._restart_hold(now)
        eor = msg.end_of_rib
        self._events.append(EndOfRib(eor) if eor is not None else UpdatesReceived([msg]))

    def _updates(self, frames: list[bytes], now: float) -> None:
        """Event 27 for each frame of a run of UPDATEs, in one pass (``bgp.inbound``).

        Same outcome as one table dispatch per message: the events in order,
        the Hold timer restarted (once, at ``now``, for the whole run), and a
        malformed UPDATE (Event 28) ending the session after the ones before it
        were reported.
        """
        run = decode_update_run(frames, self._ctx)
        self._events.extend(run.events)
        if run.taken:
            self.counters.count_in(MessageType.UPDATE, run.taken)
            self._restart_hold(now)
        if run.error is not None:
            self.dispatch(Event.UPDATE_MSG_ERR, now, run.error)

    def _route_refresh(self, now: float, msg: RouteRefresh) -> None:
        self._restart_hold(now)
        fam = Family.of(msg.afi, msg.safi)
        # RFC 7313 §5: unknown AFI/SAFI and unknown subtypes are ignored.
        if fam is not None and msg.subtype <= 2:
            self._events.append(RouteRefreshReceived(fam, msg.subtype))


def _ignore(fsm: BgpFsm, now: float, payload: object) -> None:
    """§8.2.2: events with no effect in this state."""


_IGNORE = Cell(_ignore, object)
_FSM_ERROR = Cell(BgpFsm._fsm_error, object)


def _error_event(err: BGPError) -> Event:
    if isinstance(err, MessageHeaderError):
        return Event.BGP_HEADER_ERR
    if isinstance(err, OpenMessageError):
        return Event.BGP_OPEN_MSG_ERR
    return Event.UPDATE_MSG_ERR


def _msg_type(msg: Message) -> int:
    if isinstance(msg, Update):
        return MessageType.UPDATE
    if isinstance(msg, Keepalive):
        return MessageType.KEEPALIVE
    if isinstance(msg, Open):
        return MessageType.OPEN
    if isinstance(msg, Notification):
        return MessageType.NOTIFICATION
    return MessageType.ROUTE_REFRESH


def _count_messages(data: bytes) -> int:
    """How many whole messages a buffer of concatenated messages holds."""
    n = pos = 0
    while pos + 19 <= len(data):
        pos += int.from_bytes(data[pos + 16 : pos + 18], "big") or len(data)
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class _End:
    """How a connection ended, before ``_down`` adds what it knows (``SessionDown``)."""

    code: int
    subcode: int
    reason: str
    message: str = ""
    inner: tuple[int, int] | None = None
    operator: bool = False

    @classmethod
    def of(cls, note: Notification, detail: str = "", operator: bool = False) -> _End:
        """The end by ``note`` (sent or received): names, the RFC 9003 text, a Hard Reset's inner."""
        inner = inner_of(note)
        shown = inner or note
        name = notification_name(note.code, note.subcode)
        if inner is not None:
            name += f" ({notification_name(inner.code, inner.subcode)})"
        text = shown.shutdown_message or ""
        tail = f": {text!r}" if text else (f": {detail}" if detail else "")
        pair = (inner.code, inner.subcode) if inner is not None else None
        return cls(note.code, note.subcode, name + tail, text, pair, operator)

    def event(self, sent: bool | None, was_up: bool, graceful: bool) -> SessionDown:
        return SessionDown(self.code, self.subcode, self.reason, sent, was_up, graceful,
                           self.message, self.inner, self.operator)  # fmt: skip


def _shutdown(message: str, subcode: int) -> Notification:
    """Cease; subcodes 2 and 4 carry the RFC 9003 §2 communication (≤ 255 octets)."""
    if subcode not in (CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, CeaseSubcode.ADMINISTRATIVE_RESET):
        return Notification(ErrorCode.CEASE, subcode)
    if not message:
        return Notification(ErrorCode.CEASE, subcode)
    raw = message.encode()[:255].decode("utf-8", "ignore")
    return Notification.shutdown(raw, subcode)


S, E = State, Event
_STARTS = (E.MANUAL_START, E.AUTOMATIC_START)
_PASSIVE_STARTS = (E.MANUAL_START_PASSIVE, E.AUTOMATIC_START_PASSIVE)
_ALL_STARTS = _STARTS + _PASSIVE_STARTS
_F = BgpFsm

TABLE: dict[tuple[State, Event], Runs] = {}


def _cells(
    states: tuple[State, ...],
    events: tuple[Event, ...],
    handler: Callable[[BgpFsm, float, P], None],
    payload: type[P],
) -> None:
    """Put ``handler`` in each (state, event) cell; ``payload`` must be what each event carries."""
    for e in events:
        if not issubclass(PAYLOAD[e], payload):
            raise TypeError(f"{handler.__name__}: {e.name} carries {PAYLOAD[e].__name__}")
    for s in states:
        for e in events:
            TABLE[(s, e)] = Cell(handler, payload)


_PRE_OPEN = (S.CONNECT, S.ACTIVE)
_WITH_OPEN = (S.OPEN_SENT, S.OPEN_CONFIRM, S.ESTABLISHED)
_NOT_IDLE = _PRE_OPEN + _WITH_OPEN
_NOTIFS = (E.NOTIF_MSG, E.NOTIF_MSG_VER_ERR)
_TCP_UP = (E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED)
_N = _NONE

# Idle (§8.2.2): starts; stops only switch automatic restart off.
_cells((S.IDLE,), (*_STARTS, E.IDLE_HOLD_TIMER_EXPIRES), _F._start, _N)
_cells((S.IDLE,), (E.MANUAL_START_PASSIVE,), _F._start_passive_manual, _N)
_cells((S.IDLE,), (E.AUTOMATIC_START_PASSIVE,), _F._start_passive, _N)
_cells((S.IDLE,), (E.MANUAL_STOP,), _F._stop_idle, ManualStop)
_cells((S.IDLE,), (E.AUTOMATIC_STOP,), _F._automatic_stop_idle, _N)
# Every state past Idle ignores starts; a second TCP connection is the peer's business.
_cells(_NOT_IDLE, _ALL_STARTS, _ignore, object)
_cells(_WITH_OPEN, _TCP_UP, _ignore, object)
_cells(_NOT_IDLE, (E.MANUAL_STOP,), _F._manual_stop, ManualStop)
_cells(_NOT_IDLE, (E.AUTOMATIC_STOP,), _F._automatic_stop, _N)
_cells(_NOT_IDLE, (E.TCP_CONNECTION_FAILS,), _F._tcp_failed, TcpFailed)
_cells(_NOT_IDLE, _NOTIFS, _F._notification, Notification)
_cells(_NOT_IDLE, (E.BGP_HEADER_ERR, E.BGP_OPEN_MSG_ERR), _F._error, BGPError)
# Connect and Active: waiting for TCP, or for DelayOpen with TCP up.
_cells(_PRE_OPEN, (E.CONNECT_RETRY_TIMER_EXPIRES,), _F._connect_retry_expired, _N)
_cells(_PRE_OPEN, (E.TCP_CR_ACKED,), _F._tcp_acked, _N)
_cells(_PRE_OPEN, (E.TCP_CONNECTION_CONFIRMED,), _F._tcp_confirmed, _N)
_cells(_PRE_OPEN, (E.DELAY_OPEN_TIMER_EXPIRES,), _F._send_open, _N)
_cells(_PRE_OPEN, (E.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING,), _F._open_during_delay, Open)
# OpenSent, OpenConfirm, Established.
_cells(_WITH_OPEN, (E.HOLD_TIMER_EXPIRES,), _F._hold_expired, _N)
_cells(_WITH_OPEN, (E.OPEN_COLLISION_DUMP,), _F._collision_dump, _N)
_cells((S.OPEN_SENT,), (E.BGP_OPEN,), _F._open_received, Open)
_cells((S.OPEN_CONFIRM, S.ESTABLISHED), (E.KEEPALIVE_TIMER_EXPIRES,), _F._keepalive_due, _N)
_cells((S.OPEN_CONFIRM,), (E.KEEPALIVE_MSG,), _F._established, Keepalive)
_cells((S.ESTABLISHED,), (E.KEEPALIVE_MSG,), _F._keepalive_received, Keepalive)
_cells((S.ESTABLISHED,), (E.UPDATE_MSG,), _F._update, Update)
_cells((S.ESTABLISHED,), (E.UPDATE_MSG_ERR,), _F._error, BGPError)
_cells((S.ESTABLISHED,), (E.ROUTE_REFRESH_MSG,), _F._route_refresh, RouteRefresh)

# Moves each state may make (§8.2.2), for the property test and for readers.
LEGAL: dict[State, frozenset[State]] = {
    S.IDLE: frozenset({S.IDLE, S.CONNECT, S.ACTIVE}),
    S.CONNECT: frozenset({S.CONNECT, S.ACTIVE, S.OPEN_SENT, S.OPEN_CONFIRM, S.IDLE}),
    S.ACTIVE: frozenset({S.ACTIVE, S.CONNECT, S.OPEN_SENT, S.OPEN_CONFIRM, S.IDLE}),
    S.OPEN_SENT: frozenset({S.OPEN_SENT, S.OPEN_CONFIRM, S.ACTIVE, S.IDLE}),
    S.OPEN_CONFIRM: frozenset({S.OPEN_CONFIRM, S.ESTABLISHED, S.IDLE}),
    S.ESTABLISHED: frozenset({S.ESTABLISHED, S.IDLE}),
}
