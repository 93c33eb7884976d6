"""Property: however the store is lost, replaced or re-created, no address is held by two pods.

Random sequences of what a node's CNI plugin does (ADD and DEL for a few containers, each
call opening the store, joining it and running the real allocator, as `podbgp-cni` does)
interleaved with what goes wrong with the store in operation (the file deleted, moved
away and moved back, replaced by another store, re-created with `datastore init`). Real
SQLite files in a temporary directory; the node's recorded cluster ID beside them.

The invariant is the operator's: the addresses of *live* containers -- those whose ADD
succeeded and whose DEL has not succeeded yet (a refused DEL is retried by the runtime, so
the pod keeps its address meanwhile) -- are pairwise distinct. Without the identity check
the first ADD after a loss re-creates an empty store and hands out a live pod's address.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ipam import Ipam, IpamConfig, IpamError, Pool
from ipam.identity import init_cluster, join
from ipam.store import OpenMode, StoreError, StoreIdentityError, open_store

# A small pool, so addresses come round again: 4 blocks of 4.
CONFIG = IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/28", "block_size": 30}),))
HANDLES = [f"c{i}" for i in range(6)]


@dataclass
class World:
    dir: Path
    live: dict[str, str] = field(default_factory=dict)  # handle -> address
    refused: int = 0

    @property
    def db(self) -> Path:
        return self.dir / "podbgp.db"

    @property
    def record(self) -> str:
        return str(self.dir / "cluster-id")


async def _init(path: Path) -> None:
    store = open_store(f"sqlite:{path}", OpenMode.CREATE)
    try:
        await init_cluster(store)
    finally:
        await store.close()


def _move(src: Path, dst: Path) -> None:
    """A store is its file and (if present) its -wal and -shm, moved together."""
    for suffix in ("", "-wal", "-shm"):
        s = Path(f"{src}{suffix}")
        if s.exists():
            os.replace(s, f"{dst}{suffix}")


async def cni(world: World, op: str, handle: str) -> None:
    """One `podbgp-cni` call: open the configured path, join, allocate or release."""
    store = open_store(f"sqlite:{world.db}")
    try:
        ipam = Ipam(await join(store, world.record), CONFIG)
        if op == "ADD":
            got = await ipam.allocate("node-a", handle)
            world.live[handle] = str(got.address)
        else:
            await ipam.release_handle(handle)
            world.live.pop(handle, None)
    except StoreIdentityError:
        world.refused += 1
    except IpamError:  # the pool is full: the ADD fails, nothing is held
        pass
    except StoreError as e:  # only identity trouble is expected here
        raise AssertionError(f"{op} {handle}: {e}") from e
    finally:
        await store.close()


def accident(world: World, kind: str) -> None:
    aside = world.dir / "aside.db"
    if kind == "delete":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{world.db}{suffix}").unlink(missing_ok=True)
    elif kind == "move_away" and world.db.exists() and not aside.exists():
        _move(world.db, aside)
    elif kind == "move_back" and aside.exists() and not world.db.exists():
        _move(aside, world.db)
    elif kind == "replace":  # another cluster's store renamed onto the path
        other = world.dir / "other.db"
        asyncio.run(_init(other))
        _move(other, world.db)
    elif kind == "reinit" and not world.db.exists():  # `podbgp datastore init` after a loss
        for suffix in ("-wal", "-shm"):
            Path(f"{world.db}{suffix}").unlink(missing_ok=True)
        asyncio.run(_init(world.db))


@contextmanager
def world() -> Iterator[World]:
    d = Path(tempfile.mkdtemp(prefix="podbgp-prop-"))
    try:
        w = World(d)
        asyncio.run(_init(w.db))
        yield w
    finally:
        shutil.rmtree(d, ignore_errors=True)


steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ADD", "ADD", "DEL"]), st.sampled_from(HANDLES)),
        st.tuples(
            st.just("accident"),
            st.sampled_from(["delete", "move_away", "move_back", "replace", "reinit"]),
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(steps)
def test_no_address_is_ever_held_by_two_live_containers(plan: list[tuple[str, str]]) -> None:
    with world() as w:
        for what, arg in plan:
            if what == "accident":
                accident(w, arg)
            else:
                asyncio.run(cni(w, what, arg))
            addresses = list(w.live.values())
            assert len(addresses) == len(set(addresses)), (plan, w.live)


async def legacy_add(world: World, handle: str) -> None:
    """What podbgp-cni did before identities: open (creating if missing) and allocate."""
    store = open_store(f"sqlite:{world.db}", OpenMode.CREATE)
    try:
        world.live[handle] = str((await Ipam(store, CONFIG).allocate("node-a", handle)).address)
    finally:
        await store.close()


def test_the_property_catches_the_old_behaviour() -> None:
    """The same check on the trial's sequence, with the old open-or-create: it fails."""
    with world() as w:
        asyncio.run(legacy_add(w, "c0"))
        accident(w, "delete")
        asyncio.run(legacy_add(w, "c1"))
        assert w.live["c0"] == w.live["c1"]  # the duplicate the operator trial saw
    with world() as w:
        asyncio.run(cni(w, "ADD", "c0"))
        accident(w, "delete")
        asyncio.run(cni(w, "ADD", "c1"))
        assert list(w.live) == ["c0"] and w.refused == 1
