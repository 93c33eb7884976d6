"""Property: leak reclaim never releases an address in use and reclaims every leak.

Random interleavings of what happens to pods on two nodes, against a real SQLite file:

* ADD -- the pod's namespace exists (a real file standing for it, with its identity),
  the real allocator gives it an address with the attributes the CNI plugin records;
* ADD killed between allocation and wiring -- allocated, never wired, no DEL yet (the
  runtime will retry or delete the sandbox: until then the namespace exists);
* DEL -- the address released by handle, then the namespace removed;
* the namespace deleted behind the plugin's back (no DEL ever comes);
* gc -- time moves on and node n1's daemon runs its leak check (`ipam.leaks`) and the
  reaper's orphan repair (`ipam.consistency.repair_orphans`).

Invariants after every step: every pod whose namespace exists still holds the address
it was given (same allocation, same sequence number); no address is held by two such
pods; n2's pods are never touched by n1's check. At the end, after the grace: every
address n1 still holds belongs to a pod whose namespace exists, and the store is
consistent (`Ipam.check`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ipam import Exhausted, Ipam, IpamConfig, Pool
from ipam.consistency import repair_orphans
from ipam.identity import init_cluster
from ipam.leaks import NETNS, NETNS_ID, LeakTracker, netns_alive, netns_id, reclaim_leaks
from ipam.store import OpenMode, open_store

CONFIG = IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/27", "block_size": 29}),))
GRACE = 5.0
NODES = ("n1", "n2")


@dataclass
class Pod:
    node: str
    netns: Path
    address: str = ""
    seq: int = 0
    deleted: bool = False  # DEL done


@dataclass
class World:
    dir: Path
    ipam: Ipam
    pods: dict[str, Pod] = field(default_factory=dict)
    now: float = 1000.0
    tracker: LeakTracker = field(default_factory=lambda: LeakTracker(GRACE))
    n: int = 0

    def existing(self) -> list[str]:
        return [c for c, p in self.pods.items() if p.netns.exists()]

    async def add(self, node: str) -> str | None:
        self.n += 1
        cid = f"c{self.n}"
        path = self.dir / cid
        path.write_text("")
        attrs = {NETNS: str(path), NETNS_ID: netns_id(str(path)), "node": node}
        self.ipam.clock = lambda: self.now
        try:
            got = await self.ipam.allocate(node, cid, attrs=attrs)
        except Exhausted:
            path.unlink()  # the runtime gives up and deletes the sandbox
            return None
        self.pods[cid] = Pod(node, path, str(got.address), got.seq)
        return cid

    async def delete(self, cid: str) -> None:
        await self.ipam.release_handle(cid)
        self.pods[cid].deleted = True
        self.pods[cid].netns.unlink(missing_ok=True)

    async def gc(self, dt: float) -> None:
        self.now += dt
        await reclaim_leaks(self.ipam, "n1", self.tracker, netns_alive, self.now)
        await repair_orphans(self.ipam, set())

    async def check(self) -> None:
        held = {str(a): (al.handle, al.seq) for b in await self.ipam.blocks() for a, al in b.held()}
        in_use = [c for c in self.existing() if not self.pods[c].deleted]
        for cid in in_use:
            p = self.pods[cid]
            assert held.get(p.address) == (cid, p.seq), f"{cid} ({p.node}) lost {p.address}"
        addrs = [self.pods[c].address for c in in_use]
        assert len(addrs) == len(set(addrs)), "one address on two live pods"


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(NODES), st.integers(0, 99)),
        st.tuples(st.just("add_killed"), st.sampled_from(NODES), st.integers(0, 99)),
        st.tuples(st.just("del"), st.just(""), st.integers(0, 99)),
        st.tuples(st.just("netns_delete"), st.just(""), st.integers(0, 99)),
        st.tuples(st.just("gc"), st.just(""), st.integers(0, 8)),
    ),
    min_size=1,
    max_size=30,
)


async def _run(dir: Path, ops: list[tuple[str, str, int]]) -> None:
    store = open_store(f"sqlite:{dir / 'podbgp.db'}", OpenMode.CREATE)
    await init_cluster(store)
    world = World(dir, Ipam(store, CONFIG))
    try:
        for op, node, k in ops:
            pick = world.existing()
            if op in ("add", "add_killed"):
                await world.add(node)  # killed or not, IPAM holds the address until DEL
            elif op == "del" and world.pods:
                await world.delete(sorted(world.pods)[k % len(world.pods)])
            elif op == "netns_delete" and pick:
                world.pods[pick[k % len(pick)]].netns.unlink()
            elif op == "gc":
                await world.gc(float(k))
            await world.check()
        # After the grace every leak of n1 is gone; n2's stay (its own daemon's job).
        await world.gc(0)
        await world.gc(GRACE)
        await world.check()
        for b in await world.ipam.blocks():
            for addr, al in b.held():
                pod = world.pods[al.handle]
                if al.node == "n1":
                    assert pod.netns.exists() and not pod.deleted, f"{addr} leaked"
        assert await world.ipam.check() == []
        assert all(ipaddress.ip_address(p.address) for p in world.pods.values())
    finally:
        await store.close()


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_leak_reclaim_over_random_interleavings(ops: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory(prefix="podbgp-leaks-") as d:
        asyncio.run(_run(Path(d), ops))
