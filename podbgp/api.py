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
import ipaddress
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("podbgp.api")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Stream:
    """A handler's answer that goes on: ``header`` is the answer line, then each of
    ``events`` is a line of its own until the client hangs up or the events end
    (``watch``). ``close`` runs either way."""

    header: Any
    events: AsyncIterator[dict[str, Any]]
    close: Callable[[], None]


MAX_REQUEST = 1 << 20
DEFAULT_SOCKET = "/run/podbgp/podbgp.sock"


class APIError(Exception):
    """A request the daemon understood but refused; the message goes back to the client.

    ``kind`` travels with the message (``"kind"`` in the answer) so a client can tell
    a refusal from bad input: the CLI exits 2 for ``invalid_argument``, else 1."""

    kind = "refused"


class InvalidArgument(APIError):
    """The request's arguments are wrong (not an address, not a prefix, ...)."""

    kind = "invalid_argument"


class NotPodbgp(APIError):
    """The socket answered, but not in this protocol (another service's socket)."""

    kind = "not_podbgp"


_KINDS: dict[str, type[APIError]] = {c.kind: c for c in (APIError, InvalidArgument, NotPodbgp)}


# -- argument checks: every handler's input errors are `InvalidArgument`, never a traceback --
def arg_str(args: dict[str, Any], key: str, default: str = "") -> str:
    """A string argument (``default`` when absent or null)."""
    value = args.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidArgument(f"{key}: {value!r} is not a string")
    return value


def arg_address(args: dict[str, Any], key: str = "address") -> str:
    """A required IP address in canonical text (an IPv4-mapped IPv6 address as IPv4)."""
    text = arg_str(args, key)
    if not text:
        raise InvalidArgument(f"{key}: an IP address is required")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{key}: {text!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def arg_prefix(args: dict[str, Any], key: str = "prefix") -> str | None:
    """An optional prefix (``10.0.0.0/24``) or address (its covering route), canonical."""
    text = arg_str(args, key)
    if not text:
        return None
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"{key}: {text!r} is not an IP prefix or address") from None


def arg_choice(args: dict[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    """An optional argument that must be one of ``choices``."""
    text = arg_str(args, key)
    if not text:
        return None
    if text not in choices:
        raise InvalidArgument(f"{key}: {text!r} is not one of {', '.join(choices)}")
    return text


def route_view(args: dict[str, Any]) -> str | None:
    """`show.routes`'s table: None (Loc-RIB), ``advertised``, ``received`` or
    ``received_pre_policy``, from the flags ``advertised``, ``received``, ``pre_policy``."""
    advertised, received = arg_flag(args, "advertised"), arg_flag(args, "received")
    pre = arg_flag(args, "pre_policy")
    if advertised and (received or pre):
        raise InvalidArgument("advertised and received/pre_policy exclude each other")
    if advertised:
        return "advertised"
    if pre:
        return "received_pre_policy"
    return "received" if received else None


def arg_flag(args: dict[str, Any], key: str) -> bool:
    """An optional boolean argument."""
    value = args.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{key}: {value!r} is not true or false")
    return value


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
                response = await self._dispatch(line)
                stream = response.pop("stream", None)
                await self._reply(writer, response)
                if stream is not None:
                    await self._pump(stream, reader, writer)
                    return
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _pump(
        self, stream: Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Write the stream's events until it ends or the client hangs up."""

        async def write() -> None:
            async for event in stream.events:
                writer.write(json.dumps(event, default=str).encode() + b"\n")
                await writer.drain()

        writing = asyncio.ensure_future(write())
        hangup = asyncio.ensure_future(reader.read())  # EOF: the client went away
        try:
            await asyncio.wait((writing, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stream.close()
            for task in (writing, hangup):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise InvalidArgument('a request is a JSON object with a string "cmd"')
            handler = self.handlers.get(request["cmd"])
            if handler is None:
                raise InvalidArgument(f"unknown command {request['cmd']!r}")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise InvalidArgument('"args" must be a JSON object')
            result = await handler(args)
            if isinstance(result, Stream):
                return {"ok": True, "result": result.header, "stream": result}
            return {"ok": True, "result": result}
        except APIError as exc:
            return {"ok": False, "error": str(exc), "kind": exc.kind}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"bad JSON: {exc}", "kind": InvalidArgument.kind}
        except Exception as exc:  # a handler bug must not kill the control socket
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {exc}", "kind": "internal"}

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
        writer.write(json.dumps(response, default=str).encode() + b"\n")
        await writer.drain()


class ControlClient:
    """Blocking client used by the CLI. Every failure is an `APIError` whose message
    names the socket: nothing the other end does (no daemon, another service, no
    answer, a closed connection) surfaces as a traceback."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, cmd: str, **args: Any) -> Any:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            self._connect(sock)
            try:
                try:
                    sock.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # it answered and closed before reading (a refusal): read that
                response = _read_line(sock, self.path)
            except TimeoutError as exc:
                raise APIError(
                    f"no answer from {self.path} within {self.timeout:g} s "
                    "(is the daemon stuck, or is this not its control socket?)"
                ) from exc
            except OSError as exc:  # reset, broken pipe: the other end went away
                raise APIError(f"connection to {self.path} lost: {exc.strerror or exc}") from exc
        if not response.get("ok"):
            kind = _KINDS.get(str(response.get("kind")), APIError)
            raise kind(str(response.get("error") or "request failed"))
        return response.get("result")

    def stream(self, cmd: str, **args: Any) -> Iterator[dict[str, Any]]:
        """A streaming request (``watch``): the answer's result first, then every event
        line until the daemon ends the stream; no timeout once the answer came."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            self._connect(sock)
            try:
                sock.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
                lines = sock.makefile("rb")
                first = lines.readline()
            except TimeoutError as exc:
                raise APIError(f"no answer from {self.path} within {self.timeout:g} s") from exc
            except OSError as exc:
                raise APIError(f"connection to {self.path} lost: {exc.strerror or exc}") from exc
            if not first.startswith(b"{"):
                raise NotPodbgp(f"not a podbgp control socket: {self.path}")
            response = json.loads(first)
            if not response.get("ok"):
                kind = _KINDS.get(str(response.get("kind")), APIError)
                raise kind(str(response.get("error") or "request failed"))
            yield response.get("result")
            sock.settimeout(None)
            try:
                for line in lines:
                    yield json.loads(line)
            except OSError as exc:
                raise APIError(f"connection to {self.path} lost: {exc.strerror or exc}") from exc

    def _connect(self, sock: socket.socket) -> None:
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise APIError(
                f"cannot reach the podbgp daemon at {self.path}: {exc.strerror} "
                "(is it running? --socket PATH or --config FILE names another)"
            ) from exc
        except PermissionError as exc:
            raise APIError(f"permission denied on {self.path}") from exc
        except TimeoutError as exc:
            raise APIError(f"{self.path}: no connection within {self.timeout:g} s") from exc
        except OSError as exc:
            raise APIError(f"cannot connect to {self.path}: {exc.strerror or exc}") from exc


def _read_line(sock: socket.socket, path: str) -> dict[str, Any]:
    """One answer line; anything that is not a podbgp answer is `NotPodbgp`.

    An answer is a JSON object, so a first byte other than ``{`` (an HTTP status line,
    a banner) is refused at once instead of waiting for a newline that may never come."""
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        if not chunks and not chunk.startswith(b"{"):
            raise NotPodbgp(f"not a podbgp control socket: {path}")
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    if not chunks:
        raise APIError(f"{path} closed the connection without answering")
    try:
        result = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        result = None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise NotPodbgp(f"not a podbgp control socket: {path}")
    return result
