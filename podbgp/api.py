"""The control API: JSON over an owner-only unix socket.

One request per line, one response per line:

    -> {"cmd": "show.peers", "args": {...}}
    <- {"ok": true, "result": ...}   or   {"ok": false, "error": "..."}

The socket file is created with mode 0600 inside a 0700 directory, and every
connection's peer credentials (SO_PEERCRED) are checked as well: only the
daemon's own user (or root) may talk to it, since `peer shutdown` and friends
change the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("podbgp.api")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_REQUEST = 1 << 20
DEFAULT_SOCKET = "/run/podbgp/podbgp.sock"


class APIError(Exception):
    """A request the daemon understood but refused; the message goes back to the client."""


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serves `handlers` (command name → coroutine taking the args dict) on `path`."""

    def __init__(self, path: str, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None
        self.owner_uid = os.geteuid()

    async def start(self) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _allowed(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        if sock is None:
            return False
        uid = peer_uid(sock)
        return uid in (self.owner_uid, 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self._allowed(writer):
                await self._reply(writer, {"ok": False, "error": "permission denied"})
                return
            while line := await reader.readline():
                await self._reply(writer, await self._dispatch(line))
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise APIError('a request is a JSON object with a string "cmd"')
            handler = self.handlers.get(request["cmd"])
            if handler is None:
                raise APIError(f"unknown command {request['cmd']!r}")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise APIError('"args" must be a JSON object')
            return {"ok": True, "result": await handler(args)}
        except APIError as exc:
            return {"ok": False, "error": str(exc)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"bad JSON: {exc}"}
        except Exception as exc:  # a handler bug must not kill the control socket
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {exc}"}

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
        writer.write(json.dumps(response, default=str).encode() + b"\n")
        await writer.drain()


class ControlClient:
    """Blocking client used by the CLI."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, cmd: str, **args: Any) -> Any:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise APIError(
                    f"cannot reach the podbgp daemon at {self.path}: {exc.strerror}"
                ) from exc
            except PermissionError as exc:
                raise APIError(f"permission denied on {self.path}") from exc
            sock.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
            response = _read_line(sock)
        if not response.get("ok"):
            raise APIError(response.get("error", "request failed"))
        return response.get("result")


def _read_line(sock: socket.socket) -> dict[str, Any]:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    if not chunks:
        raise APIError("the daemon closed the connection without answering")
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result
