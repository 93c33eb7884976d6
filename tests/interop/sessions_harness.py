"""Run a podbgp ``Speaker`` inside a test's network namespace, from a synchronous test.

The speaker runs on its own asyncio loop in a thread that first joins the
namespace with ``setns(2)`` (a network namespace is per thread on Linux, and a
socket keeps the namespace it was created in), so every listening and
connecting socket of the speaker lives in that namespace while the test
thread, the reference daemons' runners and their unix control sockets stay
where they are. A tiny sink records what the speaker hands to its RIB; a
tiny source hands out pre-encoded UPDATEs per peer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

from bgp.events import PeerHandle, SessionDown
from bgp.negotiate import Negotiated
from bgp.settings import PeerSettings, SpeakerSettings
from bgp.speaker import Peer, Speaker
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.prefix import Prefix
from bgp.wire.update import Update, encode_announce, encode_end_of_rib

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
V4, V6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST


def setns(name: str) -> None:
    """Move the calling thread into network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def announce(prefix: str, as_path: tuple[int, ...], next_hop: str, **attrs: Any) -> list[bytes]:
    """UPDATE bytes announcing one prefix (4-octet AS encoding)."""
    fam = V6 if ":" in prefix else V4
    nh = ipaddress.ip_address(next_hop)
    base = PathAttributes(origin=0, as_path=((2, as_path),), **attrs)
    pa = base.replace(next_hop=nh) if fam is V4 else base.replace(mp_next_hop=(nh,))
    return encode_announce(pa, fam, [Prefix.from_str(prefix).nlri()], CodecContext(as4=True))


class Sink:
    """Thread-safe record of the speaker's RIB-facing calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ups: list[tuple[str, Negotiated]] = []
        self.downs: list[tuple[str, SessionDown]] = []
        self.updates: list[tuple[str, Update]] = []
        self.eors: list[tuple[str, Family]] = []

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        with self.lock:
            self.ups.append((peer.key, negotiated))

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        with self.lock:
            self.updates.extend((peer.key, u) for u in updates)

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        with self.lock:
            self.eors.append((peer.key, family))

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        pass

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        with self.lock:
            self.downs.append((peer.key, reason))

    def routes(self, key: str | None = None) -> dict[str, PathAttributes | None]:
        """Prefix → attributes of what is currently announced (withdrawals applied)."""
        out: dict[str, PathAttributes | None] = {}
        with self.lock:
            for k, u in self.updates:
                if key is not None and k != key:
                    continue
                for p in u.withdrawn:
                    out.pop(str(p), None)
                for p in u.announced:
                    out[str(p)] = u.attrs
        return out


class Source:
    """Pre-encoded UPDATEs, then End-of-RIB per negotiated family."""

    def __init__(self, messages: list[bytes]) -> None:
        self.queue = list(messages)

    def pull(self, max_bytes: int) -> bytes:
        out, size = [], 0
        while self.queue and size < max_bytes:
            msg = self.queue.pop(0)
            out.append(msg)
            size += len(msg)
        return b"".join(out)


class LoopThread:
    """An asyncio loop in a thread that joined namespace ``ns`` (a context manager).

    Subclasses build their speaker on the loop in ``_start``; ``call`` runs a function
    on the loop and returns its result; leaving the context stops the speaker.
    """

    speaker: Speaker | None

    def __init__(self, ns: str, name: str) -> None:
        self.ns = ns
        self.loop: asyncio.AbstractEventLoop | None = None
        self.speaker = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name=f"{name}-{ns}")

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        try:
            setns(self.ns)
            self.loop = loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._start(loop)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        loop, speaker = self.loop, self.speaker
        if loop is not None and speaker is not None and loop.is_running():
            try:
                self.call_async(speaker.stop("test over"))
            finally:
                loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the loop and return its result."""
        assert self.loop is not None
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(10)

    def call_async(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def state(self, address: str) -> str:
        raise NotImplementedError

    def wait(self, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def wait_established(self, address: str, timeout: float = 20) -> None:
        self.wait(lambda: self.state(address) == "established", timeout, f"{address} Established")


class SpeakerThread(LoopThread):
    """A speaker on its own loop in a thread inside namespace ``ns``."""

    def __init__(
        self,
        ns: str,
        settings: SpeakerSettings,
        peers: list[PeerSettings],
        routes: dict[str, list[bytes]] | None = None,
    ) -> None:
        super().__init__(ns, "speaker")
        self.settings = settings
        self.peers = peers
        self.routes = routes or {}
        self.sink = Sink()

    def _factory(self, peer: PeerHandle, negotiated: Negotiated) -> Source:
        msgs = list(self.routes.get(peer.key, []))
        return Source(msgs + [encode_end_of_rib(f) for f in sorted(negotiated.families)])

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.speaker = Speaker(self.settings, self.sink, self._factory)
        for ps in self.peers:
            self.speaker.add_peer(ps)
        loop.run_until_complete(self.speaker.start())

    def peer(self, address: str) -> Peer:
        assert self.speaker is not None
        p = self.speaker.peer(address)
        assert p is not None, address
        return p

    def stats(self, address: str) -> dict[str, Any]:
        return self.call(lambda: self.peer(address).stats())

    def state(self, address: str) -> str:
        return str(self.stats(address)["state"])

    def wait_route(self, prefix: str, timeout: float = 15) -> PathAttributes:
        key = str(ipaddress.ip_network(prefix))
        attrs = self.wait(lambda: self.sink.routes().get(key), timeout, f"route {key}")
        assert isinstance(attrs, PathAttributes)
        return attrs
