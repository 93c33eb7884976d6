"""The etcd store's connections and failover (`ipam.store.etcdhttp`, `ipam.store.etcd`).

Servers that misbehave are real sockets on 127.0.0.1 (a closed port, one that
never answers, one that speaks something else, one that drops idle
connections); the member that works is a real etcd. Every failure must end in
one line naming the endpoints, within the store's time budget.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import pytest

from ipam.etcdlab import EtcdCluster
from ipam.store.base import LeaseExpired, StoreError, StoreUnavailable
from ipam.store.etcd import EtcdStore

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1 << 16)
    await asyncio.sleep(30)


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1 << 16)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
    await writer.drain()
    writer.close()


async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"header":')
    await writer.drain()
    writer.close()


async def unavailable(store: EtcdStore) -> str:
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as e:
        await store.list_prefix("/x")
    assert time.monotonic() - start < store.retry_budget + store.call_timeout + 2
    text = str(e.value)
    assert "\n" not in text and text.startswith("etcd 127.0.0.1:"), text
    return text


async def test_nothing_listening_is_a_one_line_unavailable() -> None:
    port = closed_port()
    store = EtcdStore([f"http://127.0.0.1:{port}"], call_timeout=0.5, retry_budget=0.5)
    assert f"Connect call failed ('127.0.0.1', {port})" in await unavailable(store)
    await store.close()


@pytest.mark.parametrize(
    "handler, why",
    [
        (hang, "no answer within 0.3 s"),
        (garbage, "not an HTTP response"),
        (truncated, "closed mid-response"),
    ],
)
async def test_a_server_that_is_not_etcd(handler: Handler, why: str) -> None:
    server, url = await serve(handler)
    async with server:
        store = EtcdStore([url], call_timeout=0.3, retry_budget=0.6)
        assert why in await unavailable(store)
        await store.close()


async def test_stale_pooled_connection_is_replaced() -> None:
    """A server that closes each connection after one answer (without saying so)."""
    answered = 0

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await read_request(reader)
        body = b'{"header":{"revision":"7"}}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        answered += 1
        writer.close()

    server, url = await serve(once)
    async with server:
        store = EtcdStore([url], call_timeout=1, retry_budget=0.01)
        for _ in range(3):
            assert await store.list_prefix("/x") == ([], 7)
        assert answered == 3
        await store.close()


@pytest.mark.etcd
async def test_dead_and_hanging_members_are_skipped(etcd_server: EtcdCluster) -> None:
    server, hanging = await serve(hang)
    async with server:
        eps = [f"http://127.0.0.1:{closed_port()}", hanging, *etcd_server.endpoints]
        store = EtcdStore(
            eps, call_timeout=0.5, retry_budget=10, namespace=f"/t-{uuid.uuid4().hex}"
        )
        try:
            assert await store.create("/a", b"1")
            kv = await store.get("/a")
            assert kv is not None and kv.value == b"1"
        finally:
            await store.close()


@pytest.mark.etcd
async def test_a_refused_request_is_an_error_not_a_retry(etcd_server: EtcdCluster) -> None:
    store = EtcdStore(etcd_server.endpoints, call_timeout=2, retry_budget=10)
    start = time.monotonic()
    try:
        with pytest.raises(StoreError) as e:
            await store.grant_lease(9_999_999_999_999)  # beyond etcd's maximum TTL
        assert not isinstance(e.value, StoreUnavailable) and "\n" not in str(e.value)
        assert time.monotonic() - start < 2
    finally:
        await store.close()


@pytest.mark.etcd
async def test_watch_on_a_dead_member_resumes_on_a_live_one(etcd_server: EtcdCluster) -> None:
    ns = f"/t-{uuid.uuid4().hex}"
    eps = [f"http://127.0.0.1:{closed_port()}", *etcd_server.endpoints]
    watcher = EtcdStore(eps, call_timeout=0.5, namespace=ns)
    writer = EtcdStore(etcd_server.endpoints, namespace=ns)

    async def first() -> AsyncIterator[str]:
        async for batch in watcher.watch("/w/", 1):
            for e in batch:
                yield e.key

    try:
        await writer.create("/w/a", b"")
        keys = first()
        assert await asyncio.wait_for(anext(keys), 20) == "/w/a"
        await keys.aclose()  # type: ignore[attr-defined]
    finally:
        await watcher.close()
        await writer.close()


def stream_answer(obj: Mapping[str, object]) -> Handler:
    """A server answering every request as etcd answers a stream: chunked JSON lines."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            line = json.dumps(obj).encode() + b"\n"
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))
            await writer.drain()

    return handler


async def test_keep_alive_error_inside_the_stream_is_retried_then_unavailable() -> None:
    no_leader = {"error": {"code": 14, "message": "etcdserver: no leader"}}
    server, url = await serve(stream_answer(no_leader))
    async with server:
        store = EtcdStore([url], call_timeout=0.5, retry_budget=0.3)
        with pytest.raises(StoreUnavailable, match="UNAVAILABLE: etcdserver: no leader"):
            await store.keep_alive(7)
        await store.close()


async def test_keep_alive_of_an_unknown_lease_in_the_stream_is_lease_expired() -> None:
    gone = {"error": {"code": 5, "message": "etcdserver: requested lease not found"}}
    server, url = await serve(stream_answer(gone))
    async with server:
        store = EtcdStore([url], call_timeout=0.5, retry_budget=5)
        with pytest.raises(LeaseExpired):
            await store.keep_alive(7)
        await store.close()


async def test_keep_alive_answer_is_the_remaining_ttl() -> None:
    server, url = await serve(stream_answer({"result": {"ID": "7", "TTL": "12"}}))
    async with server:
        store = EtcdStore([url], call_timeout=0.5, retry_budget=1)
        assert await store.keep_alive(7) == 12
        assert await store.keep_alive(7) == 12  # again, on the pooled connection
        await store.close()


async def test_closing_a_watch_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def one_event(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for msg in (
            {"result": {"created": True}},
            {"result": {"events": [{"kv": {"key": "L2EvYg==", "mod_revision": "3"}}]}},
        ):
            line = json.dumps(msg).encode() + b"\n"
            writer.write(b"%x\r\n%s\r\n" % (len(line), line))
        await writer.drain()
        await reader.read()  # until the client closes
        closed.set()

    server, url = await serve(one_event)
    async with server:
        store = EtcdStore([url], call_timeout=1)
        events = store.watch("/a/", 1)
        batch = await asyncio.wait_for(anext(events), 5)
        assert [(e.key, e.mod_revision) for e in batch] == [("/a/b", 3)]
        await events.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(closed.wait(), 5)
        await store.close()
