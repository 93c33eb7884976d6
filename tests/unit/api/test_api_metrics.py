"""The metrics endpoint is scraped over HTTP and parsed with the Prometheus parser
(prometheus_client, a test dependency only: the daemon writes the format itself)."""

from __future__ import annotations

import asyncio
import math
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from podbgp import metrics
from podbgp.metrics import MetricsServer, MetricsSnapshot, PeerMetrics, PoolMetrics

SNAP = MetricsSnapshot(
    peers=[
        PeerMetrics(
            "10.0.0.2",
            "Established",
            12.5,
            7,
            3,
            {"ipv4": (10, 9, 4)},
            bfd={"state": "up", "flaps": 2},
        ),
        PeerMetrics("10.0.0.3", "Idle"),  # no BFD: no BFD samples
    ],
    fib_desired=5,
    fib_installed=4,
    fib_drift_repairs=1,
    fib_backlog=70000,
    fib_input_holds=2,
    fib_input_held_seconds=0.75,
    pools=[PoolMetrics("10.244.0.0/16", 2, 3, 125)],
    decision_runs=6,
    decision_seconds=0.25,
)


@pytest.fixture
async def server() -> AsyncIterator[MetricsServer]:
    s = MetricsServer("127.0.0.1:0", lambda: SNAP)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def fetch(
    server: MetricsServer, path: str = "/metrics", method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    """An HTTP request by urllib on another thread (the server runs on this loop)."""

    def get() -> tuple[int, dict[str, str], str]:
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()

    return await asyncio.get_running_loop().run_in_executor(None, get)


async def raw(server: MetricsServer, data: bytes, close: bool = True) -> bytes:
    """Bytes sent as they are; the whole answer (the server closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    if close:
        writer.write_eof()
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def test_scrape_and_parse(server: MetricsServer) -> None:
    status, headers, text = await fetch(server)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    peer = ("peer", "10.0.0.2")
    assert samples[("podbgp_bgp_session_state", (peer, ("state", "Established")))] == 1.0
    assert samples[("podbgp_bgp_session_state", (peer, ("state", "Idle")))] == 0.0
    assert samples[("podbgp_bgp_session_uptime_seconds", (peer,))] == 12.5
    assert samples[("podbgp_bgp_updates_total", (("direction", "in"), peer))] == 7
    key = ("podbgp_bgp_prefixes", (("family", "ipv4"), ("kind", "accepted"), peer))
    assert samples[key] == 9
    assert samples[("podbgp_fib_routes", (("kind", "installed"),))] == 4
    assert samples[("podbgp_fib_drift_repairs_total", ())] == 1
    assert samples[("podbgp_fib_backlog", ())] == 70000
    assert samples[("podbgp_fib_input_holds_total", ())] == 2
    assert samples[("podbgp_fib_input_held_seconds_total", ())] == 0.75
    used = ("podbgp_ipam_addresses", (("kind", "used"), ("pool", "10.244.0.0/16")))
    assert samples[used] == 3
    assert samples[("podbgp_decision_runs_total", ())] == 6
    assert samples[("podbgp_bfd_session_state", (peer, ("state", "up")))] == 1.0
    assert samples[("podbgp_bfd_session_state", (peer, ("state", "down")))] == 0.0
    assert samples[("podbgp_bfd_session_flaps_total", (peer,))] == 2
    assert not [
        k for k in samples if k[0].startswith("podbgp_bfd") and ("peer", "10.0.0.3") in k[1]
    ]
    # every family says what it is, a counter under its samples' name
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["podbgp_bgp_updates"] == "counter" and types["podbgp_fib_backlog"] == "gauge"
    assert "# TYPE podbgp_bgp_updates_total counter" in text.splitlines()


async def test_the_root_path_serves_too_and_others_are_not_found(server: MetricsServer) -> None:
    status, _, text = await fetch(server, "/")
    assert status == 200 and "podbgp_fib_routes" in text
    status, _, _ = await fetch(server, "/metrics?name[]=podbgp_fib_routes")
    assert status == 200
    status, _, text = await fetch(server, "/favicon.ico")
    assert status == 404 and "/metrics" in text


async def test_head_has_the_length_and_no_body(server: MetricsServer) -> None:
    _, _, text = await fetch(server)
    answer = await raw(server, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert f"Content-Length: {len(text.encode())}".encode() in head
    assert body == b""


async def test_other_methods_are_refused(server: MetricsServer) -> None:
    answer = await raw(server, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in answer


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello, then CRLFs
        b"GET /metrics\r\n\r\n",  # HTTP/0.9
        b"GET /metrics SPDY/3\r\n\r\n",
        b"\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\n\r\n",
    ],
)
async def test_garbage_gets_400_and_the_endpoint_serves_on(
    server: MetricsServer, garbage: bytes
) -> None:
    answer = await raw(server, garbage)
    assert answer.startswith(b"HTTP/1.1 400 ")
    status, _, _ = await fetch(server)
    assert status == 200


async def test_a_head_too_large_gets_431(server: MetricsServer) -> None:
    answer = await raw(server, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_client_that_hangs_up_or_never_finishes_costs_nothing(
    server: MetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "HEAD_TIMEOUT", 0.3)
    assert await raw(server, b"GET /metr") == b""  # closed half-way: no answer, no error
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # and then nothing
    await writer.drain()
    status, _, _ = await fetch(server)  # served meanwhile
    assert status == 200
    assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped after HEAD_TIMEOUT
    writer.close()


async def test_a_failing_snapshot_is_a_500_and_the_next_scrape_works() -> None:
    calls: list[int] = []

    def snapshot() -> MetricsSnapshot:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return SNAP

    s = MetricsServer("127.0.0.1:0", snapshot)
    await s.start()
    try:
        status, _, _ = await fetch(s)
        assert status == 500
        status, _, _ = await fetch(s)
        assert status == 200
    finally:
        await s.stop()


async def test_the_snapshot_is_read_on_the_event_loop_thread() -> None:
    """The daemon's state belongs to its loop's thread; a scrape reads it there."""
    seen: list[threading.Thread] = []

    def snapshot() -> MetricsSnapshot:
        seen.append(threading.current_thread())
        return SNAP

    s = MetricsServer("127.0.0.1:0", snapshot)
    await s.start()
    try:
        await fetch(s)
    finally:
        await s.stop()
    assert seen == [threading.current_thread()]


async def test_a_taken_address_is_an_oserror_and_stop_frees_it() -> None:
    a = MetricsServer("127.0.0.1:0", lambda: SNAP)
    await a.start()
    b = MetricsServer(f"127.0.0.1:{a.port}", lambda: SNAP)
    try:
        with pytest.raises(OSError):
            await b.start()
    finally:
        await a.stop()
    await b.start()  # free again
    await b.stop()


def test_label_values_and_help_are_escaped() -> None:
    fam = metrics.gauge("x", 'a \\ b\nc "d"', ["l"])
    fam.add(['q"\\\n'], 1)
    text = "".join(line + "\n" for line in fam.lines())
    assert text.splitlines()[0] == '# HELP x a \\\\ b\\nc "d"'
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.samples[0].labels == {"l": 'q"\\\n'}
    assert parsed.documentation == 'a \\ b\nc "d"'


def test_a_sample_needs_one_value_per_label() -> None:
    with pytest.raises(ValueError):
        metrics.gauge("x", "y", ["a", "b"]).add(["1"], 1)


@given(st.one_of(st.floats(allow_nan=True), st.integers(0, 2**63)))
def test_numbers_as_prometheus_writes_them(value: float) -> None:
    """As Go's shortest %g (the reference library's rendering, which Prometheus parses)."""
    ours = metrics._number(value)
    assert ours == floatToGoString(value)
    if not math.isnan(float(value)):
        assert float(ours.replace("Inf", "inf")) == float(value)
