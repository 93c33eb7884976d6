"""A tiny route sink and pull-source for driving speakers without a RIB."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bgp.events import PeerHandle, SessionDown
from bgp.negotiate import Negotiated
from bgp.settings import PeerSettings, SpeakerSettings
from bgp.speaker import Speaker
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.prefix import Prefix
from bgp.wire.update import Update, encode_announce, encode_end_of_rib

V4, V6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST


@dataclass
class Sink:
    """Records what a speaker hands to its RIB."""

    ups: list[tuple[str, Negotiated]] = field(default_factory=list)
    downs: list[tuple[str, SessionDown]] = field(default_factory=list)
    batches: list[tuple[str, list[Update]]] = field(default_factory=list)
    eors: list[tuple[str, Family]] = field(default_factory=list)
    refreshes: list[tuple[str, Family, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _poke(self) -> None:
        self.changed.set()

    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        self.ups.append((peer.key, negotiated))
        self._poke()

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        self.batches.append((peer.key, updates))
        self._poke()

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        self.eors.append((peer.key, family))
        self._poke()

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        self.refreshes.append((peer.key, family, subtype))
        self._poke()

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        self.downs.append((peer.key, reason))
        self._poke()

    def updates(self) -> list[Update]:
        return [u for _, batch in self.batches for u in batch]

    def announced(self) -> dict[str, PathAttributes | None]:
        return {str(p): u.attrs for u in self.updates() for p in u.announced}


class Source:
    """Pre-encoded UPDATE messages handed out when the session pulls."""

    def __init__(self, messages: list[bytes] | None = None) -> None:
        self.queue: list[bytes] = list(messages or [])
        self.pulled = 0
        self.endless: Callable[[], bytes] | None = None

    def pull(self, max_bytes: int) -> bytes:
        out: list[bytes] = []
        size = 0
        while size < max_bytes:
            if not self.queue:
                if self.endless is None:
                    break
                self.queue.append(self.endless())
            msg = self.queue.pop(0)
            out.append(msg)
            size += len(msg)
        self.pulled += size
        return b"".join(out)


@dataclass
class Node:
    speaker: Speaker
    sink: Sink
    sources: dict[str, Source]
    initial: list[bytes]

    async def wait(self, cond: Callable[[], Any], timeout: float = 10.0) -> None:
        """Wait until ``cond()`` holds, woken by the sink or a short poll."""

        async def loop() -> None:
            while not cond():
                self.sink.changed.clear()
                try:
                    await asyncio.wait_for(self.sink.changed.wait(), 0.05)
                except TimeoutError:
                    pass

        await asyncio.wait_for(loop(), timeout)


async def make_node(
    asn: int,
    router_id: str,
    listen: str,
    port: int = 0,
    initial: list[bytes] | None = None,
    **kw: Any,
) -> Node:
    sink = Sink()
    sources: dict[str, Source] = {}
    init = list(initial or [])

    def factory(peer: PeerHandle, negotiated: Negotiated) -> Source:
        src = sources[peer.key] = Source(
            init + [encode_end_of_rib(f) for f in sorted(negotiated.families)]
        )
        return src

    sp = Speaker(
        SpeakerSettings(asn=asn, router_id=router_id, listen=(listen,), port=port, **kw),
        sink,
        factory,
    )
    await sp.start()
    return Node(sp, sink, sources, init)


def peer(address: str, asn: int, port: int, local: str, **kw: Any) -> PeerSettings:
    kw.setdefault("hold_time", 9)
    kw.setdefault("connect_retry", 0.3)
    return PeerSettings(address=address, asn=asn, port=port, local_address=local, **kw)


def announce(
    prefix: str, asn_path: tuple[int, ...], next_hop: str, ctx_as4: bool = True, **attrs: Any
) -> list[bytes]:
    """UPDATE bytes for one prefix with the given attributes (4-octet AS session)."""
    from bgp.wire.context import CodecContext

    p = Prefix.from_str(prefix)
    fam = V4 if ":" not in prefix else V6
    nh = ipaddress.ip_address(next_hop)
    base = PathAttributes(origin=0, as_path=((2, asn_path),), **attrs)
    pa = base.replace(next_hop=nh) if fam is V4 else base.replace(mp_next_hop=(nh,))
    return encode_announce(pa, fam, [p.nlri()], CodecContext(as4=ctx_as4))
