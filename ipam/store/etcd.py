"""The etcd v3 store: the same interface over etcd's KV, Lease and Watch services.

The mapping is direct (the interface copies etcd's model): `txn` is an etcd
Txn whose compares are ``mod_revision(key) == r`` (etcd counts a missing key's
mod_revision as 0, so ``== 0`` means "absent"), `get_many` is one Txn of range
requests (one round trip, one revision), `watch` is a Watch stream from a
start revision.

We speak etcd's JSON gateway over HTTP/1.1 (`ipam.store.etcdwire` is the
codec, `ipam.store.etcdhttp` the connections) rather than gRPC: the gRPC
runtime and its generated stubs cost a daemon about 19 MB of resident memory,
half of what an idle node may use (issue 15 goal 3). IPAM must keep working
when one member of a 3-member cluster dies: a call that fails because a member
is unreachable, has no leader or does not answer within `call_timeout`
(UNAVAILABLE, DEADLINE_EXCEEDED, a broken connection) moves to the next
endpoint and retries, within a total time budget, then raises
`StoreUnavailable` with one line naming the endpoints and the last failure.

TLS (``https://`` endpoints, `TlsFiles`): the CA that signed etcd's server
certificate (the system's trusted CAs if none is named) and, for an etcd that
runs with ``--client-cert-auth``, this client's certificate and key. A
certificate that fails verification, or one etcd refuses, is a configuration
error, not an outage: it raises `StoreError` at once instead of being retried
on every member until the budget is spent.

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
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from ipam.store import etcdwire as wire
from ipam.store.base import (
    Compare,
    Event,
    KeyValue,
    LeaseExpired,
    Op,
    Store,
    StoreError,
    StoreUnavailable,
    TxnResult,
    WatchCompacted,
    prefix_end,
)
from ipam.store.etcdhttp import Endpoint, EtcdHttp
from ipam.store.etcdwire import RpcFailed, WireError


def parse_endpoint(url: str) -> str:
    """``http://host:port`` (or ``host:port``) -> ``host:port``."""
    return Endpoint.parse(url).name


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What TLS to etcd needs, as file paths ("": not given). In a datastore URL they
    follow the endpoints as a query: ``etcd:https://h:2379?ca=CA&cert=CRT&key=KEY``."""

    ca: str = ""  # PEM CA bundle that signed etcd's server certificate; "" = system CAs
    cert: str = ""  # PEM client certificate (etcd --client-cert-auth)
    key: str = ""  # its PEM private key

    def __bool__(self) -> bool:
        return bool(self.ca or self.cert or self.key)

    @classmethod
    def from_query(cls, query: str) -> TlsFiles:
        """``ca=...&cert=...&key=...`` (a datastore URL's query); unknown names are errors."""
        values: dict[str, str] = {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise StoreError(
                f"etcd: options {query!r}: expected ca=PATH&cert=PATH&key=PATH"
            ) from None
        for name, value in pairs:
            if name not in ("ca", "cert", "key"):
                raise StoreError(f"etcd: unknown option {name!r} (ca, cert, key)")
            values[name] = value
        return cls(**values)

    @property
    def query(self) -> str:
        """The URL query naming the files ("" when none is given)."""
        parts = {k: v for k, v in (("ca", self.ca), ("cert", self.cert), ("key", self.key)) if v}
        return "?" + urlencode(parts, safe="/") if parts else ""

    def context(self) -> ssl.SSLContext:
        """A client context: server certificates verified against `ca`, the client
        certificate presented if given; a one-line StoreError for a file that is
        missing, unreadable or not what it should be."""
        if bool(self.cert) != bool(self.key):
            raise StoreError(
                "etcd TLS: a client certificate needs its key, and a key its certificate"
            )
        try:
            ctx = ssl.create_default_context(cafile=self.ca or None)
        except (OSError, ssl.SSLError) as exc:
            raise StoreError(f"etcd TLS: CA file {self.ca}: {_why(exc)}") from None
        if self.cert:
            try:
                ctx.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                raise StoreError(
                    f"etcd TLS: client certificate {self.cert} / key {self.key}: {_why(exc)}"
                ) from None
        return ctx


def _why(exc: BaseException) -> str:
    """One line for a TLS or file failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the member's certificate did not verify: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if "ALERT" in reason.upper():
            alert = reason.upper().split("ALERT_", 1)[-1].replace("_", " ").lower()
            return (f"the member refused the handshake (TLS alert: {alert}); does it want a "
                    "client certificate (cert, key) signed by a CA it trusts?")  # fmt: skip
        if not reason or reason == "PEM_LIB":
            return "not a PEM certificate with its matching private key"
        return reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def tls_refused(exc: BaseException) -> bool:
    """A TLS failure that retrying cannot mend: our verification of the member's
    certificate failed, or the member refused ours (a TLS alert)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    return isinstance(exc, ssl.SSLError) and "ALERT" in (exc.reason or "").upper()


class EtcdStore(Store):
    kind = "etcd"

    def __init__(
        self,
        endpoints: Sequence[str],
        call_timeout: float = 5.0,
        retry_budget: float = 30.0,
        namespace: str = "",
        tls: TlsFiles | None = None,
    ) -> None:
        if not endpoints:
            raise StoreError("etcd: no endpoints")
        eps = [Endpoint.parse(e) for e in endpoints]
        secure = {e.tls for e in eps}
        tls = tls or TlsFiles()
        if len(secure) > 1:
            raise StoreError("etcd: the endpoints mix http:// and https://")
        if tls and True not in secure:
            raise StoreError("etcd: ca, cert and key are for https:// endpoints")
        self.tls = tls
        self.endpoints = [e.name for e in eps]
        self._urls = [e.url for e in eps]
        self.call_timeout = call_timeout
        self.retry_budget = retry_budget
        # Prepended to every key on the wire, so several clusters (or tests)
        # can share one etcd without seeing each other's keys.
        self.namespace = namespace
        self._http = EtcdHttp(eps, tls.context() if True in secure else None)
        self._current = 0

    @property
    def url(self) -> str:
        return "etcd:" + ",".join(self._urls) + self.tls.query

    # -- calls and retries -----------------------------------------------------
    async def _call(self, path: str, body: wire.Json, streamed: bool = False) -> wire.Json:
        """One RPC, moving to the next endpoint on failures another member may not have.

        `streamed`: the RPC is a stream (LeaseKeepAlive) whose one answer is
        wrapped as ``{"result": ...}`` or ``{"error": ...}``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        delay = 0.05
        while True:
            index = self._current
            try:
                resp = await asyncio.wait_for(self._http.call(index, path, body), self.call_timeout)
                return wire.stream_result(resp) if streamed else resp
            except RpcFailed as e:
                if e.status.lease_gone:
                    raise LeaseExpired(
                        f"etcd {self.endpoints[index]}: {e.status.message}"
                    ) from None
                if not e.status.retryable:
                    raise StoreError(f"etcd {self.endpoints[index]}: {e.status.message}") from None
                why = str(e)
            except (OSError, WireError, TimeoutError) as e:
                why = describe(e, self.call_timeout)
                if tls_refused(e):
                    raise StoreError(f"etcd {self._urls[index]}: TLS: {why}") from None
            if loop.time() + delay > deadline:
                raise StoreUnavailable(f"etcd {', '.join(self.endpoints)}: {why}") from None
            if self._current == index:
                self._current = (index + 1) % len(self.endpoints)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _b(self, key: str) -> bytes:
        return (self.namespace + key).encode()

    def _key(self, raw: bytes) -> str:
        return raw.decode()[len(self.namespace) :]

    # -- reads -----------------------------------------------------------------
    def _kv_of(self, kv: wire.RawKV) -> KeyValue:
        return KeyValue(self._key(kv.key), kv.value, kv.create_revision, kv.mod_revision)

    async def get(self, key: str) -> KeyValue | None:
        # A Range, not a one-op Txn: through the gateway it costs etcd ~20 % less CPU.
        kvs, _ = wire.parse_range(
            await self._call("/v3/kv/range", wire.range_request(self._b(key)))
        )
        return self._kv_of(kvs[0]) if kvs else None

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        ops = [{"request_range": wire.range_request(self._b(k))} for k in keys]
        resp = await self._call("/v3/kv/txn", {"compare": [], "success": ops, "failure": []})
        return [None if kv is None else self._kv_of(kv) for kv in wire.parse_txn_ranges(resp)]

    async def list_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        req = wire.range_request(self._b(prefix), self._b(prefix_end(prefix)), keys_only)
        kvs, rev = wire.parse_range(await self._call("/v3/kv/range", req))
        return [self._kv_of(kv) for kv in kvs], rev

    # -- writes ----------------------------------------------------------------
    async def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        req = wire.txn_request(
            [(self._b(c.key), c) for c in compares],
            [wire.op_request(o, self._b(o.key)) for o in ops],
        )
        succeeded, rev = wire.parse_txn(await self._call("/v3/kv/txn", req))
        return TxnResult(succeeded, rev)

    # -- leases ----------------------------------------------------------------
    async def grant_lease(self, ttl: int) -> int:
        if ttl < 1:
            raise ValueError(f"lease TTL {ttl}: must be at least 1 second")
        resp = await self._call("/v3/lease/grant", {"TTL": str(ttl), "ID": "0"})
        error = resp.get("error")
        if error:
            raise StoreError(f"etcd lease grant: {error}")
        return wire.int64(resp, "ID")

    async def keep_alive(self, lease: int) -> int:
        # LeaseKeepAlive is a stream; one request whose body then ends gets
        # one answer, after which etcd ends the response.
        resp = await self._call("/v3/lease/keepalive", {"ID": str(lease)}, streamed=True)
        return max(wire.int64(resp, "TTL"), 0)

    async def revoke_lease(self, lease: int) -> None:
        with contextlib.suppress(LeaseExpired):
            await self._call("/v3/lease/revoke", {"ID": str(lease)})

    # -- watch -----------------------------------------------------------------
    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        next_rev = max(start_revision, 1)
        failures = 0
        while True:
            index = self._current
            req = wire.watch_create(self._b(prefix), self._b(prefix_end(prefix)), next_rev)
            stream = self._http.stream(index, "/v3/watch", req, self.call_timeout)
            batches = self._read_stream(stream)
            try:
                async with contextlib.aclosing(stream), contextlib.aclosing(batches):
                    async for batch in batches:
                        failures = 0
                        next_rev = batch[-1].mod_revision + 1
                        yield batch
            except RpcFailed as e:
                if not e.status.retryable and e.status.code is not wire.GrpcCode.CANCELLED:
                    raise StoreError(f"etcd watch: {e.status.message}") from None
            except (OSError, WireError, TimeoutError) as e:
                if tls_refused(e):
                    why = describe(e, self.call_timeout)
                    raise StoreError(f"etcd watch {self._urls[index]}: TLS: {why}") from None
            # The stream broke (member died, leader lost): resume elsewhere.
            failures += 1
            if self._current == index:
                self._current = (index + 1) % len(self.endpoints)
            await asyncio.sleep(min(0.05 * 2**failures, 1.0))

    async def _read_stream(
        self, stream: AsyncIterator[wire.Json]
    ) -> AsyncGenerator[list[Event], None]:
        async for msg in stream:
            update = wire.parse_watch(wire.stream_result(msg))
            if update.compact_revision:
                raise WatchCompacted(update.compact_revision)
            if update.canceled:
                return
            for batch in wire.by_revision(update.events):
                yield [
                    Event(e.kind, self._key(e.kv.key), e.kv.value, e.kv.mod_revision) for e in batch
                ]

    async def close(self) -> None:
        await self._http.close()


def describe(e: BaseException, timeout: float) -> str:
    """One line for a transport failure."""
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(e, ssl.SSLError):
        return _why(e)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, ConnectionResetError) and not str(e):
        return "connection reset by the member"
    return str(e) or type(e).__name__
