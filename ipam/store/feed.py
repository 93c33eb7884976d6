"""When to wake a file-backed store's watchers: kernel events, a due time, a slow timer.

The SQLite store's watchers each read the ``events`` table from where they left
off, but only when woken. `ChangeFeed` decides when: a local commit wakes them
at once (`wake`); while any watcher waits, one monitor task per store listens
for kernel events on the files (`ipam.store.inotify.FileWatch`), then calls the
store's `look` (one read in the store's thread: the store-wide revision and the
seconds until something is due, such as the next lease running out) and wakes
the watchers only if the revision moved past what they were last woken for. So
another process's lease renewal, which moves no revision, costs one read and
wakes no watcher; an idle store costs nothing.

The monitor also looks every `safety_interval` seconds in case an event was
missed, and where inotify is unavailable (`OSError` from `FileWatch`: not Linux,
or ``fs.inotify.max_user_instances`` reached) every `poll_interval` seconds
instead, logged once per process. A failing look (the file deleted or replaced,
the store unavailable) wakes every watcher: each reads for itself and meets the
error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ipam.store.inotify import FileWatch

log = logging.getLogger(__name__)
_told_no_inotify = False  # the fallback to polling is logged once per process

# The store's look: (store-wide revision, seconds until something is due or None).
Look = Callable[[], Awaitable[tuple[int, float | None]]]


class ChangeFeed:
    """The waiters of one store and the monitor that wakes them."""

    def __init__(
        self,
        paths: Sequence[str],
        look: Look,
        errors: tuple[type[BaseException], ...],
        poll_interval: float,
        safety_interval: float,
    ) -> None:
        self.paths = list(paths)
        self.look = look
        self.errors = errors  # what a failing look raises; anything else is a bug and surfaces
        self.poll_interval = poll_interval
        self.safety_interval = safety_interval
        self._waiters: set[asyncio.Event] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._woken_at = 0  # the newest revision the watchers were woken for

    def join(self, waiter: asyncio.Event) -> None:
        """Wake `waiter` on changes from now on (the first one starts the monitor)."""
        self._waiters.add(waiter)
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._run())

    def leave(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)
        if not self._waiters:
            self.stop()

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None

    def wake(self, revision: int = 0) -> None:
        """Wake every waiter (a local commit at `revision`, or an error to meet)."""
        self._woken_at = max(self._woken_at, revision)
        for waiter in self._waiters:
            waiter.set()

    def _file_watch(self) -> FileWatch | None:
        global _told_no_inotify
        try:
            return FileWatch(self.paths)
        except OSError as e:
            if not _told_no_inotify:
                _told_no_inotify = True
                log.warning(
                    "%s: no inotify (%s); other processes' changes to the datastore are "
                    "seen within %.1f s",
                    self.paths[0], e, self.poll_interval,
                )  # fmt: skip
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        poke = asyncio.Event()
        files = self._file_watch()  # before the first look: no commit falls in between
        if files is not None:
            loop.add_reader(files.fileno(), _on_file_event, files, poke)
        interval = self.poll_interval if files is None else self.safety_interval
        try:
            while True:
                poke.clear()
                due = await self._look()
                timeout = interval if due is None else min(interval, due + 0.01)
                try:
                    await asyncio.wait_for(poke.wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            if files is not None:
                loop.remove_reader(files.fileno())
                files.close()

    async def _look(self) -> float | None:
        try:
            rev, due = await self.look()
        except self.errors:
            self.wake()
            return None
        if rev > self._woken_at:
            self.wake(rev)
        return due


def _on_file_event(files: FileWatch, poke: asyncio.Event) -> None:
    if files.read():
        poke.set()
