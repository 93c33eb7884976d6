"""One BMP station's connection: a bounded queue of ready-encoded messages, and
reconnection (RFC 7854 §3.2: the monitored router opens the TCP connection).

The station knows bytes only; ``podbgp.bmp`` decides what to send. On each new
connection the station asks its owner for the opening messages (``hello``:
Initiation, then a Peer Up and the table for every session that is up, RFC 7854
§5) and sends them before anything live. Messages that arrive while the
opening is being built wait in ``_held`` and follow it, so the station sees
the state at one instant and then every change after it, in order.

Nothing here ever waits on the BGP sessions' behalf: ``send`` appends to a
deque and returns. When more than ``queue_limit`` messages wait (the station
reads slower than routes change), the connection is dropped and the queue
discarded; the next connection starts again from a fresh Initiation and table
(§3.3 leaves the reaction to an overloaded station to the router: giving up the
connection keeps the sessions' memory and time bounded). While disconnected
nothing is queued at all. Reconnection waits 1 s, doubling up to
``reconnect_max``; a connection that lasted ``STABLE`` seconds resets the wait.

The station sends nothing to the router (§3.2); whatever it does send is read
and discarded, and end of file means it went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("podbgp.monitor")

STABLE = 30.0  # seconds up after which the reconnection wait starts again at 1 s
FLUSH_TIMEOUT = 5.0  # seconds to hand a station its Termination when stopping


@dataclass
class StationStats:
    """Plain counters for ``show`` and metrics."""

    connected: bool = False
    connects: int = 0
    messages: int = 0
    bytes: int = 0
    overflows: int = 0
    last_error: str = ""
    since: float | None = None  # wall clock of the current connection


class BmpStation:
    """The connection to one station (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        hello: Callable[[], Coroutine[Any, Any, list[bytes]]],
        queue_limit: int,
        reconnect_max: float,
    ) -> None:
        self.host = host
        self.port = port
        self.hello = hello
        self.queue_limit = queue_limit
        self.reconnect_max = reconnect_max
        self.stats = StationStats()
        self._queue: deque[bytes] = deque()
        self._held: list[bytes] | None = None  # live messages while the opening is built
        self._ready = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._dropped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def open(self) -> bool:
        """Connected: live messages are wanted (they are queued or held)."""
        return self._writer is not None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def send(self, msg: bytes) -> None:
        """Queue one message for the station; never blocks. Dropped while disconnected."""
        if self._writer is None:
            return
        if self._held is not None:
            self._held.append(msg)
        else:
            self._queue.append(msg)
            self._ready.set()
        if len(self._queue) + len(self._held or ()) > self.queue_limit:
            self._overflow()

    def send_all(self, msgs: Iterable[bytes]) -> None:
        for m in msgs:
            self.send(m)

    async def stop(self, farewell: bytes = b"") -> None:
        """Send ``farewell`` (a Termination) after what is queued, within FLUSH_TIMEOUT."""
        self._stopping = True
        writer = self._writer
        if writer is not None and farewell:
            self.send(farewell)
            with contextlib.suppress(asyncio.TimeoutError, OSError, ConnectionError):
                await asyncio.wait_for(self._flushed(), FLUSH_TIMEOUT)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close()

    async def _flushed(self) -> None:
        while self._queue and self._writer is not None:
            await asyncio.sleep(0.01)
        if self._writer is not None:
            await self._writer.drain()

    # -- connection life cycle ------------------------------------------------------------
    async def _run(self) -> None:
        wait = 1.0
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._session()
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                self.stats.last_error = str(exc) or type(exc).__name__
                log.info("BMP station %s: %s; retrying in %.0f s", self.name,
                         self.stats.last_error, wait)  # fmt: skip
            finally:
                self._close()
            if time.monotonic() - started > STABLE:
                wait = 1.0
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.reconnect_max)

    async def _session(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._writer = writer
        self._dropped.clear()
        self.stats.connected = True
        self.stats.connects += 1
        self.stats.since = time.time()
        log.info("BMP station %s: connected", self.name)
        self._held = []
        try:
            opening = await self.hello()
        finally:
            held, self._held = self._held or [], None
        if self._dropped.is_set():
            return
        self._queue.extend(opening)
        self._queue.extend(held)
        self._ready.set()
        writing = asyncio.ensure_future(self._write(writer))
        reading = asyncio.ensure_future(self._read(reader))
        dropped = asyncio.ensure_future(self._dropped.wait())
        try:
            done, _ = await asyncio.wait(
                {writing, reading, dropped}, return_when=asyncio.FIRST_COMPLETED
            )
            for t in done:
                if t is not dropped:
                    t.result()  # a write error is raised here
        finally:
            for t in (writing, reading, dropped):
                t.cancel()
        if dropped in done:
            return
        raise ConnectionError("the station closed the connection")

    async def _write(self, writer: asyncio.StreamWriter) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                msg = self._queue.popleft()
                writer.write(msg)
                self.stats.messages += 1
                self.stats.bytes += len(msg)
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    await writer.drain()
            await writer.drain()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass  # RFC 7854 §3.2: a station sends nothing the router must act on

    def _overflow(self) -> None:
        self.stats.overflows += 1
        log.warning("BMP station %s: more than %d messages wait for it; dropping the "
                    "connection, it is resynchronised on the next", self.name,
                    self.queue_limit)  # fmt: skip
        self._dropped.set()
        self._close()

    def _close(self) -> None:
        self._queue.clear()
        self._held = None
        writer, self._writer = self._writer, None
        self.stats.connected = False
        self.stats.since = None
        if writer is not None:
            writer.transport.abort()
