"""One BFD session in asynchronous mode (RFC 5880 §6), sans-IO.

No sockets, no clock: the runner feeds packets and time in and carries
datagrams and events out, like ``bgp.fsm``.

- In: ``receive(data, now, ttl)``, ``handle_timer(now)``, ``admin_down(now)``,
  ``admin_up(now)``.
- Out: ``datagrams_to_send()``, ``get_timer()`` (the earliest of the next
  periodic transmission and the detection deadline), ``next_event()``
  (``StateChanged``).

The state machine of RFC 5880 §6.2 / §6.8.6 is the table ``TRANSITIONS``:
(local state, input) → (new state, diagnostic); an input with no cell leaves
the state alone, as the diagram's self-loops do. The inputs are the state a
received packet carries, the detection timer, and the administrative actions.

Timers (RFC 5880 §6.8.2-§6.8.4, §6.8.7):

- Transmit interval: the larger of our DesiredMinTxInterval and the remote's
  RequiredMinRxInterval, each packet 0-25 % early (10-25 % with a detect
  multiplier of 1). While the session is not Up, DesiredMinTxInterval is at
  least one second (§6.8.3). Nothing is sent while the remote's
  RequiredMinRxInterval is zero (§6.8.7) or when it asked for Demand mode
  and both ends are Up.
- Detection time: the remote's Detect Mult x the larger of our
  RequiredMinRxInterval and the remote's DesiredMinTxInterval. It runs in
  Init and Up; expiry takes the session Down with diagnostic 1. In Down it
  only clears the remote discriminator (§6.8.1).
- A change of our advertised intervals while Up starts a Poll Sequence
  (§6.5): P on every packet until an F arrives. Until then an increased
  transmit interval is not used and a reduced receive interval does not yet
  shorten the detection time (§6.8.3). A received P is answered at once with
  an F, outside the periodic schedule (§6.8.7).
- A change of state is sent at once and restarts the periodic schedule, so
  the remote learns of a Down or AdminDown before its detection time runs out
  on our slower not-Up rate.

Single-hop rules (RFC 5881 §5): a packet must arrive with TTL / hop limit
255 (no authentication is used, so the check is mandatory); ``min_ttl`` in
the settings lowers it for multihop sessions (RFC 5883 §5). Which session a
packet belongs to (the source address) is the runner's concern; the
discriminator rules of §6.8.6 are checked here.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

from bfd.packet import (
    BfdPacketError,
    ControlPacket,
    Diag,
    State,
    decode_control,
    encode_control,
)

__all__ = [
    "SLOW_TX",
    "TRANSITIONS",
    "BfdSession",
    "BfdSettings",
    "Counters",
    "Input",
    "StateChanged",
]

SLOW_TX = 1.0  # RFC 5880 §6.8.3: DesiredMinTxInterval while not Up, at least 1 s
_US = 1_000_000


class Input(IntEnum):
    """What drives the state machine (RFC 5880 §6.2 diagram labels, plus admin actions)."""

    RECV_ADMIN_DOWN = State.ADMIN_DOWN
    RECV_DOWN = State.DOWN
    RECV_INIT = State.INIT
    RECV_UP = State.UP
    DETECTION_TIMEOUT = 10
    ADMIN_DOWN = 11
    ADMIN_UP = 12


_S, _I, _D = State, Input, Diag

# RFC 5880 §6.8.6 (reception), §6.8.4 (detection), §6.8.16 (administrative control).
# In AdminDown every received packet is discarded, so no RECV_* cell exists for it.
TRANSITIONS: dict[tuple[State, Input], tuple[State, Diag]] = {
    (_S.DOWN, _I.RECV_DOWN): (_S.INIT, _D.NONE),
    (_S.DOWN, _I.RECV_INIT): (_S.UP, _D.NONE),
    (_S.INIT, _I.RECV_ADMIN_DOWN): (_S.DOWN, _D.NEIGHBOR_SIGNALED_SESSION_DOWN),
    (_S.INIT, _I.RECV_INIT): (_S.UP, _D.NONE),
    (_S.INIT, _I.RECV_UP): (_S.UP, _D.NONE),
    (_S.INIT, _I.DETECTION_TIMEOUT): (_S.DOWN, _D.CONTROL_DETECTION_TIME_EXPIRED),
    (_S.UP, _I.RECV_ADMIN_DOWN): (_S.DOWN, _D.NEIGHBOR_SIGNALED_SESSION_DOWN),
    (_S.UP, _I.RECV_DOWN): (_S.DOWN, _D.NEIGHBOR_SIGNALED_SESSION_DOWN),
    (_S.UP, _I.DETECTION_TIMEOUT): (_S.DOWN, _D.CONTROL_DETECTION_TIME_EXPIRED),
    (_S.DOWN, _I.ADMIN_DOWN): (_S.ADMIN_DOWN, _D.ADMINISTRATIVELY_DOWN),
    (_S.INIT, _I.ADMIN_DOWN): (_S.ADMIN_DOWN, _D.ADMINISTRATIVELY_DOWN),
    (_S.UP, _I.ADMIN_DOWN): (_S.ADMIN_DOWN, _D.ADMINISTRATIVELY_DOWN),
    (_S.ADMIN_DOWN, _I.ADMIN_UP): (_S.DOWN, _D.NONE),
}


@dataclass(frozen=True, slots=True)
class BfdSettings:
    """Our side of a session; intervals in seconds (RFC 5880 §6.8.1 names in brackets).

    ``desired_min_tx`` [DesiredMinTxInterval], ``required_min_rx``
    [RequiredMinRxInterval], ``detect_mult`` [DetectMult]; ``min_ttl`` is 255
    for single hop (RFC 5881 §5).
    """

    desired_min_tx: float = 0.3
    required_min_rx: float = 0.3
    detect_mult: int = 3
    min_ttl: int = 255

    def __post_init__(self) -> None:
        if not 0 < self.desired_min_tx <= 4294 or not 0 <= self.required_min_rx <= 4294:
            raise ValueError("BFD intervals must be positive and fit 32 bits of microseconds")
        if not 1 <= self.detect_mult <= 255:
            raise ValueError("BFD detect multiplier must be 1..255")


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The session moved from ``old`` to ``new``; ``diag`` is our LocalDiag after it.

    ``remote_state`` is the state the remote last signalled: a move to Down
    because the remote said AdminDown is not a path failure (RFC 5882 §3.2).
    """

    old: State
    new: State
    diag: Diag
    remote_state: State
    at: float


@dataclass
class Counters:
    """Packets in and out, and drops by reason (for ``show`` and metrics)."""

    rx: int = 0
    tx: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    up_transitions: int = 0
    down_transitions: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


class BfdSession:
    """RFC 5880 asynchronous mode for one peer; see the module docstring."""

    def __init__(
        self,
        settings: BfdSettings,
        local_discr: int,
        now: float,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < local_discr < 1 << 32:
            raise ValueError("local discriminator must be nonzero and 32 bits (RFC 5880 §6.3)")
        self.settings = settings
        self.local_discr = local_discr
        self.rng = rng or random.Random()
        self.counters = Counters()
        # RFC 5880 §6.8.1 initial values.
        self.state = State.DOWN
        self.remote_state = State.DOWN
        self.remote_discr = 0
        self.local_diag = Diag.NONE
        self.remote_min_rx = 1e-6  # "initialized to 1" microsecond
        self.remote_min_tx = 0.0
        self.remote_mult = 0
        self.remote_demand = False
        self.remote_diag = 0
        # Intervals in use, which lag the advertised ones during a Poll Sequence (§6.8.3).
        self._tx_in_use = self._advertised_tx()
        self._rx_in_use = settings.required_min_rx
        self._polling = False
        self._last_tx: float | None = None
        self._jitter = 1.0
        self._detect_at: float | None = None
        self._last_rx: float | None = None
        self._out: deque[bytes] = deque()
        self._events: deque[StateChanged] = deque()
        self._start = now

    # ------------------------------------------------------------------ out

    def datagrams_to_send(self) -> list[bytes]:
        out = list(self._out)
        self._out.clear()
        return out

    def next_event(self) -> StateChanged | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest deadline: the next periodic packet or the detection time."""
        deadlines = [t for t in (self._next_tx(), self._detect_at) if t is not None]
        return min(deadlines) if deadlines else None

    @property
    def detection_time(self) -> float:
        """RFC 5880 §6.8.4 (asynchronous mode), in seconds; 0 before any packet."""
        return self.remote_mult * max(self._rx_in_use, self.remote_min_tx)

    @property
    def tx_interval(self) -> float:
        """RFC 5880 §6.8.7: the larger of our interval in use and the remote's minimum."""
        return max(self._tx_in_use, self.remote_min_rx)

    # ------------------------------------------------------------------- in

    def receive(self, data: bytes, now: float, ttl: int = 255) -> None:
        """One received UDP payload with its TTL / hop limit; bad packets are dropped."""
        if ttl < self.settings.min_ttl:
            self.counters.drop("ttl")  # RFC 5881 §5 (GTSM-like check), RFC 5883 §5
            return
        try:
            p = decode_control(data)
        except BfdPacketError:
            self.counters.drop("malformed")
            return
        reason = self._discard_reason(p)
        if reason:
            self.counters.drop(reason)
            return
        self.counters.rx += 1
        self._accept(p, now)

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due: the detection time first, then the periodic packet."""
        if self._detect_at is not None and now >= self._detect_at:
            self._detect_at = None
            self.remote_discr = 0  # §6.8.1: reset when the Detection Time passes
            self._input(Input.DETECTION_TIMEOUT, now)
        nxt = self._next_tx()
        if nxt is not None and now >= nxt:
            self._send(now)

    def admin_down(self, now: float) -> None:
        """§6.8.16: AdminDown, diagnostic 7; packets keep telling the remote so."""
        self._input(Input.ADMIN_DOWN, now)

    def admin_up(self, now: float) -> None:
        self._input(Input.ADMIN_UP, now)

    # ------------------------------------------------------------- internals

    def _discard_reason(self, p: ControlPacket) -> str:
        """RFC 5880 §6.8.6, the checks that need this session's state."""
        if p.your_discriminator and p.your_discriminator != self.local_discr:
            return "your_discriminator"
        if not p.your_discriminator and p.state not in (State.DOWN, State.ADMIN_DOWN):
            return "zero_your_discriminator"
        return ""

    def _accept(self, p: ControlPacket, now: float) -> None:
        """§6.8.6 after the checks: record the remote's values, answer a Poll, move."""
        self.remote_discr = p.my_discriminator
        self.remote_state = p.state
        self.remote_demand = p.demand
        self.remote_diag = p.diag
        self.remote_min_rx = p.required_min_rx / _US
        self.remote_min_tx = p.desired_min_tx / _US
        self.remote_mult = p.detect_mult
        self._last_rx = now
        if p.final and self._polling:
            self._end_poll()
        if p.poll:
            self._emit(now, final=True)  # §6.8.7: a Final at once, not on the schedule
        if self.state is State.ADMIN_DOWN:
            return
        self._input(Input(p.state), now)
        if self.state in (State.INIT, State.UP):
            self._detect_at = now + self.detection_time

    def _input(self, inp: Input, now: float) -> None:
        cell = TRANSITIONS.get((self.state, inp))
        if cell is None:
            return
        new, diag = cell
        old, self.state = self.state, new
        self.local_diag = diag  # §4.1: the reason for the last change of state
        if new is State.UP:
            self.counters.up_transitions += 1
        elif old is State.UP:
            self.counters.down_transitions += 1
        if new not in (State.INIT, State.UP):
            self._detect_at = None
        self._advertise_changed(old, new)
        self._events.append(StateChanged(old, new, self.local_diag, self.remote_state, now))
        if self.remote_min_rx > 0:
            # The new state goes out at once and the periodic schedule restarts from
            # here: the remote must not wait a slow 1 s interval to learn of a Down or
            # AdminDown, or its detection time would expire first (as FRR and BIRD do).
            self._send(now)

    def _advertised_tx(self) -> float:
        if self.state is State.UP:
            return self.settings.desired_min_tx
        return max(self.settings.desired_min_tx, SLOW_TX)

    def _advertise_changed(self, old: State, new: State) -> None:
        """Entering or leaving Up changes DesiredMinTxInterval (§6.8.3)."""
        tx = self._advertised_tx()
        if tx == self._tx_in_use:
            return
        if new is State.UP:
            self._polling = True  # §6.8.3: a change of the intervals starts a Poll Sequence
        else:
            self._polling = False  # the remote learns the slow rate from every packet now
            self._rx_in_use = self.settings.required_min_rx
        if new is not State.UP or tx < self._tx_in_use:
            self._tx_in_use = tx  # a decrease, or not Up: in use at once

    def _end_poll(self) -> None:
        """§6.5: the Final ends the Poll Sequence; the new intervals are now in use."""
        self._polling = False
        self._tx_in_use = self._advertised_tx()
        self._rx_in_use = self.settings.required_min_rx

    def _next_tx(self) -> float | None:
        if self.remote_min_rx == 0:
            return None  # §6.8.7: the remote asked for no packets
        if self.remote_demand and self.state is State.UP and self.remote_state is State.UP:
            return None  # §6.8.7: Demand mode, the remote polls when it wants to know
        if self._last_tx is None:
            return self._start
        return self._last_tx + self.tx_interval * self._jitter

    def _send(self, now: float) -> None:
        self._emit(now, final=False)
        self._last_tx = now
        # §6.8.7: each interval 0-25 % shorter; 10-25 % with a detect multiplier of 1.
        low, high = (0.75, 0.9) if self.settings.detect_mult == 1 else (0.75, 1.0)
        self._jitter = self.rng.uniform(low, high)

    def _emit(self, now: float, final: bool) -> None:
        p = ControlPacket(
            state=self.state,
            my_discriminator=self.local_discr,
            your_discriminator=self.remote_discr,
            detect_mult=self.settings.detect_mult,
            desired_min_tx=round(self._advertised_tx() * _US),
            required_min_rx=round(self.settings.required_min_rx * _US),
            diag=self.local_diag,
            poll=self._polling and not final,
            final=final,
        )
        self._out.append(encode_control(p))
        self.counters.tx += 1
