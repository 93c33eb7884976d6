"""IPAM under real contention and real crashes: separate processes, real SQLite, real etcd.

* 8 processes (4 node names, 2 processes each) allocate from one small pool
  until it is exhausted, on SQLite, on one etcd, and on a 3-member etcd cluster
  losing a member mid-run: every address is handed out exactly once, none is
  lost, and every process ends with a clean "exhausted" error.
* Processes allocating and releasing are killed with SIGKILL at random
  moments; afterwards the store is consistent and `gc` frees exactly the leaked
  addresses.

These live in tests/integration (not tests/unit) because each starts real
processes and servers; all are marked `slow`, the etcd ones `etcd`. `make test`
runs them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipam import Ipam, IpamConfig, Pool
from ipam.etcdlab import EtcdCluster, have_etcd
from ipam.identity import ensure_cluster
from ipam.store import OpenMode, open_store

WORKER = str(Path(__file__).with_name("ipam_worker.py"))
POOL = "10.77.0.0/24"
BLOCK = 28  # 16 blocks of 16: claims, borrowing and exhaustion all happen

pytestmark = pytest.mark.slow


class Worker:
    """One worker process whose stdout lines are collected by a thread."""

    def __init__(self, url: str, node: str, mode: str, seed: int, block: int = BLOCK) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, url, POOL, str(block), node, mode, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by SIGKILL is not a report
                self.lines.append(line.rstrip("\n"))
                if line.startswith("READY"):
                    self.ready.set()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(10)

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc

    def allocated(self) -> list[tuple[str, str]]:
        return [tuple(x.split()[1:3]) for x in self.lines if x.startswith("A ")]  # type: ignore[misc]

    def released(self) -> set[str]:
        return {x.split()[1] for x in self.lines if x.startswith("R ")}


@pytest.fixture
def etcd1() -> Iterator[EtcdCluster]:
    if why := have_etcd():
        pytest.skip(why)
    with EtcdCluster.start(1) as c:
        yield c


def config(block: int = BLOCK) -> IpamConfig:
    return IpamConfig(pools=(Pool.parse({"cidr": POOL, "block_size": block}),))


async def final_state(url: str) -> tuple[list[str], dict[str, str]]:
    """(consistency problems, address -> handle) as the store has them."""
    store = open_store(url)
    try:
        ipam = Ipam(store, config())
        problems = await ipam.check()
        held = {str(a): al.handle for b in await ipam.blocks() for a, al in b.held()}
        return problems, held
    finally:
        await store.close()


def create_store(url: str) -> None:
    """`podbgp datastore init` (or the existing one, on the shared etcd)."""

    async def go() -> None:
        store = open_store(url, OpenMode.CREATE)
        try:
            await ensure_cluster(store)
        finally:
            await store.close()

    asyncio.run(go())


def fill_until_exhausted(url: str, kill_member: EtcdCluster | None = None) -> None:
    create_store(url)
    workers = [Worker(url, f"node-{i % 4}", "fill", i) for i in range(8)]
    try:
        if kill_member is not None:
            # Kill a member once allocation is well under way.
            deadline = time.monotonic() + 60
            while sum(len(w.allocated()) for w in workers) < 60:
                assert time.monotonic() < deadline, "workers made no progress"
                time.sleep(0.02)
            kill_member.kill(0)
        for w in workers:
            assert w.wait(100) == 0, w.proc.stderr.read() if w.proc.stderr else ""
    finally:
        for w in workers:
            w.kill()
    handed = [a for w in workers for a, _ in w.allocated()]
    # No address twice, none lost: together they hold the whole pool.
    assert len(handed) == len(set(handed))
    assert sorted(map(ipaddress.ip_address, handed)) == list(ipaddress.ip_network(POOL))
    for w in workers:
        assert w.lines[-1].startswith("EXHAUSTED "), w.lines[-3:]
        assert "10.77.0.0/24" in w.lines[-1]
    problems, held = asyncio.run(final_state(url))
    assert problems == []
    assert held == {a: h for w in workers for a, h in w.allocated()}


def test_eight_processes_exhaust_a_pool_on_sqlite(tmp_path: Path) -> None:
    fill_until_exhausted(f"sqlite:{tmp_path}/ipam.db")


@pytest.mark.etcd
def test_eight_processes_exhaust_a_pool_on_etcd(etcd1: EtcdCluster) -> None:
    fill_until_exhausted(etcd1.url)


@pytest.mark.etcd
def test_eight_processes_on_a_cluster_losing_a_member(etcd3: EtcdCluster) -> None:
    fill_until_exhausted(etcd3.url, kill_member=etcd3)
    assert not etcd3.healthy(0) and etcd3.healthy(1) and etcd3.healthy(2)


def crash_rounds(url: str, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    live: set[str] = set()
    create_store(url)
    for r in range(rounds):
        workers = [Worker(url, f"node-{i}", "churn", r * 10 + i, block=29) for i in range(3)]
        for w in workers:
            assert w.ready.wait(30)
        time.sleep(rng.uniform(0.1, 0.8))
        for w in workers:
            time.sleep(rng.uniform(0, 0.05))
            w.kill()
        for w in workers:
            live |= {h for _, h in w.allocated()}
            live -= w.released()

    async def check_and_gc() -> None:
        store = open_store(url)
        try:
            ipam = Ipam(store, config(29))
            assert await ipam.check() == []
            held = {al.handle for b in await ipam.blocks() for _, al in b.held()}
            leaked = held - live
            report = await ipam.gc(lambda h, _a: h in live, grace=0)
            assert {h for _, h in report.released} == leaked
            after = {al.handle for b in await ipam.blocks() for _, al in b.held()}
            assert after == held - leaked and after <= live
            assert await ipam.check() == []
            # No pending affinity survives gc: every claim was finished or undone.
            assert set((await ipam.affinities()).values()) <= {"confirmed"}
            # The pool still works to the last address.
            n = len(after)
            for i in range(ipaddress.ip_network(POOL).num_addresses - n):
                await ipam.allocate(f"node-{i % 3}", f"after-{i}")
            assert await ipam.check() == []
        finally:
            await store.close()

    asyncio.run(check_and_gc())


def test_kill_9_at_random_points_on_sqlite(tmp_path: Path) -> None:
    crash_rounds(f"sqlite:{tmp_path}/ipam.db", rounds=6, seed=int.from_bytes(os.urandom(4)))


@pytest.mark.etcd
def test_kill_9_at_random_points_on_etcd(etcd1: EtcdCluster) -> None:
    crash_rounds(etcd1.url, rounds=4, seed=int.from_bytes(os.urandom(4)))
