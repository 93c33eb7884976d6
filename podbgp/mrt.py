"""MRT table dumps of the RIB (RFC 6396 TABLE_DUMP_V2), on demand and periodically.

``write_table_dump`` snapshots the Loc-RIB (every candidate path of every
prefix: the post-policy Adj-RIBs-In of all peers and what this node
originates, ``rib.show.loc_rib``; or one peer's paths) and writes it with
``bgp.monitor.mrt``: one PEER_INDEX_TABLE naming each source once, then a
RIB record per prefix. Prefixes whose paths come from a session that
receives ADD-PATH use the RFC 8050 ``*_ADDPATH`` subtypes, so the path
identifiers survive. Locally originated routes appear under a peer entry with
this node's router id, AS and the unspecified address.

Files are written whole or not at all: into a temporary file beside the
target, flushed to disk, then renamed over it. The records are encoded in
chunks with a yield to the event loop between them, so a big table never
holds up the BGP sessions (DESIGN.md rule 8); the snapshot is taken first
and its paths are immutable, so the dump is of one instant.

``PeriodicDumps`` writes one every ``[mrt] table_dump_interval`` seconds into
``[mrt] directory``, named by ``file_pattern`` (strftime, UTC), keeping the
newest ``keep`` files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from bgp.monitor.mrt import MrtPeer, RibEntry, encode_peer_index_table, encode_rib
from bgp.wire.constants import Family
from podbgp import api
from rib import show
from rib.core import Rib
from rib.path import Path as RibPath
from rib.path import Source

log = logging.getLogger("podbgp.monitor")

CHUNK = 2000  # prefixes encoded between two yields to the event loop
_ANY4 = IPv4Address(0)


@dataclass(frozen=True, slots=True)
class DumpResult:
    """What a dump wrote (the control API's answer)."""

    file: str
    peers: int
    prefixes: int
    entries: int
    bytes: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Identity:
    """This node as the dump's collector and as the source of its own routes."""

    router_id: IPv4Address
    asn: int
    view_name: str = "podbgp"


class _Peers:
    """The PEER_INDEX_TABLE being built: each source's index, in order of first use."""

    def __init__(self, me: Identity) -> None:
        self.me = me
        self.index: dict[str, int] = {}
        self.entries: list[MrtPeer] = []

    def of(self, src: Source) -> int:
        i = self.index.get(src.key)
        if i is None:
            i = self.index[src.key] = len(self.entries)
            self.entries.append(self._entry(src))
        return i

    def _entry(self, src: Source) -> MrtPeer:
        if src.local:
            return MrtPeer(self.me.router_id, _ANY4, self.me.asn)
        return MrtPeer(IPv4Address(src.bgp_id), src.address or _ANY4, src.asn)


def _snapshot(
    rib: Rib, peer: str | None
) -> list[tuple[Family, frozenset[str], list[tuple[bytes, tuple[RibPath, ...]]]]]:
    return [(f, show.add_path_peers(rib, f), show.loc_rib(rib, f, peer)) for f in Family]


def _record(
    family: Family,
    key: bytes,
    paths: tuple[RibPath, ...],
    add_path: frozenset[str],
    peers: _Peers,
    seq: int,
    at: tuple[int, float],
) -> bytes:
    """One RIB record; ``at`` is (the dump's timestamp, wall clock minus RIB clock)."""
    ts, offset = at
    ap = any(p.source.key in add_path for p in paths)
    entries = [
        RibEntry(
            peers.of(p.source),
            int(p.since + offset) if p.since else ts,
            p.attrs,
            p.slot.path_id if ap else None,
        )
        for p in paths
    ]
    return encode_rib(ts, seq, family, key, entries, add_path=ap)


async def write_table_dump(
    rib: Rib,
    target: str | Path,
    me: Identity,
    *,
    peer: str | None = None,
    rib_clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> DumpResult:
    """Write the TABLE_DUMP_V2 of ``rib`` (or of ``peer``'s paths) to ``target`` atomically.

    ``rib_clock`` is the clock the RIB stamps paths with (``Path.since``)."""
    t0 = time.perf_counter()
    target = Path(target)
    snap = _snapshot(rib, peer)
    now = wall_clock()
    at = (int(now), now - rib_clock())
    peers = _Peers(me)
    body: list[bytes] = []
    seq = prefixes = entries = 0
    for family, add_path, rows in snap:
        for i, (key, paths) in enumerate(rows):
            body.append(_record(family, key, paths, add_path, peers, seq, at))
            seq += 1
            prefixes += 1
            entries += len(paths)
            if i % CHUNK == CHUNK - 1:
                await asyncio.sleep(0)
    head = encode_peer_index_table(at[0], me.router_id, me.view_name, peers.entries)
    size = await asyncio.to_thread(write_atomic, target, [head, *body])
    return DumpResult(
        str(target), len(peers.entries), prefixes, entries, size, time.perf_counter() - t0
    )


def write_atomic(target: Path, chunks: list[bytes]) -> int:
    """Write ``chunks`` to a temporary file beside ``target``, sync it, rename it over
    ``target``: a reader sees the old file or the whole new one, never a part."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    size = 0
    try:
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
                size += len(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return size


async def dump_request(
    rib: Rib, me: Identity, args: dict[str, object], rib_clock: Callable[[], float]
) -> dict[str, object]:
    """The control API's ``mrt.dump``: ``file`` (an absolute path), optional ``peer``."""
    target = api.arg_str(args, "file")
    if not target or not os.path.isabs(target):
        raise api.InvalidArgument("file: an absolute path is required")
    peer = api.arg_address(args, "peer") if args.get("peer") else None
    if peer is not None and peer not in rib.peers:
        raise api.InvalidArgument(f"peer: {peer} is not a peer of this node")
    try:
        result = await write_table_dump(rib, target, me, peer=peer, rib_clock=rib_clock)
    except OSError as exc:
        raise api.APIError(f"cannot write {target}: {exc.strerror or exc}") from None
    log.info("MRT table dump: %d prefixes, %d paths from %d peers to %s",
             result.prefixes, result.entries, result.peers, target)  # fmt: skip
    return result.as_dict()


class PeriodicDumps:
    """A table dump every ``interval`` seconds into ``directory`` (``[mrt]``), the newest
    ``keep`` files kept. A failed dump is logged and the next one tried on time."""

    def __init__(
        self,
        rib: Callable[[], Rib | None],
        me: Identity,
        directory: str,
        interval: float,
        pattern: str,
        keep: int,
        rib_clock: Callable[[], float],
    ) -> None:
        self.rib = rib
        self.me = me
        self.directory = Path(directory)
        self.interval = interval
        self.pattern = pattern
        self.keep = keep
        self.rib_clock = rib_clock
        self.last: DumpResult | None = None
        self.failures = 0

    async def run(self) -> None:
        """Dump, then sleep until the next multiple of the interval after the start."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * self.interval - loop.time()))
            await self.dump_once()

    async def dump_once(self) -> DumpResult | None:
        rib = self.rib()
        if rib is None:
            return None
        name = time.strftime(self.pattern, time.gmtime())
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            result = await write_table_dump(
                rib, self.directory / name, self.me, rib_clock=self.rib_clock
            )
        except OSError as exc:
            self.failures += 1
            log.error("MRT table dump to %s failed: %s", self.directory / name, exc)
            return None
        self.last = result
        log.info("MRT table dump: %d prefixes, %d paths to %s",
                 result.prefixes, result.entries, result.file)  # fmt: skip
        self._rotate()
        return result

    def _rotate(self) -> None:
        rotate(self.directory, self.pattern, self.keep)


def rotate(directory: Path, pattern: str, keep: int) -> None:
    """Keep the newest ``keep`` files of ``directory`` whose names ``pattern`` (strftime)
    could have made; 0 keeps every one. Temporary files (a leading dot) are not counted."""
    if keep <= 0:
        return
    shape = re.compile(re.sub(r"%[a-zA-Z]", ".+", re.escape(pattern)))
    files = sorted(
        (p for p in directory.iterdir()
         if p.is_file() and not p.name.startswith(".") and shape.fullmatch(p.name)),
        key=lambda p: p.stat().st_mtime,
    )  # fmt: skip
    for old in files[:-keep]:
        with contextlib.suppress(OSError):
            old.unlink()
