"""MRT update dumps (RFC 6396 §4.4.3 BGP4MP_MESSAGE_AS4; RFC 8050 §3 for ADD-PATH):
every UPDATE received, one file per ``[mrt] update_dump_interval``.

``UpdateDumps`` observes the speaker's route sink like the BMP feed (the
``observers`` of ``podbgp.sink.TimedSink``) and writes each UPDATE (and
End-of-RIB) of an established session as one BGP4MP record: both ASes, both
addresses, the message re-encoded with the session's own codec context
(``podbgp.bmp.update_messages``), so its AS_PATH width and ADD-PATH form are the
session's; the ``_ADDPATH`` subtype marks a session that receives path
identifiers. The current interval's file is written under a temporary name
beside its final one and renamed when the interval ends, so a finished file is
never seen half-written; the newest ``keep`` finished files stay.

Appends are buffered writes on the event loop (each record is a few hundred
octets); the file is flushed and renamed once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bgp.events import PeerHandle, SessionDown
from bgp.monitor.mrt import encode_bgp4mp_message
from bgp.negotiate import Negotiated
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.update import Update, encode_end_of_rib
from podbgp.bmp import update_messages
from podbgp.mrt import rotate

log = logging.getLogger("podbgp.monitor")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class _Session:
    peer_as: int
    peer: Address
    local: Address
    ctx: CodecContext
    add_path: bool


class UpdateDumps:
    """Sink observer writing BGP4MP records (see the module docstring)."""

    def __init__(
        self, local_as: int, directory: str, interval: float, pattern: str, keep: int
    ) -> None:
        self.local_as = local_as
        self.directory = Path(directory)
        self.interval = interval
        self.pattern = pattern
        self.keep = keep
        self.sessions: dict[str, _Session] = {}
        self.records = 0
        self._file: IO[bytes] | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None

    # -- sink events ----------------------------------------------------------------------
    def peer_up(self, peer: PeerHandle, negotiated: Negotiated) -> None:
        address = ipaddress.ip_address(peer.key)
        local = peer.local_address
        if local is None or local.version != address.version:
            return  # BGP4MP names both ends in one family (RFC 6396 §4.4)
        add_path = bool(negotiated.add_path_rx)
        self.sessions[peer.key] = _Session(negotiated.peer_as, address, local, negotiated.ctx,
                                           add_path)  # fmt: skip

    def updates_received(self, peer: PeerHandle, updates: list[Update]) -> None:
        s = self.sessions.get(peer.key)
        if s is not None:
            self._write(s, [m for u in updates for m in update_messages(u, s.ctx)])

    def end_of_rib(self, peer: PeerHandle, family: Family) -> None:
        s = self.sessions.get(peer.key)
        if s is not None:
            self._write(s, [encode_end_of_rib(family)])

    def peer_down(self, peer: PeerHandle, reason: SessionDown) -> None:
        self.sessions.pop(peer.key, None)

    def route_refresh(self, peer: PeerHandle, family: Family, subtype: int) -> None:
        """Not a received UPDATE: nothing to record."""

    # -- files ----------------------------------------------------------------------------
    def _write(self, s: _Session, messages: list[bytes]) -> None:
        f = self._open()
        if f is None:
            return
        now = int(time.time())
        for m in messages:
            f.write(encode_bgp4mp_message(now, s.peer_as, self.local_as, s.peer, s.local, m,
                                          add_path=s.add_path))  # fmt: skip
            self.records += 1

    def _open(self) -> IO[bytes] | None:
        if self._file is not None:
            return self._file
        self._final = self.directory / time.strftime(self.pattern, time.gmtime())
        self._tmp = self._final.with_name(f".{self._final.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self._tmp, "wb")  # noqa: SIM115 (closed by _finish)
        except OSError as exc:
            log.error("MRT update dump %s: %s", self._tmp, exc)
            self._file = None
        return self._file

    def _finish(self) -> None:
        """Close the interval's file and give it its final name."""
        f, self._file = self._file, None
        if f is None or self._tmp is None or self._final is None:
            return
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(self._tmp, self._final)
        except OSError as exc:
            log.error("MRT update dump %s: %s", self._final, exc)
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            return
        rotate(self.directory, self.pattern, self.keep)

    async def run(self) -> None:
        """Close each interval's file at the interval's end; the last one at stop."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                self._finish()
        finally:
            self._finish()
