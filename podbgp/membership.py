"""The daemon's side of the node lifecycle (`ipam.lifecycle`) and of leak reclaim (`ipam.leaks`).

* `Membership.hold` / `keep`: this node's lease, granted at start-up (after
  the registry record is written) and renewed for as long as the daemon runs.
  Never revoked on the way out: a stop is a restart until the lease and the
  grace say otherwise.
* `Membership.nodes`: the registry records of the nodes that are not gone,
  after every change and whenever a lapsed node crosses a threshold; what the
  daemon builds its mesh, VXLAN neighbour/FDB entries and (without BGP)
  remote routes from. On the way it notes lapses (one CAS per lapse, the
  first observer wins), logs each node going and coming back once, and, on
  the reaper node, removes nodes lapsed for longer than ``node_gone_after``.
* `Membership.housekeeping`: every ``ipam.leak_check_interval`` seconds, this
  node's pods whose network namespace is gone are released
  (`ipam.leaks.LeakTracker`); the reaper also finishes removals left half
  done and repairs handles with no address (`ipam.consistency`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from ipam import Ipam, IpamError, Node
from ipam.consistency import repair_orphans
from ipam.leaks import LeakTracker, netns_alive, reclaim_leaks
from ipam.lifecycle import Lifecycle, Liveness, Member, Phase, present, reap, reaper
from ipam.rejoin import Restored, restore_pods
from ipam.store import Store, StoreError, StoreIdentityError
from podbgp import wiring
from podbgp.config import Config

log = logging.getLogger("podbgp.ipam")

# Keys a reload applies live through `Membership.reconfigure`.
LIFECYCLE_KEYS = frozenset({"ipam.node_lease_ttl", "ipam.node_gone_grace", "ipam.node_gone_after",
                            "ipam.node_forget_after", "ipam.leak_grace",
                            "ipam.leak_check_interval"})  # fmt: skip


BACK_ATTEMPTS = 5  # a second apart: the store answered the hold just before


class Membership:
    """One daemon's lease, view of the cluster's nodes, and IPAM housekeeping."""

    def __init__(
        self, store: Store, ipam: Ipam, config: Config, clock: Callable[[], float] = time.time,
        back: Callable[[], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        self.lifecycle = Lifecycle(store, clock)
        # the daemon's part of coming back after a lapse (its registry record, `Daemon._back`)
        self.back = back
        self.ipam = ipam
        self.name = config.node.name
        self.ttl = config.ipam.node_lease_ttl
        self.timing = wiring.lifecycle_timing(config)
        self.leak_interval = float(config.ipam.leak_check_interval)
        self.leaks = LeakTracker(float(config.ipam.leak_grace))
        self.leaks_released = 0  # a metric: pod addresses released as leaked
        self.clock = clock
        self.live: Liveness | None = None
        self._ttl_changed = asyncio.Event()
        self.members: dict[str, Member] = {}
        self._gone: set[str] = set()
        self.nodes_removed = 0
        self.restored = Restored()  # what the last return after a removal took back
        self._rejoining: asyncio.Future[None] | None = None

    async def hold(self) -> None:
        self.live = await self.lifecycle.hold(self.name, self.ttl)
        log.info("node %s: holding lease %x (ttl %d s)", self.name, self.live.lease, self.ttl)
        await self.rejoin()

    async def rejoin(self) -> None:
        """Removed while away? Take back the addresses of this node's pods that still run
        (`ipam.rejoin`). Store trouble leaves the record for the next hold."""
        try:
            self.restored = await restore_pods(self.lifecycle, self.ipam, self.name)
        except (StoreError, IpamError) as exc:
            if isinstance(exc, StoreIdentityError):
                raise
            log.error("node %s: taking back the addresses of pods still running here after "
                      "a removal: %s; trying again at the next lease", self.name, exc)  # fmt: skip

    async def _after_lapse(self) -> None:
        """The lease is held again after it ran out: the pods' addresses first (`rejoin`),
        then the daemon's part (`back`: if the node was removed meanwhile, its record)."""
        await self.rejoin()
        if self.back is None:
            return
        for attempt in range(BACK_ATTEMPTS):
            try:
                await self.back()
                return
            except (StoreError, IpamError, OSError) as exc:
                if isinstance(exc, StoreIdentityError):
                    raise
                if attempt + 1 == BACK_ATTEMPTS:
                    log.error("node %s: registering again after a lapse: %s; a restart of "
                              "the daemon registers it", self.name, exc)  # fmt: skip
                    return
                log.warning("node %s: registering again after a lapse: %s; trying again",
                            self.name, exc)  # fmt: skip
                await asyncio.sleep(1.0)

    async def keep(self) -> None:
        """Renew the lease for as long as the daemon runs; a new TTL (reload) holds a new one."""
        assert self.live is not None

        def renewed(live: Liveness) -> None:
            # a new lease after a lapse: a partition may have outlasted node_gone_after
            self.live = live
            self._rejoining = asyncio.ensure_future(self._after_lapse())

        while True:
            self._ttl_changed.clear()
            renewing = asyncio.ensure_future(self.lifecycle.keep(self.name, self.live, renewed))
            changed = asyncio.ensure_future(self._ttl_changed.wait())
            try:
                await asyncio.wait({renewing, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                renewing.cancel()
                changed.cancel()
            if renewing.done() and not renewing.cancelled():
                renewing.result()  # keep() only ends by raising
            while True:  # the new TTL: the key moves to a new lease without a gap
                try:
                    await self.hold()
                    break
                except StoreIdentityError:
                    raise
                except (StoreError, IpamError) as exc:
                    log.warning("node %s: holding a lease with the new TTL: %s", self.name, exc)
                    await asyncio.sleep(1.0)

    def reconfigure(self, config: Config, ipam: Ipam) -> None:
        """A reload (or new cluster resources): timers and IPAM apply at once, a lease TTL
        through a new lease (`keep`)."""
        self.ipam = ipam
        self.timing = wiring.lifecycle_timing(config)
        self.leak_interval = float(config.ipam.leak_check_interval)
        self.leaks.grace = float(config.ipam.leak_grace)
        if config.ipam.node_lease_ttl != self.ttl:
            self.ttl = config.ipam.node_lease_ttl
            self._ttl_changed.set()

    async def nodes(self) -> AsyncIterator[dict[str, Node]]:
        """The nodes to peer with and forward to (module docstring)."""
        async for members in self.lifecycle.watch_timed(self.timing):
            self.members = members
            now = self.clock()
            self._log_changes(members, now)
            await self._note_lapses(members)
            yield present(members, now, self.timing)
            await self._reap(members)

    def _log_changes(self, members: dict[str, Member], now: float) -> None:
        gone = {n for n, m in members.items() if m.phase(now, self.timing) is Phase.GONE}
        for name in sorted(gone - self._gone):
            log.warning("node %s: lease lapsed more than %.0f s ago (graceful restart + "
                        "node_gone_grace): taking it out of the mesh, forwarding entries "
                        "and routes", name, self.timing.gone_after)  # fmt: skip
        for name in sorted(self._gone - gone):
            if name in members and members[name].live is not None:
                log.info("node %s is back (lease held again)", name)
        self._gone = gone

    async def _note_lapses(self, members: dict[str, Member]) -> None:
        for name, m in members.items():
            if m.live is None and m.state.leased and m.state.lapsed_at is None:
                if m.state.removed_at is not None:
                    continue
                try:
                    if await self.lifecycle.mark_lapsed(name):
                        log.info("node %s: lease lapsed (noted)", name)
                except StoreIdentityError:
                    raise
                except StoreError as exc:
                    log.debug("node %s: noting the lapse: %s", name, exc)

    async def _reap(self, members: dict[str, Member]) -> None:
        if reaper(members, self.clock(), self.timing) != self.name:
            return
        try:
            self.nodes_removed += len(
                await reap(self.lifecycle, self.ipam, self.name, members, self.timing)
            )
        except StoreIdentityError:
            raise
        except (StoreError, IpamError) as exc:
            log.warning("removing lapsed nodes: %s (tried again at the next change)", exc)

    async def housekeeping(self) -> None:
        """Leak reclaim on a timer (``ipam.leak_check_interval``; 0 = off, re-read each time)."""
        while True:
            await asyncio.sleep(self.leak_interval or 5.0)
            if self.leak_interval <= 0:
                continue
            try:
                await self.housekeep_once()
            except StoreIdentityError:
                raise  # the daemon reports it once and resumes this when the store is back
            except (StoreError, IpamError) as exc:
                log.warning("leak check: %s", exc)

    async def housekeep_once(self) -> None:
        """This node's leaked pod addresses; on the reaper, the cluster's orphans too."""
        freed = await reclaim_leaks(self.ipam, self.name, self.leaks, netns_alive, self.clock())
        for addr, handle in freed:
            log.warning("released %s of pod %s: its network namespace is gone (leaked)",
                        addr, handle)  # fmt: skip
        self.leaks_released += len(freed)
        if reaper(self.members, self.clock(), self.timing) == self.name:
            # A removal that failed when its deadline passed is tried again here.
            await self._reap(await self.lifecycle.members())
            removed = {n for n, m in self.members.items() if m.phase(self.clock(), self.timing)
                       is Phase.REMOVED}  # fmt: skip
            for line in await repair_orphans(self.ipam, removed):
                log.warning("ipam repair: %s", line)
