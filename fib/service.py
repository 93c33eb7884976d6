"""The asyncio shell around a `Reconciler`: events in, batches out, periodic resync.

The reconciler itself does no waiting. This loop sleeps until one of three
things happens: the kernel's event socket is readable (someone changed a
route or a device), the owner changed desired state and called `wake()`, or
the resync deadline passed. Then it folds events in and calls `apply()` once,
so any number of changes made in one go become one netlink batch (DESIGN.md,
performance rule 5). The kernel calls block briefly (a batch or a dump); they
run on the loop's thread because they are short and the reconciler is not
thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fib.reconciler import Reconciler

log = logging.getLogger("podbgp.fib")


class FibService:
    """Runs a reconciler until `stop()`; routes stay in the kernel afterwards."""

    def __init__(self, reconciler: Reconciler, poll_interval: float = 1.0) -> None:
        self.reconciler = reconciler
        self.poll_interval = poll_interval  # kernels without an event fd (the fake) are polled
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Desired state changed: apply soon (coalesced with other changes)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        rec = self.reconciler
        fd = rec.kernel.event_fd()
        if fd is not None:
            loop.add_reader(fd, self._wake.set)
        try:
            rec.apply()  # full resync at start-up: adopt what the kernel has
            while not self._stopping:
                timeout = max(0.0, rec.next_resync - rec.clock())
                if fd is None or rec.need_resync:  # after a netlink error, retry soon
                    timeout = min(timeout, self.poll_interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                if self._stopping:
                    break
                rec.handle_events()
                if rec.pending() or rec.clock() >= rec.next_resync:
                    rec.apply()
        finally:
            if fd is not None:
                loop.remove_reader(fd)
