"""The asyncio shell around one ``BgpFsm``: socket, timer, batches and back-pressure.

A ``Session`` carries out what its machine asks (``bgp.fsm``): it writes
``data_to_send()``, dials when told ``ConnectRequested``, closes on
``DisconnectRequested``, keeps exactly one ``loop.call_at`` armed for
``get_timer()``, and hands every other event to its owner (the ``Peer`` of
``bgp.speaker``), UPDATEs grouped in one list per batch. After
``OpenReceived`` the machine is paused until the owner has decided a
connection collision (RFC 4271 §6.8): unless the owner dumped the connection,
the session resumes it as soon as the owner returns.

Inbound batches: received bytes are fed to the machine at most
``BATCH_BYTES`` at a time; if more is waiting, reading pauses and the rest is
processed from ``call_soon``, so the loop runs timers and other peers between
batches (keepalives keep flowing while a full table arrives).

Inbound back-pressure from downstream: an `InputGate` (podbgp's FIB while the
kernel is far behind the RIB) can hold an established session's input. The
session then stops reading, as between batches, until the gate opens — or for
at most ``MAX_HOLD`` seconds, after which it reads on until the gate has opened
once: a gate paces a session, it never stalls one, and a hold stays well inside
the smallest hold time (3 s), since every batch processed restarts the timer.

Outbound back-pressure: the transport's write buffer has a high-water mark;
``pump()`` pulls UPDATE bytes from the peer's ``RouteSource`` only while the
transport is below it and stops at ``pause_writing``; ``resume_writing``
pumps again. A ``_Link`` protocol object per TCP connection tells a stale
connection's callbacks from the current one's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

from bgp.events import (
    ConnectRequested,
    DisconnectRequested,
    FsmEvent,
    OpenReceived,
    RouteSource,
    UpdatesReceived,
)
from bgp.fsm import BgpFsm, State
from bgp.wire.update import Update

__all__ = ["InputGate", "Session", "SessionOwner"]

log = logging.getLogger("bgp.session")


class SessionOwner(Protocol):
    """Who a session reports to (``bgp.speaker.Peer``)."""

    def fsm_event(self, session: Session, event: FsmEvent) -> None: ...

    def updates(self, session: Session, updates: list[Update]) -> None: ...

    def dial_socket(self, session: Session) -> tuple[socket.socket, tuple[Any, ...]]: ...


class InputGate(Protocol):
    """Downstream work that established sessions' input may wait for (see the module
    docstring): `holding` is asked before each batch; a session held registers
    `when_open` once and is called back when the gate opens."""

    def holding(self) -> bool: ...

    def when_open(self, callback: Callable[[], None]) -> None: ...


class _Link(asyncio.Protocol):
    """One TCP connection's callbacks, forwarded to the session that owns it."""

    def __init__(self, session: Session, outgoing: bool) -> None:
        self.session = session
        self.outgoing = outgoing
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.session._link_made(self)

    def data_received(self, data: bytes) -> None:
        self.session._link_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._link_lost(self, exc)

    def pause_writing(self) -> None:
        self.session._set_paused(self, True)

    def resume_writing(self) -> None:
        self.session._set_paused(self, False)


class Session:
    """One FSM and (at most) one TCP connection at a time."""

    BATCH_BYTES = 64 * 1024
    HIGH_WATER = 256 * 1024
    LOW_WATER = 64 * 1024
    PULL_BYTES = 64 * 1024
    LINGER = 1.0
    MAX_HOLD = 1.0  # seconds an InputGate may hold the input at a time

    def __init__(
        self,
        fsm: BgpFsm,
        owner: SessionOwner,
        lingering: set[asyncio.Transport] | None = None,
        gate: InputGate | None = None,
    ) -> None:
        self.fsm = fsm
        self.owner = owner
        self.lingering = lingering if lingering is not None else set()
        self.loop = asyncio.get_running_loop()
        self.source: RouteSource | None = None
        self.discarded = False
        self._link: _Link | None = None
        self._dial: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._inbox = bytearray()
        self._draining = False
        self._paused = False
        self._abort = False
        self.gate = gate
        self._gate_timer: asyncio.TimerHandle | None = None  # armed while the gate holds us
        self._gate_waived = False  # held past MAX_HOLD: read on until the gate opens

    # ------------------------------------------------------------ actions

    def start(self, passive: bool | None = None) -> None:
        self.fsm.start(self.loop.time(), passive)
        self.service()

    def start_for_incoming(self) -> None:
        """Started by the peer's connection (Event 5): passive, never a dial of its own."""
        self.fsm.start_for_incoming(self.loop.time())
        self.service()

    def stop(
        self,
        message: str,
        subcode: int,
        restart: bool,
        hard: bool | None = None,
        operator: bool = True,
    ) -> None:
        self.fsm.stop(self.loop.time(), message, subcode, restart, hard, operator)
        self.service()

    def close(self, reason: str) -> None:
        """End without a NOTIFICATION; the connection is closed gently (``BgpFsm.close``)."""
        self.fsm.close(self.loop.time(), reason)
        self.service()

    def collision_dump(self) -> None:
        self.fsm.collision_dump(self.loop.time())
        self.service()

    def abandon(self, reason: str) -> None:
        """End the session without a NOTIFICATION and reset the connection (peer restarted).

        The old connection leads to a process that no longer exists, so
        nothing queued for it is worth flushing: the transport is aborted.
        """
        self._abort = True
        self.fsm.abandon(self.loop.time(), reason)
        self.service()

    @property
    def peername(self) -> tuple[str, int] | None:
        link = self._link
        if link is None or link.transport is None:
            return None
        name = link.transport.get_extra_info("peername")
        return (name[0], name[1]) if name else None

    @property
    def sockname(self) -> tuple[str, int] | None:
        link = self._link
        if link is None or link.transport is None:
            return None
        name = link.transport.get_extra_info("sockname")
        return (name[0], name[1]) if name else None

    async def attach(self, sock: socket.socket) -> None:
        """Take an accepted connection (TcpConnectionConfirmed)."""
        await self.loop.connect_accepted_socket(lambda: _Link(self, False), sock)

    def discard(self) -> None:
        """Forget this session: no more events, timers or I/O (its connection is closed)."""
        self.discarded = True
        if self._dial is not None:
            self._dial.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self._gate_timer is not None:
            self._gate_timer.cancel()
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.write(self.fsm.data_to_send())
            self._close_gently(link.transport)

    def pump(self) -> None:
        """Pull and write UPDATE bytes while the transport is below its high-water mark."""
        link = self._link
        if self.source is None or link is None or self.fsm.state is not State.ESTABLISHED:
            return
        while not self._paused and self._link is link:
            data = self.source.pull(self.PULL_BYTES)
            if not data:
                break
            self.fsm.send_update_bytes(data, self.loop.time())
            self._write()  # may call pause_writing synchronously
        self._rearm()

    # ------------------------------------------------------ FSM servicing

    def service(self) -> None:
        """Carry out the machine's events, write queued bytes, re-arm the timer.

        The bytes are written once, after the events (and before any
        disconnect). ``OpenReceived`` goes to the owner, which may dump this
        connection (§6.8); otherwise the machine resumes, and the events of
        the input it had held back follow in this same loop.
        """
        if self.discarded:
            return
        batch: list[Update] = []
        while (ev := self.fsm.next_event()) is not None:
            if isinstance(ev, UpdatesReceived):
                batch += ev.updates
                continue
            if batch:
                self.owner.updates(self, batch)
                batch = []
            if isinstance(ev, ConnectRequested):
                self._start_dial()
            elif isinstance(ev, DisconnectRequested):
                if self.fsm.state is State.ACTIVE:  # a passive side's one dial timed out
                    self._report_unanswered()
                self._write()
                self._disconnect()
            else:
                self.owner.fsm_event(self, ev)
            if self.discarded:
                return
            if isinstance(ev, OpenReceived):
                self.fsm.resume(self.loop.time())
        if batch:
            self.owner.updates(self, batch)
        self._write()
        self._rearm()

    def _write(self) -> None:
        data = self.fsm.data_to_send()
        link = self._link
        if data and link is not None and link.transport is not None:
            link.transport.write(data)

    def _rearm(self) -> None:
        deadline = self.fsm.get_timer()
        if deadline == self._timer_at or self.discarded:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        when = self._timer_at or 0.0
        self._timer = self._timer_at = None
        self.fsm.handle_timer(max(self.loop.time(), when))
        self.service()

    # ---------------------------------------------------------- transport

    def _start_dial(self) -> None:
        if self._dial is not None:
            self._report_unanswered()
            self._dial.cancel()
        self._dial = self.loop.create_task(self._connect())

    def _report_unanswered(self) -> None:
        """A dial the FSM gives up on (ConnectRetry expired) that got no answer at all.
        With TCP MD5 on, the likeliest cause is a different key at the peer: its kernel
        drops segments whose signature is missing or wrong without a reply (RFC 2385
        §2.0), so nothing else would ever say why the session does not come up."""
        if self._dial is None or self._dial.done():
            return
        ps = self.fsm.peer
        why = (
            "; TCP MD5 is on: a peer with another password drops our segments silently (RFC 2385)"
            if ps.password
            else ""
        )
        log.warning("%s: no answer to connect (port %d)%s", ps.address, ps.port, why)

    async def _connect(self) -> None:
        sock: socket.socket | None = None
        try:
            sock, addr = self.owner.dial_socket(self)
            await self.loop.sock_connect(sock, addr)
            await self.loop.create_connection(lambda: _Link(self, True), sock=sock)
        except asyncio.CancelledError:
            if sock is not None:
                sock.close()
            raise
        except OSError as exc:
            if sock is not None:
                sock.close()
            if self._dial is asyncio.current_task() and not self.discarded:
                self._dial = None
                self.fsm.connection_lost(self.loop.time(), f"connect: {exc.strerror or exc}")
                self.service()

    def _disconnect(self) -> None:
        if self._dial is not None:
            self._dial.cancel()
            self._dial = None
        link, self._link = self._link, None
        self._inbox.clear()
        self._paused = False
        self.source = None
        abort, self._abort = self._abort, False
        if link is not None and link.transport is not None:
            if abort:
                link.transport.abort()
            else:
                self._close_gently(link.transport)

    def _close_gently(self, transport: asyncio.Transport) -> None:
        """Flush (the NOTIFICATION), send FIN, and close a moment later.

        Closing at once with the peer's bytes unread makes the kernel send a
        RST, which can destroy the NOTIFICATION before the peer reads it. A
        connection the peer has already reset is just aborted.
        """
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:
            # The peer reset the connection before the loop noticed (ENOTCONN from
            # shutdown()): nothing can be flushed any more.
            transport.abort()
            return
        self.lingering.add(transport)

        def close() -> None:
            self.lingering.discard(transport)
            transport.close()

        self.loop.call_later(self.LINGER, close)

    def _link_made(self, link: _Link) -> None:
        assert link.transport is not None
        if link.outgoing:
            self._dial = None
        if (
            self.discarded
            or self.fsm.connected
            or self.fsm.state not in (State.CONNECT, State.ACTIVE)
        ):
            link.transport.close()
            return
        self._link = link
        link.transport.set_write_buffer_limits(self.HIGH_WATER, self.LOW_WATER)
        sock = link.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fsm.connection_made(self.loop.time(), link.outgoing)
        self.service()

    def _link_data(self, link: _Link, data: bytes) -> None:
        if link is not self._link:
            return
        self._inbox += data
        if not self._draining:
            self._drain()

    def _drain(self) -> None:
        """Feed one bounded batch to the machine; schedule the rest after a loop turn."""
        link = self._link
        if link is None or link.transport is None or self.discarded:
            self._draining = False
            return
        if self._held(link):
            return
        chunk = bytes(self._inbox[: self.BATCH_BYTES])
        del self._inbox[: self.BATCH_BYTES]
        self.fsm.receive_data(chunk, self.loop.time())
        self.service()
        self.pump()
        if self._inbox and self._link is link:
            if not self._draining:
                link.transport.pause_reading()
            self._draining = True
            self.loop.call_soon(self._drain)
        elif self._draining:
            self._draining = False
            if self._link is link:
                link.transport.resume_reading()

    def _held(self, link: _Link) -> bool:
        """Whether the gate holds this session's input now; if so, reading is paused
        and the session waits for the gate to open or for MAX_HOLD to pass."""
        gate = self.gate
        if (
            gate is None
            or self._gate_waived
            or self.fsm.state is not State.ESTABLISHED
            or not gate.holding()
        ):
            return False
        assert link.transport is not None
        if not self._draining:
            link.transport.pause_reading()
            self._draining = True
        if self._gate_timer is None:
            self._gate_timer = self.loop.call_later(self.MAX_HOLD, self._gate_expired)
            gate.when_open(self._gate_opened)
        return True

    def _gate_opened(self) -> None:
        if self._gate_timer is not None:
            self._gate_timer.cancel()
            self._gate_timer = None
        self._gate_waived = False
        if self._draining and not self.discarded:
            self._drain()

    def _gate_expired(self) -> None:
        self._gate_timer = None
        self._gate_waived = True
        if self._draining and not self.discarded:
            self._drain()

    def _link_lost(self, link: _Link, exc: Exception | None) -> None:
        if link is not self._link:
            return
        self._link = None
        self._inbox.clear()
        self._draining = False  # (a hold's wake-up finds no link and does nothing)
        self.fsm.connection_lost(self.loop.time(), str(exc) if exc else "closed by peer")
        self.service()

    def _set_paused(self, link: _Link, paused: bool) -> None:
        if link is not self._link:
            return
        self._paused = paused
        if not paused:
            self.pump()
