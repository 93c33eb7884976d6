"""The etcd v3 store: the same interface over etcd's KV and Watch gRPC services.

The mapping is direct (the interface copies etcd's model): `txn` is an etcd
Txn whose compares are ``mod_revision(key) == r`` (etcd counts a missing key's
mod_revision as 0, so ``== 0`` means "absent"), `get_many` is one Txn of range
requests (one round trip, one revision), `watch` is a Watch stream from a
start revision.

We speak gRPC through aetcd's generated stubs (`aetcd.rpc`) instead of its
`Client`, which talks to a single endpoint: IPAM must keep working when one
member of a 3-member cluster dies. Each endpoint has its own channel; a call
that fails because a member is unreachable or has no leader
(UNAVAILABLE, DEADLINE_EXCEEDED) moves to the next endpoint and retries,
within a total time budget, then raises `StoreUnavailable`.

Retrying a Txn whose first attempt may have committed is safe here because
every write is a CAS on revisions: revisions only grow, so if the first
attempt committed, the retry's compare fails and the caller re-reads and finds
its own write (allocation is idempotent per handle, release is a no-op on a
free address). A watch stream that breaks is re-opened on the next endpoint
from the revision after the last one delivered, so no change is lost or
repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

from ipam.store.base import (
    Compare,
    Delete,
    Event,
    EventKind,
    KeyValue,
    LeaseExpired,
    Op,
    Put,
    Store,
    StoreError,
    StoreUnavailable,
    TxnResult,
    WatchCompacted,
    prefix_end,
)

T = TypeVar("T")

# Errors after which another member may well answer.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def parse_endpoint(url: str) -> str:
    """``http://host:port`` (or ``host:port``) -> ``host:port`` for gRPC."""
    if "//" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise StoreError(f"etcd endpoint {url}: only http:// is supported")
    if not parts.hostname:
        raise StoreError(f"etcd endpoint {url}: no host")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or 2379}"


class EtcdStore(Store):
    kind = "etcd"

    def __init__(
        self,
        endpoints: Sequence[str],
        call_timeout: float = 5.0,
        retry_budget: float = 30.0,
        namespace: str = "",
    ) -> None:
        if not endpoints:
            raise StoreError("etcd: no endpoints")
        self.endpoints = [parse_endpoint(e) for e in endpoints]
        self.call_timeout = call_timeout
        self.retry_budget = retry_budget
        # Prepended to every key on the wire, so several clusters (or tests)
        # can share one etcd without seeing each other's keys.
        self.namespace = namespace
        self._channels: dict[int, Any] = {}
        self._current = 0

    @property
    def url(self) -> str:
        return "etcd:" + ",".join(f"http://{e}" for e in self.endpoints)

    # -- channels and retries --------------------------------------------------
    def _channel(self, index: int) -> Any:
        ch = self._channels.get(index)
        if ch is None:
            ch = grpc.aio.insecure_channel(self.endpoints[index], options=CHANNEL_OPTIONS)
            self._channels[index] = ch
        return ch

    async def _call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run `fn(channel)`, moving to the next endpoint on transport errors."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        delay = 0.05
        while True:
            index = self._current
            try:
                return await fn(self._channel(index))
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND and "lease" in (e.details() or ""):
                    raise LeaseExpired(f"etcd {self.endpoints[index]}: {e.details()}") from e
                if e.code() not in RETRYABLE:
                    raise StoreError(f"etcd {self.endpoints[index]}: {e.details()}") from e
                if loop.time() + delay > deadline:
                    raise StoreUnavailable(
                        f"etcd {', '.join(self.endpoints)}: {e.code().name} {e.details()}"
                    ) from e
                if self._current == index:
                    self._current = (index + 1) % len(self.endpoints)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _kv(self, channel: Any) -> Any:
        return rpc.KVStub(channel)

    def _b(self, key: str) -> bytes:
        return (self.namespace + key).encode()

    def _key(self, raw: bytes) -> str:
        return raw.decode()[len(self.namespace) :]

    # -- reads -----------------------------------------------------------------
    def _kv_of(self, kv: Any) -> KeyValue:
        return KeyValue(self._key(kv.key), bytes(kv.value), kv.create_revision, kv.mod_revision)

    async def get(self, key: str) -> KeyValue | None:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        ops = [rpc.RequestOp(request_range=rpc.RangeRequest(key=self._b(k))) for k in keys]
        req = rpc.TxnRequest(compare=[], success=ops, failure=[])

        async def call(ch: Any) -> Any:
            return await self._kv(ch).Txn(req, timeout=self.call_timeout)

        resp = await self._call(call)
        out: list[KeyValue | None] = []
        for r in resp.responses:
            kvs = r.response_range.kvs
            out.append(self._kv_of(kvs[0]) if kvs else None)
        return out

    async def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        req = rpc.RangeRequest(
            key=self._b(prefix), range_end=self._b(prefix_end(prefix)), keys_only=keys_only
        )

        async def call(ch: Any) -> Any:
            return await self._kv(ch).Range(req, timeout=self.call_timeout)

        resp = await self._call(call)
        return [self._kv_of(kv) for kv in resp.kvs], int(resp.header.revision)

    # -- writes ----------------------------------------------------------------
    def _op(self, op: Op) -> Any:
        if isinstance(op, Put):
            put = rpc.PutRequest(key=self._b(op.key), value=op.value, lease=op.lease)
            return rpc.RequestOp(request_put=put)
        assert isinstance(op, Delete)
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self._b(op.key)))

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        cmp = [
            rpc.Compare(
                key=self._b(c.key),
                target=rpc.Compare.MOD,
                result=rpc.Compare.EQUAL,
                mod_revision=c.mod_revision,
            )
            for c in compares
        ]
        req = rpc.TxnRequest(compare=cmp, success=[self._op(o) for o in ops], failure=[])

        async def call(ch: Any) -> Any:
            return await self._kv(ch).Txn(req, timeout=self.call_timeout)

        resp = await self._call(call)
        return TxnResult(bool(resp.succeeded), int(resp.header.revision))

    # -- leases ----------------------------------------------------------------
    async def grant_lease(self, ttl: int) -> int:
        if ttl < 1:
            raise ValueError(f"lease TTL {ttl}: must be at least 1 second")
        req = rpc.LeaseGrantRequest(TTL=ttl, ID=0)

        async def call(ch: Any) -> Any:
            return await rpc.LeaseStub(ch).LeaseGrant(req, timeout=self.call_timeout)

        resp = await self._call(call)
        if resp.error:
            raise StoreError(f"etcd lease grant: {resp.error}")
        return int(resp.ID)

    async def keep_alive(self, lease: int) -> int:
        async def call(ch: Any) -> Any:
            stream = rpc.LeaseStub(ch).LeaseKeepAlive(timeout=self.call_timeout)
            try:
                await stream.write(rpc.LeaseKeepAliveRequest(ID=lease))
                return await stream.read()
            finally:
                stream.cancel()

        resp = await self._call(call)
        if resp is grpc.aio.EOF:
            raise StoreUnavailable(f"etcd {', '.join(self.endpoints)}: keep-alive stream closed")
        return max(int(resp.TTL), 0)

    async def revoke_lease(self, lease: int) -> None:
        async def call(ch: Any) -> Any:
            return await rpc.LeaseStub(ch).LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease), timeout=self.call_timeout
            )

        with contextlib.suppress(LeaseExpired):
            await self._call(call)

    # -- watch -----------------------------------------------------------------
    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        next_rev = max(start_revision, 1)
        failures = 0
        while True:
            index = self._current
            stream = rpc.WatchStub(self._channel(index)).Watch()
            try:
                create = rpc.WatchCreateRequest(
                    key=self._b(prefix),
                    range_end=self._b(prefix_end(prefix)),
                    start_revision=next_rev,
                )
                await stream.write(rpc.WatchRequest(create_request=create))
                async for batch in self._read_stream(stream):
                    failures = 0
                    next_rev = batch[-1].mod_revision + 1
                    yield batch
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRYABLE and e.code() != grpc.StatusCode.CANCELLED:
                    raise StoreError(f"etcd watch: {e.details()}") from e
            finally:
                stream.cancel()
            # The stream broke (member died, leader lost): resume elsewhere.
            failures += 1
            if self._current == index:
                self._current = (index + 1) % len(self.endpoints)
            await asyncio.sleep(min(0.05 * 2**failures, 1.0))

    async def _read_stream(self, stream: Any) -> AsyncIterator[list[Event]]:
        while True:
            resp = await stream.read()
            if resp is grpc.aio.EOF:
                return
            if resp.compact_revision:
                raise WatchCompacted(int(resp.compact_revision))
            if resp.canceled:
                return
            events = [
                Event(
                    EventKind.DELETE if ev.type == rpc.Event.DELETE else EventKind.PUT,
                    self._key(ev.kv.key),
                    bytes(ev.kv.value),
                    int(ev.kv.mod_revision),
                )
                for ev in resp.events
            ]
            # One response may carry several revisions; hand them out one by one.
            for rev in sorted({e.mod_revision for e in events}):
                yield [e for e in events if e.mod_revision == rev]

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for ch in channels.values():
            with contextlib.suppress(Exception):
                await ch.close()
