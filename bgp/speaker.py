"""The BGP speaker: listeners, peers, collisions, dynamic neighbours.

``Speaker(settings, sink, source_factory)`` owns:

- listening sockets on each ``listen`` address (``"::"`` alone is dual-stack;
  with an IPv4 address beside it the IPv6 socket is v6-only), carrying the
  TCP MD5 key of every configured peer (IPv4-mapped on dual-stack sockets)
  and a prefix key per listen range with a password (RFC 2385), and TTL 255
  when any peer uses GTSM so the SYN-ACK already passes the peer's check;
- one ``Peer`` per neighbour. A connection from an address that is neither
  a peer nor inside a listen range is closed before any byte is sent. A
  connection from inside a listen range creates a passive dynamic peer from
  the range's template, removed again when its session ends.

A ``Peer`` holds its main ``Session`` (the connection lineage that retries
with back-off) and, while a collision is open, a second one for the other
TCP connection. Collisions are resolved per RFC 4271 §6.8 when a connection
receives its OPEN: against a connection in OpenConfirm the BGP identifiers
decide (``bgp.fsm.keep_outgoing``); against one in Established the new
connection is closed — unless both that session and the new OPEN have the
graceful-restart capability: then the peer may have restarted (RFC 4724
§4.2), and the new connection carries on; if it reaches Established, the
old session ends without a NOTIFICATION (reported like a TCP loss, so its
routes are kept as stale). Whichever
connection reaches Established first becomes the main one and the other is
dropped (Cease 7). The peer gives the RIB a
``PeerHandle`` (``key``, ``wake()``), bumps counters and exposes ``stats()``
as a plain dict for ``podbgp show peers --json``.

Outgoing sockets get, before ``connect``: the MD5 key, GTSM (TTL 255 and
``IP_MINTTL``) or the eBGP multihop TTL, and the bind to ``local_address``.

Stopping (``Speaker.stop``) has two kinds (``bgp.restart.StopKind``): a
restart stop (SIGTERM) ends each session so that the peer keeps our routes
(soft Cease with N, a silent close to a graceful-restart peer without N);
a shutdown stop sends Cease / Administrative Shutdown (a Hard Reset with N).

Session events are logged at info on ``bgp.speaker`` — Established, down
with the reason and NOTIFICATION names (RFC 9003 text included), operator
actions with who asked — each with structured fields (``extra``: ``peer``,
``event``, and ``code``/``subcode``/``direction``/``shutdown_message`` where
they apply) for the JSON log format.

Size (over ~600 lines, one concern): the speaker owns who a connection
belongs to. An accepted socket is matched to a configured or dynamic
``Peer`` here, and a collision (RFC 4271 §6.8, RFC 4724 §4.2) is decided
between the ``Peer``'s two sessions with the ``Speaker``'s listeners and peer
table; ``Peer`` and ``Speaker`` call each other for it and keep one
life cycle. The session itself is ``bgp.session``, its state machine
``bgp.fsm``, how it stops ``bgp.restart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from dataclasses import replace
from typing import Any

from bgp import sockopts
from bgp.errors import CeaseSubcode, ErrorCode
from bgp.events import (
    EndOfRib,
    FsmEvent,
    OpenReceived,
    RouteRefreshReceived,
    RouteSink,
    RouteSource,
    SessionDown,
    SessionEstablished,
    SourceFactory,
)
from bgp.fsm import BgpFsm, Counters, State, Timer, keep_outgoing
from bgp.ndp_socket import LinkWatch, global_addresses
from bgp.negotiate import Negotiated
from bgp.restart import StopKind, notification_name, restart_stop
from bgp.session import InputGate, Session
from bgp.settings import PeerSettings, SpeakerSettings, link_peer_address
from bgp.wire.constants import Family
from bgp.wire.update import Update

__all__ = ["Peer", "Speaker"]

log = logging.getLogger("bgp.speaker")

REFUSED_KEPT = 4096
"""Addresses whose last refused connection ``Speaker.refused_within`` remembers."""


def _norm(address: str) -> str:
    """Canonical text of an address; IPv4-mapped IPv6 becomes plain IPv4. A link-local
    address keeps its zone (``fe80::2%eth1``): it names a neighbour on one link only."""
    host, _, zone = address.partition("%")
    addr = ipaddress.ip_address(host)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    if zone and isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local:
        return f"{addr}%{zone}"
    return str(addr)


class Peer:
    """One neighbour: settings, sessions, collision resolution and stats."""

    def __init__(self, speaker: Speaker, settings: PeerSettings, dynamic: bool = False) -> None:
        self.speaker = speaker
        self.settings = settings
        self.dynamic = dynamic
        self.counters = Counters()
        self.main: Session | None = None
        self.extra: Session | None = None
        self.established: Session | None = None
        self.negotiated: Negotiated | None = None
        self.source: RouteSource | None = None
        self.prefixes_in = 0
        self.prefixes_out = 0
        self.flaps = 0
        self.established_at: float | None = None  # on the speaker's clock (``Speaker.now``)
        self.last_error: dict[str, Any] | None = None
        # An unnumbered peer's link-local address: configured, or found on the link.
        self.neighbour: ipaddress.IPv6Address | None = settings.fixed_neighbour

    # ---------------------------------------------------------- PeerHandle

    @property
    def key(self) -> str:
        return _norm(self.settings.address)

    def wake(self) -> None:
        """The RIB has something for this peer: pull if the socket can take it."""
        if self.established is not None:
            self.established.pump()

    @property
    def local_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """Our address on the established session, as its socket reports it."""
        name = self.established.sockname if self.established is not None else None
        return _socket_ip(name[0]) if name else None

    @property
    def link_global(self) -> ipaddress.IPv6Address | None:
        """A global IPv6 address on an unnumbered peer's link, if it has one."""
        if not self.settings.interface or self.established is None:
            return None
        found = sorted(global_addresses(self.settings.interface))
        return found[0] if found else None

    # ------------------------------------------------------ admin actions

    @property
    def enabled(self) -> bool:
        return self.main is not None

    def enable(self, by: str = "") -> None:
        """Start (or restart after ``shutdown``) the main session."""
        if by:
            self._log_action("enable", by)
        if self.main is None:
            self.main = self._new_session()
            self.main.start()

    def shutdown(
        self,
        message: str = "",
        subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        hard: bool | None = None,
        by: str = "",
        operator: bool = True,
    ) -> None:
        """Cease with an RFC 9003 message; stays down until ``enable``.

        A Hard Reset with N exchanged for the subcodes RFC 8538 §5.1 names, or
        when ``hard`` (``bgp.restart.outgoing``). ``operator`` False: the peer's own
        doing (maximum prefixes), which counts as a flap.
        """
        message = message or self.settings.shutdown_message
        if by:
            self._log_action("shutdown", by, message)
        extra, self.extra = self.extra, None
        if extra is not None:  # never Established: that one is always main
            extra.stop(message, subcode, restart=False, hard=hard, operator=operator)
            extra.discard()
        main = self.main
        if main is not None:  # reports peer_down if up
            main.stop(message, subcode, restart=False, hard=hard, operator=operator)
            main.discard()
        self.main = None

    def reset(
        self,
        message: str = "",
        subcode: int = CeaseSubcode.ADMINISTRATIVE_RESET,
        hard: bool = False,
        by: str = "",
    ) -> None:
        """Administrative reset (Cease 4): drop the session and reconnect at once.

        Soft by default: with N exchanged both ends keep the routes stale until
        the new session's End-of-RIB (RFC 8538 §4); ``hard`` sends a Hard Reset
        and flushes them. Never damped, never counted as a flap. Another
        ``subcode`` is a reset for a cause (BFD Down, RFC 9384): ``bring_down``.
        """
        if subcode != CeaseSubcode.ADMINISTRATIVE_RESET:
            self.bring_down(message, subcode, hard=True)
            return
        message = message or self.settings.shutdown_message
        if by:
            self._log_action("hard reset" if hard else "reset", by, message)
        if self.extra is not None:
            self.extra.discard()
            self.extra = None
        if self.main is not None:
            self.main.stop(message, CeaseSubcode.ADMINISTRATIVE_RESET, restart=True, hard=hard)

    def bring_down(
        self, reason: str, subcode: int = CeaseSubcode.BFD_DOWN, hard: bool | None = None
    ) -> None:
        """End the session for a cause (e.g. BFD down, RFC 9384): Cease ``subcode``,
        ``reason`` as the log text; it reconnects by itself, and it is a flap.

        ``hard`` True: a Hard Reset with N (as FRR sends for BFD Down), so both ends
        drop the routes of a path that is known to be dead; without N the Cease
        itself ends graceful restart (``bgp.restart.graceful_end``)."""
        log.info("%s: bringing the session down: %s", self.key, reason,
                 extra={"peer": self.key, "event": "bring_down", "reason": reason})  # fmt: skip
        if self.extra is not None:
            self.extra.discard()
            self.extra = None
        if self.main is not None:
            self.main.stop("", subcode, restart=True, hard=hard, operator=False)

    def stop_for_restart(self, message: str) -> None:
        """The restart stop of this peer (``bgp.restart.restart_stop``): keep our routes."""
        neg = self.negotiated
        how = restart_stop(
            self.established is not None,
            neg is not None and neg.peer_restart is not None,
            neg is not None and neg.graceful_notification,
        )
        if how.notify or self.main is None:
            self.shutdown(message, how.subcode, how.hard)
            return
        extra, self.extra = self.extra, None
        if extra is not None:
            extra.discard()
        main, self.main = self.main, None
        main.close("restarting: closed without NOTIFICATION (RFC 4724 §4.2)")
        main.discard()

    def expected_back(self) -> float | None:
        """Seconds until the session is dialled again (0: now), None when it waits for the
        peer to connect (passive) or is disabled."""
        main = self.main
        if main is None or self.established is not None:
            return 0.0 if self.established is not None else None
        fsm = main.fsm
        if fsm.state in (State.CONNECT, State.OPEN_SENT, State.OPEN_CONFIRM):
            return 0.0
        deadline = fsm.deadline(Timer.IDLE_HOLD)
        if deadline is None:  # a passive peer's only while its one dial waits (connect_delay)
            deadline = fsm.deadline(Timer.CONNECT_RETRY)
        if deadline is None:
            return None
        return max(0.0, deadline - main.loop.time())

    def _log_action(self, action: str, by: str, message: str = "") -> None:
        log.info("%s: %s by %s%s", self.key, action, by, f": {message!r}" if message else "",
                 extra={"peer": self.key, "event": action.replace(" ", "_"), "by": by,
                        "shutdown_message": message})  # fmt: skip

    def refresh(self, family: Family, subtype: int = 0) -> bool:
        """Ask the peer to re-send its routes (RFC 2918 / RFC 7313)."""
        s = self.established
        if s is None:
            return False
        ok = s.fsm.send_route_refresh(family, subtype, s.loop.time())
        s.service()
        return ok

    # ---------------------------------------------------------- sessions

    def _sessions(self) -> list[Session]:
        return [s for s in (self.main, self.extra) if s is not None]

    def _new_session(self) -> Session:
        sp = self.speaker.settings
        # A per-peer local AS (RFC 7705 §3) replaces ours in this session's OPEN.
        fsm = BgpFsm(self.settings.local_as or sp.asn, sp.router_id, self.settings, self.counters)
        return Session(fsm, self, self.speaker.lingering, self.speaker.input_gate)

    async def accept(self, sock: socket.socket) -> bool:
        """Take an incoming connection: to the main session when it has none, else a second one."""
        if self.main is None:
            return False
        main = self.main
        if not main.fsm.connected and main.fsm.state in (State.IDLE, State.ACTIVE):
            if main.fsm.state is State.IDLE:
                main.start_for_incoming()
            target = main
        else:
            if self.extra is not None:
                self.extra.discard()
            self.extra = target = self._new_session()
            target.start_for_incoming()  # Event 5: connect_on_start is the main one's
        self.speaker.apply_accepted_options(sock, self.settings)
        await target.attach(sock)
        return True

    def neighbour_heard(self, address: ipaddress.IPv6Address) -> None:
        """The link's neighbour (``bgp.ndp``) is ``address``: dial it now unless a
        connection is already up or on its way."""
        if self.established is not None or address == self.neighbour:
            return
        self.speaker.link_key(self.settings, self.neighbour, None)
        self.neighbour = address
        self.speaker.link_key(self.settings, address, self.settings.password)
        main = self.main
        if main is not None and not main.fsm.connected and not self.settings.passive:
            main.discard()
            self.main = self._new_session()
            self.main.start()

    def accepts_from(self, address: ipaddress.IPv6Address) -> bool:
        """An unnumbered peer takes a connection from its neighbour, or from any
        link-local address on its link while it has found none (the peer may
        dial before its advertisements reach us); that address is then its neighbour."""
        if self.neighbour is None and self.settings.discovery is not None:
            self.neighbour = address
        return address == self.neighbour

    def _link_dial(self) -> tuple[socket.socket, tuple[str, int, int, int]]:
        """A socket bound to the peer's link, towards its link-local address: the
        zone (scope id) picks the link, SO_BINDTODEVICE keeps the session on it."""
        ps = self.settings
        if self.neighbour is None:
            raise OSError(f"no neighbour found on {ps.interface} yet")
        index = socket.if_nametoindex(ps.interface)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ps.interface.encode())
            if ps.password:
                sockopts.set_md5(sock, self.neighbour, ps.password)
            self.speaker.apply_ttl(sock, ps)
        except OSError:
            sock.close()
            raise
        return sock, (str(self.neighbour), ps.port, 0, index)

    def dial_socket(self, session: Session) -> tuple[socket.socket, tuple[Any, ...]]:
        ps = self.settings
        if ps.interface:
            return self._link_dial()
        addr = ps.ip
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if ps.password:
                sockopts.set_md5(sock, addr, ps.password)
            self.speaker.apply_ttl(sock, ps)
            if ps.local_address:
                sock.bind((ps.local_address, 0))
        except OSError:
            sock.close()
            raise
        return sock, (str(addr), ps.port)

    # ------------------------------------------------------ owner callbacks

    def updates(self, session: Session, updates: list[Update]) -> None:
        if session is self.established:
            self.speaker.sink.updates_received(self, updates)

    def fsm_event(self, session: Session, event: FsmEvent) -> None:
        if session not in self._sessions():
            return
        if isinstance(event, OpenReceived):
            self._collision(session, event)
        elif isinstance(event, SessionEstablished):
            self._up(session, event.negotiated)
        elif isinstance(event, SessionDown):
            self._down(session, event)
        elif isinstance(event, EndOfRib) and session is self.established:
            log.debug("%s: End-of-RIB received for %s", self.key, event.family.name)
            self.speaker.sink.end_of_rib(self, event.family)
        elif isinstance(event, RouteRefreshReceived) and session is self.established:
            self.speaker.sink.route_refresh(self, event.family, event.subtype)

    def _log_down(self, ev: SessionDown) -> None:
        """One info line per end of a session or NOTIFICATION (issue: FRR's ADJCHANGE)."""
        what = "session down" if ev.was_established else "connection closed"
        note = {True: "NOTIFICATION sent ", False: "NOTIFICATION received ", None: ""}[ev.sent]
        text = note + ev.reason
        kept = "; routes kept as stale" if ev.graceful else ""
        log.info("%s: %s: %s%s", self.key, what, text, kept,
                 extra={"peer": self.key, "event": "down" if ev.was_established else "closed",
                        **_note_fields(ev)})  # fmt: skip

    def _other(self, session: Session) -> Session | None:
        return self.extra if session is self.main else self.main

    def _collision(self, session: Session, ev: OpenReceived) -> None:
        """RFC 4271 §6.8, run when ``session`` has just received the peer's OPEN."""
        other = self._other(session)
        if other is None or not other.fsm.connected:
            return
        if other.fsm.state is State.ESTABLISHED:
            if _restarted(other.fsm.negotiated, session.fsm.negotiated):
                # Decided when (if) the new session is Established (``_up``): a dial of
                # the peer's that crossed our session coming up is dumped by the peer
                # itself (Cease 7) and must not cost us the session we have.
                log.info("%s: new connection with graceful restart while Established: "
                         "the peer may have restarted", self.key)  # fmt: skip
                return
            session.collision_dump()
            return
        if other.fsm.state is not State.OPEN_CONFIRM:
            return  # decided when the other connection gets its OPEN
        sp = self.speaker.settings
        local_as = self.settings.local_as or sp.asn
        keep_out = keep_outgoing(sp.router_id_int, ev.router_id, local_as, ev.asn)
        loser = session if session.fsm.outgoing != keep_out else other
        log.info(
            "%s: connection collision, closing the %s connection",
            self.key,
            "outgoing" if loser.fsm.outgoing else "incoming",
        )
        loser.collision_dump()

    def _up(self, session: Session, negotiated: Negotiated) -> None:
        other = self._other(session)
        if other is not None:
            if other is self.established:
                # RFC 4724 §4.2: the peer restarted (``_restarted``): the old session ends
                # as a TCP loss would, so its routes stay stale until the new End-of-RIB.
                log.info("%s: the peer restarted: its old session ends", self.key)
                other.abandon("peer restarted: new session Established (RFC 4724 §4.2)")
            elif other.fsm.connected:
                other.collision_dump()
            other.discard()
        self.main, self.extra = session, None
        self.established = session
        self.speaker.peer_reached(self.key)
        self.negotiated = negotiated
        self.established_at = session.fsm.established_at
        log.info("%s: session Established (AS %d, router id %s%s)", self.key, negotiated.peer_as,
                 negotiated.peer_router_id, _gr_text(negotiated),
                 extra={"peer": self.key, "event": "established", "peer_as": negotiated.peer_as,
                        "graceful_restart": negotiated.peer_restart is not None,
                        "graceful_notification": negotiated.graceful_notification})  # fmt: skip
        self.speaker.sink.peer_up(self, negotiated)
        self.source = self.speaker.source_factory(self, negotiated)
        session.source = self.source
        session.pump()

    def _down(self, session: Session, ev: SessionDown) -> None:
        collision = (ev.code, ev.subcode) == (
            ErrorCode.CEASE,
            CeaseSubcode.CONNECTION_COLLISION_RESOLUTION,
        )
        if ev.was_established or (ev.code and not collision):
            self.last_error = {**_note_fields(ev), "time": self.speaker.unix_time()}
            self._log_down(ev)
        if session is self.established:
            self.established = None
            self.negotiated = None
            self.source = None
            self.established_at = None
            if not ev.operator:
                self.flaps += 1
            self.speaker.sink.peer_down(self, ev)
        if session is self.extra:
            self.extra = None
            session.discard()
        elif session is self.main and self.extra is not None and not session.fsm.auto_restart:
            # The main connection ended for good (a collision lost, the peer
            # restarted): the other one carries on, and restarts as main would.
            self.main, self.extra = self.extra, None
            session.discard()
        if self.dynamic and session is self.main and not self.established:
            self.speaker.forget_dynamic(self)

    # --------------------------------------------------------------- stats

    def stats(self) -> dict[str, Any]:
        """Plain data for ``podbgp show peers --json``."""
        s = self.established or self.main
        state = s.fsm.state.name.lower() if s is not None else "idle"
        neg = self.negotiated
        up = self.established_at
        return {
            "address": self.key,
            "interface": self.settings.interface or None,
            "neighbour": str(self.neighbour) if self.neighbour is not None else None,
            "asn": self.settings.asn or (neg.peer_as if neg else 0),
            "description": self.settings.description,
            "state": state,
            "admin": "up" if self.enabled else "down",
            "dynamic": self.dynamic,
            "passive": self.settings.passive,
            "uptime": round(self.speaker.now() - up, 3) if up is not None else None,
            "established_at": self.speaker.unix_time(up) if up is not None else None,
            "router_id": str(neg.peer_router_id) if neg else None,
            "local": _hostport(s.sockname) if s is not None else None,
            "remote": _hostport(s.peername) if s is not None else None,
            "negotiated": neg.as_dict() if neg else None,
            "messages_in": dict(self.counters.msgs_in),
            "messages_out": dict(self.counters.msgs_out),
            "prefixes_in": self.prefixes_in,
            "prefixes_out": self.prefixes_out,
            "flaps": self.flaps,
            "last_error": self.last_error,
        }


class Speaker:
    """Listeners and peers; see the module docstring."""

    def __init__(
        self, settings: SpeakerSettings, sink: RouteSink, source_factory: SourceFactory
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.source_factory = source_factory
        self.peers: dict[str, Peer] = {}
        self._listeners: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._started = False
        self.lingering: set[asyncio.Transport] = set()  # closed sessions flushing a NOTIFICATION
        self._loop: asyncio.AbstractEventLoop | None = None  # the sessions' (``start``)
        self._links: dict[str, LinkWatch] = {}  # unnumbered peers' neighbour discovery
        self._epoch: float | None = None  # Unix time minus the loop's, taken once
        self._refused: dict[str, float] = {}  # address → when its last connection was refused
        # What established sessions' input may wait for (podbgp's FIB), set before
        # peers are added (``bgp.session.InputGate``)
        self.input_gate: InputGate | None = None

    # ------------------------------------------------------------ clock

    def now(self) -> float:
        """The one clock of the speaker: the event loop's, which the sessions' timers
        and the FSMs' deadlines (``established_at``) are on. Readable where no loop
        runs too: it keeps the sessions' loop from ``start``."""
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def unix_time(self, at: float | None = None) -> float:
        """``at`` (default: now) on ``now``'s clock as Unix time, for display (``show
        peers``' ``established_at`` and ``last_error.time``). The offset is taken
        once, so a time shows the same on every call."""
        if self._epoch is None:
            self._epoch = time.time() - self.now()
        return (self.now() if at is None else at) + self._epoch

    # ------------------------------------------------------------- life

    async def start(self) -> None:
        """Open the listeners and start every enabled peer."""
        self._started = True
        self._loop = asyncio.get_running_loop()
        addrs = self.settings.listen
        v6only = any(ipaddress.ip_address(a).version == 4 for a in addrs)
        for addr in addrs:
            sock = self._listen_socket(addr, v6only)
            self._listeners.append(sock)
            self._tasks.append(asyncio.get_running_loop().create_task(self._accept_loop(sock)))
        for peer in self.peers.values():
            self._install_keys(peer.settings)
            self._watch_link(peer)
            if peer.settings.enabled:
                peer.enable()

    async def stop(self, message: str = "", kind: StopKind = StopKind.SHUTDOWN) -> None:
        """End every session (``kind``: module docstring) and close the listeners."""
        for peer in list(self.peers.values()):
            if kind is StopKind.RESTART:
                peer.stop_for_restart(message)
            else:
                peer.shutdown(message)
        for t in self._tasks + list(self._pending):
            t.cancel()
        for t in self._tasks + list(self._pending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for sock in self._listeners:
            sock.close()
        self._listeners.clear()
        for watch in self._links.values():
            watch.close()
        self._links.clear()
        self._started = False
        self._tasks.clear()
        await asyncio.sleep(0.05)  # let transports flush their NOTIFICATIONs
        for transport in list(self.lingering):
            transport.close()
        self.lingering.clear()

    @property
    def ports(self) -> list[int]:
        """The bound listening ports (useful with port 0)."""
        return [s.getsockname()[1] for s in self._listeners]

    # ------------------------------------------------------------ peers

    def add_peer(self, settings: PeerSettings) -> Peer:
        key = _norm(settings.address)
        if key in self.peers and not self.peers[key].dynamic:
            raise ValueError(f"peer {key} already configured")
        old = self.peers.pop(key, None)
        if old is not None:
            old.shutdown("", CeaseSubcode.OTHER_CONFIGURATION_CHANGE, hard=True)
        peer = self.peers[key] = Peer(self, settings)
        if self._started:
            self._install_keys(settings)
            self._watch_link(peer)
            if settings.enabled:
                peer.enable()
        return peer

    def remove_peer(self, address: str, message: str = "") -> None:
        """Cease 3 (Peer De-configured) and forget the peer."""
        peer = self.peers.pop(_norm(address), None)
        if peer is not None:
            self._unwatch_link(peer)
            peer.shutdown(message, CeaseSubcode.PEER_DECONFIGURED)
            if peer.settings.password:
                self.link_key(peer.settings, None if peer.settings.interface else peer.settings.ip,
                              None)  # fmt: skip
                if peer.neighbour is not None:
                    self.link_key(peer.settings, peer.neighbour, None)

    def update_peer(self, settings: PeerSettings) -> Peer:
        """Apply new settings; the session restarts (Cease 6) if anything changed."""
        key = _norm(settings.address)
        old = self.peers.get(key)
        if old is not None and old.settings == settings:
            return old
        if old is not None:
            # RFC 8538 §5: new settings must not inherit the old session's routes.
            self.peers.pop(key)
            self._unwatch_link(old)
            old.shutdown("", CeaseSubcode.OTHER_CONFIGURATION_CHANGE, hard=True)
        return self.add_peer(settings)

    def peer(self, address: str) -> Peer | None:
        """The peer by address, or an unnumbered peer by its interface's name ("eth1")."""
        try:
            key = _norm(address)
        except ValueError:
            return next((p for p in self.peers.values() if p.settings.interface == address), None)
        return self.peers.get(key)

    def clear_restart_state(self) -> None:
        """RFC 4724 §3: the Restart State bit belongs in the OPENs right after a
        restart only; every session started from now on (a reset, a new peer)
        goes without it."""
        for peer in self.peers.values():
            peer.settings = replace(peer.settings, restarting=False)

    def stats(self) -> list[dict[str, Any]]:
        return [p.stats() for p in sorted(self.peers.values(), key=lambda p: p.key)]

    def forget_dynamic(self, peer: Peer) -> None:
        if self.peers.get(peer.key) is peer:
            del self.peers[peer.key]
        for s in peer._sessions():
            s.discard()
        peer.main = peer.extra = None

    # -------------------------------------------------------- sockets

    def _listen_socket(self, addr: str, v6only: bool) -> socket.socket:
        family = socket.AF_INET if ipaddress.ip_address(addr).version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
            if any(rng.template.ttl_security for rng in self.settings.listen_ranges):
                sockopts.set_ttl(sock, 255)
            for rng in self.settings.listen_ranges:
                if rng.template.password:
                    sockopts.set_md5_prefix(sock, rng.network, rng.template.password)
            sock.bind((addr, self.settings.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _install_keys(self, ps: PeerSettings) -> None:
        """Per-peer state on the listeners: MD5 key, TTL 255 for GTSM peers. An
        unnumbered peer's key is for its neighbour's link-local address, once known."""
        address = ps.fixed_neighbour if ps.interface else ps.ip
        for sock in self._listeners:
            if ps.password and address is not None:
                sockopts.set_md5(sock, address, ps.password)
            if ps.ttl_security:
                sockopts.set_ttl(sock, 255)

    def link_key(
        self, ps: PeerSettings, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        password: str | None,
    ) -> None:  # fmt: skip
        """The TCP MD5 key (RFC 2385) of ``address`` on every listener (None: removed)."""
        if address is None or not ps.password:
            return
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                sockopts.set_md5(sock, address, password)

    def apply_ttl(self, sock: socket.socket, ps: PeerSettings) -> None:
        """GTSM (RFC 5082) or, for eBGP, the multihop TTL."""
        if ps.ttl_security:
            sockopts.set_gtsm(sock, ps.ttl_security)
        elif ps.asn != self.settings.asn and ps.multihop:
            sockopts.set_ttl(sock, ps.multihop)

    def apply_accepted_options(self, sock: socket.socket, ps: PeerSettings) -> None:
        with contextlib.suppress(OSError):
            self.apply_ttl(sock, ps)

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock, addr = await loop.sock_accept(lsock)
            task = loop.create_task(self._accepted(sock, _norm(_zoned(addr))))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _watch_link(self, peer: Peer) -> None:
        """Start finding an unnumbered peer's neighbour (``bgp.ndp``); without a raw
        socket (no CAP_NET_RAW, no such link) the peer waits for the neighbour to dial."""
        ps = peer.settings
        if ps.discovery is None or ps.interface in self._links:
            return

        def heard(address: ipaddress.IPv6Address) -> None:
            found = self.peers.get(peer.key)
            if found is not None:
                found.neighbour_heard(address)

        try:
            watch = LinkWatch(ps.interface, ps.discovery, ps.discovery_interval, heard)
        except OSError as exc:
            log.warning("%s: no neighbour discovery on %s: %s; waiting for the neighbour "
                        "to connect", peer.key, ps.interface, exc)  # fmt: skip
            return
        self._links[ps.interface] = watch
        watch.start()

    def _unwatch_link(self, peer: Peer) -> None:
        watch = self._links.pop(peer.settings.interface, None) if peer.settings.interface else None
        if watch is not None:
            watch.close()

    def _link_peer(self, address: str) -> Peer | None:
        """The unnumbered peer that takes a connection from ``address`` (with its zone)."""
        host, _, zone = address.partition("%")
        if not zone:
            return None
        peer = self.peers.get(link_peer_address(zone))
        if peer is not None and peer.accepts_from(ipaddress.IPv6Address(host)):
            return peer
        return None

    async def _accepted(self, sock: socket.socket, address: str) -> None:
        peer = self.peers.get(address) or self._link_peer(address) or self._dynamic_peer(address)
        try:
            if peer is not None and await peer.accept(sock):
                self._refused.pop(address, None)  # it dials us again: out of its back-off
                return
        except OSError as exc:
            log.info("connection from %s failed: %s", address, exc)
        log.info("refused connection from %s", address)
        sock.close()
        self._refused.pop(address, None)  # oldest first: the bound drops the stalest
        self._refused[address] = self.now()
        if len(self._refused) > REFUSED_KEPT:
            del self._refused[next(iter(self._refused))]

    def peer_reached(self, key: str) -> None:
        """A session with ``key`` is up: a refusal before it says nothing any more."""
        self._refused.pop(key, None)

    def refused_within(self, address: str, seconds: float) -> bool:
        """Whether a connection from ``address`` was refused (no peer for it) in the last
        ``seconds``, with no connection or session since: a speaker that dialled us
        then is waiting out its ConnectRetry."""
        at = self._refused.get(_norm(address))
        return at is not None and self.now() - at <= seconds

    def _dynamic_peer(self, address: str) -> Peer | None:
        """A passive peer from the first listen range that holds ``address``."""
        for rng in self.settings.listen_ranges:
            if rng.contains(address):
                if sum(p.dynamic for p in self.peers.values()) >= self.settings.max_dynamic_peers:
                    return None
                ps = rng.template.for_address(address)
                peer = Peer(self, PeerSettings(**{**_fields(ps), "passive": True}), dynamic=True)
                self.peers[address] = peer
                peer.enable()
                return peer
        return None


def _restarted(old: Negotiated | None, new: Negotiated | None) -> bool:
    """RFC 4724 §4.2: a new OPEN with graceful restart while a GR session is Established.

    The peer may have restarted, its old connection dead (its host may not even
    have sent a FIN): instead of refusing the new connection (RFC 4271 §6.8)
    the new one may go on; once it is Established the old session ends as a
    TCP loss, its routes stay as stale, so the peer re-peers at once instead of
    after our hold time. Or the new connection is the peer's own dial that
    crossed our session coming up (both sides connect after a restart): then
    the peer closes it (Cease 7) and the old session stays. ``peer_restart`` is
    set only when both sides offered the capability.
    """
    return (
        old is not None
        and new is not None
        and old.peer_restart is not None
        and new.peer_restart is not None
    )


def _note_fields(ev: SessionDown) -> dict[str, Any]:
    """The structured fields of a session's end (logs, ``last_error``)."""
    fields: dict[str, Any] = {
        "code": ev.code,
        "subcode": ev.subcode,
        "notification": notification_name(ev.code, ev.subcode) if ev.code else None,
        "direction": ev.direction,
        "reason": ev.reason,
        "shutdown_message": ev.message,
        "graceful": ev.graceful,
    }
    if ev.inner is not None:
        fields["inner_code"], fields["inner_subcode"] = ev.inner
        fields["inner_notification"] = notification_name(*ev.inner)
    return fields


def _gr_text(neg: Negotiated) -> str:
    if neg.peer_restart is None:
        return ""
    return ", graceful restart" + (" with N bit" if neg.graceful_notification else "")


def _zoned(addr: tuple[Any, ...]) -> str:
    """An accepted connection's host, with the interface as zone when the sockaddr has
    a scope id (a link-local peer: which link it came in on picks the peer)."""
    host = str(addr[0]).partition("%")[0]
    if len(addr) == 4 and addr[3]:
        with contextlib.suppress(OSError):
            return f"{host}%{socket.if_indextoname(addr[3])}"
    return host


def _socket_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A socket's host as an address: zone dropped, IPv4-mapped (dual-stack socket) as IPv4."""
    addr = ipaddress.ip_address(host.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _hostport(name: tuple[str, int] | None) -> str | None:
    return f"{name[0]}:{name[1]}" if name else None


def _fields(ps: PeerSettings) -> dict[str, Any]:
    return {f: getattr(ps, f) for f in ps.__dataclass_fields__}
