"""A BMP station for tests: a loopback TCP listener that keeps what each connection
sent (optionally reading nothing, like a station that cannot keep up)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable


class Listener:
    """A station: accepts connections and keeps what each one sent."""

    def __init__(self, read: bool = True) -> None:
        self.read = read
        self.conns: list[bytearray] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        buf = bytearray()
        self.conns.append(buf)
        self.writers.append(writer)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if not self.read:
            reader._transport.pause_reading()  # type: ignore[attr-defined]
            return
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                buf += data

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def until(cond: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``cond`` on the loop until it is true (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)
