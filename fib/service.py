"""The asyncio shell around a `Reconciler`: events in, batches out, periodic resync.

The reconciler itself does no waiting. This loop sleeps until one of three
things happens: the kernel's event socket is readable (someone changed a
route or a device), the owner changed desired state and called `wake()`, or
the resync deadline passed. Then it folds events in and runs one pass of
`Reconciler.apply_steps()`, so any number of changes made in one go become one
netlink batch (DESIGN.md, performance rule 5).

Off the loop (DESIGN.md rule 8): a pass can write a million routes or dump
them, and the loop that runs the FIB also reads the BGP sessions, whose
keepalives and hold timers must not wait behind it. So every kernel call a
pass makes (route and nexthop writes, dumps) runs on one worker thread while
the loop keeps serving sessions; the socket calls release the GIL, so the
kernel's work also overlaps with BGP decoding. The reconciler's own
bookkeeping between those calls stays on the loop, in chunks of
`WRITE_CHUNK` routes, so it is never touched from two threads. Desired state
may change while a call is out: the keys that changed are dirty again and the
next pass writes them.

Back-pressure (a `bgp.session.InputGate`): BGP decodes a peer's withdrawals or
announcements several times faster than the kernel takes them, so the
reconciler's backlog could grow to the whole table, each waiting key a second
copy of a key the tables hold (~45 B a route, 32 MB during a 1M withdrawal).
While more than `HOLD_ABOVE` routes wait, established sessions stop reading
(bounded by the session's own `MAX_HOLD`); below `OPEN_BELOW` they read on.
The gap keeps the kernel's queue full: the writer always has chunks to take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fib.kernel import KernelError
from fib.reconciler import WRITE_CHUNK, Reconciler
from fib.steps import Begin, Finish

log = logging.getLogger("podbgp.fib")
HOLD_ABOVE = 8 * WRITE_CHUNK  # routes waiting for the kernel: BGP input waits above this
OPEN_BELOW = 2 * WRITE_CHUNK  # ... and reads on again below this


class FibService:
    """Runs a reconciler until `stop()`; routes stay in the kernel afterwards."""

    def __init__(self, reconciler: Reconciler, poll_interval: float = 1.0) -> None:
        self.reconciler = reconciler
        self.poll_interval = poll_interval  # kernels without an event fd (the fake) are polled
        self._wake = asyncio.Event()
        self._stopping = False
        self._io: ThreadPoolExecutor | None = None
        self._holding = False
        self._waiting: list[Callable[[], None]] = []  # held sessions' wake-ups
        self._holds = 0  # times the gate closed (`gate_state`)
        self._held_seconds = 0.0  # time it stayed closed, summed over closed holds
        self._held_at = 0.0

    def wake(self) -> None:
        """Desired state changed: apply soon (coalesced with other changes)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._open()

    # -- the input gate (`bgp.session.InputGate`) ------------------------------------------
    def holding(self) -> bool:
        """Whether BGP input should wait for the kernel (see the module docstring)."""
        if not self._holding and not self._stopping and self.reconciler.backlog() > HOLD_ABOVE:
            self._holding = True
            self._holds += 1
            self._held_at = time.monotonic()
        return self._holding

    def when_open(self, callback: Callable[[], None]) -> None:
        if self._holding:
            self._waiting.append(callback)
        else:
            asyncio.get_running_loop().call_soon(callback)

    def _open_if_drained(self) -> None:
        if self._holding and self.reconciler.backlog() < OPEN_BELOW:
            self._open()

    def gate_state(self) -> dict[str, Any]:
        """The gate for `show fib` (its `input_gate`) and the metrics."""
        held = self._held_seconds + (time.monotonic() - self._held_at if self._holding else 0.0)
        return {"holding": self._holding, "holds": self._holds, "held_seconds": round(held, 3)}

    def _open(self) -> None:
        if self._holding:
            self._held_seconds += time.monotonic() - self._held_at
        self._holding = False
        waiting, self._waiting = self._waiting, []
        if waiting:
            loop = asyncio.get_running_loop()
            for callback in waiting:
                loop.call_soon(callback)

    def sweep_stale(self) -> int:
        """`Reconciler.sweep_stale` for a running service: converged now, the stale
        routes go in the service's next pass. Returns how many there were."""
        rec = self.reconciler
        rec.converged = True
        count = len(rec.stale)
        rec.dirty.update(rec.stale)
        self.wake()
        return count

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        rec = self.reconciler
        fd = rec.kernel.event_fd()
        if fd is not None:
            loop.add_reader(fd, self._wake.set)
        self._io = ThreadPoolExecutor(1, thread_name_prefix="fib-io")
        try:
            rec.apply()  # full resync at start-up: adopt what the kernel has
            while not self._stopping:
                timeout = max(0.0, rec.next_resync - rec.clock())
                if fd is None or rec.need_resync:  # after a netlink error, retry soon
                    timeout = min(timeout, self.poll_interval)
                if not rec.pending() or rec.need_resync:
                    # `asyncio.timeout`, not `wait_for`: no task around the wait, so a
                    # wake-up resumes this loop on the event loop's next turn, not its
                    # third (a turn can be a session's 64 KB batch of UPDATEs)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                rec.handle_events()
                if rec.pending() or rec.clock() >= rec.next_resync:
                    await self._apply()
                self._open_if_drained()
        finally:
            self._open()
            if fd is not None:
                loop.remove_reader(fd)
            self._io.shutdown(wait=True)
            self._io = None

    async def _apply(self) -> None:
        """One `apply_steps` pass, each kernel call on the worker thread (`fib.steps`:
        a begun call runs while the pass plans its next chunk on the loop)."""
        loop = asyncio.get_running_loop()
        steps = self.reconciler.apply_steps()
        result: Any = None
        error: KernelError | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration:
                return
            result, error = None, None
            if isinstance(step, Begin):
                begun = loop.run_in_executor(self._io, step.fn, *step.args)
                begun.add_done_callback(_abandoned)
                result = begun
                continue
            try:
                if isinstance(step, Finish):
                    result = await step.ticket
                    self._open_if_drained()
                else:
                    result = await loop.run_in_executor(self._io, step.fn, *step.args)
            except KernelError as exc:
                error = exc


def _abandoned(begun: asyncio.Future[Any]) -> None:
    """A begun call's error is the pass's to handle at `Finish`; one the pass never
    finished (it failed first) is only retrieved here, so asyncio does not log it."""
    if not begun.cancelled():
        begun.exception()
