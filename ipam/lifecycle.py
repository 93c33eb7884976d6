"""Node lifecycle: a node's registry record is held by a lease; a node that stops
renewing it is lapsed, then gone, then removed.

Keys (beside the registry's ``/podbgp/v1/nodes/<node>``)::

    /podbgp/v1/lifecycle/live/<node>    bound to the daemon's lease: present while it runs
    /podbgp/v1/lifecycle/state/<node>   {"leased", "cordoned", "lapsed_at", "removed_at"}
    /podbgp/v1/lifecycle/released/<node>  what its removal released: [{"address", "allocation"}]

The registry record itself is not bound to the lease: it must outlive the
lease by the graceful-restart time, during which the other nodes keep the
node's routes and sessions (RFC 4724 §4.2). The lease only says "this node's
daemon is running". A daemon that starts grants a new lease and puts its live
key with it; that detaches the key from the lease of the run before, so a
restart -- SIGTERM, or kill -9 and a start within the grace -- never shows
as the node leaving: the daemon never revokes its lease on the way out, and
a start clears ``lapsed_at``.

Phases (`Phase`, decided by `phase`, a pure function of the records and the
time):

* LIVE -- the live key is there;
* UNLEASED -- no daemon has ever held a lease for the node (a record written
  by an older podbgp, or by hand): treated as live, never taken out;
* LAPSED -- the lease expired; the first node to notice writes ``lapsed_at``
  (a CAS, so one of them does). Nothing changes yet;
* GONE -- lapsed for longer than `Timing.gone_after` (the graceful-restart
  time plus a grace): every other node leaves it out of its mesh, VXLAN
  neighbour/FDB entries and kernel routes;
* REMOVED -- lapsed for longer than `Timing.remove_after` (``node_gone_after``)
  and removed by `reap`, or removed by ``podbgp node remove``: the registry
  record is deleted, a tombstone (``removed_at``) stays in the state key and
  IPAM releases the node's blocks and addresses.

A removed node can come back: a partition longer than ``node_gone_after``,
or a node removed by hand while its daemon was stopped. Its pods may still
be running with addresses IPAM has since released. So a removal keeps what
it released (the ``released`` key, `release_node`), and a node
that holds its lease again takes back the addresses of the pods whose
namespaces still exist, under their own handles, and names any that another
pod got meanwhile (`ipam.rejoin.restore_pods`).

Only one node reaps: the live node with the smallest name. Another node that
thinks otherwise for a moment is harmless -- removal is one CAS transaction
that compares the registry record, the state key and the absence of the live
key, so exactly one remover wins and only the winner releases and logs.

Times in ``lapsed_at`` and ``removed_at`` are wall-clock seconds of the node
that wrote them; the gone and remove thresholds are minutes and more, so a
few seconds of clock skew between nodes only move them by that much.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ipam.model import ROOT, IpamError, RemovalSuperseded, dumps, loads
from ipam.nodes import NODES, Node, node_key
from ipam.store.base import (
    Compare,
    Delete,
    KeyValue,
    LeaseExpired,
    Op,
    Put,
    Store,
    StoreError,
    StoreIdentityError,
    WatchCompacted,
)

if TYPE_CHECKING:
    from ipam.allocator import Ipam, Released

log = logging.getLogger(__name__)

LIFECYCLE = ROOT + "lifecycle/"
LIVE = LIFECYCLE + "live/"
STATE = LIFECYCLE + "state/"
RELEASED = LIFECYCLE + "released/"


def live_key(name: str) -> str:
    return LIVE + quote(name, safe="")


def state_key(name: str) -> str:
    return STATE + quote(name, safe="")


def released_key(name: str) -> str:
    return RELEASED + quote(name, safe="")


class NodeError(IpamError):
    """A node operation was refused (unknown node, live lease, conflicting writes)."""


class Phase(Enum):
    LIVE = "live"
    UNLEASED = "unleased"
    LAPSED = "lapsed"
    GONE = "gone"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Timing:
    """When a lapsed node is taken out (`gone_after`) and removed (`remove_after`), and when a
    removed node's tombstone and record of what its removal released are dropped
    (`forget_after`, counted from the removal; 0: never), in seconds."""

    gone_after: float
    remove_after: float
    forget_after: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeState:
    """The state key: has a daemon ever held a lease, cordon, when it lapsed or was removed."""

    leased: bool = False
    cordoned: bool = False
    lapsed_at: float | None = None
    removed_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "leased": self.leased,
            "cordoned": self.cordoned,
            "lapsed_at": self.lapsed_at,
            "removed_at": self.removed_at,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NodeState:
        def when(v: Any) -> float | None:
            return None if v is None else float(v)

        return cls(
            leased=bool(d.get("leased", False)),
            cordoned=bool(d.get("cordoned", False)),
            lapsed_at=when(d.get("lapsed_at")),
            removed_at=when(d.get("removed_at")),
        )


@dataclass(frozen=True, slots=True)
class Liveness:
    """The live key's value: which lease, its TTL, since when (wall clock) and which process."""

    lease: int
    ttl: int
    since: float
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {"lease": self.lease, "ttl": self.ttl, "since": self.since, "pid": self.pid}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Liveness:
        return cls(int(d["lease"]), int(d["ttl"]), float(d["since"]), int(d.get("pid", 0)))


@dataclass(frozen=True, slots=True)
class Member:
    """Everything the store says about one node."""

    name: str
    node: Node | None
    state: NodeState
    live: Liveness | None

    def phase(self, now: float, timing: Timing) -> Phase:
        return phase(self.state, self.live, now, timing)

    def to_json(self, now: float, timing: Timing) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase(now, timing).value,
            "cordoned": self.state.cordoned,
            "lapsed_at": self.state.lapsed_at,
            "removed_at": self.state.removed_at,
            "lease": None if self.live is None else self.live.to_json(),
            "node": None if self.node is None else self.node.to_json(),
        }


def phase(state: NodeState, live: Liveness | None, now: float, timing: Timing) -> Phase:
    """The node's phase (module docstring); pure, so it is tested as a table."""
    if state.removed_at is not None and live is None:
        return Phase.REMOVED
    if live is not None:
        return Phase.LIVE
    if not state.leased:
        return Phase.UNLEASED
    if state.lapsed_at is not None and now - state.lapsed_at >= timing.gone_after:
        return Phase.GONE
    return Phase.LAPSED


def next_deadline(members: Mapping[str, Member], timing: Timing, after: float) -> float | None:
    """The earliest wall-clock time past `after` at which some member's phase moves on by
    time alone (gone, or due for removal)."""
    times: list[float] = []
    for m in members.values():
        lapsed = m.state.lapsed_at
        if m.live is None and m.state.leased and lapsed is not None and m.state.removed_at is None:
            times += [lapsed + timing.gone_after, lapsed + timing.remove_after]
    return min((t for t in times if t > after), default=None)


def present(members: Mapping[str, Member], now: float, timing: Timing) -> dict[str, Node]:
    """The registry records of the nodes that are not gone: what the mesh and FDB are built from."""
    out: dict[str, Node] = {}
    for name, m in members.items():
        if m.node is not None and m.phase(now, timing) not in (Phase.GONE, Phase.REMOVED):
            out[name] = m.node
    return out


def reaper(members: Mapping[str, Member], now: float, timing: Timing) -> str | None:
    """The node that removes nodes lapsed for too long: the live node with the smallest name."""
    live = sorted(n for n, m in members.items() if m.phase(now, timing) is Phase.LIVE)
    return live[0] if live else None


class Lifecycle:
    """Read and change node lifecycle records in `store` (module docstring)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # -- reading --------------------------------------------------------------------------
    async def members(self) -> dict[str, Member]:
        """Every node with a registry record, a live key or a state key."""
        nodes, _ = await self.store.list_prefix(NODES)
        lives, _ = await self.store.list_prefix(LIVE)
        states, _ = await self.store.list_prefix(STATE)
        return _members(nodes, lives, states)

    async def member(self, name: str) -> Member | None:
        kvs = await self.store.get_many([node_key(name), live_key(name), state_key(name)])
        if all(kv is None for kv in kvs):
            return None
        return _members(*([kv] if kv else [] for kv in kvs))[name]

    async def watch(self) -> AsyncIterator[dict[str, Member]]:
        """The members now, then again after every change to the registry or lifecycle keys."""
        while True:
            nodes, rev = await self.store.list_prefix(NODES)
            lives, _ = await self.store.list_prefix(LIVE)
            states, rev2 = await self.store.list_prefix(STATE)
            raw = {kv.key: kv for kv in [*nodes, *lives, *states]}
            yield _members(nodes, lives, states)
            try:
                async for batch in self.store.watch(ROOT, min(rev, rev2) + 1):
                    touched = [ev for ev in batch if _ours(ev.key)]
                    for ev in touched:
                        if ev.value:
                            raw[ev.key] = KeyValue(ev.key, ev.value, 0, ev.mod_revision)
                        else:
                            raw.pop(ev.key, None)
                    if touched:
                        yield _members(*_split(raw.values()))
            except WatchCompacted:
                await asyncio.sleep(0)

    async def watch_timed(self, timing: Timing) -> AsyncIterator[dict[str, Member]]:
        """`watch`, and the members again whenever a lapsed node's phase moves on by time alone."""
        queue: asyncio.Queue[dict[str, Member] | BaseException] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for members in self.watch():
                    queue.put_nowait(members)
            except BaseException as exc:  # handed to the reader, who raises it
                queue.put_nowait(exc)

        task = asyncio.ensure_future(pump())
        try:
            members: dict[str, Member] = {}
            while True:
                deadline = next_deadline(members, timing, self.clock())
                wait = None if deadline is None else max(deadline - self.clock(), 0) + 0.05
                try:
                    got = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    yield members  # same records, later time
                    continue
                if isinstance(got, BaseException):
                    raise got
                members = got
                yield members
        finally:
            task.cancel()

    # -- holding the lease ------------------------------------------------------------------
    async def hold(self, name: str, ttl: int) -> Liveness:
        """Grant a lease and put this node's live key with it; clears ``lapsed_at`` and a tombstone."""
        lease = await self.store.grant_lease(ttl)
        live = Liveness(lease, ttl, self.clock(), os.getpid())
        for _ in range(50):
            skv = await self.store.get(state_key(name))
            state = _state(skv)
            new = replace(state, leased=True, lapsed_at=None, removed_at=None)
            ops: list[Op] = [Put(live_key(name), dumps(live.to_json()), lease)]
            if new != state or skv is None:
                ops.append(Put(state_key(name), dumps(new.to_json())))
            compare = [Compare(state_key(name), 0 if skv is None else skv.mod_revision)]
            if (await self.store.txn(compare, ops)).succeeded:
                if state.removed_at is not None:
                    log.warning(
                        "node %s was removed from the cluster while it was away (its blocks "
                        "and addresses were released); its pods that still run take their "
                        "addresses back (ipam.rejoin)",
                        name,
                    )
                return live
        raise NodeError(f"node {name}: lifecycle write kept conflicting")

    async def keep(self, name: str, live: Liveness, on_renewed: Callable[[Liveness], None]) -> None:
        """Keep the lease alive for ever (a third of the TTL apart); re-hold it if it ran out.

        A lease runs out under this loop only when the process could not reach
        the store for a whole TTL (or was stopped that long): the node then
        lapses like a dead one, which is the truth the others saw, and the next
        successful renewal holds a fresh lease."""
        period = max(live.ttl / 3, 0.2)
        while True:
            await asyncio.sleep(period)
            try:
                if await self.store.keep_alive(live.lease) > 0:
                    continue
                log.warning("node %s: lease %x expired (the store was out of reach for %d s); "
                            "holding a new one", name, live.lease, live.ttl)  # fmt: skip
                live = await self.hold(name, live.ttl)
                on_renewed(live)
            except StoreIdentityError:
                raise  # the store vanished or was replaced: the daemon says so once and waits
            except (StoreError, NodeError, LeaseExpired) as exc:
                log.warning("node %s: lease renewal: %s", name, exc)
                period = max(live.ttl / 6, 0.2)
                continue
            period = max(live.ttl / 3, 0.2)

    # -- changes by observers and operators -------------------------------------------------
    async def mark_lapsed(self, name: str) -> bool:
        """Record when a leased node's live key was first seen missing (CAS: one observer wins)."""
        skv, lkv = await self.store.get_many([state_key(name), live_key(name)])
        state = _state(skv)
        if skv is None or lkv is not None or not state.leased or state.lapsed_at is not None:
            return False
        new = replace(state, lapsed_at=self.clock())
        ok = await self.store.txn(
            [Compare(skv.key, skv.mod_revision), Compare(live_key(name), 0)],
            [Put(skv.key, dumps(new.to_json()))],
        )
        return ok.succeeded

    async def cordon(self, name: str, on: bool) -> bool:
        """Set or clear the cordon; returns whether it changed. `NodeError` for an unknown node."""
        for _ in range(50):
            nkv, skv = await self.store.get_many([node_key(name), state_key(name)])
            if nkv is None:
                raise NodeError(f"node {name!r} is not registered")
            state = _state(skv)
            if state.cordoned == on:
                return False
            new = replace(state, cordoned=on)
            compare = [Compare(state_key(name), 0 if skv is None else skv.mod_revision)]
            if (
                await self.store.txn(compare, [Put(state_key(name), dumps(new.to_json()))])
            ).succeeded:
                return True
        raise NodeError(f"node {name}: lifecycle write kept conflicting")

    async def admission(self, name: str) -> Admission:
        """What IPAM asks before giving `name` a new block or a borrowed address."""
        skv, nkv = await self.store.get_many([state_key(name), node_key(name)])
        state = _state(skv)
        return Admission(state.cordoned, state.removed_at is not None and nkv is None)

    async def remove(self, name: str, force: bool = False) -> bool:
        """Delete the registry record and leave a tombstone, in one CAS.

        Refused (`NodeError`) while the node's lease is live unless `force`,
        which also deletes the live key. Returns False if another remover
        won (nothing to do then). IPAM's release of the node's blocks is the
        caller's next step (`reap` and ``podbgp node remove`` do it)."""
        nkv, lkv, skv = await self.store.get_many([node_key(name), live_key(name), state_key(name)])
        state = _state(skv)
        if nkv is None and (state.removed_at is not None or skv is None) and lkv is None:
            if skv is None:
                raise NodeError(f"node {name!r} is not registered")
            return False
        if lkv is not None and not force:
            raise NodeError(
                f"node {name!r} holds a live lease (its daemon is running); stop it first "
                "or use --force"
            )
        compares = [
            Compare(node_key(name), 0 if nkv is None else nkv.mod_revision),
            Compare(live_key(name), 0 if lkv is None else lkv.mod_revision),
            Compare(state_key(name), 0 if skv is None else skv.mod_revision),
        ]
        tomb = replace(state, removed_at=self.clock(), cordoned=False)
        ops: list[Op] = [Put(state_key(name), dumps(tomb.to_json()))]
        ops += [Delete(kv.key) for kv in (nkv, lkv) if kv is not None]
        return (await self.store.txn(compares, ops)).succeeded

    async def forget(self, name: str) -> bool:
        """Drop a tombstone and what the removal released (the node is not coming back), in
        one CAS: False if there is none, or the node came back meanwhile (its hold changed
        the state key), which keeps both."""
        skv, rkv = await self.store.get_many([state_key(name), released_key(name)])
        if skv is None or _state(skv).removed_at is None:
            return False
        compares = [
            Compare(skv.key, skv.mod_revision),
            Compare(released_key(name), 0 if rkv is None else rkv.mod_revision),
        ]
        ops: list[Op] = [Delete(kv.key) for kv in (skv, rkv) if kv is not None]
        return (await self.store.txn(compares, ops)).succeeded

    # -- what a removal released ------------------------------------------------------------
    async def note_released(self, name: str, freed: Iterable[Released]) -> None:
        """Add `freed` to what the node's removal released (CAS; a finished half-done
        removal adds to the first part)."""
        add = [r.to_json() for r in freed]
        if not add:
            return
        for _ in range(50):
            kv = await self.store.get(released_key(name))
            kept = [] if kv is None else _released_records(name, kv.value)
            seen = {d["address"] for d in kept}
            new = kept + [d for d in add if d["address"] not in seen]
            ops: list[Op] = [Put(released_key(name), dumps(new))]
            compare = [Compare(released_key(name), 0 if kv is None else kv.mod_revision)]
            if (await self.store.txn(compare, ops)).succeeded:
                return
        raise NodeError(f"node {name}: record of released addresses kept conflicting")

    async def released(self, name: str) -> tuple[list[dict[str, Any]], int]:
        """What the node's removal released (JSON records) and the key's revision (0: none)."""
        kv = await self.store.get(released_key(name))
        return ([], 0) if kv is None else (_released_records(name, kv.value), kv.mod_revision)

    async def drop_released(self, name: str, revision: int) -> bool:
        """Delete the record as read at `revision` (False: it changed meanwhile)."""
        return await self.store.delete_cas(released_key(name), revision)


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a node may get new blocks: cordoned (only from the blocks it has) or
    removed and not registered again (nothing at all)."""

    cordoned: bool
    removed: bool


def _released_records(name: str, value: bytes) -> list[dict[str, Any]]:
    """The records of a ``released`` key; what is not one (written by hand, cut short)
    is left out with a warning, never a traceback."""
    try:
        raw = loads(value)
    except ValueError:
        raw = None
    if not isinstance(raw, list):
        log.warning("node %s: the record of released addresses is not a list; ignored", name)
        return []
    good = [d for d in raw if isinstance(d, dict) and isinstance(d.get("address"), str)
            and isinstance(d.get("allocation"), dict)]  # fmt: skip
    if len(good) < len(raw):
        log.warning("node %s: %d unreadable entries in the record of released addresses "
                    "ignored", name, len(raw) - len(good))  # fmt: skip
    return good


def _ours(key: str) -> bool:
    return key.startswith(NODES) or key.startswith(LIFECYCLE)


def _split(kvs: Iterable[KeyValue]) -> tuple[list[KeyValue], list[KeyValue], list[KeyValue]]:
    nodes: list[KeyValue] = [kv for kv in kvs if kv.key.startswith(NODES)]
    lives = [kv for kv in kvs if kv.key.startswith(LIVE)]
    states = [kv for kv in kvs if kv.key.startswith(STATE)]
    return nodes, lives, states


def _state(kv: KeyValue | None) -> NodeState:
    return NodeState() if kv is None else NodeState.from_json(loads(kv.value))


def _members(nodes: Any, lives: Any, states: Any) -> dict[str, Member]:
    rec = {unquote(kv.key[len(NODES) :]): Node.from_json(loads(kv.value)) for kv in nodes}
    live = {unquote(kv.key[len(LIVE) :]): Liveness.from_json(loads(kv.value)) for kv in lives}
    st = {unquote(kv.key[len(STATE) :]): _state(kv) for kv in states}
    names = set(rec) | set(live) | set(st)
    return {n: Member(n, rec.get(n), st.get(n, NodeState()), live.get(n)) for n in sorted(names)}


async def release_node(lifecycle: Lifecycle, ipam: Ipam, name: str) -> list[Released] | None:
    """IPAM's part of a removal: release the node's addresses and blocks, and keep what
    was released for the node's return (`ipam.rejoin`).

    Only while the node is still removed: every write also compares its tombstone and
    the absence of its registry record and live key. A node that comes back registers
    first, so a remover working from an older view -- the reaper finishing a removal it
    believes half done -- stops (`RemovalSuperseded`, logged) instead of releasing the
    returning node's new block or the addresses its pods just took back. None: the node
    was no longer removed, nothing was released."""
    skv, nkv, lkv = await lifecycle.store.get_many(
        [state_key(name), node_key(name), live_key(name)]
    )
    if skv is None or _state(skv).removed_at is None or nkv is not None or lkv is not None:
        log.info("node %s is no longer removed (it came back): its blocks stay", name)
        return None
    guard = [Compare(skv.key, skv.mod_revision), Compare(node_key(name), 0),
             Compare(live_key(name), 0)]  # fmt: skip
    try:
        freed = await ipam.remove_node(name, guard)
    except RemovalSuperseded as exc:
        log.warning("node %s: removal stopped after %d addresses: %s", name, len(exc.released),
                    exc)  # fmt: skip
        freed = exc.released
    await lifecycle.note_released(name, freed)
    return freed


async def reap(
    lifecycle: Lifecycle,
    ipam: Ipam,
    me: str,
    members: Mapping[str, Member],
    timing: Timing,
) -> list[str]:
    """Remove the nodes lapsed for longer than `Timing.remove_after`, if `me` is the reaper.

    Also finishes a removal whose remover died between the tombstone and the
    release (a tombstoned node that still owns blocks). Returns the nodes whose
    blocks were released."""
    now = lifecycle.clock()
    if reaper(members, now, timing) != me:
        return []
    done: list[str] = []
    for name, m in members.items():
        lapsed = m.state.lapsed_at if m.state.lapsed_at is not None else now
        due = m.phase(now, timing) is Phase.GONE and now - lapsed >= timing.remove_after
        if due and await lifecycle.remove(name):
            freed = await release_node(lifecycle, ipam, name) or []
            log.warning("node %s: lease lapsed %.0f s ago (node_gone_after %.0f s): removed it, "
                        "released %d addresses and its blocks", name, now - lapsed,
                        timing.remove_after, len(freed))  # fmt: skip
            done.append(name)
    removed = {n for n, m in members.items() if m.phase(now, timing) is Phase.REMOVED}
    if removed - set(done):
        # One read of the affinities; addresses a removed node borrowed elsewhere are
        # the orphan repair's (ipam.consistency.repair_orphans).
        owners = {node for node, _ in await ipam.affinities()}
        for name in sorted((removed & owners) - set(done)):
            released = await release_node(lifecycle, ipam, name)
            if released is None:
                continue  # it came back since the view was taken
            log.warning("node %s was removed but still had blocks: released them and %d "
                        "addresses", name, len(released))  # fmt: skip
            done.append(name)
    await _forget_old(lifecycle, members, now, timing, removed - set(done))
    return done


async def _forget_old(
    lifecycle: Lifecycle, members: Mapping[str, Member], now: float, timing: Timing,
    removed: set[str],
) -> None:  # fmt: skip
    """Forget the nodes removed longer than `Timing.forget_after` ago (whose removal is
    finished: `removed` leaves out those whose blocks were released just now): their
    tombstones and records of what was released would otherwise stay for ever, one per
    node a cluster ever lost. A node that comes back after that starts afresh."""
    if timing.forget_after <= 0:
        return
    for name in sorted(removed):
        at = members[name].state.removed_at
        if at is not None and now - at >= timing.forget_after and await lifecycle.forget(name):
            log.info("node %s: removed %.1f days ago (node_forget_after %.1f days): forgot "
                     "it", name, (now - at) / 86400, timing.forget_after / 86400)  # fmt: skip
