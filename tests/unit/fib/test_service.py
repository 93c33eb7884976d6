"""FibService: kernel calls run on a worker thread, so the loop keeps serving others."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

import fib.reconciler as reconciler_module
import fib.service as service_module
from fib.fake import FakeKernel
from fib.kernel import RouteBatch, RouteFailure, RouteOp
from fib.model import NodeInfo, Prefix, Reach, pack_addr
from fib.reconciler import FibConfig, Reconciler, key_of
from fib.service import FibService

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0")
HOP = pack_addr("10.0.0.2")


class SlowKernel(FakeKernel):
    """Each route write takes 0.3 s and notes the thread it ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.3)
        return super().write_routes(ops)

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.3)
        return super().write_route_batch(batch)


async def _run() -> tuple[Reconciler, SlowKernel, float]:
    kernel = SlowKernel()
    rec = Reconciler(kernel, FibConfig(), clock=time.monotonic)
    rec.set_node(NODE)
    service = FibService(rec, poll_interval=0.05)
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0)
    reach = Reach((HOP,))
    ticks: list[float] = [time.monotonic()]
    for batch in range(4):  # changes arrive while writes are out, as BGP batches do
        rec.update_remote({Prefix(bytes([10, 1, batch, i]), 32).dest: reach for i in range(200)})
        service.wake()
        for _ in range(5):
            await asyncio.sleep(0.02)
            ticks.append(time.monotonic())
    while len(rec.installed) < 800 or rec.pending():
        await asyncio.sleep(0.02)
        ticks.append(time.monotonic())
    service.stop()
    await task
    return rec, kernel, max(b - a for a, b in itertools.pairwise(ticks))


def test_writes_off_the_loop_and_changes_during_them_are_written_next() -> None:
    rec, kernel, gap = asyncio.run(asyncio.wait_for(_run(), 30))
    assert len(kernel.table(254)) == 800 and len(rec.installed) == 800
    assert rec.dirty == set()
    assert kernel.threads and all(name.startswith("fib-io") for name in kernel.threads)
    assert gap < 0.25  # the loop never waited for a 0.3 s kernel call


def test_sweep_while_running_goes_in_the_next_pass() -> None:
    async def run() -> tuple[int, Reconciler]:
        kernel = FakeKernel()
        left = Prefix(bytes([10, 9, 0, 0]), 24)
        rec = Reconciler(kernel, FibConfig(), clock=time.monotonic)
        rec.set_node(NODE)
        rec.update_remote({left.dest: Reach((HOP,))})
        rec.apply()
        # a restart: the same kernel, a reconciler that does not want the route
        rec2 = Reconciler(kernel, FibConfig(), clock=time.monotonic)
        rec2.set_node(NODE)
        service = FibService(rec2, poll_interval=0.05)
        task = asyncio.create_task(service.run())
        await asyncio.sleep(0.05)
        assert rec2.stale == {key_of(left)}
        count = service.sweep_stale()
        for _ in range(100):
            if not kernel.table(254):
                break
            await asyncio.sleep(0.02)
        service.stop()
        await task
        return count, rec2

    count, rec = asyncio.run(run())
    assert count == 1 and rec.stale == set() and rec.counters.stale_swept == 1


class PacedKernel(FakeKernel):
    """Each route batch takes 50 ms, so a backlog builds up behind the writer."""

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        time.sleep(0.05)
        return super().write_route_batch(batch)


def test_the_gate_holds_bgp_input_while_the_backlog_is_large_and_opens_once_it_drains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconciler_module, "WRITE_CHUNK", 100)
    monkeypatch.setattr(service_module, "HOLD_ABOVE", 800)
    monkeypatch.setattr(service_module, "OPEN_BELOW", 200)

    async def run() -> tuple[list[bool], list[int], Reconciler, dict[str, Any]]:
        rec = Reconciler(PacedKernel(), FibConfig(), clock=time.monotonic)
        rec.set_node(NODE)
        service = FibService(rec, poll_interval=0.05)
        task = asyncio.create_task(service.run())
        await asyncio.sleep(0.05)
        seen = [service.holding()]  # nothing waits: open
        reach = Reach((HOP,))
        rec.update_remote({Prefix(bytes([10, 2, i // 256, i % 256]), 32).dest: reach
                           for i in range(2000)})  # fmt: skip
        service.wake()
        seen.append(service.holding())  # 2,000 routes wait: held
        opened: list[int] = []
        service.when_open(lambda: opened.append(rec.backlog()))
        for _ in range(200):
            if opened:
                break
            await asyncio.sleep(0.02)
        seen.append(service.holding())
        while rec.pending():
            await asyncio.sleep(0.02)
        service.stop()
        await task
        return seen, opened, rec, service.gate_state()

    seen, opened, rec, gate = asyncio.run(asyncio.wait_for(run(), 30))
    assert seen == [False, True, False]
    assert gate["holds"] == 1 and gate["held_seconds"] > 0 and gate["holding"] is False
    assert len(opened) == 1 and opened[0] < 200  # woken once, when under OPEN_BELOW
    assert len(rec.installed) == 2000


def test_a_stopped_service_holds_nothing_and_wakes_whoever_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_module, "HOLD_ABOVE", 10)

    async def run() -> tuple[bool, bool, list[str]]:
        rec = Reconciler(FakeKernel(), FibConfig(), clock=time.monotonic)
        rec.set_node(NODE)
        rec.update_remote({Prefix(bytes([10, 3, 0, i]), 32).dest: Reach((HOP,)) for i in range(50)})
        service = FibService(rec)  # never run: the backlog stays
        before = service.holding()
        woken: list[str] = []
        service.when_open(lambda: woken.append("session"))
        service.stop()
        await asyncio.sleep(0)
        return before, service.holding(), woken

    before, after, woken = asyncio.run(run())
    assert before is True and after is False and woken == ["session"]
