"""Prometheus metrics: the daemon's state at scrape time, served on its own event loop.

Nothing on the hot path updates a metric object: a scrape asks the daemon for a
`MetricsSnapshot` (plain numbers it keeps anyway for `podbgp show`) and renders
it in the Prometheus text exposition format, version 0.0.4. A scrape therefore
costs the daemon nothing between scrapes.

The endpoint is a small HTTP/1.1 server on the daemon's event loop, not a
client library's server thread: the snapshot is read on the thread that owns
the state it reads (a thread of its own could find the peer table changing
under it), and an idle node keeps no HTTP server stack in memory (prometheus_client's
took ~1.8 MB and a thread; docs/benchmarks.md). One request per connection,
answered with ``Connection: close``; the request head is bounded in size and
time, so a slow or garbled client costs one small task for `HEAD_TIMEOUT` at most.
The output is checked against prometheus_client's own parser in the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bgp.fsm import State
from podbgp.metrics_snapshot import MetricsSnapshot, PeerMetrics, PoolMetrics

__all__ = [
    "Family",
    "MetricsServer",
    "MetricsSnapshot",
    "PeerMetrics",
    "PoolMetrics",
    "exposition",
]

log = logging.getLogger("podbgp.api")  # the endpoint is `[api] metrics`

SESSION_STATES = tuple(s.rfc_name for s in State)  # RFC 4271 §8.2.2 spelling
BFD_STATES = ("admindown", "down", "init", "up")  # RFC 5880 §4.1

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PATHS = ("/metrics", "/")
MAX_HEAD = 8192  # request line and headers; a scraper sends a few hundred bytes
HEAD_TIMEOUT = 10.0  # seconds for a client to send its request head
WRITE_TIMEOUT = 10.0  # seconds for a client to take the answer
MAX_CLIENTS = 32  # connections served at once; more are closed at once


# -- the exposition format ------------------------------------------------------------------
class Sample(NamedTuple):
    labels: tuple[str, ...]  # values, in the order of the family's label names
    value: float


@dataclass(slots=True)
class Family:
    """One metric family: a gauge, or a counter (whose samples are named ``…_total``)."""

    name: str
    help: str
    kind: str  # "gauge" or "counter"
    labels: tuple[str, ...] = ()
    samples: list[Sample] = field(default_factory=list)

    def add(self, labels: Sequence[str], value: float) -> None:
        if len(labels) != len(self.labels):
            raise ValueError(f"{self.name}: {len(labels)} label values for {self.labels}")
        self.samples.append(Sample(tuple(labels), value))

    def lines(self) -> Iterator[str]:
        name = f"{self.name}_total" if self.kind == "counter" else self.name
        yield f"# HELP {name} {_escape_help(self.help)}"
        yield f"# TYPE {name} {self.kind}"
        order = sorted(range(len(self.labels)), key=self.labels.__getitem__)
        for sample in self.samples:
            if order:
                pairs = ",".join(
                    f'{self.labels[i]}="{_escape_label(sample.labels[i])}"' for i in order
                )
                yield f"{name}{{{pairs}}} {_number(sample.value)}"
            else:
                yield f"{name} {_number(sample.value)}"


def gauge(name: str, text: str, labels: Sequence[str] = (), value: float | None = None) -> Family:
    fam = Family(name, text, "gauge", tuple(labels))
    if value is not None:
        fam.add((), value)
    return fam


def counter(name: str, text: str, labels: Sequence[str] = (), value: float | None = None) -> Family:
    fam = Family(name, text, "counter", tuple(labels))
    if value is not None:
        fam.add((), value)
    return fam


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """A sample value as Go's shortest ``%g`` writes it (what Prometheus itself prints):
    Python's shortest repr, with an exponent from 1e6 up."""
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if v < 1e6 or "e" in text:
        return text
    whole, _, frac = text.partition(".")
    digits = (whole + frac).rstrip("0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e+{len(whole) - 1:02d}"


def exposition(snap: MetricsSnapshot) -> str:
    """The text a scrape returns for `snap`."""
    return "".join(line + "\n" for fam in families(snap) for line in fam.lines())


# -- what the snapshot becomes ----------------------------------------------------------------
class Scalar(NamedTuple):
    """A family of one unlabelled sample: the snapshot's field of that name."""

    name: str
    help: str
    kind: str  # "gauge" or "counter"
    field: str


FIB_SCALARS = (
    Scalar("podbgp_fib_drift_repairs", "Owned routes put back after drift", "counter",
           "fib_drift_repairs"),
    Scalar("podbgp_fib_backlog", "Routes waiting to be written to the kernel", "gauge",
           "fib_backlog"),
    Scalar("podbgp_fib_input_holds",
           "Times BGP sessions stopped reading while the kernel caught up", "counter",
           "fib_input_holds"),
    Scalar("podbgp_fib_input_held_seconds",
           "Time BGP sessions spent waiting for the kernel to catch up", "counter",
           "fib_input_held_seconds"),
)  # fmt: skip
NODE_SCALARS = (
    Scalar("podbgp_decision_runs", "Best-path decision runs", "counter", "decision_runs"),
    Scalar("podbgp_ipam_leaks_released",
           "Pod addresses released because the pod's network namespace was gone", "counter",
           "ipam_leaks_released"),
    Scalar("podbgp_nodes_removed",
           "Nodes this node removed after their lease lapsed for node_gone_after", "counter",
           "nodes_removed"),
    Scalar("podbgp_decision_seconds", "Time spent in best-path decision", "counter",
           "decision_seconds"),
)  # fmt: skip


def _scalars(snap: MetricsSnapshot, scalars: tuple[Scalar, ...]) -> Iterator[Family]:
    for m in scalars:
        yield Family(m.name, m.help, m.kind, (), [Sample((), getattr(snap, m.field))])


def families(snap: MetricsSnapshot) -> Iterator[Family]:
    yield from _peer_families(snap.peers)
    fib = gauge("podbgp_fib_routes", "Kernel routes owned by podbgp", ["kind"])
    fib.add(["desired"], snap.fib_desired)
    fib.add(["installed"], snap.fib_installed)
    yield fib
    yield from _scalars(snap, FIB_SCALARS)
    yield from _pool_families(snap.pools)
    if snap.datastore_ok is not None:
        yield gauge(
            "podbgp_datastore_ok",
            "1 while the datastore is the one this node joined; 0 if missing or replaced",
            value=int(snap.datastore_ok),
        )
    yield from _bmp_families(snap.bmp)
    yield from _scalars(snap, NODE_SCALARS)


def _peer_families(peers: list[PeerMetrics]) -> Iterator[Family]:
    state = gauge(
        "podbgp_bgp_session_state", "1 for the state the session is in", ["peer", "state"]
    )
    uptime = gauge("podbgp_bgp_session_uptime_seconds", "Time since Established", ["peer"])
    updates = counter("podbgp_bgp_updates", "UPDATE messages", ["peer", "direction"])
    prefixes = gauge(
        "podbgp_bgp_prefixes", "Prefixes per peer and family", ["peer", "family", "kind"]
    )
    for p in peers:
        for s in SESSION_STATES:
            state.add([p.address, s], 1.0 if p.state == s else 0.0)
        uptime.add([p.address], p.uptime_seconds)
        updates.add([p.address, "in"], p.updates_in)
        updates.add([p.address, "out"], p.updates_out)
        for family, counts in p.prefixes.items():
            for kind, n in zip(("received", "accepted", "advertised"), counts, strict=True):
                prefixes.add([p.address, family, kind], n)
    yield from (state, uptime, updates, prefixes)
    yield from _bfd_families(peers)


def _bfd_families(peers: list[PeerMetrics]) -> Iterator[Family]:
    """BFD session state and flaps (Up → Down) of the peers that run BFD."""
    state = gauge(
        "podbgp_bfd_session_state", "1 for the state the BFD session is in", ["peer", "state"]
    )
    flaps = counter("podbgp_bfd_session_flaps", "BFD session changes from Up to Down", ["peer"])
    for p in peers:
        if p.bfd is None:
            continue
        for s in BFD_STATES:
            state.add([p.address, s], 1.0 if p.bfd.get("state") == s else 0.0)
        flaps.add([p.address], p.bfd.get("flaps", 0))
    yield from (state, flaps)


def _pool_families(pools: list[PoolMetrics]) -> Iterator[Family]:
    blocks = gauge("podbgp_ipam_blocks", "Blocks claimed in the pool (cluster-wide)", ["pool"])
    addrs = gauge("podbgp_ipam_addresses", "Addresses of the pool, used and free", ["pool", "kind"])
    for pool in pools:
        blocks.add([pool.cidr], pool.blocks)
        addrs.add([pool.cidr, "used"], pool.addresses_used)
        addrs.add([pool.cidr, "free"], pool.addresses_free)
    yield from (blocks, addrs)


def _bmp_families(stations: list[dict[str, Any]]) -> Iterator[Family]:
    """Each BMP station's connection (``podbgp.bmp``): up, and what went to it."""
    up = gauge("podbgp_bmp_station_up", "1 while connected to the BMP station", ["station"])
    counters = {
        key: counter(f"podbgp_bmp_{name}", text, ["station"])
        for key, name, text in (
            ("messages", "messages", "BMP messages written to the station"),
            ("connects", "connects", "Connections made to the station"),
            ("overflows", "overflows",
             "Connections dropped because too many messages waited (then resynced)"),
        )
    }  # fmt: skip
    for st in stations:
        up.add([st["station"]], 1.0 if st["connected"] else 0.0)
        for key, fam in counters.items():
            fam.add([st["station"]], st[key])
    yield up
    yield from counters.values()


# -- the endpoint ---------------------------------------------------------------------------
class MetricsServer:
    """The HTTP endpoint (`[api] metrics = "host:port"`), on the running event loop."""

    def __init__(self, address: str, snapshot: Callable[[], MetricsSnapshot]) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.snapshot = snapshot
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (OSError if the address cannot be had); port 0 takes a free one."""
        server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEAD, reuse_address=True
        )
        self._server = server
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            writer.close()
            return
        self._clients.add(writer)
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, extra = self._answer(head)
            writer.write(_response(status, body, extra, head.startswith(b"HEAD ")))
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()
        except asyncio.LimitOverrunError:
            writer.write(
                _response("431 Request Header Fields Too Large", "request head too large\n")
            )
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client went away, or never finished asking
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[str, str, str]:
        """(status line, body, extra header lines) for a request head."""
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return "400 Bad Request", "not an HTTP/1.x request\n", ""
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "GET or HEAD only\n", "Allow: GET, HEAD\r\n"
        if target.decode("latin-1") not in PATHS:
            return "404 Not Found", "metrics are at /metrics\n", ""
        try:
            return "200 OK", exposition(self.snapshot()), ""
        except Exception:  # a bug in a snapshot must not take the endpoint (or the daemon) down
            log.exception("metrics scrape failed")
            return "500 Internal Server Error", "the scrape failed; see the daemon's log\n", ""


def _response(status: str, body: str, extra: str = "", head_only: bool = False) -> bytes:
    data = body.encode()
    content_type = CONTENT_TYPE if status.startswith("200") else "text/plain; charset=utf-8"
    header = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return header.encode() + (b"" if head_only else data)
