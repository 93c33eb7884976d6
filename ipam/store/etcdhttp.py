"""The asyncio shell around `ipam.store.etcdwire`: connections to etcd members over HTTP/1.1.

`EtcdHttp` holds the endpoints and, per endpoint, a few idle keep-alive
connections; ``https://`` endpoints are reached over TLS with the context the
store built (`ipam.store.etcd.TlsFiles`: the CA to trust, the client
certificate etcd's ``--client-cert-auth`` asks for). `call` sends one request and returns the response's JSON
object; `stream` opens a connection of its own for a streaming RPC (Watch)
and yields each message as it arrives. Neither retries nor moves between
members: that policy, and the time budget of every call, belong to the store
(`ipam.store.etcd`). Failures surface as `RpcFailed` (etcd answered with an
error status), `WireError` (what came back was not etcd's gateway) or
`OSError` (the member could not be reached or the connection broke).

An idle pooled connection may have been closed by the server meanwhile; a
request on one that fails before any byte of the answer arrives is sent once
more on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ipam.store.base import StoreError
from ipam.store.etcdwire import (
    BodyData,
    BodyEnd,
    Head,
    Json,
    JsonStream,
    ResponseParser,
    RpcFailed,
    WireError,
    encode_request,
    http_status,
)

READ_SIZE = 64 * 1024
MAX_IDLE = 4  # idle connections kept per endpoint


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One etcd member's client URL."""

    host: str
    port: int
    tls: bool = False  # https://

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``http://host:port``, ``https://host:port`` (or ``host:port``: http; the port
        defaults to etcd's 2379)."""
        if "//" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise StoreError(f"etcd endpoint {url}: the scheme must be http:// or https://")
        try:
            port = parts.port or 2379
        except ValueError:
            raise StoreError(f"etcd endpoint {url}: bad port") from None
        if not parts.hostname:
            raise StoreError(f"etcd endpoint {url}: no host")
        return cls(parts.hostname, port, parts.scheme == "https")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.name}"

    @property
    def name(self) -> str:
        """``host:port``, an IPv6 host in brackets (also the Host header)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Connection:
    """One HTTP/1.1 connection to a member; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False  # has carried a request (so it may have gone stale)

    @classmethod
    async def open(cls, ep: Endpoint, tls: ssl.SSLContext | None) -> Connection:
        if ep.tls:
            if tls is None:
                raise StoreError(f"etcd {ep.url}: https:// without a TLS context")
            reader, writer = await asyncio.open_connection(
                ep.host, ep.port, limit=READ_SIZE, ssl=tls, server_hostname=ep.host
            )
        else:
            reader, writer = await asyncio.open_connection(ep.host, ep.port, limit=READ_SIZE)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            keepalive(sock)
        return cls(reader, writer)

    def send(self, ep: Endpoint, path: str, body: Json, *, keep_alive: bool) -> None:
        self.used = True
        self.writer.write(encode_request(ep.name, path, body, keep_alive=keep_alive))

    async def events(self, parser: ResponseParser) -> AsyncIterator[Head | BodyData | BodyEnd]:
        """The response's events until its end (EOF before the end raises WireError)."""
        while not parser.done:
            data = await self.reader.read(READ_SIZE)
            for ev in parser.feed(data) if data else parser.feed_eof():
                yield ev

    async def response(self) -> tuple[int, bytes, bool]:
        """(status, body, reusable) of a whole response."""
        parser = ResponseParser()
        status, body, reusable = 0, bytearray(), False
        try:
            async for ev in self.events(parser):
                if isinstance(ev, Head):
                    status = ev.status
                elif isinstance(ev, BodyData):
                    body += ev.data
                else:
                    reusable = ev.reusable
        except WireError as e:
            if status == 0 and not body:
                raise StaleConnection(str(e)) from None
            raise
        return status, bytes(body), reusable

    def close(self) -> None:
        self.writer.close()


class StaleConnection(WireError):
    """The connection closed before any answer: on a reused one, the server had dropped it."""


def keepalive(sock: socket.socket) -> None:
    """TCP keep-alive, so a stream to a member that vanished (host down) ends within ~25 s."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


class EtcdHttp:
    """Requests to etcd members by index into `endpoints`."""

    def __init__(self, endpoints: Sequence[Endpoint], tls: ssl.SSLContext | None = None) -> None:
        self.endpoints = list(endpoints)
        self.tls = tls
        self._idle: dict[int, list[Connection]] = {}

    async def call(self, index: int, path: str, body: Json) -> Json:
        """One unary RPC on member `index`: the response message, or RpcFailed."""
        status, data = await self._exchange(index, path, body)
        if status != 200:
            raise RpcFailed(http_status(status, data))
        stream = JsonStream()
        objs = [*stream.feed(data), *stream.end()]
        if len(objs) != 1:
            raise WireError(f"expected one JSON object, got {len(objs)}")
        return objs[0]

    async def _exchange(self, index: int, path: str, body: Json) -> tuple[int, bytes]:
        ep = self.endpoints[index]
        idle = self._idle.setdefault(index, [])
        while True:
            conn = idle.pop() if idle else await Connection.open(ep, self.tls)
            reused = conn.used
            ok = False
            try:
                conn.send(ep, path, body, keep_alive=True)
                status, data, ok = await conn.response()
            except (StaleConnection, ConnectionError):
                if reused:
                    continue  # the server dropped the idle connection: once more, fresh
                raise
            finally:
                if ok and len(idle) < MAX_IDLE:
                    idle.append(conn)
                else:
                    conn.close()
            return status, data

    async def stream(
        self, index: int, path: str, body: Json, timeout: float
    ) -> AsyncGenerator[Json, None]:
        """A streaming RPC on a connection of its own: each JSON object of the answer.

        Connecting and the status line are bounded by `timeout`; the objects
        then come when the server sends them. The iteration ends when the
        server ends the response or closes the connection.
        """
        ep = self.endpoints[index]
        conn = await asyncio.wait_for(Connection.open(ep, self.tls), timeout)
        try:
            conn.send(ep, path, body, keep_alive=False)
            parser = ResponseParser()
            events = conn.events(parser)
            head = await asyncio.wait_for(anext(events), timeout)
            assert isinstance(head, Head)
            if head.status != 200:
                rest = await asyncio.wait_for(collect(events), timeout)
                raise RpcFailed(http_status(head.status, rest))
            stream = JsonStream()
            async for ev in events:
                if isinstance(ev, BodyData):
                    for obj in stream.feed(ev.data):
                        yield obj
            for obj in stream.end():
                yield obj
        finally:
            conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()


async def collect(events: AsyncIterator[Head | BodyData | BodyEnd]) -> bytes:
    body = bytearray()
    async for ev in events:
        if isinstance(ev, BodyData):
            body += ev.data
    return bytes(body)
