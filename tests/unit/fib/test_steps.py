"""fib.steps: begun kernel calls, finished later, and what a failed write leaves dirty."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from fib import reconciler as reconciler_module
from fib.fake import FakeKernel
from fib.kernel import KernelError, RouteBatch, RouteFailure, RouteOp
from fib.model import Dest, NodeInfo, Prefix, Reach, pack_addr
from fib.reconciler import FibConfig, Reconciler
from fib.service import FibService
from fib.steps import Begin, Call, Finish, Step, run

NODE = NodeInfo.parse("node-a", "10.0.0.1/24", "eth0")
HOP = pack_addr("10.0.0.2")


def _pass(log: list[Any]) -> Generator[Step, Any, None]:
    first = yield Begin(log.append, ("begun",))
    log.append("planned while begun")
    log.append(("called", (yield Call(len, ("abc",)))))
    log.append(("finished", (yield Finish(first))))
    second = yield Begin(_refuse, ())
    try:
        yield Finish(second)
    except KernelError as exc:
        log.append(("thrown at finish", str(exc)))


def _refuse() -> None:
    raise KernelError("no")


def test_run_makes_calls_in_order_and_gives_begun_outcomes_at_finish() -> None:
    log: list[Any] = []
    run(_pass(log))
    assert log == [
        "begun",
        "planned while begun",
        ("called", 3),
        ("finished", None),
        ("thrown at finish", "no"),
    ]


def _prefixes(n: int) -> dict[Dest, Reach | None]:
    reach = Reach((HOP,))
    return {Prefix(bytes([10, 1, i // 256, i % 256]), 32).dest: reach for i in range(n)}


class FailingKernel(FakeKernel):
    """The second route write fails as a whole (a netlink socket error), whether it is
    a list of ops or a whole-chunk batch."""

    def _fail_second(self) -> None:
        if self.write_calls == 1:
            self.write_calls += 1
            raise KernelError("socket gone")

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        self._fail_second()
        return super().write_routes(ops)

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        self._fail_second()
        return super().write_route_batch(batch)


def test_a_failed_write_leaves_its_chunk_and_the_one_in_flight_dirty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconciler_module, "WRITE_CHUNK", 4)
    kernel = FailingKernel()
    rec = Reconciler(kernel, FibConfig(nexthops=False))
    rec.set_node(NODE)
    rec.apply()  # the start-up resync
    rec.update_remote(_prefixes(16))
    rec.apply()
    # chunk 1 written; chunk 2 failed while chunk 3 was in flight: neither is recorded
    assert len(rec.installed) == 4
    assert len(rec.dirty) == 12 and rec.need_resync
    assert rec.counters.netlink_errors == 1
    rec.apply()  # the resync adopts what the kernel took and writes the rest
    assert rec.installed.keys() == rec.desired.keys() and len(kernel.table(254)) == 16
    assert {k: rec.installed[k] for k in rec.installed} == kernel.table(254)


def test_a_key_marked_again_before_the_pass_is_written_as_it_is_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dirty keys are a log (`fib.table.DirtyKeys`): a route changed, withdrawn or announced
    again before the pass is visited where each mark falls, chunks apart; the kernel ends
    with what is wanted now, and a visit after the route is written writes nothing."""
    monkeypatch.setattr(reconciler_module, "WRITE_CHUNK", 4)
    kernel = FakeKernel()
    rec = Reconciler(kernel, FibConfig(nexthops=False))
    rec.set_node(NODE)
    rec.apply()  # the start-up resync
    routes = _prefixes(10)
    first, second, third = list(routes)[:3]
    other = Reach((pack_addr("10.0.0.3"),))
    rec.update_remote(routes)
    rec.update_remote({first: other, second: None})  # marked again, chunks later
    rec.update_remote({third: None})
    rec.update_remote({third: other})
    assert len(rec.dirty) == 10  # a set to its readers
    rec.apply()
    assert kernel.table(254) == {k: rec.desired[k] for k in rec.desired}
    assert len(kernel.table(254)) == 9 and second not in rec.installed
    assert rec.installed[first].nexthops[0].gateway == pack_addr("10.0.0.3")
    assert rec.installed[third].nexthops[0].gateway == pack_addr("10.0.0.3")
    assert rec.counters.route_writes == 9 and not rec.dirty and not rec.pending()


class HeldKernel(FakeKernel):
    """The first route write waits (on the worker thread) until the pass has begun the
    next chunk's write, or 10 s."""

    def __init__(self, rec_box: list[Reconciler]) -> None:
        super().__init__()
        self.rec_box = rec_box
        self.begun_during_first: int | None = None

    def _hold_first(self, count: int) -> None:
        if self.write_calls == 0 and count > 0:
            counters = self.rec_box[0].counters
            deadline = time.monotonic() + 10
            while counters.write_batches < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            self.begun_during_first = counters.write_batches

    def write_routes(self, ops: Sequence[RouteOp]) -> list[RouteFailure]:
        self._hold_first(len(ops))
        return super().write_routes(ops)

    def write_route_batch(self, batch: RouteBatch) -> list[RouteFailure]:
        self._hold_first(len(batch))
        return super().write_route_batch(batch)


def test_the_next_chunk_is_planned_while_the_kernel_takes_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconciler_module, "WRITE_CHUNK", 100)
    box: list[Reconciler] = []
    kernel = HeldKernel(box)
    rec = Reconciler(kernel, FibConfig(), clock=time.monotonic)
    box.append(rec)
    rec.set_node(NODE)
    threads: set[str] = set()

    async def main() -> None:
        service = FibService(rec, poll_interval=0.05)
        task = asyncio.create_task(service.run())
        await asyncio.sleep(0.05)  # the start-up resync
        rec.update_remote(_prefixes(300))
        service.wake()
        for _ in range(500):
            if len(rec.installed) == 300 and not rec.pending():
                break
            await asyncio.sleep(0.02)
        threads.add(threading.current_thread().name)
        service.stop()
        await task

    asyncio.run(asyncio.wait_for(main(), 30))
    assert kernel.begun_during_first == 2  # chunk 2 was sent before chunk 1 came back
    assert len(kernel.table(254)) == 300
    assert {k: rec.installed[k] for k in rec.installed} == kernel.table(254)
