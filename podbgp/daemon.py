"""The node daemon: the composition root that wires IPAM, RIB, BGP and FIB together.

Data flow (DESIGN.md)::

    datastore ──watch──► announcements ──► RIB.originate / FIB blackholes
              ──watch──► node registry ──► mesh / RR peers, VXLAN VTEPs
    BGP peers ─updates─► RIB ──best paths (batched)──► FIB planner ──► kernel
    RIB ──pull──► BGP peers (update groups, back-pressure)

Start-up order keeps the data plane up across a restart (RFC 4724): the FIB
first adopts the routes a previous run left in the kernel as stale, BGP then
converges, and only when the RIB reports convergence (every peer's End-of-RIB,
or the selection deferral timer) are the leftovers swept.

Every part is optional where the config says so: a pure route server (the
benchmark target) has no datastore and no FIB; a VXLAN-only node has no BGP and
takes its routes from the datastore.

The datastore has an identity (`ipam.identity`): at start the daemon joins it
(it must exist -- created only by ``podbgp datastore init`` or, with
``datastore.create = true``, here -- and carry the cluster ID this node
recorded in `wiring.cluster_id_file`). While running, a store that vanishes
or is replaced (SQLite: the path names another inode or nothing; either
kind: the cluster key is deleted or changed) ends the watches at once, and a
check every few seconds (`IDENTITY_CHECK_INTERVAL`) catches it when nothing is
being watched. The daemon then logs one error saying what happened, reports
it in ``show node``, ``show ipam`` and the ``podbgp_datastore_ok`` metric,
keeps the routes it had (the pods still exist), refuses allocations, and
resumes when the joined store is back (the same file moved back to its path;
for etcd the same cluster ID). It keeps a deleted SQLite file open, so its
last state can still be copied from ``/proc/PID/fd``.

Size (over ~600 lines, one concern): ``Daemon`` is the composition root's
life cycle — building the parts from the config, starting them in the order
above, wiring their callbacks to each other, reloading and stopping them.
Each step is short and only calls into a part; split across modules, the
start-up order and its undoing would no longer be read in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import ipam
from bgp.wire.constants import Family
from bgp.wire.prefix import key_to_str
from fib import nat
from fib.model import Prefix as FibPrefix
from fib.netlink import NetlinkKernel
from fib.reconciler import Reconciler
from fib.service import FibService
from ipam.identity import GuardedStore, ensure_cluster, join, read_membership
from ipam.lifecycle import Lifecycle
from ipam.nodes import node_key
from ipam.rejoin import restore_pods
from ipam.selection import PoolRequest
from ipam.store import OpenMode, StoreError, StoreIdentityError, open_store
from podbgp import api, audit, cluster, explain, instance, mrt, services, underlay, wiring
from podbgp import node as nodecfg
from podbgp.anycast import AnnounceAPI, Anycast
from podbgp.api import APIError, ControlServer
from podbgp.config import Config, ConfigError
from podbgp.config.merge import NodeFile, effective_config, read_node_file
from podbgp.config.schema import ROUTER_ID_FROM_ADDRESS
from podbgp.drain import DEFAULT_TIMEOUT as DRAIN_TIMEOUT
from podbgp.drain import TIMEOUT_MAX as DRAIN_TIMEOUT_MAX
from podbgp.drain import DrainError
from podbgp.fibfeed import FibFeed
from podbgp.membership import LIFECYCLE_KEYS, Membership
from podbgp.metrics_snapshot import MetricsSnapshot, PoolMetrics
from podbgp.mrt_updates import UpdateDumps
from podbgp.services import ServiceFeed
from podbgp.topology import node_ip
from podbgp.watch import Watch
from rib.heap import tune_gc

if TYPE_CHECKING:
    from podbgp.bgpnode import BgpNode
    from podbgp.bmp import BmpFeed
    from podbgp.metrics import MetricsServer

log = logging.getLogger("podbgp.daemon")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


STARTUP_TIMEOUT = 10.0  # seconds for the datastore's first answer
# Seconds between checks that the store is still the joined one. The watches see a changed
# cluster key at once; the check is the backstop (and how a fault ends), so on etcd, where
# every node's check is a request to the cluster, it runs less often.
IDENTITY_CHECK_INTERVAL = {"sqlite": 2.0, "etcd": 10.0}


class StartupError(Exception):
    """The daemon cannot start (datastore unreachable, socket in use, ...)."""


def needs_datastore(config: Config) -> bool:
    """A datastore is needed for IPAM pools, the mesh, reflectors or VXLAN."""
    return bool(config.ipam.pools or config.bgp.mesh or config.bgp.route_reflector_cluster_id)


class Daemon:
    """One node's podbgp. `await start()`, then `await wait()`; `await stop()` ends it."""

    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.started_at = time.time()
        self.store: GuardedStore | None = None
        self.store_fault: str | None = None  # what is wrong with the datastore, if anything
        self._store_ok = asyncio.Event()
        self.ipam: ipam.Ipam | None = None
        self.registry: ipam.NodeRegistry | None = None
        self.membership: Membership | None = None
        self.reconciler: Reconciler | None = None
        self.fib_service: FibService | None = None
        self.fibfeed: FibFeed | None = None
        self.bgp: Any = None  # podbgp.bgpnode.BgpNode once BGP is enabled
        self.bmp: BmpFeed | None = None
        self.api: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self.nodes: dict[str, ipam.Node] = {}
        self.announced: ipam.Announcement | None = None
        self.anycast: Anycast | None = None  # run-time announcements (podbgp announce)
        self.watch: Watch | None = None  # the control API's event stream
        self.services: ServiceFeed | None = None  # service records from the datastore
        self.vtep_address = ""
        self.underlay = underlay.Underlay()  # the interfaces carrying the node's addresses
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self.converged = False
        self.pool_usage: list[PoolMetrics] = []
        self.node_blocks: dict[str, frozenset[IPNetwork]] = {}  # no-BGP mode: from the datastore
        self.remote_blocks: dict[IPNetwork, str] = {}
        self._registry_seen = False
        self._fib_frozen = False  # stopping: no more kernel changes
        self._blocks_seen = False
        # The node file as read (a node that names its datastore follows the cluster's resources).
        self.node_file: NodeFile | None = None
        self._announcing: asyncio.Task[None] | None = None  # follows this node's blocks
        # Cluster resources followed: the store revision of the set in use, the latest seen,
        # and why the latest was refused (show.node "resources").
        self.resources: dict[str, Any] | None = None

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Datastore, FIB (adopting what a previous run left), announcement, BGP, API.

        The order matters for a restart (RFC 4724 §4.1): the FIB's first resync
        tells whether a previous run left routes (then we are a restarting
        speaker), and the node's own blocks are known before any session opens,
        so the first UPDATEs after the restart already carry them.
        """
        await self._resolve_underlay()
        if needs_datastore(self.config) or self._names_datastore():
            await self._open_datastore()
        found = self._start_fib() if self.config.fib.enabled else 0
        if self.store is not None and self.config.ipam.pools:
            await self._first_announcement()
        if self.config.bgp.enabled:
            restarting = found > 0 and self.config.bgp.graceful_restart
            await self._start_bgp(restarting)
        elif self.store is None or not self.config.fib.enabled:
            self._mark_converged()  # no BGP and no remote routes to wait for
        if self.bgp is not None:
            self._start_announcements(self.bgp)
            fib = self.fib_best_paths if self.reconciler is not None else None
            self.watch = Watch(self.bgp.rib, self.bgp.sink.observers, fib)
        if self.store is not None:
            assert self.membership is not None
            self._spawn_store(self.membership.keep)
            self._spawn_store(self.membership.housekeeping)
            self._spawn_store(self._follow_registry)
            if not self.config.bgp.enabled and self.config.fib.enabled:
                self._spawn_store(self._follow_remote_blocks)
            self._spawn(self._watch_store_identity())
            self._follow_cluster()
        if underlay.is_detected(self.config):
            self._spawn(underlay.follow(lambda: self.config, self._underlay_moved))
        await self._start_api()

    async def wait(self) -> None:
        await self._stopped.wait()

    def _names_datastore(self) -> bool:
        """The node file has a [datastore] table: it takes the cluster's resources from it."""
        if self.config_path is None:
            return False
        try:
            return read_node_file(self.config_path).names_datastore
        except ConfigError:
            return False

    def _follow_cluster(self) -> None:
        """Follow the cluster's resources if the node file names the datastore."""
        if self.config_path is None:
            return
        try:
            self.node_file = read_node_file(self.config_path)
        except ConfigError as exc:  # the file changed since start; SIGHUP will say more
            log.error("cluster resources not followed: %s", exc)
            return
        if self.node_file.names_datastore:
            self._spawn_store(self._follow_resources)

    def request_stop(self) -> None:
        self._stopped.set()

    async def stop(self) -> None:
        """A restart stop: kernel routes stay, and peers keep ours (``bgp.restart``)."""
        self._stopped.set()
        if self.api is not None:
            await self.api.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        # The FIB stops first: closing the sessions withdraws every learned route from
        # the RIB, and those withdrawals must not reach the kernel (RFC 4724 §4.2: the
        # forwarding state outlives the daemon; the next run adopts and sweeps it).
        self._fib_frozen = True
        if self.fib_service is not None:
            self.fib_service.stop()
        if self.anycast is not None:
            self.anycast.stop()
        if self.bgp is not None:
            await self.bgp.stop()
        if self.bmp is not None:
            await self.bmp.stop()  # after the sessions' Peer Downs: Termination (RFC 7854 §4.5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.reconciler is not None:
            self.reconciler.kernel.close()
        if self.store is not None:
            await self.store.close()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("daemon task failed; stopping")
                self._stopped.set()

        task = asyncio.ensure_future(guarded())
        self._tasks.append(task)
        return task

    def _spawn_store(self, follow: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """A task that follows the datastore; it pauses while the store is not the joined one."""

        async def resilient() -> None:
            while True:
                try:
                    await follow()
                    return
                except StoreIdentityError as exc:
                    self._store_failed(exc)
                    await self._store_ok.wait()  # re-joined: follow the store again

        return self._spawn(resilient())

    # -- datastore identity ---------------------------------------------------------------
    def _store_failed(self, exc: StoreIdentityError) -> None:
        """Log once, report, and stop using the store until it is back (module docstring)."""
        if self.store_fault is None:
            log.error("datastore: %s. Allocation is refused and the current routes are kept "
                      "until the joined store is back", exc)  # fmt: skip
        self.store_fault = str(exc)
        self._store_ok.clear()

    async def _watch_store_identity(self) -> None:
        """Every few seconds: is the store still the joined one (or, after a fault, back)?"""
        while True:
            assert self.store is not None
            await asyncio.sleep(IDENTITY_CHECK_INTERVAL.get(self.store.kind, 2.0))
            if self.store_fault is not None:
                await self._rejoin()
                continue
            try:
                await self.store.verify()
            except StoreIdentityError as exc:
                self._store_failed(exc)
            except (StoreError, OSError) as exc:  # unreachable is not "replaced": no fault
                log.debug("datastore identity check: %s", exc)

    async def _rejoin(self) -> None:
        """Resume once the joined store is back: the same SQLite file at its path, or the
        same cluster ID in etcd. Anything else waits for an operator (and a restart, which
        joins afresh): the daemon never switches to another store on its own."""
        assert self.store is not None
        try:
            await self.store.verify()
        except (StoreError, OSError):
            return
        log.warning("datastore %s: the joined store is back (cluster ID %s); resuming",
                    wiring.datastore_url(self.config), self.store.identity.cluster_id)  # fmt: skip
        self.store_fault = None
        self._store_ok.set()

    def _datastore_status(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        return {
            "url": wiring.datastore_url(self.config),
            "cluster_id": self.store.identity.cluster_id,
            "ok": self.store_fault is None,
            "error": self.store_fault,
        }

    # -- underlay -----------------------------------------------------------------------
    async def _resolve_underlay(self) -> None:
        """Fill in "auto" addresses (`podbgp.underlay`), find the underlay interface and
        warn about configured MTUs it cannot carry. Detection finding nothing stops the
        start; a configured address not (yet) on an interface only loses the warnings.
        Nothing to detect and no MTU configured: the interfaces are not read at all."""
        fib = self.config.fib
        if not (underlay.is_detected(self.config) or fib.pod_mtu or fib.ipip_mtu or fib.vxlan_mtu):
            return
        try:
            self.config, self.underlay = await asyncio.to_thread(
                underlay.resolve, self.config, underlay.NetlinkUnderlay()
            )
        except underlay.NoAddress as exc:
            raise StartupError(f"node.address: {exc}") from exc
        except OSError as exc:
            if underlay.is_detected(self.config):
                raise StartupError(f"node.address: cannot read the interfaces: {exc}") from exc
            log.debug("underlay: cannot read the interfaces: %s", exc)
        if underlay.is_detected(self.config):
            log.info("underlay: detected %s on %s",
                     self.config.node.address or self.config.node.address6,
                     self.underlay.primary.interface if self.underlay.primary else "?")  # fmt: skip
        for warning in underlay.underlay_mtus(self.config, self.underlay)[1]:
            log.warning("%s", warning)

    async def _resolved(self, new: Config) -> Config:
        """A reloaded config with its "auto" addresses detected now (`NoAddress` if not);
        a router ID derived from the address stays the running one until a restart."""
        if not underlay.is_detected(new):
            return new
        derived = new.node.router_id == ROUTER_ID_FROM_ADDRESS
        new, self.underlay = await asyncio.to_thread(
            underlay.resolve, new, underlay.NetlinkUnderlay()
        )
        if derived:
            node = dataclasses.replace(new.node, router_id=self.config.node.router_id)
            new = dataclasses.replace(new, node=node)
        return new

    async def _underlay_moved(self, new: Config, found: underlay.Underlay) -> None:
        """A detected address changed: the registry (other nodes re-peer and re-point their
        VXLAN entries) and the FIB follow; the BGP identifier stays until a restart."""
        self.config, self.underlay = new, found
        if self.registry is not None:
            record = wiring.registry_record(self.config, self.vtep_address)
            try:
                await self.registry.register(record)
            except (StoreError, OSError, RuntimeError) as exc:
                log.error("underlay: registry update failed: %s", exc)
        self._fib_node_follows()

    def _fib_node_follows(self) -> None:
        """The FIB plans from this node's current addresses (underlay, VTEP)."""
        if self.reconciler is not None:
            node = nodecfg.fib_node(self.config, self.vtep_address)
            if node is not None:
                self.reconciler.set_node(node)
                self._wake_fib()

    # -- datastore and IPAM -------------------------------------------------------------
    async def _open_datastore(self) -> None:
        """Join the store, check it answers, register this node (and its VTEP address).

        The first read is bounded by `STARTUP_TIMEOUT`: a store that does not answer
        at start-up is a configuration problem to report, not a reason to wait for the
        store's own retry budget."""
        url = wiring.datastore_url(self.config)
        try:
            self.store = await asyncio.wait_for(self._join(url), STARTUP_TIMEOUT)
            self._store_ok.set()
            await asyncio.wait_for(self.store.get(node_key(self.config.node.name)),
                                   STARTUP_TIMEOUT)  # fmt: skip
            self.registry = ipam.NodeRegistry(self.store)
            self.ipam = ipam.Ipam(self.store, wiring.ipam_config(self.config))
            if (await Lifecycle(self.store).admission(self.config.node.name)).removed:
                await self._come_back()
            if wiring.uses_vxlan4(self.config):
                # IPv4 pods through the tunnel need an IPv4 VTEP address; IPv6 pods use
                # the device's own link-local address (fib.model.Vtep.link_local).
                self.vtep_address = await self._vtep_address()
            record = wiring.registry_record(self.config, self.vtep_address)
            await asyncio.wait_for(self.registry.register(record), 30)
            self.membership = Membership(self.store, self.ipam, self.config, back=self._back)
            await asyncio.wait_for(self.membership.hold(), 30)
        except TimeoutError as exc:
            raise StartupError(f"datastore {url}: no answer in {STARTUP_TIMEOUT:g} s") from exc
        except (StoreError, OSError, ipam.IpamError) as exc:
            raise StartupError(f"datastore {url}: {exc}") from exc

    async def _come_back(self) -> None:
        """Removed while away: IPAM gives a removed node nothing, so the registry record
        goes back first (the others see the node only once it holds its lease), then the
        pods still running here take their addresses back (`ipam.rejoin`) before this
        daemon or the CNI plugin allocates anything that could take one of them. A
        failure leaves the record of what was released for `Membership.hold` to retry."""
        assert self.registry is not None and self.store is not None and self.ipam is not None
        name = self.config.node.name
        await asyncio.wait_for(self.registry.register(wiring.registry_record(self.config)), 30)
        try:
            await asyncio.wait_for(restore_pods(Lifecycle(self.store), self.ipam, name), 30)
        except (TimeoutError, StoreError, ipam.IpamError) as exc:
            if isinstance(exc, StoreIdentityError):
                raise
            log.error("node %s: taking back the addresses of pods still running here: %s; "
                      "trying again once the lease is held", name, exc)  # fmt: skip

    async def _back(self) -> None:
        """This node's lease ran out while the daemon ran (a partition, a stopped process)
        and it holds one again. If the cluster removed it meanwhile (`node_gone_after`),
        its registry record went, and its VTEP address with its blocks: both come back,
        so the others mesh with it and forward to it again, without a restart. Its pods'
        addresses came back first (`Membership.rejoin`), as at a start (`_come_back`)."""
        assert self.store is not None and self.registry is not None
        name = self.config.node.name
        if await self.store.get(node_key(name)) is not None:
            return  # lapsed, not removed: the record is there
        if wiring.uses_vxlan4(self.config):
            vtep = await self._vtep_address()
            if vtep != self.vtep_address:
                log.warning("node %s: VTEP address %s was released while the node was away; "
                            "it is %s now", name, self.vtep_address, vtep)  # fmt: skip
                self.vtep_address = vtep
                self._fib_node_follows()
        await self.registry.register(wiring.registry_record(self.config, self.vtep_address))
        log.warning("node %s: registered again after its removal while it was away: the "
                    "other nodes mesh with it again", name)  # fmt: skip

    async def _register_labels(self) -> None:
        """A reload changed `node.labels`: the registry record follows, so the other
        nodes' `peer_selector` rules and reflector groups see it (podbgp.topology)."""
        if self.registry is None:
            return
        try:
            record = wiring.registry_record(self.config, self.vtep_address)
            await asyncio.wait_for(self.registry.register(record), 30)
            log.info("reload: node labels now %s", dict(self.config.node.labels))
        except (TimeoutError, StoreError, OSError, RuntimeError) as exc:
            log.error("reload: node labels not written to the registry: %s", exc)

    async def _join(self, url: str) -> GuardedStore:
        """Open (or, with ``datastore.create`` on a node that joined nothing yet, create) and join.

        A node that recorded a cluster never creates a store: its store is missing,
        and a new empty one would hand out its pods' addresses again."""
        id_file = wiring.cluster_id_file(self.config)
        create = self.config.datastore.create and read_membership(id_file) is None
        store = open_store(url, OpenMode.CREATE if create else OpenMode.READ_WRITE)
        try:
            if create:
                await ensure_cluster(store)
            return await join(store, id_file)
        except BaseException:
            await store.close()
            raise

    async def _vtep_address(self) -> str:
        """This node's VXLAN device address: one IPAM address under a fixed handle, from a
        pool whose `allowed_uses` has "tunnel" (`ipam.selection`)."""
        assert self.ipam is not None
        name = self.config.node.name
        handle = nodecfg.VXLAN_HANDLE.format(node=name)
        existing = (await self.ipam.handles()).get(handle)
        if existing and existing.get("addrs"):
            return str(next(iter(existing["addrs"])))
        tunnel = PoolRequest(4, ipam.PoolUse.TUNNEL)
        assigned = await self.ipam.allocate(
            name, handle, attrs={"node": name, "kind": "vxlan"}, request=tunnel
        )
        return str(assigned.address)

    async def _first_announcement(self) -> None:
        """Follow the node's announcement; return once the current one is applied."""
        first = asyncio.Event()
        self._announcing = self._spawn_store(lambda: self._follow_announcements(first))
        self._spawn(self._watch_pool_usage())
        try:
            await asyncio.wait_for(first.wait(), 30)
        except TimeoutError as exc:
            url = wiring.datastore_url(self.config)
            raise StartupError(f"datastore {url}: no answer to the block list in 30 s") from exc

    async def _follow_announcements(self, first: asyncio.Event) -> None:
        assert self.store is not None
        cfg = wiring.ipam_config(self.config)
        async for ann in ipam.watch_announcements(self.store, self.config.node.name, cfg):
            self._apply_announcement(ann)
            first.set()
            await self._refresh_pool_usage()

    async def _watch_pool_usage(self, interval: float = 15.0) -> None:
        """Pool usage for the metrics, which read it synchronously at scrape time."""
        while True:
            await asyncio.sleep(interval)
            if self.store_fault is not None:
                continue
            try:
                await self._refresh_pool_usage()
            except StoreIdentityError as exc:
                self._store_failed(exc)
            except (StoreError, OSError) as exc:  # a metric may lag; the node carries on
                log.warning("pool usage for metrics: %s", exc)

    async def _refresh_pool_usage(self) -> None:
        assert self.ipam is not None
        self.pool_usage = [
            PoolMetrics(u["cidr"], u["blocks"], u["used"], u["free"])
            for u in await self.ipam.usage()
        ]

    def _apply_announcement(self, ann: ipam.Announcement) -> None:
        old = self.announced or ipam.Announcement(frozenset(), frozenset())
        self.announced = ann
        if self.bgp is not None:
            self.bgp.set_originated_from_ipam(ann.prefixes)
        if self.reconciler is not None:
            for net in old.blackholes - ann.blackholes:
                self.reconciler.del_own_block(_fib_prefix(net))
            for net in ann.blackholes - old.blackholes:
                self.reconciler.set_own_block(_fib_prefix(net))
            self._wake_fib()
        log.info("announcing %s", ", ".join(sorted(map(str, ann.prefixes))) or "nothing")

    async def _follow_registry(self) -> None:
        """The nodes that are not gone (`podbgp.membership`) to mesh peers, VTEPs and routes."""
        assert self.membership is not None
        async for nodes in self.membership.nodes():
            self.nodes = nodes
            if self.bgp is not None:
                me = nodes.get(self.config.node.name)
                if me is None:
                    # Removed from the cluster: the others drop us; drop them too, or the
                    # active side of each pair would keep knocking on a closed door.
                    log.warning("this node is no longer in the registry: no mesh peers")
                await self.bgp.set_nodes(me, nodes)
            if self.reconciler is not None and wiring.uses_vxlan(self.config):
                self._apply_vteps(nodes)
            self._registry_seen = True
            if self.reconciler is not None and not self.config.bgp.enabled:
                self._recompute_remote_blocks()

    def _apply_vteps(self, nodes: dict[str, ipam.Node]) -> None:
        assert self.reconciler is not None
        wanted = nodecfg.vteps(nodes.values(), self.config.node.name)
        have = dict(self.reconciler.inputs.vteps)
        for addr in have.keys() - wanted.keys():
            self.reconciler.del_vtep(addr)
        for addr, vtep in wanted.items():
            if have.get(addr) != vtep:
                self.reconciler.set_vtep(vtep)
        self._wake_fib()

    async def _follow_remote_blocks(self) -> None:
        """VXLAN with no BGP: routes to every other node's blocks come from the datastore."""
        assert self.store is not None
        cfg = wiring.ipam_config(self.config)
        async for blocks in ipam.watch_node_blocks(self.store, cfg):
            self.node_blocks = blocks
            self._blocks_seen = True
            self._recompute_remote_blocks()

    def _recompute_remote_blocks(self) -> None:
        """Blocks and registry to remote routes; run when either of the two changes."""
        wanted: dict[IPNetwork, str] = {}
        for name, prefixes in self.node_blocks.items():
            node = self.nodes.get(name)
            if name == self.config.node.name or node is None:
                continue
            for net in prefixes:
                # A block's next hop is the owner's underlay address of the block's family.
                address = node_ip(node, net.version)
                if address:
                    wanted[net] = address
        self._set_remote_routes(self.remote_blocks, wanted)
        self.remote_blocks = wanted
        if self._registry_seen and self._blocks_seen:
            # Both views read once: what a previous run left and nobody wants any more
            # can go (the no-BGP analogue of End-of-RIB).
            self._mark_converged()

    def _set_remote_routes(self, old: dict[IPNetwork, str], new: dict[IPNetwork, str]) -> None:
        assert self.reconciler is not None
        for net in old.keys() - new.keys():
            self.reconciler.del_route(_fib_prefix(net))
        routes = [
            wiring.remote_route(self.config, net, (hop,))
            for net, hop in new.items()
            if old.get(net) != hop
        ]
        self.reconciler.set_routes(routes)
        self._wake_fib()

    # -- FIB ----------------------------------------------------------------------------
    def _start_fib(self) -> int:
        """Start the FIB after one full resync; returns how many owned routes it found.

        Owned routes in the kernel before anything is desired were left by a
        previous run: they are adopted as stale and stay until `_mark_converged`
        (RFC 4724 §4.2 "retain routes, then delete stale ones")."""
        try:
            kernel = NetlinkKernel()
        except OSError as exc:
            raise StartupError(f"netlink: {exc}") from exc
        self.reconciler = Reconciler(
            kernel,
            wiring.fib_settings(self.config),
        )
        node = nodecfg.fib_node(self.config, self.vtep_address)
        if node is not None:
            self.reconciler.set_node(node)
        self.reconciler.resync()
        found = self.reconciler.counters.stale_adopted
        if found:
            log.info("fib: %d routes of a previous run adopted as stale", found)
        self._apply_nat()
        self.fib_service = FibService(self.reconciler)
        self.fibfeed = FibFeed(self.reconciler, lambda: wiring.pool_table(self.config),
                               self._wake_fib, self._own_prefixes)  # fmt: skip
        self._spawn(self.fib_service.run())
        return found

    def _apply_nat(self) -> None:
        """MASQUERADE pod traffic leaving the pools, for pools with `nat_outgoing`."""
        pools = self.config.ipam.pools
        try:
            nat.apply([p.cidr for p in pools if p.nat_outgoing], [p.cidr for p in pools])
        except (nat.NatError, OSError, subprocess.SubprocessError) as exc:
            if any(p.nat_outgoing for p in pools):
                raise StartupError(str(exc)) from exc
            log.debug("no nat_outgoing pool, and nft unusable: %s", exc)

    def _wake_fib(self) -> None:
        if self.fib_service is not None:
            self.fib_service.wake()

    def fib_best_paths(self, family: Family, changes: dict[bytes, tuple[bytes, ...]]) -> None:
        """Best-path changes from the RIB (one call per batch), straight to the FIB."""
        if self.fibfeed is not None and not self._fib_frozen:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("fib: %d best-path changes from the RIB (%s)%s", len(changes),
                          family.name, _changes_text(family, changes))  # fmt: skip
            self.fibfeed.best_paths(family, changes)

    def _own_prefixes(self) -> frozenset[IPNetwork]:
        return self.announced.prefixes if self.announced else frozenset()

    def _mark_converged(self) -> None:
        """BGP converged (or there is none): sweep routes a previous run left behind."""
        if self.converged:
            return
        self.converged = True
        if self.fib_service is not None:  # the service's next pass deletes them
            swept = self.fib_service.sweep_stale()
            log.info("converged: sweeping %d stale kernel routes", swept)
        elif self.reconciler is not None:
            swept = self.reconciler.sweep_stale()
            log.info("converged: swept %d stale kernel routes", swept)

    # -- BGP ----------------------------------------------------------------------------
    async def _start_bgp(self, restarting: bool) -> None:
        from podbgp.bgpnode import BgpNode

        fib = self.fib_best_paths if self.reconciler is not None else None
        self.bgp = BgpNode(
            self.config,
            fib=fib,
            converged=self._mark_converged,
            restarting=restarting,
            on_stop=self.request_stop,
        )
        if self.fib_service is not None:  # sessions read no faster than the kernel takes routes
            self.bgp.speaker.input_gate = self.fib_service
        if self.announced is not None:
            self.bgp.set_originated_from_ipam(self.announced.prefixes)
        if restarting:
            log.info("graceful restart: Restart State set, best-path selection deferred")
        self._start_monitoring()
        try:
            await self.bgp.start()
        except OSError as exc:  # a listen socket (`podbgp run` checked them; a race, or Daemon)
            b = self.config.bgp
            where = ", ".join(str(a) for a in b.listen)
            raise StartupError(instance.bind_problem("[bgp] listen", where, b.port, exc)) from exc

    def _start_monitoring(self) -> None:
        """BMP stations and MRT dumps follow the RIB (podbgp.bmp, podbgp.mrt, .mrt_updates)."""
        cfg, bgp, m = self.config, self.bgp, self.config.mrt
        if cfg.bmp.stations:
            from podbgp.bmp import BmpFeed, sys_descr  # only a node with BMP stations

            name = cfg.bmp.sys_name or cfg.node.name
            self.bmp = BmpFeed(bgp.rib, cfg.bmp.stations, name, cfg.bmp.sys_descr or sys_descr())
            bgp.sink.observers.append(self.bmp)
            self.bmp.start()
        if m.table_dump_interval:
            me = mrt.Identity(cfg.node.router_id, cfg.node.asn)
            clock = asyncio.get_running_loop().time
            dumps = mrt.PeriodicDumps(lambda: bgp.rib, me, m.directory, m.table_dump_interval,
                                      m.file_pattern, m.keep, clock)  # fmt: skip
            self._spawn(dumps.run())
        if m.update_dump_interval:
            updates = UpdateDumps(cfg.node.asn, m.directory, m.update_dump_interval,
                                  m.update_file_pattern, m.keep)  # fmt: skip
            bgp.sink.observers.append(updates)
            self._spawn(updates.run())

    def _start_announcements(self, bgp: BgpNode) -> None:
        """Service ranges and records (`podbgp.services`) and run-time announcements
        (`podbgp.anycast`), each a source of `bgp.extras`."""
        self.anycast = Anycast(lambda a: bgp.extras.set("anycast", a))
        ranges = wiring.service_ranges(self.config)
        if self.store is not None:
            self.services = ServiceFeed(
                self.store, self.config.node.name, ranges, lambda a: bgp.extras.set("services", a)
            )
            self._spawn_store(self.services.run)
        else:  # no datastore: the ranges alone
            bgp.extras.set("services", services.announcements(ranges, (), frozenset()))

    # -- control API and metrics --------------------------------------------------------
    async def _start_api(self) -> None:
        self.api = ControlServer(self.config.api.socket, self._handlers())
        try:
            await self.api.start()
        except OSError as exc:
            raise StartupError(f"control socket {self.config.api.socket}: {exc}") from exc
        if self.config.api.metrics is not None:
            from podbgp.metrics import MetricsServer  # only with the endpoint

            host, port = self.config.api.metrics
            self.metrics = MetricsServer(f"{host}:{port}", self.metrics_snapshot)
            try:
                await self.metrics.start()
            except OSError as exc:
                raise StartupError(f"metrics endpoint {host}:{port}: {exc}") from exc

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "show.peers": self._show_peers,
            "show.peer": self._show_peer,
            "show.routes": self._show_routes,
            "show.fib": self._show_fib,
            "show.ipam": self._show_ipam,
            "show.node": self._show_node,
            "peer.reset": self._peer_action("reset"),
            "peer.shutdown": self._peer_action("shutdown"),
            "peer.enable": self._peer_action("enable"),
            "node.drain": self._drain,
            "node.undrain": self._undrain,
            "mrt.dump": self._mrt_dump,
            "explain": self._explain,
            "audit": self._audit,
            **self._announce_handlers(),
            **({"watch": self.watch.handler} if self.watch is not None else {}),
        }

    def _announce_handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        if self.anycast is None or self.bgp is None:
            return {}
        bgp = self.bgp
        return AnnounceAPI(self.anycast, lambda: bgp.extras.sources.get("services", {})).handlers()

    def _need_bgp(self) -> Any:
        if self.bgp is None:
            raise APIError("BGP is disabled on this node")
        return self.bgp

    async def _show_peers(self, args: dict[str, Any]) -> Any:
        return self._need_bgp().show_peers()

    async def _show_peer(self, args: dict[str, Any]) -> Any:
        return self._need_bgp().show_peer(api.arg_address(args))

    async def _show_routes(self, args: dict[str, Any]) -> Any:
        bgp = self._need_bgp()
        family = api.arg_choice(args, "family", ("ipv4", "ipv6"))
        prefix = api.arg_prefix(args)
        peer = api.arg_address(args, "peer") if args.get("peer") else None
        view = api.route_view(args)
        if view is None:
            return bgp.show_routes(family, prefix, peer)
        if peer is None:
            raise api.InvalidArgument(f"{view.replace('_', ' ')} routes need a peer")
        return bgp.show_peer_routes(view, peer, family, prefix)

    async def _mrt_dump(self, args: dict[str, Any]) -> Any:
        bgp = self._need_bgp()
        me = mrt.Identity(self.config.node.router_id, self.config.node.asn)
        return await mrt.dump_request(bgp.rib, me, args, asyncio.get_running_loop().time)

    async def _audit(self, args: dict[str, Any]) -> Any:
        parts = audit.Parts(
            node=self.config.node.name,
            pools=tuple(p.cidr for p in self.config.ipam.pools),
            ipam=self.ipam,
            live_nodes=frozenset(self.nodes),
            rib=self.bgp.rib if self.bgp is not None else None,
            peers=self.bgp.show_peers() if self.bgp is not None else (),
            announced=self.announced,
            reconciler=self.reconciler,
            datastore_fault=self.store_fault,
        )
        return audit.report(await audit.take(parts))

    async def _explain(self, args: dict[str, Any]) -> Any:
        target = api.arg_prefix(args, "target")
        if target is None:
            raise api.InvalidArgument("target: an address or a prefix is required")
        parts = explain.Parts(
            node=self.config.node.name,
            ipam=self.ipam,
            announced=self.announced,
            rib=self.bgp.rib if self.bgp is not None else None,
            reconciler=self.reconciler,
            ipam_fault=None if self.store_fault is None else str(self.store_fault),
        )
        return await explain.explain(parts, target)

    async def _show_fib(self, args: dict[str, Any]) -> Any:
        if self.reconciler is None:
            raise APIError("the FIB is disabled on this node ([fib] enabled = false)")
        snap = self.reconciler.snapshot()
        snap["rows"] = snap.pop("routes", [])
        snap["backlog"] = self.reconciler.backlog()
        if self.fib_service is not None:
            snap["input_gate"] = self.fib_service.gate_state()
        return snap

    async def _show_ipam(self, args: dict[str, Any]) -> Any:
        if self.ipam is None:
            raise APIError("this node has no datastore")
        status = self._datastore_status()
        usage: list[dict[str, Any]] = []
        if self.store_fault is None:
            try:
                usage = await self.ipam.usage()
            except StoreIdentityError as exc:
                self._store_failed(exc)
                status = self._datastore_status()
        return {
            "announced": self.announced.to_json() if self.announced else None,
            "rows": usage,
            "datastore": status,
        }

    async def _show_node(self, args: dict[str, Any]) -> Any:
        n = self.config.node
        return {
            "name": n.name,
            "asn": n.asn,
            "router_id": str(n.router_id),
            "address": str(n.address) if n.address else None,
            "vtep_address": self.vtep_address or None,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "converged": self.converged,
            "restarting": self.bgp.restarting if self.bgp is not None else False,
            "state": str(self.bgp.drainer.state) if self.bgp is not None else "running",
            "drain": self.bgp.drainer.report if self.bgp is not None else None,
            **self._restart_state(),
            "metrics": (
                f"{self.metrics.host}:{self.metrics.port}" if self.metrics is not None else None
            ),
            "nodes": sorted(self.nodes),
            "datastore": self._datastore_status(),
            "bmp": self.bmp.status() if self.bmp is not None else [],
            "resources": dict(self.resources) if self.resources is not None else None,
        }

    async def _drain(self, args: dict[str, Any]) -> Any:
        """RFC 8326 drain (podbgp.drain): answers once the node is drained."""
        if self.bgp is None:
            raise APIError("BGP is disabled on this node")
        timeout = args.get("timeout", DRAIN_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise APIError(f"timeout: {timeout!r} is not a number of seconds")
        if not 0 <= timeout <= DRAIN_TIMEOUT_MAX:
            raise APIError(f"timeout: {timeout} is out of range 0..{DRAIN_TIMEOUT_MAX}")
        try:
            return await self.bgp.drainer.drain(float(timeout), bool(args.get("stop", False)))
        except DrainError as exc:
            raise APIError(str(exc)) from exc

    async def _undrain(self, args: dict[str, Any]) -> Any:
        if self.bgp is None:
            raise APIError("BGP is disabled on this node")
        try:
            return await self.bgp.drainer.undrain()
        except DrainError as exc:
            raise APIError(str(exc)) from exc

    def _restart_state(self) -> dict[str, Any]:
        """What a restart means right now (RFC 4724, RFC 8538), for `show node`."""
        if self.bgp is None:
            return {}
        stale = [p.key for p in self.bgp.rib.peer_summaries() if p.stale]
        if self.bgp.stop_kind is not None:
            state = f"stopping ({self.bgp.stop_kind.value})"
        elif self.bgp.restarting:
            state = "restarting: Restart State set, selection deferred until End-of-RIB"
        else:
            state = "running"
        return {
            "restart_state": state,
            "on_sigterm": "restart stop: kernel routes stay, peers keep this node's routes",
            "peers_stale": stale,
        }

    def _peer_action(self, action: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def handler(args: dict[str, Any]) -> Any:
            bgp, address = self._need_bgp(), api.arg_address(args)
            hard = api.arg_flag(args, "hard")
            if hard and action == "enable":
                raise api.InvalidArgument("hard: for reset and shutdown only")
            message = api.arg_str(args, "message")
            return await bgp.peer_action(action, address, message, hard=hard)

        return handler

    def metrics_snapshot(self) -> MetricsSnapshot:
        snap = MetricsSnapshot()
        if self.bgp is not None:
            self.bgp.fill_metrics(snap)
        if self.bmp is not None:
            snap.bmp = self.bmp.status()
        if self.reconciler is not None:
            rec = self.reconciler  # counts only: a scrape must not classify every route
            snap.fib_desired = len(rec.desired)
            snap.fib_installed = len(rec.installed)
            snap.fib_drift_repairs = rec.counters.drift_repaired
            snap.fib_backlog = rec.backlog()
        if self.fib_service is not None:
            gate = self.fib_service.gate_state()
            snap.fib_input_holds, snap.fib_input_held_seconds = gate["holds"], gate["held_seconds"]
        snap.pools = list(self.pool_usage)
        if self.store is not None:
            snap.datastore_ok = self.store_fault is None
        if self.membership is not None:
            snap.ipam_leaks_released = self.membership.leaks_released
            snap.nodes_removed = self.membership.nodes_removed
        return snap

    def _reload_services(self, bgp: BgpNode) -> None:
        ranges = wiring.service_ranges(self.config)
        if self.services is not None:
            self.services.set_ranges(ranges)
        else:
            bgp.extras.set("services", services.announcements(ranges, (), frozenset()))

    # -- reload -------------------------------------------------------------------------
    async def reload(self) -> None:
        """SIGHUP: re-read the node file (over the cluster's resources) and apply what changed."""
        if self.config_path is None:
            return
        try:
            self.node_file = read_node_file(self.config_path)
            store = self.store if self.store_fault is None else None
            new = (await cluster.load_effective(self.node_file, store)).config
            new = await self._resolved(new)
        except (ConfigError, underlay.NoAddress) as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return
        except (StoreError, OSError) as exc:
            log.error("reload refused, keeping the running config: cluster resources: %s", exc)
            return
        await self._apply_config(new)
        log.info("reloaded %s", self.config_path)

    def _pools_changed(self) -> None:
        """Pools changed live: IPAM takes the new ones and the announcement is recomputed.

        The follower restarts with the new pools (a pool's `disable_bgp_export`
        decides what is announced); `_apply_announcement` then changes only the
        prefixes whose announcement differs. Of the routes to other nodes, only
        those whose pool's modes changed are re-planned (`FibFeed.pools_changed`).
        """
        assert self.store is not None
        self.ipam = ipam.Ipam(self.store, wiring.ipam_config(self.config))
        if self._announcing is not None:
            self._announcing.cancel()
            self._announcing = None
        if self.config.ipam.pools:
            first = asyncio.Event()
            self._announcing = self._spawn_store(lambda: self._follow_announcements(first))
        if self.fibfeed is not None:
            moved = self.fibfeed.pools_changed()
            log.info("pools changed: %d remote route(s) take their pool's new modes", moved)

    async def _follow_resources(self) -> None:
        """Cluster resources, live: each change is applied as a SIGHUP reload would be.

        A set this node cannot use (it clashes with the node file) is logged once and
        the running config kept; the next change is tried again.
        """
        assert self.store is not None and self.node_file is not None
        refused: str | None = None
        self.resources = {"revision": None, "seen": None, "error": None}
        async for current in cluster.watch_resources(self.store):
            self.resources["seen"] = current.revision
            try:
                new = effective_config(self.node_file, current.resources).config
                new = await self._resolved(new)
            except (ConfigError, underlay.NoAddress) as exc:
                self.resources["error"] = str(exc)
                if str(exc) != refused:
                    log.error("cluster resources at revision %d refused on this node, keeping "
                              "the running config: %s", current.revision, exc)  # fmt: skip
                refused = str(exc)
                continue
            refused = None
            if new != self.config:
                await self._apply_config(new)
                log.info("applied the cluster resources at revision %d", current.revision)
            self.resources.update(revision=current.revision, error=None)

    async def _apply_config(self, new: Config) -> None:
        """Apply only what changed; unchanged sessions keep running."""
        diff = self.config.diff(new)
        old_services = self.config.services
        self.config = new
        if self.bgp is not None:
            await self.bgp.reload(new, diff)
            if new.services != old_services:
                self._reload_services(self.bgp)
        if "node.labels" in diff.changed_keys:
            await self._register_labels()
        live = {"node.labels"} | (
            {"ipam.pool", *LIFECYCLE_KEYS} if self.store is not None else set()
        )
        later = [k for k in diff.changed_keys if k not in live]
        if self.store is not None and "ipam.pool" in diff.changed_keys:
            self._pools_changed()
        if self.membership is not None and self.ipam is not None:
            self.membership.reconfigure(new, self.ipam)
        if later:
            # Applied live: peers, listen ranges, policies, originate, NAT. The rest is
            # read at start.
            log.warning("reload: %s changed; what is read only at start-up waits for a restart",
                        ", ".join(later))  # fmt: skip
        if self.reconciler is not None:
            try:
                self._apply_nat()
            except StartupError as exc:
                log.error("reload: %s", exc)


def _changes_text(family: Family, changes: dict[bytes, tuple[bytes, ...]]) -> str:
    """A small batch of best-path changes as text for the debug log (big ones: none).
    No next hop: the prefix has no route any more, or it is one of ours."""
    if len(changes) > 16:
        return ""
    return ": " + ", ".join(
        f"{key_to_str(family, key)} "
        + (" ".join(str(ipaddress.ip_address(h)) for h in hops) if hops else "no next hop")
        for key, hops in changes.items()
    )


def _fib_prefix(net: IPNetwork) -> FibPrefix:
    return FibPrefix(net.network_address.packed, net.prefixlen)


async def run_daemon(config: Config, config_path: str | None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit status."""
    daemon = Daemon(config, config_path)
    loop = asyncio.get_running_loop()
    try:
        await daemon.start()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        await daemon.stop()
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(daemon.reload()))
    tune_gc()
    log.info("podbgp %s running", config.node.name)
    await daemon.wait()
    await daemon.stop()
    return 0
