"""The BMP feed (RFC 7854): the speaker's session and route events as BMP messages for
every configured station (``[[bmp.station]]``).

``BmpFeed`` observes the speaker's route sink (``podbgp.sink.TimedSink`` calls
it after the RIB has taken each event), so it sees exactly what the RIB sees:

- ``peer_up``: a Peer Up (§4.10) with both OPENs (``Negotiated.sent_open`` /
  ``received_open``) and the session's addresses and ports;
- ``updates_received``: pre-policy Route Monitoring (§4.6), each UPDATE
  re-encoded with the session's own codec context (so its AS_PATH width and
  ADD-PATH form are the session's: the A flag says 2-octet ASNs); and
  post-policy Route Monitoring (L flag): for every prefix the UPDATEs touched,
  the path the RIB now holds from that peer after import policy, or a
  withdrawal when it holds none (rejected or withdrawn);
- ``end_of_rib``: the peer's End-of-RIB, passed on as Route Monitoring;
- ``peer_down``: a Peer Down (§4.9) with the reason and, when one was
  exchanged, the NOTIFICATION (rebuilt from its code, subcode and the data the
  session kept: the RFC 9003 communication or the Hard Reset's inner codes).

When a station connects (``BmpStation`` asks ``hello``) it gets Initiation
(§4.3), then per established session its Peer Up, its Adj-RIB-In and an
End-of-RIB per family (§5). The pre-policy Adj-RIB-In exists only for peers
with ``soft_reconfiguration``; for the others the initial dump is post-policy,
flagged L, since what they sent before policy was not kept. Statistics Reports
(§4.8) go every ``statistics_interval``: prefixes received but not accepted
(import policy, or a loop check) since the session came up, and the routes in
its post-policy Adj-RIB-In, in total and per family. The daemon's stop sends
Termination (§4.5).

Encoding happens once per event for all stations; a station that wants
neither pre- nor post-policy costs nothing per UPDATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bgp.errors import ErrorCode
from bgp.events import PeerHandle, SessionDown
from bgp.monitor.bmp import (
    PeerDownReason,
    PeerHeader,
    Stat,
    StatType,
    TerminationReason,
    encode_initiation,
    encode_peer_down,
    encode_peer_up,
    encode_route_monitoring,
    encode_statistics,
    encode_termination,
)
from bgp.negotiate import Negotiated
from bgp.speaker import Peer as BgpPeer
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.messages import Notification, encode_message, encode_open
from bgp.wire.prefix import split_path_id
from bgp.wire.update import (
    Update,
    encode_announce,
    encode_end_of_rib,
    encode_update,
    encode_withdraw,
)
from podbgp.bmp_station import BmpStation
from podbgp.config import BMPStation, RouteMonitoring
from rib import show
from rib.core import Rib

log = logging.getLogger("podbgp.monitor")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
CHUNK = 2000  # prefixes encoded between two yields while building a station's opening


@dataclass
class _Session:
    """What the feed keeps of one established session."""

    key: str
    address: Address
    asn: int
    bgp_id: ipaddress.IPv4Address
    ctx: CodecContext
    families: tuple[Family, ...]
    peer_up: bytes
    rejected: int = 0

    def header(self, post: bool, at: float) -> PeerHeader:
        return PeerHeader(self.address, self.asn, self.bgp_id, at, post_policy=post,
                          as2=not self.ctx.as4)  # fmt: skip


class _Target:
    """A configured station and its connection."""

    def __init__(self, cfg: BMPStation, conn: BmpStation) -> None:
        self.cfg = cfg
        self.conn = conn
        self.stats_task: asyncio.Task[None] | None = None


class BmpFeed:
    """Sink observer producing BMP for every station (see the module docstring)."""

    def __init__(
        self,
        rib: Rib,
        stations: Iterable[BMPStation],
        sys_name: str,
        sys_descr: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.rib = rib
        self.sys_name = sys_name
        self.sys_descr = sys_descr
        self.clock = wall_clock
        self.sessions: dict[str, _Session] = {}
        self.targets = [self._target(cfg) for cfg in stations]

    def _target(self, cfg: BMPStation) -> _Target:
        target: _Target

        async def hello() -> list[bytes]:
            return await self._opening(target.cfg.route_monitoring)

        conn = BmpStation(str(cfg.address), cfg.port, hello, cfg.queue_limit, cfg.reconnect_max)
        target = _Target(cfg, conn)
        return target

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        for t in self.targets:
            t.conn.start()
            if t.cfg.statistics_interval:
                t.stats_task = asyncio.ensure_future(self._statistics(t))

    async def stop(self) -> None:
        """Termination (§4.5) to each connected station, then close."""
        bye = encode_termination(TerminationReason.ADMIN_CLOSE, "podbgp stopping")
        tasks = [t.stats_task for t in self.targets if t.stats_task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(t.conn.stop(bye) for t in self.targets))

    def status(self) -> list[dict[str, Any]]:
        """One row per station for ``show`` and metrics."""
        return [
            {"station": t.conn.name, "route_monitoring": str(t.cfg.route_monitoring),
             **vars(t.conn.stats)}
            for t in self.targets
        ]  # fmt: skip

    def _send(self, msgs: list[bytes], want: Callable[[RouteMonitoring], bool]) -> None:
        if not msgs:
            return
        for t in self.targets:
            if t.conn.open and want(t.cfg.route_monitoring):
                t.conn.send_all(msgs)

    def _wanted(self, want: Callable[[RouteMonitoring], bool]) -> bool:
        return any(t.conn.open and want(t.cfg.route_monitoring) for t in self.targets)

    # -- sink events ----------------------------------------------------------------------
    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        s = _session(peer, negotiated, self.clock())
        if s is None:
            return
        self.sessions[s.key] = s
        self._send([s.peer_up], _always)

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        s = self.sessions.get(peer.key)
        if s is None:
            return
        at = self.clock()
        if self._wanted(_pre):
            head = s.header(False, at)
            msgs = [
                encode_route_monitoring(head, m) for u in updates for m in update_messages(u, s.ctx)
            ]
            self._send(msgs, _pre)
        post = self._wanted(_post)
        msgs = self._post_policy(s, updates, at, post)
        if post:
            self._send(msgs, _post)

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        s = self.sessions.get(peer.key)
        if s is None:
            return
        at = self.clock()
        eor = encode_end_of_rib(family)
        self._send([encode_route_monitoring(s.header(False, at), eor)], _pre)
        self._send([encode_route_monitoring(s.header(True, at), eor)], _post)

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        s = self.sessions.pop(peer.key, None)
        if s is None:
            return
        why, note = _down_reason(reason)
        self._send([encode_peer_down(s.header(False, self.clock()), why, note)], _always)

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        """Nothing to report: a refresh changes what is sent, not what is received."""

    # -- post-policy ----------------------------------------------------------------------
    def _post_policy(
        self, s: _Session, updates: list[Update], at: float, encode: bool
    ) -> list[bytes]:
        """What the RIB now holds from ``s`` for every NLRI the UPDATEs touched; counts
        the announced ones it holds nothing for (not accepted)."""
        head = s.header(True, at)
        out: list[bytes] = []
        for family in s.families:
            add_path = s.ctx.add_path_rx(family)
            reach = [n for u in updates for n in u.reach.get(family, ())]
            touched = dict.fromkeys(
                [*reach, *(n for u in updates for n in u.unreach.get(family, ()))]
            )
            held: dict[PathAttributes, list[bytes]] = {}
            gone: list[bytes] = []
            for nlri in touched:
                pid, key = split_path_id(nlri) if add_path else (0, nlri)
                p = show.peer_path(self.rib, family, key, s.key, pid)
                if p is None:
                    gone.append(nlri)
                else:
                    held.setdefault(p.attrs, []).append(nlri)
            gone_set = set(gone)
            s.rejected += sum(1 for n in reach if n in gone_set)
            if encode:
                out += _rm(head, _announce(held, family, s.ctx))
                out += _rm(head, encode_withdraw(family, gone, s.ctx) if gone else [])
        return out

    # -- a station's opening (§5) -------------------------------------------------------
    async def _opening(self, mode: RouteMonitoring) -> list[bytes]:
        out = [encode_initiation(self.sys_name, self.sys_descr)]
        for s in list(self.sessions.values()):
            out.append(s.peer_up)
            if mode.pre:
                # Not kept before policy: the post-policy table stands in, flagged L,
                # unless the station gets that one anyway.
                out += await self._table(s, pre=True, fallback=not mode.post)
            if mode.post:
                out += await self._table(s, pre=False, fallback=False)
        return out

    async def _table(self, s: _Session, pre: bool, fallback: bool) -> list[bytes]:
        """The session's Adj-RIB-In as Route Monitoring, then End-of-RIB per family."""
        at = self.clock()
        out: list[bytes] = []
        for family in s.families:
            try:
                rows = show.adj_rib_in(self.rib, s.key, family, pre_policy=pre)
                post = not pre
                if rows is None and fallback:
                    rows, post = show.adj_rib_in(self.rib, s.key, family, pre_policy=False), True
            except KeyError:  # the RIB no longer knows the peer
                return out
            if rows is None:
                continue
            head = s.header(post, at)
            for i in range(0, len(rows), CHUNK):
                by: dict[PathAttributes, list[bytes]] = {}
                for nlri, attrs in rows[i : i + CHUNK]:
                    by.setdefault(attrs, []).append(nlri)
                out += _rm(head, _announce(by, family, s.ctx))
                await asyncio.sleep(0)
            out += _rm(head, [encode_end_of_rib(family)])
        return out

    # -- statistics (§4.8) --------------------------------------------------------------------
    async def _statistics(self, t: _Target) -> None:
        while True:
            await asyncio.sleep(t.cfg.statistics_interval)
            if t.conn.open:
                t.conn.send_all(self.statistics())

    def statistics(self) -> list[bytes]:
        at = self.clock()
        out = []
        for s in self.sessions.values():
            counts = show.peer_routes(self.rib, s.key)
            stats = [Stat(StatType.REJECTED_BY_POLICY, s.rejected)]
            if counts is not None:
                stats.append(Stat(StatType.ADJ_RIB_IN, counts.total("received")))
                for fam in s.families:
                    n = counts.received.get("ipv4" if fam is Family.IPV4_UNICAST else "ipv6", 0)
                    stats.append(Stat(StatType.ADJ_RIB_IN_FAMILY, n, fam))
            out.append(encode_statistics(s.header(False, at), stats))
        return out


def sys_descr() -> str:
    """The Initiation's default sysDescr: ``podbgp VERSION``."""
    from importlib.metadata import PackageNotFoundError, version  # heavy: only with BMP

    try:
        return f"podbgp {version('podbgp')}"
    except PackageNotFoundError:
        return "podbgp"


def _always(mode: RouteMonitoring) -> bool:
    return True


def _pre(mode: RouteMonitoring) -> bool:
    return mode.pre


def _post(mode: RouteMonitoring) -> bool:
    return mode.post


def _rm(head: PeerHeader, updates: Iterable[bytes]) -> list[bytes]:
    return [encode_route_monitoring(head, u) for u in updates]


def _announce(
    by: dict[PathAttributes, list[bytes]], family: Family, ctx: CodecContext
) -> list[bytes]:
    out: list[bytes] = []
    for attrs, nlri in by.items():
        try:
            out += encode_announce(attrs, family, nlri, ctx)
        except ValueError as exc:  # no next hop for the family: nothing a station can read
            log.debug("BMP: %d %s routes not encodable: %s", len(nlri), family.name, exc)
    return out


def update_messages(u: Update, ctx: CodecContext) -> list[bytes]:
    """``u`` as UPDATE messages: one, or several when it does not fit in one (merged
    withdrawals, ``bgp.events``), split by family."""
    try:
        return [encode_update(u, ctx)]
    except ValueError:
        out = [m for f, n in u.unreach.items() if n for m in encode_withdraw(f, n, ctx)]
        if u.attrs is not None:
            out += [m for f, n in u.reach.items() if n for m in _announce({u.attrs: n}, f, ctx)]
        return out


def _session(peer: PeerHandle, neg: Negotiated, at: float) -> _Session | None:
    """The session's identity and its Peer Up message (§4.10)."""
    if neg.sent_open is None or neg.received_open is None:
        return None
    address = ipaddress.ip_address(peer.key)
    local, lport, rport = _endpoints(peer)
    s = _Session(
        peer.key, address, neg.peer_as, neg.peer_router_id, neg.ctx,
        tuple(sorted(neg.families)), b"",
    )  # fmt: skip
    s.peer_up = encode_peer_up(
        s.header(False, at), local, lport, rport,
        encode_open(neg.sent_open), encode_open(neg.received_open),
    )  # fmt: skip
    return s


def _endpoints(peer: PeerHandle) -> tuple[Address | None, int, int]:
    """(our address, our port, the peer's port) of the established connection."""
    local = peer.local_address
    if not isinstance(peer, BgpPeer) or peer.established is None:
        return local, 0, 0
    ours, theirs = peer.established.sockname, peer.established.peername
    return local, ours[1] if ours else 0, theirs[1] if theirs else 0


def _down_reason(ev: SessionDown) -> tuple[PeerDownReason, bytes]:
    """Peer Down's reason (§4.9) and the NOTIFICATION when one was exchanged."""
    if ev.sent is None:
        # No NOTIFICATION: our own stop (restart, operator) or the peer closed TCP.
        if ev.operator:
            return PeerDownReason.LOCAL_NO_NOTIFICATION, b""
        return PeerDownReason.REMOTE_NO_NOTIFICATION, b""
    data = b""
    if ev.inner is not None:
        data = bytes(ev.inner)  # RFC 8538 §3: the Hard Reset carries the inner code
    elif ev.message and ev.code == ErrorCode.CEASE:
        with contextlib.suppress(ValueError):
            data = Notification.shutdown(ev.message, ev.subcode).data
    note = encode_message(Notification(ev.code, ev.subcode, data), CodecContext())
    why = PeerDownReason.LOCAL_NOTIFICATION if ev.sent else PeerDownReason.REMOTE_NOTIFICATION
    return why, note
