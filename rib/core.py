"""The RIB: Adj-RIB-In → import policy → Loc-RIB → decision → update groups.

One ``Rib`` per daemon. Per family it keeps one table, ``loc[family]``,
mapping a prefix key (``bgp.wire.prefix``: length octet + significant octets)
to every candidate path for it: a single ``Path`` in the common case, or an
interned ``bestpath.Ranked`` when there are several. The table *is* the
post-policy Adj-RIB-In of every peer as well (a peer's routes are the paths
whose source is that peer), which keeps a full table near 100 bytes per
prefix; pre-policy routes are kept separately only for peers with
``soft_reconfiguration``.

Inbound work is per UPDATE, not per prefix: the attribute set of an UPDATE
goes through loop checks (RFC 4271 §9.1.2, RFC 4456 §8) and import policy
once (``rib.inbound``), yielding one interned ``Path``; the loop over its prefixes only swaps
dict values. Adding a path to a multi-path entry or removing one goes through
memoised transitions, so the decision process (``rib.bestpath``) runs once
per distinct *set* of paths, not once per prefix. The changes of a batch are
kept with the new entries (``rib.batch``: new prefixes in runs of one path,
withdrawals as they came, or prefix -> new entry and the entry before the
batch), so nothing downstream looks the prefix up in the Loc-RIB again: at
the end of each batch (``flush``) the batch goes to every update group (which
compares with the entry before: ``rib.adjout``), and the FIB callback gets
the changed prefixes with their ECMP next hops. Bulk announcements and withdrawals touch
the Loc-RIB once per prefix, in C (``dict.setdefault``/``dict.pop`` mapped
over the keys), and fall back to a per-prefix loop only where a prefix has
paths from other slots.

Time is injected (sans-IO): graceful restart (RFC 4724), enhanced route
refresh (RFC 7313), max-prefix restarts and the restarting speaker's
selection deferral are deadlines that ``get_timer``/``handle_timer`` expose;
``rib.adapter`` arms one loop timer for them.

Graceful restart's stale and long-lived stale routes (RFC 4724 §4.2, RFC 9494)
and the restarting speaker's per-family selection deferral (RFC 4724 §4.1)
are in ``rib.restart``; ``converged`` turns true and ``on_converged`` is
called once when no family is deferred any more.
``all_eor_received`` is the wider question a restarted daemon asks before it
sweeps its stale kernel routes — has every Established peer with graceful
restart, Restart State set or not, sent End-of-RIB for its families? — and
``on_all_eor`` is called each time the answer turns true.

The owner passes its callbacks at construction (``wake``,
``max_prefix_exceeded``, ``on_converged``, ``on_all_eor``) and reads a peer
through ``peer_summary``, not through ``PeerState``.

Policy changes at run time (``set_policy``, ``set_export_mode``) are in
``rib.reconfigure``.

Size (over ~600 lines, one concern): ``Rib`` is the one writer of the
Loc-RIB and of the batch of changes since the last ``flush``; peer life
cycle, import, the memoised decision transitions and update-group
membership all change that one table and that one batch through the same
private steps (``_announce``, ``_withdraw``, ``_sweep``, ``_join``), so
splitting the class would make those steps another module's internals.
What is not that lives beside it: graceful restart and selection deferral
in ``rib.restart``, policy changes at run time in ``rib.reconfigure``, the
import of one attribute set in ``rib.inbound``, the per-peer record in
``rib.peer``, the decision in ``rib.bestpath``, the batch shapes in
``rib.batch``, export and the Adj-RIB-Out in ``rib.export``/``rib.adjout``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address
from itertools import count, islice, repeat
from typing import Any, cast

from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Action, Family, Origin
from bgp.wire.prefix import key_from_network
from rib import inbound, reconfigure, restart
from rib.adjout import Member, UpdateGroup, new_group
from rib.batch import BatchBuilder, Changed, Entry, best_of, nexthops_of
from rib.bestpath import Ranked, rank
from rib.export import Exporter, ExportMode
from rib.path import Path, Slot, Source
from rib.peer import Address, PeerState, PeerSummary
from rib.reflect import Kind
from rib.settings import PeerPolicy, RibSettings, SessionFacts

__all__ = ["FibCallback", "PeerState", "PeerSummary", "Rib"]

FibCallback = Callable[[Family, dict[bytes, tuple[bytes, ...]]], None]


_EMPTY: frozenset[bytes] = frozenset()
_V4 = Family.IPV4_UNICAST


class Rib:
    """The routing table of one speaker (see module docstring)."""

    def __init__(
        self,
        settings: RibSettings,
        *,
        fib: FibCallback | None = None,
        wake: Callable[[str], None] | None = None,
        max_prefix_exceeded: Callable[[str, int], None] | None = None,
        resolve: Callable[[Family, PathAttributes], int | None] | None = None,
        on_converged: Callable[[], None] | None = None,
        on_all_eor: Callable[[], None] | None = None,
        now: float = 0.0,
    ) -> None:
        self.settings = settings
        self.fib = fib
        self.wake = wake or (lambda key: None)
        self.max_prefix_exceeded = max_prefix_exceeded or (lambda key, n: None)
        # Next-hop resolver: interior cost, or None when unreachable (RFC 4271 §9.1.2.1).
        self.resolve = resolve or (lambda fam, attrs: 0)
        self.loc: dict[Family, dict[bytes, Entry]] = {f: {} for f in Family}
        self.peers: dict[str, PeerState] = {}
        self.groups: dict[tuple[Any, ...], UpdateGroup] = {}
        # Each family's changes until ``flush``, in the cheapest shape (``rib.batch``).
        self._batches: dict[Family, BatchBuilder] = {f: BatchBuilder() for f in Family}
        self._ranked: dict[frozenset[Path], Ranked] = {}
        self._pairs: dict[tuple[Path, Path], Entry] = {}
        self._local_paths: dict[tuple[Family, PathAttributes], Path] = {}
        # ADD-PATH ids of every slot of this RIB's sources (RFC 7911 §3: unique per prefix).
        self._tx_ids = count(1)
        # The source of routes originated here; its BGP Identifier is ours.
        self.local = Source("local", local=True, tx_ids=self._tx_ids)
        self.now = 0.0  # the latest time a caller handed in: new paths' ``since``
        self.local.bgp_id = int(settings.router_id)
        # RFC 4724 §4.1: a restarting speaker defers best-path selection and its own EoR.
        self.deferred: set[Family] = set(Family) if settings.restarting else set()
        self.defer_deadline: float | None = now + settings.deferral_time if self.deferred else None
        self.on_converged = on_converged
        self.on_all_eor = on_all_eor
        self._all_eor = True  # ``all_eor_received`` when last looked at
        # RFC 8326: what every peer is told (``set_export_mode``, ``podbgp drain``).
        self.export_mode = ExportMode.NORMAL

    @property
    def deferring(self) -> bool:
        """True while best-path selection is deferred for some family (RFC 4724 §4.1)."""
        return bool(self.deferred)

    @property
    def converged(self) -> bool:
        """True once selection runs for every family: stale kernel routes may be swept."""
        return not self.deferred

    def start_deferral(self, now: float) -> None:
        """(Re)start the selection deferral timer at ``now`` on the caller's clock."""
        self.now = max(self.now, now)
        if self.deferred:
            self.defer_deadline = now + self.settings.deferral_time

    def all_eor_received(self) -> bool:
        """Every Established peer doing graceful restart (RFC 4724 §3) sent End-of-RIB
        for each family of its session (module docstring). Unlike selection
        deferral (§4.1 (a)) this waits for peers with Restart State set too: their
        routes arrive only after our End-of-RIB, and stale kernel routes still
        carry their traffic until then."""
        return all(st.all_eor for st in self.peers.values())

    def _note_eor(self) -> None:
        """Call ``on_all_eor`` when ``all_eor_received`` has just turned true."""
        now = self.all_eor_received()
        if now and not self._all_eor and self.on_all_eor is not None:
            self.on_all_eor()
        self._all_eor = now

    def peer_summary(self, key: str) -> PeerSummary | None:
        """One peer as the daemon's views see it, or None for a peer the RIB does not know."""
        st = self.peers.get(key)
        if st is None:
            return None
        f = st.facts
        return PeerSummary(key, st.up, f is not None and f.does_gr, st.families,
                           frozenset(st.eor_received), frozenset(st.disabled),
                           frozenset(st.stale), dict(st.counts))  # fmt: skip

    def peer_summaries(self) -> list[PeerSummary]:
        """``peer_summary`` of every peer, in key order."""
        return [s for k in sorted(self.peers) if (s := self.peer_summary(k)) is not None]

    # ------------------------------------------------------------------ peers

    @property
    def reflector(self) -> bool:
        """RFC 4456: a cluster id, or any RR client, makes this node a route reflector."""
        return self.settings.cluster_id is not None or any(
            p.policy.route_reflector_client for p in self.peers.values()
        )

    @property
    def cluster_id(self) -> IPv4Address:
        """RFC 4456 §7: the configured cluster id, else the router id."""
        return self.settings.cluster_id or self.settings.router_id

    def add_peer(self, policy: PeerPolicy) -> PeerState:
        """Register a configured (or dynamic) peer; its routes arrive after ``peer_up``."""
        ebgp = policy.asn != self.settings.local_as
        src = Source(
            policy.key,
            tx_ids=self._tx_ids,
            address=policy.address,
            asn=policy.asn,
            ebgp=ebgp,
            rr_client=policy.route_reflector_client and not ebgp,
        )
        st = PeerState(policy, src)
        self.peers[policy.key] = st
        return st

    def remove_peer(self, key: str, now: float = 0.0) -> None:
        """Forget a peer (unconfigured): its routes go at once."""
        st = self.peers.get(key)
        if st is None:
            return
        self.peer_down(key, now, graceful=False)
        self._sweep(st, set(Family), everything=True)
        del self.peers[key]
        restart.check_deferral(self, now)  # no longer waited for
        self.flush()
        self._note_eor()

    def peer_up(self, key: str, facts: SessionFacts, now: float = 0.0) -> None:
        """A session reached Established: join update groups, handle a GR return."""
        self.now = max(self.now, now)
        st = self.peers[key]
        st.facts = facts
        st.up = True
        st.over_limit = False
        st.eor_received = set()
        st.disabled = set()  # a new session: every negotiated family is accepted again
        st.source.bgp_id = int(facts.bgp_id)
        st.own = self.settings.local_addresses | {
            a
            for a in (facts.local_address, facts.local_address6, facts.link_local)
            if a is not None
        }
        self._new_generation(st, set(Family))
        restart.session_up(self, st, facts, now)
        for fam in facts.families:
            if fam in st.policy.families:
                self._join(st, fam, facts)
        restart.check_deferral(self, now)  # e.g. a peer without graceful restart
        self.flush()
        self._note_eor()

    def peer_down(self, key: str, now: float = 0.0, graceful: bool = False) -> None:
        """A session ended. ``graceful``: keep its routes as stale (RFC 4724 §4.2)."""
        st = self.peers.get(key)
        if st is None or not st.up:
            return
        st.up = False
        for m in st.members.values():
            if m.group is not None:
                self._leave(m.group, m)
        st.members.clear()
        restart.session_down(self, st, graceful, now)
        self.flush()
        self._note_eor()

    def _new_generation(self, st: PeerState, families: set[Family]) -> None:
        """Paths interned so far become stale; later UPDATEs intern fresh ones."""
        src = st.source
        for f in families:
            src.gens[f] = src.gens.get(f, 0) + 1
            st.imports.pop(f, None)
            # Pre-policy routes of the new generation are those received from now on.
            st.pre_policy.pop(f, None)
            st.pre_add_path.discard(f)
        src.paths = {k: v for k, v in src.paths.items() if k[0] not in families}

    # ------------------------------------------------------------------ groups

    def _group_key(self, st: PeerState, fam: Family, facts: SessionFacts) -> tuple[Any, ...]:
        pol = st.policy
        kind = (
            Kind.EBGP
            if st.source.ebgp
            else (Kind.CLIENT if st.source.rr_client else Kind.NONCLIENT)
        )
        # RFC 7911 §4: path identifiers are on for the session if the OPENs said so; a
        # reload that turns sending several paths off still sends the best one with one.
        add_path = (pol.add_path_send or 1) if fam in facts.add_path_tx else 0
        return (
            fam,
            pol.export_policy,
            kind,
            pol.keep_original_next_hop,
            self._next_hop_self(fam, facts),
            facts.as4,
            add_path,
            facts.max_message_len,
            self.export_mode,
            fam in facts.llgr,
            fam is Family.IPV4_UNICAST and facts.extended_nexthop,
            pol.local_as or self.settings.local_as,  # the AS prepended (RFC 7705 §3.2)
        )

    def _next_hop_self(self, fam: Family, facts: SessionFacts) -> tuple[Address, ...]:
        """Our next hop for ``fam`` on this session: the session's own address family,
        except that IPv4 routes over an IPv6 session with extended next hop take the
        IPv6 next hop (RFC 8950 §1: an unnumbered link has no IPv4 address to give)."""
        v6_session = isinstance(facts.local_address, IPv6Address) or facts.link_local is not None
        if fam is Family.IPV4_UNICAST and not (facts.extended_nexthop and v6_session):
            return (facts.local_address,) if isinstance(facts.local_address, IPv4Address) else ()
        glob = facts.local_address6
        if glob is None and isinstance(facts.local_address, IPv6Address):
            glob = facts.local_address
        # RFC 2545 §3: global first, then link-local; link-local alone when that is all.
        return tuple(a for a in (glob, facts.link_local) if a is not None)

    def _new_group(
        self, st: PeerState, fam: Family, facts: SessionFacts, gkey: tuple[Any, ...]
    ) -> UpdateGroup:
        exporter = Exporter(
            fam,
            gkey[2],
            st.policy.export_policy,
            local_as=gkey[11],
            router_id=self.settings.router_id,
            cluster_id=self.cluster_id,
            reflector=self.reflector,
            next_hop_self=gkey[4],
            keep_next_hop=st.policy.keep_original_next_hop,
            mode=gkey[8],
            llgr=gkey[9],
            extended_nexthop=gkey[10],
        )
        deferred = self.deferred
        g = new_group(
            gkey,
            fam,
            exporter,
            as4=facts.as4,
            max_len=facts.max_message_len,
            add_path=gkey[6],
            blocked=lambda: fam in deferred,
            loc=self.loc[fam],
        )
        # A new group starts from the whole table.
        g.dirty.update(self.loc[fam])
        self.groups[gkey] = g
        return g

    def _join(self, st: PeerState, fam: Family, facts: SessionFacts) -> None:
        gkey = self._group_key(st, fam, facts)
        g = self.groups.get(gkey) or self._new_group(st, fam, facts, gkey)
        m = Member(st.policy.key, fam, source=st.source)
        g.join(m)
        st.members[fam] = m

    def _leave(self, g: UpdateGroup, m: Member) -> None:
        """Leave ``g``; a group nobody reads any more is dropped (its Adj-RIB-Out too)."""
        g.leave(m)
        if not g.members and self.groups.get(g.key) is g:
            del self.groups[g.key]

    # ------------------------------------------------------------------ policy changes

    def set_export_mode(self, mode: ExportMode) -> None:
        """Tell every peer the table in ``mode`` from now on (RFC 8326 drain and undrain).

        The mode is part of every update group's key, so each member moves to
        the group of the new mode as on an export policy change, and its peer
        gets the difference: with ``GRACEFUL_SHUTDOWN`` every route again, now
        tagged; with ``WITHDRAW_ALL`` a withdrawal of everything; back to
        ``NORMAL`` every route untagged. Peers that come up later join the
        groups of the current mode.
        """
        if mode is self.export_mode:
            return
        reconfigure.change_export_mode(self, mode)
        self.flush()

    def caught_up(self, key: str) -> bool:
        """Every UPDATE due to the peer has been handed to its session (nothing pending)."""
        st = self.peers.get(key)
        return st is not None and all(m.idle for m in st.members.values())

    def originated_to(self, key: str) -> dict[Family, list[bytes]]:
        """The locally originated prefixes the peer is told of now, per family (a scan)."""
        st = self.peers.get(key)
        out: dict[Family, list[bytes]] = {}
        if st is None or not st.up:
            return out
        for fam, m in st.members.items():
            g = m.group
            if g is None or fam in self.deferred:
                continue
            keys = []
            for k, e in self.loc[fam].items():
                best = best_of(e)
                if best is not None and best.local and g.exporter.out(best, k) is not None:
                    keys.append(k)
            out[fam] = keys
        return out

    def set_policy(self, key: str, policy: PeerPolicy) -> None:
        """A peer's policies changed at run time (reload): apply them without a reset.

        Import: with ``soft_reconfiguration`` the stored pre-policy routes go
        through the new policy now (newly rejected ones are withdrawn from the
        Loc-RIB, newly accepted ones added); otherwise cached verdicts are
        dropped and the caller sends a ROUTE-REFRESH (RFC 2918): each route the
        peer re-sends is judged by the new policy, and one it rejects withdraws
        the peer's earlier path for that prefix. Export: the peer moves to the
        update group of its new policy and receives only the difference
        (``Member.switch``). Identity (address, AS, RR client) cannot change:
        that needs ``remove_peer``/``add_peer`` and a new session.
        """
        st = self.peers.get(key)
        if st is None:
            self.add_peer(policy)
            return
        reconfigure.change_policy(self, st, policy)
        self.flush()

    def groups_of(self, fam: Family) -> list[UpdateGroup]:
        """The update groups of one family."""
        return [g for g in self.groups.values() if g.family is fam]

    # ------------------------------------------------------------------ inbound

    def receive(
        self,
        key: str,
        family: Family,
        withdrawn: Iterable[bytes] = (),
        attrs: PathAttributes | None = None,
        announced: list[bytes] | None = None,
        add_path: bool = False,
    ) -> None:
        """Apply one UPDATE's worth of one family (call ``flush`` after a batch).

        ``withdrawn``/``announced`` are compact NLRI; with ``add_path`` each
        starts with its 4-octet path identifier (RFC 7911 §3).
        """
        st = self.peers[key]
        if not st.up or st.over_limit or family in st.disabled:
            return
        if st.policy.soft_reconfiguration:
            if not isinstance(withdrawn, list | tuple):
                withdrawn = list(withdrawn)
            self._keep_pre_policy(st, family, withdrawn, attrs, announced, add_path)
        if add_path:
            self._receive_add_path(st, family, withdrawn, attrs, announced or [])
            return
        if withdrawn:
            self._withdraw(st, family, st.source.slot(0), withdrawn)
        if attrs is not None and announced:
            self._apply(st, family, attrs, announced)
            limit = st.policy.max_prefixes
            if limit and st.total > limit:
                self._over_limit(st, limit)

    def receive_updates(self, key: str, updates: Iterable[Any], now: float = 0.0) -> None:
        """Apply a run of decoded UPDATEs (``bgp.wire.Update``) from one peer, then flush.

        The same as ``receive`` per family of each UPDATE (and ``flush_family``
        for an RFC 7606 AFI/SAFI disable), with the common case — IPv4 routes
        announced with a known attribute set by a peer without ADD-PATH, soft
        reconfiguration or a prefix-dependent import policy — taken without the
        per-call checks: a full table arrives in ~140,000 such UPDATEs.
        """
        self.now = max(self.now, now)
        st = self.peers[key]
        receive = self.receive
        cache = st.imports.get(_V4)
        if cache is None:
            cache = st.imports[_V4] = {}
        pol = st.policy
        limit = pol.max_prefixes
        simple = not pol.soft_reconfiguration and not pol.import_policy.prefix_dependent
        plain = simple and st.up and not st.over_limit and _V4 not in st.disabled
        for u in updates:
            ap = u.add_path
            reach = u.reach
            attrs = u.attrs
            if plain and not u.action and not ap and not u.unreach and attrs is not None:
                keys = reach.get(_V4)
                if keys is not None and len(reach) == 1:
                    hit = cache.get(id(attrs))
                    path: Path | inbound.Handled | None
                    if hit is not None and hit[0] is attrs:
                        path = hit[1]
                    else:
                        path = inbound.judge(self, st, _V4, 0, attrs, keys)
                        cache = st.imports[_V4]
                    if path is None:
                        self._withdraw(st, _V4, st.source.slot(0), keys)
                        continue
                    if isinstance(path, Path):  # (never PER_PREFIX: the policy is ``simple``)
                        self._announce(st, _V4, path, keys)
                    if limit and st.total > limit:
                        self._over_limit(st, limit)
                        plain = False
                    continue
            if u.action == Action.AFI_SAFI_DISABLE and u.disabled is not None:
                self.flush_family(key, u.disabled, now)
                plain = False
            for fam, items in u.unreach.items():
                if items:
                    receive(key, fam, items, None, None, fam in ap)
            if attrs is not None:
                for fam, items in reach.items():
                    receive(key, fam, (), attrs, items, fam in ap)
            # What the general way did may have ended the session or disabled IPv4.
            plain = simple and st.up and not st.over_limit and _V4 not in st.disabled
        self.flush()

    def _apply(
        self, st: PeerState, family: Family, attrs: PathAttributes, keys: list[bytes]
    ) -> None:
        """Import ``keys`` announced with ``attrs``; rejected ones withdraw the peer's path."""
        path = inbound.judge(self, st, family, 0, attrs, keys)
        if path is None:
            self._withdraw(st, family, st.source.slot(0), keys)
        elif isinstance(path, Path):  # (PER_PREFIX: handled already)
            self._announce(st, family, path, keys)

    @staticmethod
    def _keep_pre_policy(
        st: PeerState,
        family: Family,
        withdrawn: Iterable[bytes],
        attrs: PathAttributes | None,
        announced: list[bytes] | None,
        add_path: bool,
    ) -> None:
        """Soft reconfiguration: remember routes as received, before import policy."""
        pre = st.pre_policy.get(family)
        if pre is None:
            pre = st.pre_policy[family] = {}
        if add_path:
            st.pre_add_path.add(family)
        for k in withdrawn:
            pre.pop(k, None)
        if attrs is not None and announced:
            pre.update(dict.fromkeys(announced, attrs))

    def _over_limit(self, st: PeerState, limit: int) -> None:
        """RFC 4271 §6.7 / RFC 4486 §4: Cease, Maximum Number of Prefixes Reached."""
        st.over_limit = True
        self.max_prefix_exceeded(st.policy.key, limit)

    def _announce(self, st: PeerState, family: Family, path: Path, keys: list[bytes]) -> None:
        """Put ``path`` in the table for ``keys`` (replacing the same slot's older path)."""
        loc = self.loc[family]
        before = len(loc)
        # One table operation per prefix, in C: a new prefix gets ``path`` now.
        olds = list(map(loc.setdefault, keys, repeat(path)))
        added = len(loc) - before
        if added == len(keys):
            # Fast path, all new prefixes (a table being learned).
            self._batches[family].announce_new(path, keys)
            st.counts[family] = st.counts.get(family, 0) + added
            return
        self._announce_rest(st, family, path, keys, olds, added)

    def _announce_rest(
        self,
        st: PeerState,
        family: Family,
        path: Path,
        keys: list[bytes],
        olds: list[Entry],
        inserted: int,
    ) -> None:
        """``_announce`` after the bulk ``setdefault`` when some prefixes were known:
        ``olds`` is what it returned, ``inserted`` how many prefixes it added."""
        batch = self._batches[family].changes()
        changed, old_d = batch.changed, batch.old
        loc = self.loc[family]
        added = inserted
        slot = path.slot
        # The prefixes inserted above are the table's last ``inserted`` (insertion order).
        fresh = set(islice(reversed(loc), inserted)) if inserted else _EMPTY
        for k, first in zip(keys, olds, strict=True):
            if first is path:
                # New (set above; repeated in the UPDATE too) or unchanged.
                if k in fresh:
                    changed[k] = path
                continue
            old = loc[k]  # not ``first``: the prefix may repeat in ``keys``
            if old is path:
                continue
            new: Entry
            if isinstance(old, Path):
                if old.slot is slot:
                    new = path
                else:
                    new = self._pair(old, path)
                    added += 1
            else:
                hit = old.trans.get(path)
                new = self._with(old, path) if hit is None else cast(Entry, hit)
                if slot not in old.by_slot:
                    added += 1
            if k not in changed:
                old_d[k] = old
            loc[k] = changed[k] = new
        if added:
            st.counts[family] = st.counts.get(family, 0) + added

    def _withdraw(
        self, st: PeerState | None, family: Family, slot: Slot, keys: Iterable[bytes]
    ) -> None:
        """Remove ``slot``'s path for ``keys`` (unknown ones are ignored)."""
        loc = self.loc[family]
        if not isinstance(keys, list):
            keys = list(keys)
        before = len(loc)
        # Pop first (one table operation per prefix, in C); put back below whatever
        # was not only this slot's path. A repeated key pops None the second time.
        olds = list(map(loc.pop, keys, repeat(None)))
        removed = before - len(loc)
        distinct: set[Entry | None] = set(olds)
        distinct.discard(None)
        builder = self._batches[family]
        clean = removed == len(keys)  # every key was in the table, once
        if all(o.__class__ is Path and o.slot is slot for o in distinct):
            # Fast path: every entry was only ours. As the batch's first change it is
            # kept as it came; otherwise each prefix is now gone.
            # (``clean``: every key popped an entry, so ``olds`` holds no None.)
            kept = clean and builder.withdraw_only(
                keys, cast(list[Path], olds), cast(set[Path], distinct)
            )
            if not kept:
                batch = builder.changes()
                _note_old(batch, keys, olds, clean)
                batch.changed.update(dict.fromkeys(keys))
        else:
            batch = builder.changes()
            removed -= self._withdraw_shared(loc, batch, slot, keys, olds)
        if removed and st is not None:
            st.counts[family] = st.counts.get(family, 0) - removed

    def _withdraw_shared(
        self,
        loc: dict[bytes, Entry],
        batch: Changed,
        slot: Slot,
        keys: list[bytes],
        olds: list[Entry | None],
    ) -> int:
        """Finish a withdrawal where some popped entries hold other paths: put back
        the ones without ``slot``, the rest without ``slot``'s path; returns how many
        popped entries were put back untouched."""
        changed, old_d = batch.changed, batch.old
        kept = 0
        for k, old in zip(keys, olds, strict=True):
            if old is None:
                continue
            if isinstance(old, Path):
                if old.slot is slot:
                    if k not in changed:
                        old_d[k] = old
                    changed[k] = None
                else:
                    loc[k] = old
                    kept += 1
                continue
            if slot not in old.by_slot:
                loc[k] = old
                kept += 1
                continue
            if k not in changed:
                old_d[k] = old
            hit = old.trans.get(slot)
            loc[k] = changed[k] = self._without(old, slot) if hit is None else cast(Entry, hit)
        return kept

    # ------------------------------------------------------------------ decision memo

    def _ranked_of(self, paths: list[Path]) -> Entry:
        if len(paths) == 1:
            return paths[0]
        fs = frozenset(paths)
        r = self._ranked.get(fs)
        if r is None:
            if len(self._ranked) > 200_000:
                self._ranked.clear()
            r = rank(paths, self.settings.max_paths, self.settings.always_compare_med)
            self._ranked[fs] = r
        return r

    def _pair(self, a: Path, b: Path) -> Entry:
        r = self._pairs.get((a, b))
        if r is None:
            if len(self._pairs) > 200_000:
                self._pairs.clear()
            r = self._pairs[(a, b)] = self._ranked_of([a, b])
        return r

    def _with(self, r: Ranked, path: Path) -> Entry:
        paths = [p for p in r.paths if p.slot is not path.slot]
        paths.append(path)
        new = self._ranked_of(paths)
        if len(r.trans) < 64:
            r.trans[path] = new
        return new

    def _without(self, r: Ranked, slot: Slot) -> Entry:
        new = self._ranked_of([p for p in r.paths if p.slot is not slot])
        if len(r.trans) < 64:
            r.trans[slot] = new
        return new

    # ------------------------------------------------------------------ ADD-PATH receive

    def _receive_add_path(
        self,
        st: PeerState,
        family: Family,
        withdrawn: Iterable[bytes],
        attrs: PathAttributes | None,
        announced: list[bytes],
    ) -> None:
        """RFC 7911 §3: each NLRI names its path; group by path id and reuse the per-UPDATE path."""
        by_id: dict[int, list[bytes]] = {}
        for n in withdrawn:
            by_id.setdefault(int.from_bytes(n[:4], "big"), []).append(n[4:])
        for pid, keys in by_id.items():
            self._withdraw(st, family, st.source.slot(pid), keys)
        if attrs is None or not announced:
            return
        by_id = {}
        for n in announced:
            by_id.setdefault(int.from_bytes(n[:4], "big"), []).append(n[4:])
        for pid, keys in by_id.items():
            path = inbound.judge(self, st, family, pid, attrs, keys)
            if path is None:
                self._withdraw(st, family, st.source.slot(pid), keys)
            elif isinstance(path, Path):  # (PER_PREFIX: handled already)
                self._announce(st, family, path, keys)
        limit = st.policy.max_prefixes
        if limit and st.total > limit:
            self._over_limit(st, limit)

    # ------------------------------------------------------------------ batch end

    def set_best_listener(self, listener: FibCallback | None) -> None:
        """Replace the callback told each batch's best-path changes (given as ``fib`` at
        construction): the daemon adds a ``watch`` stream's listener while one is open."""
        self.fib = listener

    def flush(self) -> None:
        """End of a batch: mark changed prefixes dirty in update groups, tell the FIB."""
        deferred = self.deferred
        for fam, builder in self._batches.items():
            batch = builder.take()
            if batch is None or fam in deferred:
                continue  # deferred: selected in full when the deferral ends
            if self.fib is not None:
                self.fib(fam, batch.fib_changes())
            groups = self.groups_of(fam)
            for g in groups:
                # The last group may keep the batch's dicts: nobody else reads them any more.
                g.mark(batch, g is groups[-1])
            self._wake_idle(groups)

    def _wake_idle(self, groups: list[UpdateGroup]) -> None:
        """Wake the idle members of ``groups``: they have something to pull."""
        for g in groups:
            for m in g.members:
                if m.idle:
                    m.idle = False
                    self.wake(m.peer_key)

    # ------------------------------------------------------------------ outbound

    def pull(self, key: str, max_bytes: int = 65536) -> list[bytes]:
        """Encoded UPDATEs for one peer, about ``max_bytes``; empty when nothing is pending."""
        st = self.peers.get(key)
        if st is None or not st.up:
            return []
        out: list[bytes] = []
        size = 0
        for m in st.members.values():
            if size >= max_bytes:
                break
            blobs = m.pull(max_bytes - size)
            out += blobs
            size += sum(len(b) for b in blobs)
        return out

    # ------------------------------------------------------------------ local routes

    def originate(
        self,
        prefix: str,
        *,
        communities: Iterable[int] = (),
        large_communities: Iterable[tuple[int, int, int]] = (),
        next_hop: Address | None = None,
        med: int | None = None,
        now: float | None = None,
    ) -> None:
        """Announce a local prefix (own block, borrowed /32, ``[[bgp.originate]]``)."""
        if now is not None:
            self.now = max(self.now, now)
        family, key = key_from_network(prefix)
        attrs = PathAttributes(
            origin=int(Origin.IGP),
            as_path=(),
            med=med,
            communities=tuple(sorted(set(communities))),
            large_communities=tuple(sorted(set(large_communities))),
        )
        if next_hop is not None:
            attrs = attrs.with_next_hop(family, next_hop)
        path = inbound.intern_path(self, self.local.slot(0), attrs, family)
        self._announce_local(family, path, [key])
        self.flush()

    def _announce_local(self, family: Family, path: Path, keys: list[bytes]) -> None:
        st = PeerState(PeerPolicy(IPv4Address(0), self.settings.local_as), self.local)
        self._announce(st, family, path, keys)

    def withdraw_originated(self, prefix: str) -> None:
        """Stop announcing a local prefix."""
        family, key = key_from_network(prefix)
        self._withdraw(None, family, self.local.slot(0), [key])
        self.flush()

    def flush_family(self, key: str, family: Family, now: float = 0.0) -> None:
        """AFI/SAFI disable (RFC 4760 §7, RFC 7606 §2 and §7.11): drop every route of
        ``family`` from the peer and ignore the family's later routes from it until
        the session ends (``peer_up`` of the next session accepts them again).

        Stale routes of the family go too, and selection deferral no longer waits
        for the family's End-of-RIB from this peer.
        """
        self.now = max(self.now, now)
        st = self.peers.get(key)
        if st is None or not st.up:
            return
        st.disabled.add(family)
        self._sweep(st, {family}, everything=True)
        st.imports.pop(family, None)
        if family in st.stale:
            st.stale.discard(family)
            st.llgr.pop(family, None)
            if not st.stale:
                st.stale_deadline = None
        restart.check_deferral(self, now)
        self.flush()
        self._note_eor()

    # ------------------------------------------------------------------ GR, refresh, timers

    def end_of_rib(self, key: str, family: Family, now: float = 0.0) -> None:
        """RFC 4724 §4.2: the peer's End-of-RIB sweeps its stale routes of ``family``."""
        st = self.peers.get(key)
        if st is None:
            return
        restart.end_of_rib(self, st, family)
        restart.check_deferral(self, now)
        self.flush()
        self._note_eor()

    def route_refresh(self, key: str, family: Family, subtype: int, now: float = 0.0) -> None:
        """ROUTE-REFRESH from a peer: resend (subtype 0), or BoRR/EoRR (RFC 7313 §4)."""
        self.now = max(self.now, now)
        st = self.peers.get(key)
        if st is None or not st.up:
            return
        if subtype == 0:
            m = st.members.get(family)
            if m is not None and m.group is not None:
                enhanced = st.facts is not None and st.facts.enhanced_refresh
                m.start_catch_up(m.group.catch_keys(), enhanced_refresh=enhanced)
                m.idle = False
                self.wake(key)
        elif subtype == 1:  # BoRR: everything before it is stale until EoRR
            self._new_generation(st, {family})
            st.stale.add(family)
            st.stale_deadline = now + self.settings.stale_time
        elif subtype == 2:  # EoRR
            if family in st.stale:
                self._sweep(st, {family})
                st.stale.discard(family)
            self.flush()

    def get_timer(self) -> float | None:
        """The earliest deadline (GR restart/stale timers, deferral), or None."""
        return restart.next_deadline(self)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that has passed (``rib.restart``)."""
        self.now = max(self.now, now)
        restart.fire(self, now)
        self.flush()

    def _sweep(self, st: PeerState, families: set[Family], everything: bool = False) -> None:
        """Remove the peer's stale paths (all of them with ``everything``) from ``families``."""
        src = st.source
        for fam in families:
            gen = src.gens.get(fam, 0)
            loc = self.loc[fam]
            by_slot: dict[Slot, list[bytes]] = {}
            for k, e in loc.items():
                if isinstance(e, Path):
                    if e.source is src and (everything or e.gen < gen):
                        by_slot.setdefault(e.slot, []).append(k)
                    continue
                for p in e.paths:
                    if p.source is src and (everything or p.gen < gen):
                        by_slot.setdefault(p.slot, []).append(k)
            for slot, keys in by_slot.items():
                self._withdraw(st, fam, slot, keys)
            if everything:
                st.counts[fam] = 0
                st.pre_policy.pop(fam, None)

    # ------------------------------------------------------------------ queries

    def advertised(self, key: str) -> dict[Family, int]:
        """Prefixes the peer is currently told of, per family: its update group's
        Adj-RIB-Out less the peer's own routes where split horizon applies. A few
        dict lookups (the group keeps per-source counts); empty while the peer is down.
        """
        st = self.peers.get(key)
        if st is None or not st.up:
            return {}
        return {
            fam: m.group.advertised_to(m.source)
            for fam, m in st.members.items()
            if m.group is not None
        }

    def best(self, family: Family, key: bytes) -> Path | None:
        """The best path of one prefix, or None."""
        e = self.loc[family].get(key)
        if e is None:
            return None
        return best_of(e)

    def nexthops(self, family: Family, key: bytes) -> tuple[bytes, ...]:
        """The ECMP next hops of one prefix (empty: no usable route)."""
        return nexthops_of(self.loc[family].get(key))


def _note_old(batch: Changed, keys: list[bytes], olds: list[Entry | None], clean: bool) -> None:
    """Remember the entries ``keys`` had before this batch (update groups compare
    with them). ``clean``: every key was in the table once (no repeats)."""
    changed, old_d = batch.changed, batch.old
    if clean and (not changed or changed.keys().isdisjoint(keys)):
        old_d.update(zip(keys, cast(list[Entry], olds), strict=True))
        return
    for k, o in zip(keys, olds, strict=True):
        if o is not None and k not in changed and k not in old_d:
            old_d[k] = o
