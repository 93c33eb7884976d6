"""The daemon's BGP half: the speaker's and the RIB's life cycle.

`BgpNode` owns one `bgp.speaker.Speaker` and one `rib.Rib`, joined by
`rib.adapter.RibAdapter` (the speaker's route sink and source factory). It applies
`[bgp]`, `[[bgp.peer]]`, `[[bgp.listen_range]]` and `[[policy]]` as `podbgp.wiring` maps
them onto the typed settings of those packages, keeps the registry-derived mesh peers in
step with the node registry, originates what IPAM, `[[bgp.originate]]`, services and
run-time announcements say (`podbgp.origins`), forwards best-path changes to the FIB (a
call per RIB batch), serves the control API's BGP views, and applies a reload in place.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from bfd.session import StateChanged
from bgp.errors import CeaseSubcode
from bgp.events import PeerHandle
from bgp.fsm import State
from bgp.restart import StopKind
from bgp.speaker import Peer as BgpPeer
from bgp.speaker import Speaker
from bgp.wire.constants import Family
from ipam import Node
from podbgp import peerview
from podbgp.bfdnode import BfdPeers
from podbgp.config import Config, ConfigDiff, Peer, PeerOptions
from podbgp.config import ListenRange as ListenRangeConfig
from podbgp.drain import Drainer
from podbgp.metrics_snapshot import MetricsSnapshot, PeerMetrics
from podbgp.origins import ExtraOrigins
from podbgp.sink import TimedSink
from podbgp.topology import PASSIVE_DIAL_DELAY, MeshPeer, cluster_peers
from podbgp.wiring import (
    adornments,
    mesh_family,
    mesh_options,
    peer_policy,
    peer_settings,
    rib_policies,
    rib_settings,
    speaker_settings,
)
from rib import show
from rib.adapter import PeerHandles, RibAdapter
from rib.core import FibCallback, Rib
from rib.heap import pin_mmap_threshold
from rib.policy import Policy, builtin
from rib.settings import PeerPolicy

log = logging.getLogger("podbgp.bgp")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def state_name(text: str) -> str:
    """The speaker's state (``open_sent``, from ``bgp.fsm.State``'s name) as every view
    shows it: ``State.rfc_name`` (``OpenSent``)."""
    return State[text.upper()].rfc_name


class BgpNode:
    """Speaker + RIB for one node (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        fib: FibCallback | None = None,
        converged: Callable[[], None] | None = None,
        restarting: bool = False,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.converged_cb = converged
        self.restarting = restarting
        self.policies: dict[str, Policy] = rib_policies(config)
        # The RIB's events (`_watch_convergence`): selection deferral over, and every
        # graceful-restart peer's End-of-RIB in.
        self._selected = asyncio.Event()
        self._all_eor = asyncio.Event()
        self.handles = PeerHandles(on_max_prefix=self._max_prefix)
        # Best-path changes go from the RIB to the FIB as they are (podbgp.fibfeed).
        self.rib = Rib(
            rib_settings(config, restarting),
            fib=fib,
            wake=self.handles.wake,
            max_prefix_exceeded=self.handles.max_prefix_exceeded,
            on_converged=self._selected.set,
            on_all_eor=self._all_eor.set,
        )
        loop = asyncio.get_running_loop()
        node_addr = config.node.address
        self.adapter = RibAdapter(
            self.rib,
            self.handles,
            local4=node_addr.ip if node_addr else None,
            local6=config.node.address6.ip if config.node.address6 else None,
            clock=loop.time,
            call_at=loop.call_at,
            policy_for=self._policy_for_dynamic,
        )
        self.drainer = Drainer(self.rib, lambda: self.speaker.peers, on_stop)
        self.sink = TimedSink(self.adapter, self.drainer)
        self.speaker = Speaker(speaker_settings(config), self.sink, self.adapter)
        self.static: dict[str, Peer] = {}
        self.mesh: dict[str, MeshPeer] = {}
        self.mesh_options: dict[str, PeerOptions] = {}  # what each mesh session runs with
        self.registry: tuple[Node | None, dict[str, Node]] = (None, {})
        self._first_view = True  # no registry snapshot with this node applied yet
        self.originated: set[str] = set()
        self.ipam_prefixes: frozenset[IPNetwork] = frozenset()
        self.adorn = adornments(config)
        self.extras = ExtraOrigins(
            self.rib, lambda: {str(n) for n in self.ipam_prefixes} | self.originated, self.adorn
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: dict[str, asyncio.TimerHandle] = {}  # max-prefix re-enables
        self.bfd = BfdPeers(self._bfd_down)
        self.sink.on_peer_up = self._dynamic_bfd
        self.stop_kind: StopKind | None = None  # set once stopping

    def _policy_for_dynamic(self, key: str, asn: int) -> PeerPolicy:
        addr = ipaddress.ip_address(key)
        for r in self.config.bgp.listen_ranges:
            if addr.version == r.prefix.version and addr in r.prefix:
                return peer_policy(key, r, self.policies)
        return PeerPolicy(addr, asn, import_policy=builtin("none"), export_policy=builtin("none"))

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        # Full tables are a few huge dicts: give each its own mmap (rib.heap).
        pin_mmap_threshold()
        for p in self.config.applied_peers:
            self._add(str(p.address), p)
        self._originate_static()
        await self.speaker.start()
        self._tasks.append(asyncio.ensure_future(self._watch_convergence()))

    async def stop(self, kind: StopKind = StopKind.RESTART) -> None:
        """End the sessions: a restart stop by default (SIGTERM), so that peers keep
        this node's routes while it is away (``bgp.restart``)."""
        self.stop_kind = kind
        for t in self._tasks:
            t.cancel()
        for key in list(self._restarts):
            self._cancel_restart(key)
        self.bfd.stop()
        message = "podbgp restarting" if kind is StopKind.RESTART else "podbgp stopping"
        log.info("stopping BGP (%s stop): %s", kind.value, message)
        await self.speaker.stop(message, kind)

    def _add(self, address: str, options: PeerOptions, connect_on_start: bool = False) -> None:
        policy = peer_policy(address, options, self.policies)
        self.rib.add_peer(policy)
        settings = peer_settings(self.config, options, address, self.restarting)
        if connect_on_start:
            # podbgp.topology: at once when the daemon starts, after a graceful restart,
            # or when the other side already dialled and was refused (it is in its
            # back-off now); else after its chance to connect first.
            at_once = (
                self.restarting
                or self._first_view
                or self.speaker.refused_within(address, settings.connect_retry_max)
            )
            delay = 0.0 if at_once else PASSIVE_DIAL_DELAY
            settings = replace(settings, connect_on_start=True, connect_delay=delay)
        if self.drainer.hold(policy.key):  # drained: it starts with `podbgp undrain`
            settings = replace(settings, enabled=False)
        peer = self.speaker.add_peer(settings)
        local = str(options.local_address) if options.local_address else None
        self.bfd.set_peer(peer.key, options, local)

    def _remove(self, address: str, message: str = "") -> None:
        peer = self.speaker.peer(address)
        if peer is not None:
            self._cancel_restart(peer.key)
            self.bfd.set_peer(peer.key, None)
        self.speaker.remove_peer(address, message)
        self.rib.remove_peer(str(ipaddress.ip_address(address)), asyncio.get_running_loop().time())

    async def _watch_convergence(self) -> None:
        """Stale kernel routes may go once selection deferral is over (RFC 4724 §4.1)
        and, after a restart, every peer that sends End-of-RIB has sent it.

        The second condition covers peers whose OPEN carries the Restart State bit (FRR
        sets it): §4.1 does not wait for them, since they wait for our End-of-RIB
        first, but their routes arrive only after it, and sweeping before them would
        cut traffic that the kernel's stale routes still carry. Bounded by
        `deferral_time` like the deferral itself.

        Both waits are the RIB's events: `on_converged` for the first,
        `on_all_eor` (`Rib.all_eor_received`) for the second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(self.config.bgp.deferral_time)
        if self.rib.deferring:
            await self._selected.wait()
        while self.restarting and not self.rib.all_eor_received():
            self._all_eor.clear()
            try:
                await asyncio.wait_for(self._all_eor.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
        if self.restarting:
            # RFC 4724 §3: the Restart State bit belongs to the OPENs right after a
            # restart only; sessions that start later (a reset, a new node) clear it.
            self.restarting = False
            self.speaker.clear_restart_state()
        if self.converged_cb is not None:
            self.converged_cb()

    # -- mesh ---------------------------------------------------------------------------
    async def set_nodes(self, me: Node | None, nodes: Mapping[str, Node]) -> None:
        """A registry snapshot: the mesh, reflection and label-selected peers follow it
        (`podbgp.topology`). `me` None: this node left the registry, so it has none."""
        self.registry = (me, dict(nodes))
        await self._apply_registry()
        if me is not None:
            self._first_view = False

    async def _apply_registry(self) -> None:
        me, nodes = self.registry
        if me is None:
            await self.set_mesh_peers({})
            return
        b = self.config.bgp
        peers = cluster_peers(
            me,
            nodes,
            mesh=b.mesh,
            group_label=b.route_reflector_group_label,
            rules=b.selected_peers,
            family=mesh_family(self.config),
        )
        await self.set_mesh_peers(peers)

    async def set_mesh_peers(self, peers: dict[str, MeshPeer]) -> None:
        """Peers derived from the registry; static peers with the same address win.
        Only the sessions whose entry changed start or stop."""
        static = {str(p.address) for p in self.config.applied_peers}
        peers = {a: m for a, m in peers.items() if a not in static}
        for address in self.mesh.keys() - peers.keys():
            log.info("mesh: node %s left, removing peer %s", self.mesh[address].node, address)
            self._remove(address, "node left the cluster")
        options = {a: mesh_options(self.config, m) for a, m in peers.items()}
        for address, m in peers.items():
            old = self.mesh.get(address)
            if old == m and self.mesh_options.get(address) == options[address]:
                continue  # the same session: [bgp] (mesh_password, timers) unchanged too
            if old is not None:
                self._remove(address)
            how = "mesh" if m.rule is None else f"peer_selector {m.rule.peer_selector!r}"
            log.info("%s: peering with node %s at %s", how, m.node, address)
            # The passive side of a pair dials once at start (podbgp.topology), unless the
            # operator made it passive.
            dial = m.passive and not (m.rule is not None and m.rule.passive)
            self._add(address, options[address], connect_on_start=dial)
        self.mesh = dict(peers)
        self.mesh_options = options

    # -- origination --------------------------------------------------------------------
    def _originate_static(self) -> None:
        for o in self.config.bgp.originate:
            prefix = str(o.prefix)
            hop = None if o.next_hop == "self" else o.next_hop
            extra, large = self.adorn.of(prefix)
            self.rib.originate(
                prefix,
                communities=[*((c.asn << 16) | c.value for c in o.communities), *extra],
                large_communities=[
                    *((c.global_admin, c.local1, c.local2) for c in o.large_communities),
                    *large,
                ],
                next_hop=ipaddress.ip_address(str(hop)) if hop else None,
                now=time.monotonic(),  # the loop's clock (rib.path.Path.since)
            )
            self.originated.add(prefix)

    def set_originated_from_ipam(self, prefixes: Iterable[IPNetwork]) -> None:
        new = frozenset(prefixes)
        for net in self.ipam_prefixes - new:
            self.rib.withdraw_originated(str(net))
        for net in new - self.ipam_prefixes:
            extra, large = self.adorn.of(str(net))
            self.rib.originate(str(net), communities=extra, large_communities=large,
                               now=time.monotonic())  # fmt: skip
        self.ipam_prefixes = new
        self.extras.refresh()  # a prefix IPAM let go of may be wanted by a service

    def _readorn(self) -> None:
        """Changed `[[bgp.prefix_advertisement]]`: everything originated here again."""
        self.adorn = adornments(self.config)
        prefixes, self.ipam_prefixes = self.ipam_prefixes, frozenset()
        self.set_originated_from_ipam(prefixes)  # originate replaces each path in place
        self._originate_static()
        self.extras.reoriginate(self.adorn)

    # -- RIB callbacks ------------------------------------------------------------------
    def _max_prefix(self, handle: PeerHandle, limit: int) -> None:
        """Cease / Maximum Number of Prefixes Reached (RFC 4486 §4; RFC 4271 §6.7 leaves
        the reconnect to the operator): re-enable after `bgp.max_prefixes_restart`
        seconds, or, when that is 0, only on `podbgp peer enable`."""
        key = handle.key
        peer = self.speaker.peer(key)
        if peer is None:
            return
        log.warning("peer %s sent more than %d prefixes: session closed", key, limit)
        peer.shutdown(
            f"maximum prefixes ({limit}) reached",
            CeaseSubcode.MAXIMUM_PREFIXES_REACHED,
            operator=False,  # the peer's doing: a flap
        )
        self._cancel_restart(key)
        delay = float(self.config.bgp.max_prefixes_restart)
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._restarts[key] = loop.call_later(delay, self._restart_after_limit, key, peer)
        else:
            log.warning("peer %s stays down until `podbgp peer enable %s`", key, key)

    def _restart_after_limit(self, key: str, peer: BgpPeer) -> None:
        """The delayed re-enable, only if the peer is still the same configured one (a
        reload may have removed or replaced it meanwhile)."""
        self._restarts.pop(key, None)
        current = self.speaker.peer(key)
        if current is not None and current is peer and not self.drainer.hold(key):
            log.info("peer %s: re-enabled after the maximum-prefix shutdown", key)
            peer.enable()

    def _cancel_restart(self, key: str) -> None:
        """An operator action or a removal overrides a pending maximum-prefix restart."""
        pending = self._restarts.pop(key, None)
        if pending is not None:
            pending.cancel()

    # -- BFD ----------------------------------------------------------------------------
    def _bfd_down(self, key: str, ev: StateChanged) -> None:
        """BFD saw the path fail: the BGP session goes at once with Cease / BFD Down
        (RFC 9384), and its routes leave the RIB and the kernel (podbgp.bfdnode says why
        without graceful-restart retention). It reconnects as after any reset."""
        peer = self.speaker.peer(key)
        if peer is not None and peer.established is not None:
            log.warning("peer %s: BFD down (%s), closing the session", key, ev.diag.name.lower())
            # Hard (RFC 8538 §5 with N; FRR sends BFD Down the same way): the path is dead,
            # so neither end keeps the other's routes as stale.
            peer.bring_down(f"BFD down ({ev.diag.name.lower()})", CeaseSubcode.BFD_DOWN, hard=True)

    def _dynamic_bfd(self, peer: BgpPeer, up: bool) -> None:
        """A listen range's neighbour gets its BFD session once its address is known."""
        if peer.dynamic:
            rng = _range_of(self.config, peer.key) if up else None
            self.bfd.set_peer(peer.key, rng)

    # -- control API --------------------------------------------------------------------
    def show_peers(self) -> list[dict[str, Any]]:
        return [self._peer_row(st) for st in self.speaker.stats()]

    def _peer_row(self, stats: dict[str, Any]) -> dict[str, Any]:
        st = dict(stats)
        up = st.get("uptime")
        st["state"] = state_name(st["state"])
        st["uptime"] = _duration(up) if up is not None else None
        st["uptime_seconds"] = up
        st["mesh_node"] = self._mesh_node(st["address"])
        routes = show.peer_routes(self.rib, st["address"])
        st["prefixes_received"] = routes.total("received") if routes else 0
        st["prefixes_advertised"] = routes.total("advertised") if routes else 0
        # The speaker's own `prefixes_in/out` are not kept (routes are counted where
        # they live, in the RIB): the documented keys carry the RIB's figures.
        st["prefixes_in"] = st["prefixes_received"]
        st["prefixes_out"] = st["prefixes_advertised"]
        st["peer_graceful_restart"] = self._peer_gr(st["address"])
        st["bfd"] = self.bfd.stats(st["address"])
        return st

    def show_peer(self, address: str) -> dict[str, Any]:
        """One peer in detail (`podbgp.peerview`)."""
        peer = self._known_peer(address)
        routes = show.peer_routes(self.rib, peer.key)
        s = self.speaker.settings
        return peerview.detail(self._peer_row(peer.stats()), peer, s.asn, s.router_id, routes)

    def _known_peer(self, address: str) -> BgpPeer:
        peer = self.speaker.peer(address)
        if peer is None:
            from podbgp.api import APIError

            raise APIError(f"no such peer {address}")
        return peer

    def _peer_gr(self, address: str) -> dict[str, Any] | None:
        """The peer's graceful-restart capability from its last OPEN (RFC 4724 §3)."""
        peer = self.speaker.peer(address)
        neg = peer.negotiated if peer is not None else None
        gr = neg.peer_restart if neg is not None else None
        if gr is None:
            return None
        return {
            "restart_time": gr.restart_time,
            "restarting": gr.restarting,
            "forwarding_preserved": sorted(
                _family_name(afi, safi) for afi, safi, fwd in gr.families if fwd
            ),
        }

    def _mesh_node(self, address: str) -> str | None:
        m = self.mesh.get(address)
        return m.node if m else None

    def show_routes(
        self, family: str | None, prefix: str | None, peer: str | None
    ) -> list[dict[str, Any]]:
        if peer is not None:
            peer = self._known_peer(peer).key  # an unknown peer is an error, not an empty list
        entries = show.routes(self.rib, family=family, prefix=prefix, peer=peer, limit=10000)
        now = time.monotonic()
        rows = []
        for e in entries:
            for path in e["paths"]:
                rows.append(
                    {
                        "prefix": e["prefix"],
                        "family": e["family"],
                        **path,
                        "ecmp": path["next_hop"] in e["ecmp_next_hops"],
                        # seconds since the path arrived (rib.path.Path.since)
                        "age": round(now - path["since"], 1) if path["since"] else None,
                    }
                )
        return rows

    def show_peer_routes(
        self, view: str, peer: str, family: str | None, prefix: str | None
    ) -> list[dict[str, Any]]:
        """`view` is `advertised`, `received` or `received_pre_policy` (`rib.show`)."""
        key = self._known_peer(peer).key
        read = {
            "advertised": show.advertised,
            "received": show.received,
            "received_pre_policy": show.received_pre_policy,
        }[view]
        try:
            return read(self.rib, key, family=family, prefix=prefix, limit=10000)
        except show.NotKept:
            from podbgp.api import APIError

            raise APIError(
                f"routes from {key} before import policy are not kept: set "
                "soft_reconfiguration = true on the peer (without --pre-policy: after policy)"
            ) from None
        except KeyError:  # a peer the speaker knows, not (yet) the RIB: nothing to show
            return []

    async def peer_action(
        self, action: str, address: str, message: str, hard: bool = False, by: str = "control API"
    ) -> dict[str, Any]:
        """An operator's action on a peer; the answer says when the session is expected back."""
        peer = self._known_peer(address)
        if action in ("shutdown", "enable"):
            self._cancel_restart(peer.key)
        if action == "enable":
            self.drainer.release(peer.key)
        if action == "shutdown":
            peer.shutdown(message, hard=True if hard else None, by=by)
        elif action == "reset":
            peer.reset(message, hard=hard, by=by)
        else:
            peer.enable(by=by)
        await asyncio.sleep(0)
        stats = peer.stats()
        back = peer.expected_back()
        return {"address": stats["address"], "state": state_name(stats["state"]),
                "admin": stats["admin"],
                "expected_back_seconds": None if back is None else round(back, 3),
                "waits_for_peer": back is None and peer.enabled}  # fmt: skip

    def fill_metrics(self, snap: MetricsSnapshot) -> None:
        snap.decision_runs = self.sink.runs
        snap.decision_seconds = self.sink.seconds
        for st in self.speaker.stats():
            routes = show.peer_routes(self.rib, st["address"])
            prefixes = {}
            for name in ("ipv4", "ipv6"):
                accepted = routes.received.get(name, 0) if routes else 0
                pre = routes.received_pre_policy if routes else None
                received = pre.get(name, 0) if pre is not None else accepted
                sent = routes.advertised.get(name, 0) if routes else 0
                prefixes[name] = (received, accepted, sent)
            snap.peers.append(
                PeerMetrics(
                    address=st["address"],
                    state=state_name(st["state"]),
                    uptime_seconds=st.get("uptime") or 0.0,
                    updates_in=int(st["messages_in"].get("update", 0)),
                    updates_out=int(st["messages_out"].get("update", 0)),
                    prefixes=prefixes,
                    bfd=self.bfd.stats(st["address"]),
                )
            )

    # -- reload -------------------------------------------------------------------------
    async def reload(self, new: Config, diff: ConfigDiff) -> None:
        """Apply the difference: only changed peers reset; policy changes need no reset."""
        old, self.config = self.config, new
        self.policies = rib_policies(new)
        self._reload_listen_ranges(old, new, diff)
        for p in diff.peers_removed:
            self._remove(str(p.address), "peer de-configured")
        for p in diff.peers_reset:
            self._remove(str(p.address), "configuration changed")
        for p in (*diff.peers_added, *diff.peers_reset):
            self._add(str(p.address), p)
        for p in {*diff.peers_import_changed, *diff.peers_export_changed}:
            self._policy_changed(p, p in diff.peers_import_changed)
        if old.bgp.prefix_advertisements != new.bgp.prefix_advertisements:
            self._readorn()
        if diff.originate_changed:
            for prefix in self.originated:
                self.rib.withdraw_originated(prefix)
            self.originated.clear()
            self._originate_static()
        # Mesh, reflection groups, mesh password and peer_selector rules may have
        # changed, and so may which static peers apply: the registry-derived sessions
        # are recomputed, and only those whose entry changed reset.
        await self._apply_registry()
        self._reload_bfd(new)

    def _reload_bfd(self, new: Config) -> None:
        """BFD settings apply to running sessions without a BGP reset (set_peer does
        nothing where they did not change)."""
        for p in new.applied_peers:
            peer = self.speaker.peer(str(p.address))
            local = str(p.local_address) if p.local_address else None
            if peer is not None:
                self.bfd.set_peer(peer.key, p, local)
        for address, m in self.mesh.items():
            self.bfd.set_peer(address, mesh_options(self.config, m))
        for peer in [p for p in self.speaker.peers.values() if p.dynamic and p.established]:
            self.bfd.set_peer(peer.key, _range_of(new, peer.key))

    def _reload_listen_ranges(self, old: Config, new: Config, diff: ConfigDiff) -> None:
        """New ranges accept from now on; a dynamic peer whose range went or changed is
        dropped (it may come back under the new range); one whose range only had its
        named policies changed keeps its session and gets the new policies."""
        if diff.listen_ranges_added or diff.listen_ranges_removed or diff.listen_ranges_changed:
            self.speaker.settings = speaker_settings(new)
            if any(r.password for r in (*diff.listen_ranges_added, *diff.listen_ranges_changed)):
                log.warning("reload: TCP MD5 of a new or changed listen range needs a restart")
        for peer in [p for p in self.speaker.peers.values() if p.dynamic]:
            before, after = _range_of(old, peer.key), _range_of(new, peer.key)
            if after is None or before != after:
                log.info("listen range of dynamic peer %s changed: session closed", peer.key)
                self._remove(peer.key, "listen range changed")
            elif {after.import_policy, after.export_policy} & diff.policies_changed:
                self.rib.set_policy(peer.key, peer_policy(peer.key, after, self.policies))

    def _policy_changed(self, p: Peer, import_changed: bool) -> None:
        """New import/export policy without a reset: the RIB re-evaluates, the peer refreshes."""
        a = str(p.address)
        self.rib.set_policy(a, peer_policy(a, p, self.policies))
        peer = self.speaker.peer(a)
        if import_changed and peer is not None and not p.soft_reconfiguration:
            for fam in p.families:
                peer.refresh(fam)  # RFC 2918: the peer re-sends its routes


def _range_of(config: Config, address: str) -> ListenRangeConfig | None:
    """The first `[[bgp.listen_range]]` holding `address` (the speaker's rule too)."""
    addr = ipaddress.ip_address(address)
    for r in config.bgp.listen_ranges:
        if addr.version == r.prefix.version and addr in r.prefix:
            return r
    return None


def _family_name(afi: int, safi: int) -> str:
    fam = Family.of(afi, safi)
    return fam.name.lower() if fam is not None else f"afi{afi}/safi{safi}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
