"""`podbgp drain` / `podbgp undrain`: taking a node out of service without losing traffic.

RFC 8326 (graceful BGP session shutdown) as one command. A drain goes through
these steps, and `podbgp show node` reports the node's `NodeState`:

1. **draining** — every route the node announces is sent again to every peer,
   tagged with GRACEFUL_SHUTDOWN (65535:0) and, towards iBGP, LOCAL_PREF 0
   (`rib.export.ExportMode.GRACEFUL_SHUTDOWN`). A receiver that follows RFC 8326
   §4.1 (FRR does on eBGP sessions, podbgp on every session,
   `bgp.honor_graceful_shutdown`) gives such routes LOCAL_PREF 0 and picks
   another path where it has one.
2. **waiting** until the peers have moved, or `timeout` seconds. What is
   waited for, exactly: for every Established peer, each prefix this node
   originates and announces to that peer (its blocks, borrowed /32s,
   `[[bgp.originate]]`) must have been *announced back to us by that peer*
   after the drain began. A BGP speaker announces only its best path, and never
   to the neighbour it learned that path from, so such an announcement means
   the peer's best path for the prefix no longer goes through this node. A
   peer with no other path keeps ours (at LOCAL_PREF 0) and never announces
   one: then the timeout ends the wait. Once every peer has moved, the drain
   waits `SETTLE` seconds more, since a router may announce a new best path
   before its own kernel has the route (FRR's bgpd does not wait for zebra).
3. the node withdraws everything from every peer
   (`ExportMode.WITHDRAW_ALL`) and, once those UPDATEs are handed to the
   sessions, stops every session with Cease / Administrative Shutdown
   (RFC 4486, with the RFC 9003 message "podbgp drain"). Withdrawing first
   means no peer keeps our routes as stale, whatever graceful-restart
   behaviour it has.
4. **drained** — the sessions stay down (peers added meanwhile are not
   started, a maximum-prefix restart does not re-enable one) until
   `podbgp undrain`, which re-enables them with every route untagged. With
   `stop`, the daemon exits instead.

`DrainWatch` is the sans-IO part (which prefixes each peer still has to move
away from); `Drainer` runs the steps on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bgp.errors import CeaseSubcode
from bgp.wire.constants import Family
from rib.core import Rib
from rib.export import ExportMode

log = logging.getLogger("podbgp.drain")

DEFAULT_TIMEOUT = 60.0  # `podbgp drain --timeout`
TIMEOUT_MAX = 3600.0
SETTLE = 1.0  # seconds after every peer moved: its kernel follows its BGP best path
FLUSH_LIMIT = 5.0  # longest wait for the withdrawals to reach the sessions
MESSAGE = "podbgp drain"  # RFC 9003 shutdown communication


class NodeState(StrEnum):
    """What `podbgp show node` calls the node's state."""

    RUNNING = "running"
    DRAINING = "draining"
    DRAINED = "drained"


class DrainError(Exception):
    """A drain or undrain that cannot run now; the message says why."""


@dataclass
class DrainWatch:
    """Per peer, the (family, prefix) pairs it has not announced back to us yet."""

    expected: dict[str, set[tuple[Family, bytes]]]
    moved: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, announced: dict[str, dict[Family, list[bytes]]]) -> DrainWatch:
        """A watch over what each peer is told now (``Rib.originated_to`` per peer)."""
        expected = {
            peer: {(fam, k) for fam, keys in fams.items() for k in keys}
            for peer, fams in announced.items()
        }
        return cls(expected, {peer: not want for peer, want in expected.items()})

    def received(self, peer: str, updates: Iterable[Any]) -> None:
        """UPDATEs (``bgp.wire.Update``) from ``peer``: every announced prefix counts."""
        want = self.expected.get(peer)
        if not want:
            return
        for u in updates:
            for fam, keys in u.reach.items():
                if fam in u.add_path:  # RFC 7911 §3: a 4-octet path id leads each NLRI
                    want.difference_update((fam, k[4:]) for k in keys)
                else:
                    want.difference_update((fam, k) for k in keys)
        if not want:
            self.moved[peer] = True

    def forget(self, peer: str) -> None:
        """The peer's session ended: nothing to wait for from it."""
        self.expected.pop(peer, None)
        self.moved.pop(peer, None)

    @property
    def done(self) -> bool:
        return all(self.moved.values())

    def pending(self) -> dict[str, int]:
        """Prefixes still awaited, per peer that has not moved."""
        return {peer: len(want) for peer, want in self.expected.items() if want}


class Drainer:
    """Runs `drain` / `undrain` for one node (see the module docstring).

    ``peers()`` gives the speaker's peers by key (objects with ``shutdown``,
    ``enable`` and ``established``), ``on_stop`` ends the daemon (``drain(stop=True)``).
    """

    def __init__(
        self,
        rib: Rib,
        peers: Callable[[], dict[str, Any]],
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.rib = rib
        self.peers = peers
        self.on_stop = on_stop
        self.state = NodeState.RUNNING
        self.watch: DrainWatch | None = None
        self.report: dict[str, Any] | None = None
        self.held: set[str] = set()  # peers kept down until undrain
        self._task: asyncio.Task[dict[str, Any]] | None = None
        self._moved = asyncio.Event()

    # -- hooks from the node --------------------------------------------------------------
    def received(self, peer: str, updates: Iterable[Any]) -> None:
        """Every batch of UPDATEs the RIB takes in, while a drain waits."""
        w = self.watch
        if w is not None:
            w.received(peer, updates)
            if w.done:
                self._moved.set()

    def hold(self, key: str) -> bool:
        """A peer is being added (or re-enabled after a max-prefix shutdown): True when
        it must stay down because the node is drained."""
        if self.state is NodeState.DRAINED:
            self.held.add(key)
            return True
        return False

    def release(self, key: str) -> None:
        """The operator enabled the peer by hand (`podbgp peer enable`)."""
        self.held.discard(key)

    # -- commands -------------------------------------------------------------------------
    async def drain(self, timeout: float, stop: bool = False) -> dict[str, Any]:
        """Run the drain (steps 1-4); returns the report `show node` keeps."""
        if self.state is not NodeState.RUNNING:
            raise DrainError(f"the node is {self.state}; `podbgp undrain` first")
        self.state = NodeState.DRAINING
        # Shielded: a client that goes away does not stop the drain half-way.
        task = self._task = asyncio.ensure_future(self._drain(timeout, stop))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # `undrain` ended it, not our caller's cancellation
                raise DrainError("the drain was cancelled by `podbgp undrain`") from None
            raise

    async def undrain(self) -> dict[str, Any]:
        """Back to service: routes untagged, the sessions the drain stopped start again."""
        if self.state is NodeState.RUNNING:
            raise DrainError("the node is not drained")
        task, self._task = self._task, None
        if task is not None and not task.done():  # still draining: stop where it is
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.watch = None
        self.rib.set_export_mode(ExportMode.NORMAL)
        peers = self.peers()
        enabled = sorted(k for k in self.held if k in peers)
        for key in enabled:
            peers[key].enable()
        self.held.clear()
        self.state = NodeState.RUNNING
        log.info("undrained: routes announced untagged, %d sessions enabled", len(enabled))
        return {"state": str(self.state), "enabled": enabled}

    # -- the steps ------------------------------------------------------------------------
    async def _drain(self, timeout: float, stop: bool) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        up = [k for k, p in self.peers().items() if p.established is not None]
        self.watch = w = DrainWatch.of({k: self.rib.originated_to(k) for k in up})
        self._moved.clear()
        log.info("draining: routes tagged GRACEFUL_SHUTDOWN to %d peers", len(up))
        self.rib.set_export_mode(ExportMode.GRACEFUL_SHUTDOWN)
        moved = await self._wait_moved(w, start + timeout)
        if moved:
            await asyncio.sleep(max(0.0, min(SETTLE, start + timeout - loop.time())))
        waited = loop.time() - start
        self.watch = None
        self.rib.set_export_mode(ExportMode.WITHDRAW_ALL)
        await self._flush(loop.time() + FLUSH_LIMIT)
        stopped = self._stop_sessions()
        self.state = NodeState.DRAINED
        self.report = {
            "state": str(self.state),
            "timeout": timeout,
            "waited_seconds": round(waited, 3),
            "peers_moved": moved,
            "moved": dict(w.moved),
            "pending": w.pending(),
            "sessions_stopped": stopped,
        }
        log.info("drained after %.1fs (%s)", waited, "peers moved" if moved else "timeout")
        if stop and self.on_stop is not None:
            self.on_stop()
        return self.report

    async def _wait_moved(self, w: DrainWatch, deadline: float) -> bool:
        """Until every peer moved (an event from `received`) or the deadline; peers
        whose session ends meanwhile are not waited for (checked twice a second)."""
        loop = asyncio.get_running_loop()
        while not w.done:
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._moved.wait(), min(left, 0.5))
            peers = self.peers()
            for key in list(w.expected):
                if key not in peers or peers[key].established is None:
                    w.forget(key)
        return True

    async def _flush(self, deadline: float) -> None:
        """Until the withdrawals have been handed to every session (bounded)."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            busy = [k for k, p in self.peers().items()
                    if p.established is not None and not self.rib.caught_up(k)]  # fmt: skip
            if not busy:
                return
            await asyncio.sleep(0.05)
        log.warning("drain: withdrawals still queued when the sessions were stopped")

    def _stop_sessions(self) -> list[str]:
        stopped = []
        for key, peer in self.peers().items():
            if peer.enabled:
                peer.shutdown(MESSAGE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
                stopped.append(key)
            self.held.add(key)
        return sorted(stopped)
