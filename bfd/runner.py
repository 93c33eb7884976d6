"""BFD sessions on real sockets: a selector loop in a thread of its own.

The runner owns the sockets and a ``bfd.session.BfdSession`` per peer, and runs
them in one thread. The daemon does not run it in its own process: there the
asyncio thread holds the GIL for longer than a detection time during a big
ingest (see ``bfd.process``, which runs this runner in a helper process, for the
measurement). In the helper the thread has the interpreter to itself.

The loop (``_run``): wait in ``select`` until the earliest session deadline,
a packet, or a command; read every socket that has data *before* looking at
the timers (a packet that waited in the socket buffer during a stall arrived
in time and must count); fire due timers; send what the sessions queued;
hand state changes to ``notify`` (called in this thread: the caller makes it
thread-safe, e.g. ``loop.call_soon_threadsafe``).

Sockets (RFC 5881): one receiving socket per address family on UDP port 3784
with ``IP_RECVTTL`` / ``IPV6_RECVHOPLIMIT``, so each packet's TTL reaches the
session's 255 check (§5); one sending socket per session, bound to a source
port in 49152-65535 that no other session uses (§4) and sending with TTL /
hop limit 255 (§5). A packet is handed to the session configured for its
source address and dropped otherwise (the source check).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import queue
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bfd.packet import State
from bfd.session import BfdSession, BfdSettings, StateChanged

__all__ = ["CONTROL_PORT", "SOURCE_PORTS", "BfdRunner", "SessionSpec"]

log = logging.getLogger("bfd.runner")

CONTROL_PORT = 3784  # RFC 5881 §4
SOURCE_PORTS = (49152, 65535)  # RFC 5881 §4
_TTL = 255
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_CMSG_SPACE = socket.CMSG_SPACE(4)
_MAX_WAIT = 1.0  # wake at least this often, so a stop is never missed for long

Notify = Callable[[str, StateChanged], None]


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What the runner needs to run a session with one peer.

    ``key`` names it to ``notify``; ``peer`` is the address packets must come
    from; ``local`` the source address (None: the kernel's choice);
    ``port`` the peer's control port (3784 except in tests).
    """

    key: str
    peer: str
    settings: BfdSettings
    local: str | None = None
    port: int = CONTROL_PORT


class _Entry:
    """A session with its sending socket and its peer's normalised address."""

    def __init__(self, spec: SessionSpec, session: BfdSession, sock: socket.socket) -> None:
        self.spec = spec
        self.session = session
        self.sock = sock
        self.dest = (spec.peer, spec.port)
        self.state_since = time.time()


class BfdRunner:
    """A thread running BFD sessions; see the module docstring.

    ``add``/``remove``/``stop`` may be called from any thread; ``stats`` too.
    """

    def __init__(
        self,
        notify: Notify,
        listen_port: int = CONTROL_PORT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notify = notify
        self.listen_port = listen_port
        self.clock = clock
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._entries: dict[str, _Entry] = {}  # by key
        self._by_peer: dict[str, _Entry] = {}  # by normalised peer address
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._rx_sockets: list[socket.socket] = []
        self._rng = random.Random()
        self.unknown_source = 0

    # ------------------------------------------------------------- control

    def start(self) -> None:
        """Open the receiving sockets (errors surface here) and start the thread."""
        self._open_rx()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="bfd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """AdminDown to every peer (RFC 5880 §6.8.16), then end the thread."""
        if self._thread is None:
            return
        self._command("stop", None)
        self._thread.join(timeout=5)
        self._thread = None
        for s in (*self._rx_sockets, self._wake_r, self._wake_w):
            s.close()
        self._rx_sockets.clear()

    def add(self, spec: SessionSpec) -> None:
        """Start (or replace) the session ``spec.key``."""
        self._command("add", spec)

    def remove(self, key: str) -> None:
        """Send AdminDown once and forget the session."""
        self._command("remove", key)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Plain data per session key, for ``show peers`` and metrics."""
        with self._lock:
            return {k: _stats(e) for k, e in self._entries.items()}

    def _command(self, verb: str, arg: Any) -> None:
        self._commands.put((verb, arg))
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\0")

    # ---------------------------------------------------------------- loop

    def _run(self) -> None:
        while self._running:
            timeout = self._timeout()
            self._sel.select(timeout)
            with self._lock:
                # Every socket, not only those select() named: after a stall between
                # select() returning and this thread running again, packets that arrived
                # meanwhile must count before the detection timers are looked at.
                self._drain_wake()
                for sock in self._rx_sockets:
                    self._read(sock)
                self._commands_due()
                self._timers_due(self.clock())
                self._flush()

    def _timeout(self) -> float:
        deadlines = [t for e in self._entries.values() if (t := e.session.get_timer()) is not None]
        if not deadlines:
            return _MAX_WAIT
        return min(max(min(deadlines) - self.clock(), 0.0), _MAX_WAIT)

    def _timers_due(self, now: float) -> None:
        for e in self._entries.values():
            t = e.session.get_timer()
            if t is not None and t <= now:
                e.session.handle_timer(now)

    def _flush(self) -> None:
        for key, e in list(self._entries.items()):
            for d in e.session.datagrams_to_send():
                self._send(e, d)
            while (ev := e.session.next_event()) is not None:
                e.state_since = time.time()
                log.info(
                    "bfd %s: %s -> %s (%s)", e.spec.peer, ev.old.name, ev.new.name, ev.diag.name
                )
                try:
                    self.notify(key, ev)
                except Exception:  # the callback's fault must not stop every session
                    log.exception("bfd: state change callback failed")

    def _send(self, e: _Entry, data: bytes) -> None:
        try:
            e.sock.sendto(data, e.dest)
        except OSError as exc:  # no route yet, link down: detection handles it
            e.session.counters.drop(f"send_{errno.errorcode.get(exc.errno or 0, 'error')}")

    def _commands_due(self) -> None:
        while True:
            try:
                verb, arg = self._commands.get_nowait()
            except queue.Empty:
                return
            if verb == "add":
                self._add(arg)
            elif verb == "remove":
                self._remove(arg)
            elif verb == "stop":
                for key in list(self._entries):
                    self._remove(key)
                self._running = False

    def _add(self, spec: SessionSpec) -> None:
        self._remove(spec.key, quiet=True)
        try:
            sock = _tx_socket(spec, self._rng)
        except OSError as exc:
            log.warning("bfd %s: cannot open a socket: %s", spec.peer, exc)
            return
        discr = self._new_discriminator()
        entry = _Entry(spec, BfdSession(spec.settings, discr, self.clock(), self._rng), sock)
        self._entries[spec.key] = entry
        self._by_peer[_norm(spec.peer)] = entry

    def _remove(self, key: str, quiet: bool = False) -> None:
        e = self._entries.pop(key, None)
        if e is None:
            return
        self._by_peer.pop(_norm(e.spec.peer), None)
        if not quiet:
            e.session.admin_down(self.clock())
            for d in e.session.datagrams_to_send():
                self._send(e, d)
        e.sock.close()

    def _new_discriminator(self) -> int:
        """RFC 5880 §6.3: nonzero and unique among this system's sessions."""
        used = {e.session.local_discr for e in self._entries.values()}
        while True:
            d = self._rng.randrange(1, 1 << 32)
            if d not in used:
                return d

    # ------------------------------------------------------------- sockets

    def _open_rx(self) -> None:
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v4.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
        v4.bind(("0.0.0.0", self.listen_port))
        self._rx_sockets.append(v4)
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            v6 = None  # no IPv6 in this kernel: IPv4 sessions only
        if v6 is not None:
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
            v6.bind(("::", self.listen_port))
            self._rx_sockets.append(v6)
        for s in self._rx_sockets:
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ, "rx")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _read(self, sock: socket.socket) -> None:
        now = self.clock()
        for _ in range(1024):  # bounded: a flood must not starve the timers
            try:
                data, anc, _flags, addr = sock.recvmsg(512, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            e = self._by_peer.get(_norm(addr[0]))
            if e is None:
                self.unknown_source += 1  # RFC 5881 §5: only the configured peer
                continue
            e.session.receive(data, now, _ttl(anc))


def _ttl(anc: list[tuple[int, int, bytes]]) -> int:
    """The TTL / hop limit the kernel reported for a packet; 0 when it did not."""
    for level, kind, data in anc:
        if len(data) >= 4 and (
            (level == socket.IPPROTO_IP and kind == socket.IP_TTL)
            or (level == socket.IPPROTO_IPV6 and kind == _IPV6_HOPLIMIT)
        ):
            return int(struct.unpack("i", data[:4])[0])
    return 0


def _tx_socket(spec: SessionSpec, rng: random.Random) -> socket.socket:
    """A socket bound to an unused source port in 49152-65535, sending with TTL 255."""
    v6 = ipaddress.ip_address(spec.peer.split("%")[0]).version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    low, high = SOURCE_PORTS
    last: OSError | None = None
    for _ in range(64):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, _TTL)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, _TTL)
            sock.bind((spec.local or ("::" if v6 else "0.0.0.0"), rng.randint(low, high)))
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
    raise last or OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))


def _norm(address: str) -> str:
    addr = ipaddress.ip_address(address.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _stats(e: _Entry) -> dict[str, Any]:
    s = e.session
    return {
        "peer": e.spec.peer,
        "state": s.state.name.lower().replace("_", ""),
        "remote_state": s.remote_state.name.lower().replace("_", ""),
        "diag": s.local_diag.name.lower(),
        "local_discriminator": s.local_discr,
        "remote_discriminator": s.remote_discr,
        "tx_interval_ms": round(s.tx_interval * 1000, 3),
        "detection_time_ms": round(s.detection_time * 1000, 3),
        "flaps": s.counters.down_transitions,
        "up_transitions": s.counters.up_transitions,
        "packets_in": s.counters.rx,
        "packets_out": s.counters.tx,
        "dropped": dict(s.counters.dropped),
        "state_since": e.state_since,
        "up": s.state is State.UP,
    }
