"""An in-process podbgp node (``Speaker`` + ``RibAdapter`` + ``Rib``) inside a test namespace,
and a LAN topology for route-reflection tests.

Approach (the simplest robust one here): the speaker runs on its own asyncio
loop in a thread that first joins the namespace with ``setns(2)``. A network
namespace is a property of the thread, and a socket keeps the namespace it was
created in, so every listening and connecting socket of the speaker lives in
the namespace while the test thread, the reference daemons' runners and their
control sockets stay where they are. The test reads the RIB through ``call``,
which runs a function on the node's loop (the RIB is not thread-safe), so
there is no JSON control protocol to maintain and assertions see real
``rib`` objects.

``lan`` puts a hub namespace ``p`` (podbgp, 10.70.0.1 on a bridge) and spokes
``s1``..``sN`` (10.70.0.2..) on one Ethernet segment, so every next hop is
directly connected — what BIRD's ``direct`` iBGP sessions and FRR's next-hop
tracking need to treat reflected routes as valid.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

from sessions_harness import LoopThread

from bgp.errors import CeaseSubcode
from bgp.settings import PeerSettings, SpeakerSettings
from bgp.speaker import Speaker
from bgp.wire.context import CodecContext
from bgp.wire.update import Update, decode_update
from podbgp.lab.netns import Netns, NetnsGroup
from rib import PeerPolicy, Rib, RibSettings
from rib.adapter import PeerHandles, PeerSource, RibAdapter
from rib.show import routes

HUB = "10.70.0.1"


def spoke_address(i: int) -> str:
    return f"10.70.0.{i + 1}"


def lan(group: NetnsGroup, spokes: int) -> tuple[Netns, list[Netns]]:
    """Hub ``p`` and ``spokes`` namespaces on one bridge (see module docstring)."""
    hub = group.add("p")
    hub.ip("link", "add", "br0", "type", "bridge")
    hub.ip("addr", "add", f"{HUB}/24", "dev", "br0")
    hub.ip("link", "set", "br0", "up")
    out = []
    for i in range(1, spokes + 1):
        ns = group.add(f"s{i}")
        group.veth(hub, f"p{i}", ns, "eth0")
        hub.ip("link", "set", f"p{i}", "master", "br0")
        ns.ip("addr", "add", f"{spoke_address(i)}/24", "dev", "eth0")
        out.append(ns)
    return hub, out


class _Recorder:
    """A peer's ``RouteSource`` that keeps a copy of every byte handed to the session."""

    def __init__(self, inner: PeerSource, log: list[bytes]) -> None:
        self.inner = inner
        self.log = log

    def pull(self, max_bytes: int) -> bytes:
        data = self.inner.pull(max_bytes)
        if data:
            self.log.append(bytes(data))
        return data


class _RecordingAdapter(RibAdapter):
    def __init__(
        self, rib: Rib, handles: PeerHandles, sent: dict[str, list[bytes]], **kw: Any
    ) -> None:
        super().__init__(rib, handles, **kw)
        self.sent = sent

    def __call__(self, peer: Any, negotiated: Any) -> _Recorder:  # type: ignore[override]
        return _Recorder(super().__call__(peer, negotiated), self.sent.setdefault(peer.key, []))


class RibNode(LoopThread):
    """Speaker + RIB on a loop in a thread inside namespace ``ns`` (a context manager).

    ``peers`` pairs the session settings with the RIB's view of each peer.
    A peer over its ``max_prefixes`` is shut down with Cease / Maximum Number
    of Prefixes Reached (RFC 4486 §4), as ``podbgp.bgpnode`` does.
    """

    def __init__(
        self,
        ns: Netns,
        rib_settings: RibSettings,
        peers: list[tuple[PeerSettings, PeerPolicy]],
        *,
        restarting: bool = False,
    ) -> None:
        super().__init__(ns.name, "rib")
        self.netns = ns
        self.rib_settings = rib_settings
        self.peers = peers
        self.restarting = restarting
        self.rib: Rib | None = None
        self.max_prefix_hits: list[tuple[str, int]] = []
        self.fib_changes: list[dict[bytes, tuple[bytes, ...]]] = []
        self.sent: dict[str, list[bytes]] = {}  # peer -> bytes written, in order

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        handles = PeerHandles(on_max_prefix=self._max_prefix)
        self.rib = rib = Rib(
            self.rib_settings,
            fib=lambda fam, ch: self.fib_changes.append(ch),
            wake=handles.wake,
            max_prefix_exceeded=handles.max_prefix_exceeded,
        )
        adapter = _RecordingAdapter(
            rib,
            handles,
            self.sent,
            local4=IPv4Address(str(self.rib_settings.router_id)),
            clock=loop.time,
            call_at=loop.call_at,
        )
        settings = SpeakerSettings(
            asn=self.rib_settings.local_as,
            router_id=str(self.rib_settings.router_id),
            listen=("0.0.0.0",),
        )
        self.speaker = Speaker(settings, adapter, adapter)
        for ps, pp in self.peers:
            rib.add_peer(pp)
            self.speaker.add_peer(ps)
        loop.run_until_complete(self.speaker.start())

    def _max_prefix(self, handle: Any, limit: int) -> None:
        assert self.speaker is not None
        self.max_prefix_hits.append((handle.key, limit))
        peer = self.speaker.peer(handle.key)
        if peer is not None:
            peer.shutdown(
                f"maximum prefixes ({limit}) reached", CeaseSubcode.MAXIMUM_PREFIXES_REACHED
            )

    def state(self, address: str) -> str:
        def probe() -> str:
            assert self.speaker is not None
            p = self.speaker.peer(address)
            return "" if p is None else str(p.stats()["state"])

        return self.call(probe)

    def routes(self, **filters: Any) -> dict[str, dict[str, Any]]:
        """``show routes`` rows by prefix (best path, reason, every candidate)."""

        def get() -> dict[str, dict[str, Any]]:
            assert self.rib is not None
            return {r["prefix"]: r for r in routes(self.rib, **filters)}

        return self.call(get)

    def sent_updates(self, address: str, ctx: CodecContext | None = None) -> list[Update]:
        """Every UPDATE podbgp wrote to ``address`` so far, decoded, in order."""
        ctx = ctx or CodecContext(as4=True)
        blob = self.call(lambda: b"".join(self.sent.get(address, [])))
        out, i = [], 0
        while i < len(blob):
            n = int.from_bytes(blob[i + 16 : i + 18], "big")
            if blob[i + 18] == 2:
                out.append(decode_update(blob[i : i + n], ctx))
            i += n
        return out
