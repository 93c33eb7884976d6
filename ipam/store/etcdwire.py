"""etcd's JSON gateway on the wire, sans-IO: HTTP/1.1 framing and the v3 messages as dicts.

etcd serves every v3 RPC at ``POST /v3/<service>/<method>`` with the request
message as JSON, through grpc-gateway (etcd's api/etcdserverpb/gw). The
mapping follows protobuf's JSON form: ``bytes`` fields are base64, ``int64``
fields are decimal strings, enums are their names, and a field equal to its
zero value is left out (so a missing ``revision`` is 0, a missing
``succeeded`` is false, a PUT event has no ``type``). A failed call answers
with an HTTP status and ``{"error", "message", "code"}`` where ``code`` is the
gRPC status code. A streaming RPC (Watch, LeaseKeepAlive) answers with a
chunked body of JSON objects, one per line, each ``{"result": message}`` or
``{"error": status}``.

This module holds no socket: `encode_request` builds the bytes of a request,
`ResponseParser` is fed the bytes that come back and yields the status, the
body's pieces and the end, `JsonStream` splits a body into JSON objects, and
the ``*_request`` / ``parse_*`` functions map the store's values to etcd's
messages and back. Anything that is not what etcd sends raises `WireError`
with one line saying what was wrong; the asyncio shell is `ipam.store.etcdhttp`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any

from ipam.store.base import Compare, Delete, EventKind, Op, Put, StoreError

MAX_HEAD = 64 * 1024  # status line and headers
MAX_BODY = 64 * 1024 * 1024  # one JSON object (a full range of a large store)
MAX_CHUNK_LINE = 1024

Json = dict[str, Any]


class WireError(StoreError):
    """What came back is not an HTTP response of etcd's gateway."""


class GrpcCode(IntEnum):
    """The gRPC status codes etcd's gateway returns in ``code`` (grpc/codes)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# Errors after which another member may well answer (no leader, member
# stopping, request timed out inside etcd).
RETRYABLE = frozenset(
    {GrpcCode.UNAVAILABLE, GrpcCode.DEADLINE_EXCEEDED, GrpcCode.UNKNOWN, GrpcCode.INTERNAL}
)


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """A failed call: the gRPC code and etcd's message."""

    code: GrpcCode
    message: str

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE

    @property
    def lease_gone(self) -> bool:
        return self.code is GrpcCode.NOT_FOUND and "lease" in self.message


class RpcFailed(StoreError):
    """etcd answered with an error status."""

    def __init__(self, status: RpcStatus) -> None:
        super().__init__(f"{status.code.name}: {status.message}")
        self.status = status


# -- HTTP/1.1 ------------------------------------------------------------------


def encode_request(host: str, path: str, body: Json, *, keep_alive: bool = True) -> bytes:
    """A ``POST path`` with `body` as JSON (RFC 9112 section 3 and 6.2: Content-Length).

    ``Grpc-Metadata-Hasleader`` becomes the gRPC metadata ``hasleader: true``,
    with which etcd refuses a call (UNAVAILABLE) and cancels a watch on a
    member that has lost its leader, so the client moves to another member
    instead of waiting on one cut off from the cluster.
    """
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        "Grpc-Metadata-Hasleader: true\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("ascii") + data


@dataclass(frozen=True, slots=True)
class Head:
    """The status line and headers (names lower-cased)."""

    status: int
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


@dataclass(frozen=True, slots=True)
class BodyData:
    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """The response is complete; `reusable` if the connection may carry another request."""

    reusable: bool


ResponseEvent = Head | BodyData | BodyEnd


class Part(Enum):
    """Where in a response the parser is (RFC 9112 sections 2.1 and 7.1)."""

    HEAD = "status line and headers"
    BODY = "body"
    CHUNK_SIZE = "chunk size"
    CHUNK_DATA = "chunk data"
    CHUNK_END = "CRLF after a chunk"
    TRAILER = "trailer"
    DONE = "end"


class ResponseParser:
    """One HTTP/1.1 response, fed in pieces (RFC 9112 sections 4, 6 and 7.1).

    The body is delimited by Content-Length, by chunked transfer coding (etcd's
    streams and errors), or else by the server closing the connection
    (`feed_eof`). Chunk extensions and trailers are read and ignored.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head: Head | None = None
        self._left: int | None = None  # bytes left in the body or current chunk
        self._chunked = False
        self._state = Part.HEAD
        self._steps: dict[Part, Callable[[list[ResponseEvent]], bool]] = {
            Part.HEAD: self._read_head,
            Part.BODY: self._read_body,
            Part.CHUNK_SIZE: self._read_size,
            Part.CHUNK_DATA: self._read_body,
            Part.CHUNK_END: self._read_crlf,
            Part.TRAILER: self._read_trailer,
        }

    @property
    def done(self) -> bool:
        return self._state is Part.DONE

    def feed(self, data: bytes) -> list[ResponseEvent]:
        self._buf += data
        out: list[ResponseEvent] = []
        while self._step(out):
            pass
        return out

    def feed_eof(self) -> list[ResponseEvent]:
        """The server closed the connection: the end of a close-delimited body, else an error."""
        if self._state is Part.BODY and self._left is None:
            self._state = Part.DONE
            return [BodyEnd(reusable=False)]
        if self._state is Part.DONE:
            return []
        raise WireError(f"connection closed mid-response ({self._where()})")

    def _where(self) -> str:
        return "before the headers" if self._head is None else f"in the {self._state.value}"

    def _step(self, out: list[ResponseEvent]) -> bool:
        step = self._steps.get(self._state)
        return step(out) if step else False

    def _line(self, limit: int) -> bytes | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > limit:
                raise WireError(f"line longer than {limit} bytes ({self._where()})")
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _read_head(self, out: list[ResponseEvent]) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise WireError(f"response headers longer than {MAX_HEAD} bytes")
            if not b"HTTP/".startswith(bytes(self._buf[:5])):
                raise WireError(f"not an HTTP response: {bytes(self._buf[:40])!r}")
            return False
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        head = parse_head(lines)
        self._head = head
        out.append(head)
        te = head.headers.get("transfer-encoding", "").lower()
        if te:
            if te.rsplit(",", 1)[-1].strip() != "chunked":
                raise WireError(f"unsupported Transfer-Encoding {te!r}")
            self._chunked, self._state = True, Part.CHUNK_SIZE
        elif "content-length" in head.headers:
            self._left = parse_length(head.headers["content-length"])
            self._state = Part.BODY
        else:
            self._state = Part.BODY  # until the connection closes
        return True

    def _read_body(self, out: list[ResponseEvent]) -> bool:
        if self._left == 0:
            self._finish_piece(out)
            return True
        if not self._buf:
            return False
        n = len(self._buf) if self._left is None else min(self._left, len(self._buf))
        out.append(BodyData(bytes(self._buf[:n])))
        del self._buf[:n]
        if self._left is not None:
            self._left -= n
        return True

    def _finish_piece(self, out: list[ResponseEvent]) -> None:
        if self._chunked:
            self._state = Part.CHUNK_END
        else:
            self._state = Part.DONE
            assert self._head is not None
            out.append(BodyEnd(reusable=self._head.keep_alive))

    def _read_size(self, out: list[ResponseEvent]) -> bool:
        line = self._line(MAX_CHUNK_LINE)
        if line is None:
            return False
        text = line.split(b";", 1)[0].strip()
        try:
            size = int(text, 16)
        except ValueError:
            raise WireError(f"bad chunk size {line[:40]!r}") from None
        if size < 0 or size > MAX_BODY:
            raise WireError(f"chunk size {size} out of range")
        if size == 0:
            self._state = Part.TRAILER
        else:
            self._left, self._state = size, Part.CHUNK_DATA
        return True

    def _read_crlf(self, out: list[ResponseEvent]) -> bool:
        if len(self._buf) < 2:
            return False
        if self._buf[:2] != b"\r\n":
            raise WireError("chunk not followed by CRLF")
        del self._buf[:2]
        self._state = Part.CHUNK_SIZE
        return True

    def _read_trailer(self, out: list[ResponseEvent]) -> bool:
        line = self._line(MAX_HEAD)
        if line is None:
            return False
        if line == b"":
            self._state = Part.DONE
            assert self._head is not None
            out.append(BodyEnd(reusable=self._head.keep_alive))
        return True


def parse_head(lines: list[str]) -> Head:
    """The status line and header fields of a response."""
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WireError(f"bad status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise WireError(f"bad header line {line[:60]!r}")
        headers[name.lower()] = value.strip()
    return Head(int(parts[1]), headers)


def parse_length(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_BODY:
        raise WireError(f"bad Content-Length {text[:20]!r}")
    return int(text)


class JsonStream:
    """Splits a body into the JSON objects it holds, one per line.

    grpc-gateway writes each message of a stream followed by a newline, and
    JSON text holds no raw newline, so a line is an object; a unary body is
    one object with no newline, complete at `end`.
    """

    def __init__(self) -> None:
        self._raw = bytearray()

    def feed(self, data: bytes) -> list[Json]:
        self._raw += data
        cut = self._raw.rfind(b"\n") + 1
        if not cut:
            if len(self._raw) > MAX_BODY:
                raise WireError(f"a JSON object longer than {MAX_BODY} bytes")
            return []
        lines = bytes(self._raw[:cut]).split(b"\n")
        del self._raw[:cut]
        return [parse_object(line) for line in lines if line.strip()]

    def end(self) -> list[Json]:
        """The body is complete: what is left must be a whole object."""
        rest, self._raw = bytes(self._raw), bytearray()
        return [parse_object(rest)] if rest.strip() else []


def parse_object(line: bytes) -> Json:
    try:
        obj = json.loads(decode_utf8(line))
    except json.JSONDecodeError as e:
        raise WireError(f"bad JSON ({e.msg}): {line[:40]!r}") from None
    if not isinstance(obj, dict):
        raise WireError(f"expected a JSON object, got {line[:40]!r}")
    return obj


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise WireError(f"body is not UTF-8: {data[:40]!r}") from None


# -- messages ------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(msg: Json, name: str) -> bytes:
    value = msg.get(name, "")
    if not isinstance(value, str):
        raise WireError(f"field {name!r}: expected base64 text, got {value!r:.40}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"field {name!r}: bad base64 {value[:40]!r}") from None


def int64(msg: Json, name: str) -> int:
    """An int64 field: protobuf's JSON writes it as a decimal string (or a number)."""
    value = msg.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WireError(f"field {name!r}: expected an integer, got {value!r:.40}")
    try:
        return int(value)
    except ValueError:
        raise WireError(f"field {name!r}: expected an integer, got {value!r:.40}") from None


def sub(msg: Json, name: str) -> Json:
    value = msg.get(name, {})
    if not isinstance(value, dict):
        raise WireError(f"field {name!r}: expected an object, got {value!r:.40}")
    return value


def items(msg: Json, name: str) -> list[Json]:
    value = msg.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise WireError(f"field {name!r}: expected a list of objects, got {value!r:.40}")
    return value


def revision(msg: Json) -> int:
    """The store revision in a response's header."""
    return int64(sub(msg, "header"), "revision")


@dataclass(frozen=True, slots=True)
class RawKV:
    """A key-value pair as etcd returns it (mvccpb.KeyValue), keys still namespaced."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int


def parse_kv(msg: Json) -> RawKV:
    return RawKV(
        unb64(msg, "key"),
        unb64(msg, "value"),
        int64(msg, "create_revision"),
        int64(msg, "mod_revision"),
    )


def range_request(key: bytes, range_end: bytes = b"", keys_only: bool = False) -> Json:
    req: Json = {"key": b64(key)}
    if range_end:
        req["range_end"] = b64(range_end)
    if keys_only:
        req["keys_only"] = True
    return req


def parse_range(msg: Json) -> tuple[list[RawKV], int]:
    """A RangeResponse: its pairs and the revision it was read at."""
    return [parse_kv(kv) for kv in items(msg, "kvs")], revision(msg)


def op_request(op: Op, key: bytes) -> Json:
    """A RequestOp for one write of a Txn (`key` already namespaced)."""
    if isinstance(op, Put):
        put: Json = {"key": b64(key), "value": b64(op.value)}
        if op.lease:
            put["lease"] = str(op.lease)
        return {"request_put": put}
    assert isinstance(op, Delete)
    return {"request_delete_range": {"key": b64(key)}}


def txn_request(compares: Sequence[tuple[bytes, Compare]], ops: Sequence[Json]) -> Json:
    """A Txn whose compares are ``mod_revision(key) == r`` (etcd's Compare, target MOD)."""
    cmp = [
        {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(c.mod_revision)}
        for key, c in compares
    ]
    return {"compare": cmp, "success": list(ops), "failure": []}


def parse_txn(msg: Json) -> tuple[bool, int]:
    """A TxnResponse: whether the compares held, and the revision."""
    succeeded = msg.get("succeeded", False)
    if not isinstance(succeeded, bool):
        raise WireError(f"field 'succeeded': expected a boolean, got {succeeded!r:.40}")
    return succeeded, revision(msg)


def parse_txn_ranges(msg: Json) -> list[RawKV | None]:
    """The first pair of each range response of a read-only Txn (None: no such key)."""
    out: list[RawKV | None] = []
    for r in items(msg, "responses"):
        kvs = items(sub(r, "response_range"), "kvs")
        out.append(parse_kv(kvs[0]) if kvs else None)
    return out


def stream_result(msg: Json) -> Json:
    """The message in one object of a streamed response; an ``error`` object raises."""
    if "error" in msg:
        raise RpcFailed(parse_status(sub(msg, "error")))
    return sub(msg, "result")


def parse_status(msg: Json) -> RpcStatus:
    """An error body: ``{"error", "message", "code"}`` (grpc-gateway's form)."""
    code = msg.get("code", GrpcCode.UNKNOWN)
    text = msg.get("message") or msg.get("error") or ""
    if not isinstance(code, int) or not isinstance(text, str):
        raise WireError(f"bad error body {json.dumps(msg)[:60]!r}")
    try:
        grpc_code = GrpcCode(code)
    except ValueError:
        grpc_code = GrpcCode.UNKNOWN
    return RpcStatus(grpc_code, text.splitlines()[0] if text else grpc_code.name)


def http_status(status: int, body: bytes) -> RpcStatus:
    """A non-200 response: etcd's gRPC status if the body carries one, else the HTTP status."""
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        msg = None
    if isinstance(msg, dict) and "code" in msg:
        return parse_status(msg)
    # Not etcd's gateway answering (a proxy, another server): say what it said.
    text = body[:80].decode("utf-8", "replace").strip().splitlines()
    code = GrpcCode.UNAVAILABLE if status in (502, 503, 504) else GrpcCode.UNKNOWN
    said = f" ({text[0][:40]})" if text else ""
    return RpcStatus(code, f"HTTP {status} from a server that is not etcd's gateway{said}")


def watch_create(key: bytes, range_end: bytes, start_revision: int) -> Json:
    req = range_request(key, range_end)
    req["start_revision"] = str(start_revision)
    return {"create_request": req}


@dataclass(frozen=True, slots=True)
class RawEvent:
    kind: EventKind
    kv: RawKV


@dataclass(frozen=True, slots=True)
class WatchUpdate:
    """One WatchResponse: events, or the watch's creation or cancellation."""

    events: tuple[RawEvent, ...]
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""


def parse_watch(msg: Json) -> WatchUpdate:
    events = []
    for ev in items(msg, "events"):
        kind = ev.get("type", "PUT")
        if kind not in ("PUT", "DELETE", 0, 1):
            raise WireError(f"unknown watch event type {kind!r:.20}")
        k = EventKind.DELETE if kind in ("DELETE", 1) else EventKind.PUT
        events.append(RawEvent(k, parse_kv(sub(ev, "kv"))))
    reason = msg.get("cancel_reason", "")
    return WatchUpdate(
        tuple(events),
        created=msg.get("created") is True,
        canceled=msg.get("canceled") is True,
        compact_revision=int64(msg, "compact_revision"),
        cancel_reason=reason if isinstance(reason, str) else "",
    )


def by_revision(events: Sequence[RawEvent]) -> Iterator[list[RawEvent]]:
    """One response may carry several revisions; the store hands them out one by one."""
    for rev in sorted({e.kv.mod_revision for e in events}):
        yield [e for e in events if e.kv.mod_revision == rev]
