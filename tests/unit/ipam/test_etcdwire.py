"""etcd's JSON gateway codec (`ipam.store.etcdwire`), without sockets.

The responses are what etcd 3.4 sends (captured with curl from a real member);
everything else a server might send -- garbage, a truncated stream, an HTTP
error from something that is not etcd -- must end in a one-line `WireError`
or `RpcFailed`, never another exception.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam.store.base import Compare, Delete, EventKind, Put
from ipam.store.etcdwire import (
    BodyData,
    BodyEnd,
    GrpcCode,
    Head,
    JsonStream,
    RawKV,
    ResponseEvent,
    ResponseParser,
    RpcFailed,
    WireError,
    by_revision,
    encode_request,
    http_status,
    op_request,
    parse_range,
    parse_txn,
    parse_txn_ranges,
    parse_watch,
    range_request,
    stream_result,
    txn_request,
    watch_create,
)

HEADER = (
    '{"cluster_id":"11585515679520609033","member_id":"16048747102794220930",'
    '"revision":"2","raft_term":"2"}'
)
RANGE_BODY = (
    '{"header":' + HEADER + ',"kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"2",'
    '"version":"1","value":"MQ=="}],"count":"1"}'
).encode()
OK_RANGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Grpc-Metadata-Content-Type: application/grpc\r\n"
    b"Content-Length: " + str(len(RANGE_BODY)).encode() + b"\r\n\r\n" + RANGE_BODY
)
LEASE_ERROR = (
    b'{"error":"etcdserver: requested lease not found","message":"etcdserver: requested'
    b' lease not found","code":5}'
)
CHUNKED_404 = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
    b"Trailer: Grpc-Trailer-Content-Type\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{len(LEASE_ERROR):x}".encode()
    + b"\r\n"
    + LEASE_ERROR
    + b"\r\n0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n"
)


def run(parser: ResponseParser, pieces: list[bytes]) -> list[ResponseEvent]:
    out: list[ResponseEvent] = []
    for p in pieces:
        out.extend(parser.feed(p))
    return out


def body_of(events: list[ResponseEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyData))


# -- HTTP framing --------------------------------------------------------------


def test_request_is_a_post_with_json_and_the_leader_requirement() -> None:
    raw = encode_request("[::1]:2379", "/v3/kv/range", {"key": "YQ=="}, keep_alive=False)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v3/kv/range HTTP/1.1"
    assert "Host: [::1]:2379" in lines
    assert "Content-Length: 14" in lines and "Connection: close" in lines
    assert "Grpc-Metadata-Hasleader: true" in lines
    assert json.loads(body) == {"key": "YQ=="}


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_content_length_response_in_pieces_of_any_size(size: int) -> None:
    parser = ResponseParser()
    events = run(parser, [OK_RANGE[i : i + size] for i in range(0, len(OK_RANGE), size)])
    assert isinstance(events[0], Head) and events[0].status == 200
    assert body_of(events) == RANGE_BODY
    assert events[-1] == BodyEnd(reusable=True) and parser.done


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_chunked_error_with_trailer(size: int) -> None:
    parser = ResponseParser()
    events = run(parser, [CHUNKED_404[i : i + size] for i in range(0, len(CHUNKED_404), size)])
    assert isinstance(events[0], Head) and events[0].status == 404
    assert body_of(events) == LEASE_ERROR
    assert events[-1] == BodyEnd(reusable=True)
    status = http_status(404, body_of(events))
    assert status.code is GrpcCode.NOT_FOUND and status.lease_gone and not status.retryable


def test_chunk_extensions_are_ignored() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n"
    assert body_of(ResponseParser().feed(raw)) == b"abc"


def test_connection_close_makes_the_connection_not_reusable() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    assert ResponseParser().feed(raw)[-1] == BodyEnd(reusable=False)


def test_body_delimited_by_close() -> None:
    parser = ResponseParser()
    events = parser.feed(b"HTTP/1.1 200 OK\r\n\r\n{}") + parser.feed_eof()
    assert body_of(events) == b"{}" and events[-1] == BodyEnd(reusable=False)


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP response"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "not an HTTP response"),
        (b"HTTP/1.1 OK fine\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "CRLF"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 20000, "longer than"),
    ],
)
def test_garbage_is_a_one_line_wire_error(raw: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why) as e:
        ResponseParser().feed(raw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "raw",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Len", OK_RANGE[:-5], CHUNKED_404[:-3]],
)
def test_truncated_response_is_an_error_at_eof(raw: bytes) -> None:
    parser = ResponseParser()
    parser.feed(raw)
    with pytest.raises(WireError, match="closed mid-response"):
        parser.feed_eof()


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    parser = ResponseParser()
    try:
        parser.feed(data)
        parser.feed_eof()
    except WireError:
        pass


@given(st.binary(max_size=200))
def test_arbitrary_body_after_a_valid_head_raises_only_wire_error(data: bytes) -> None:
    parser = ResponseParser()
    try:
        parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + data)
        parser.feed_eof()
    except WireError:
        pass


# -- JSON objects in a body ------------------------------------------------------


def test_stream_objects_split_anywhere_even_inside_a_character() -> None:
    text = '{"result":{"a":"é"}}\n{"result":{"b":1}}\n'.encode()
    for cut in range(1, len(text)):
        s = JsonStream()
        got = s.feed(text[:cut]) + s.feed(text[cut:]) + s.end()
        assert got == [{"result": {"a": "é"}}, {"result": {"b": 1}}]


@pytest.mark.parametrize(
    "text, why",
    [
        (b'{"result":{"header":', "bad JSON"),  # the stream ended mid-object
        (b"[1,2]", "expected a JSON object"),
        (b"Not Found", "bad JSON"),
        (b'{"a":"\xff"}', "not UTF-8"),
    ],
)
def test_truncated_or_wrong_json_is_a_wire_error(text: bytes, why: str) -> None:
    s = JsonStream()
    with pytest.raises(WireError, match=why):
        s.feed(text)
        s.end()


# -- messages --------------------------------------------------------------------


def test_range_with_zero_fields_left_out() -> None:
    kvs, rev = parse_range(json.loads(RANGE_BODY))
    assert kvs == [RawKV(b"a", b"1", 2, 2)] and rev == 2
    assert parse_range({"header": {"cluster_id": "1"}}) == ([], 0)
    kv = parse_range({"kvs": [{"key": "YQ==", "mod_revision": "9"}]})[0][0]
    assert kv == RawKV(b"a", b"", 0, 9)  # an empty value is left out too


def test_range_request_encodes_bytes_as_base64() -> None:
    assert range_request(b"/a", b"/b", keys_only=True) == {
        "key": base64.b64encode(b"/a").decode(),
        "range_end": base64.b64encode(b"/b").decode(),
        "keys_only": True,
    }
    assert range_request(b"k") == {"key": "aw=="}


def test_txn_request_compares_mod_revisions_and_carries_leases() -> None:
    req = txn_request(
        [(b"ns/a", Compare("a", 0)), (b"ns/b", Compare("b", 7))],
        [op_request(Put("a", b"\x00\xff", lease=2**62), b"ns/a"), op_request(Delete("b"), b"ns/b")],
    )
    assert req["compare"][1] == {
        "key": base64.b64encode(b"ns/b").decode(),
        "target": "MOD",
        "result": "EQUAL",
        "mod_revision": "7",
    }
    put = req["success"][0]["request_put"]
    assert base64.b64decode(put["value"]) == b"\x00\xff" and put["lease"] == str(2**62)
    assert "lease" not in op_request(Put("a", b""), b"a")["request_put"]
    assert req["success"][1] == {
        "request_delete_range": {"key": base64.b64encode(b"ns/b").decode()}
    }


def test_txn_response_false_is_left_out() -> None:
    assert parse_txn({"header": {"revision": "12"}}) == (False, 12)
    assert parse_txn({"header": {"revision": "13"}, "succeeded": True}) == (True, 13)
    resp = {
        "succeeded": True,
        "responses": [
            {"response_range": {"kvs": [{"key": "YQ==", "value": "MQ==", "mod_revision": "2"}]}},
            {"response_range": {"header": {"revision": "2"}}},
        ],
    }
    assert parse_txn_ranges(resp) == [RawKV(b"a", b"1", 0, 2), None]


@pytest.mark.parametrize(
    "msg, why",
    [
        ({"kvs": [{"key": "!!!"}]}, "bad base64"),
        ({"kvs": [{"key": 5}]}, "expected base64"),
        ({"kvs": {"key": "YQ=="}}, "list of objects"),
        ({"header": {"revision": "twelve"}}, "expected an integer"),
        ({"header": {"revision": True}}, "expected an integer"),
        ({"header": []}, "expected an object"),
    ],
)
def test_malformed_messages_are_wire_errors(msg: dict[str, object], why: str) -> None:
    with pytest.raises(WireError, match=why):
        parse_range(msg)


def test_watch_messages() -> None:
    create = watch_create(b"/p/", b"/p0", 42)["create_request"]
    assert create["start_revision"] == "42" and base64.b64decode(create["key"]) == b"/p/"
    created = parse_watch(stream_result({"result": {"header": {"revision": "2"}, "created": True}}))
    assert created.created and not created.events
    events = parse_watch(
        {
            "events": [
                {"kv": {"key": "YQ==", "value": "MQ==", "mod_revision": "5"}},
                {"type": "DELETE", "kv": {"key": "Yg==", "mod_revision": "5"}},
                {"kv": {"key": "Yw==", "value": "Mg==", "mod_revision": "6"}},
            ]
        }
    )
    assert [e.kind for e in events.events] == [EventKind.PUT, EventKind.DELETE, EventKind.PUT]
    assert [[e.kv.key for e in b] for b in by_revision(events.events)] == [[b"a", b"b"], [b"c"]]
    compacted = parse_watch({"canceled": True, "compact_revision": "2"})
    assert compacted.canceled and compacted.compact_revision == 2
    with pytest.raises(WireError, match="unknown watch event type"):
        parse_watch({"events": [{"type": "EXPIRE", "kv": {}}]})


def test_an_error_inside_a_stream_is_rpc_failed() -> None:
    with pytest.raises(RpcFailed) as e:
        stream_result({"error": {"grpc_code": 14, "code": 14, "message": "etcdserver: no leader"}})
    assert e.value.status.code is GrpcCode.UNAVAILABLE and e.value.status.retryable
    assert str(e.value) == "UNAVAILABLE: etcdserver: no leader"


def test_http_errors_from_something_that_is_not_etcd() -> None:
    nf = http_status(404, b"Not Found\n")
    assert (
        nf.code is GrpcCode.UNKNOWN
        and nf.message == "HTTP 404 from a server that is not etcd's gateway (Not Found)"
    )
    gw = http_status(503, b"<html>\n<body>busy</body>")
    assert gw.code is GrpcCode.UNAVAILABLE and gw.retryable and gw.message.startswith("HTTP 503 ")
    odd = http_status(400, b'{"code": 99, "message": "first line\\nsecond"}')
    assert odd.code is GrpcCode.UNKNOWN and odd.message == "first line"
    with pytest.raises(WireError, match="bad error body"):
        http_status(400, b'{"code": "x"}')
