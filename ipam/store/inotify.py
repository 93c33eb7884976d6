"""Linux inotify(7) through libc: has one of a few files changed?

The SQLite store has no change feed of its own; this is how it learns, without
polling, that another process committed. `FileWatch(paths)` watches

* each file itself (``IN_MODIFY``: a commit appends to the ``-wal`` file, a
  checkpoint writes the database file; ``IN_ATTRIB``: an unlink changes the link
  count, which is all an open file sees of its deletion), by inode, so a write
  through any path or bind mount counts, and
* each file's directory for its name only (created, deleted, moved from or to):
  the file replaced or moved away, or a ``-wal`` file that did not exist yet.
  A name that comes back is watched again (it is a new inode).

`read()` drains the queued events and says whether any concerned those files;
a queue overflow counts as a change (something may have been missed). The
caller owns the event loop side (``loop.add_reader(watch.fileno(), ...)``) and
confirms with the file's contents what changed: an event is only a reason to
look. Creating a `FileWatch` raises `OSError` where inotify is unavailable (not
Linux, or the per-user instance limit ``fs.inotify.max_user_instances``
reached); the caller then falls back to reading every few seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import os
import struct
from collections.abc import Iterable

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (name follows)


class Mask(enum.IntFlag):
    """inotify event bits (<sys/inotify.h>)."""

    MODIFY = 0x2
    ATTRIB = 0x4
    MOVED_FROM = 0x40
    MOVED_TO = 0x80
    CREATE = 0x100
    DELETE = 0x200
    DELETE_SELF = 0x400
    MOVE_SELF = 0x800
    Q_OVERFLOW = 0x4000
    IGNORED = 0x8000


FILE_MASK = Mask.MODIFY | Mask.ATTRIB | Mask.DELETE_SELF | Mask.MOVE_SELF
DIR_MASK = (
    Mask.CREATE | Mask.DELETE | Mask.MOVED_FROM | Mask.MOVED_TO | Mask.DELETE_SELF | Mask.MOVE_SELF
)
_NAME_EVENTS = Mask.CREATE | Mask.DELETE | Mask.MOVED_FROM | Mask.MOVED_TO


class _Libc:
    """The three libc calls, loaded once."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = (ctypes.c_int,)
        self.init1.restype = ctypes.c_int
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.add_watch.restype = ctypes.c_int


_libc: _Libc | None = None


def _calls() -> _Libc:
    global _libc
    if _libc is None:
        try:
            _libc = _Libc()
        except (OSError, AttributeError) as e:  # no libc, or one without inotify
            raise OSError(errno.ENOSYS, f"inotify is not available: {e}") from None
    return _libc


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


class FileWatch:
    """An inotify instance watching `paths` and the names of them in their directories."""

    def __init__(self, paths: Iterable[str]) -> None:
        self._paths = {os.path.abspath(p) for p in paths}
        self._libc = _calls()
        self._fd = _check(self._libc.init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")
        self._files: dict[int, str] = {}  # wd -> watched file
        self._dirs: dict[int, dict[str, str]] = {}  # wd -> {name: path} of watched files in it
        try:
            by_dir: dict[str, dict[str, str]] = {}
            for path in self._paths:
                by_dir.setdefault(os.path.dirname(path), {})[os.path.basename(path)] = path
            for d, names in by_dir.items():
                self._dirs[self._add(d, DIR_MASK)] = names
            for path in self._paths:
                self._watch_file(path)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._fd

    def _add(self, path: str, mask: Mask) -> int:
        return _check(
            self._libc.add_watch(self._fd, os.fsencode(path), int(mask)), f"inotify {path}"
        )

    def _watch_file(self, path: str) -> None:
        try:
            self._files[self._add(path, FILE_MASK)] = path
        except FileNotFoundError:
            pass  # not there yet (a -wal): its directory's CREATE brings it in
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def read(self) -> bool:
        """Drain the queued events; True if any concerned a watched file or its name."""
        changed = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return changed
            changed |= self._parse(data)

    def _parse(self, data: bytes) -> bool:
        changed = False
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + size].rstrip(b"\0")
            offset += _EVENT.size + size
            changed |= self._event(wd, Mask(mask), os.fsdecode(name))
        return changed

    def _event(self, wd: int, mask: Mask, name: str) -> bool:
        if mask & Mask.Q_OVERFLOW:
            return True
        if mask & Mask.IGNORED:  # the watch is gone (file freed, directory removed)
            self._files.pop(wd, None)
            return self._dirs.pop(wd, None) is not None
        if wd in self._files:
            return True
        names = self._dirs.get(wd)
        if names is None:
            return False
        if mask & (Mask.DELETE_SELF | Mask.MOVE_SELF):
            return True
        if name not in names or not mask & _NAME_EVENTS:
            return False
        if mask & (Mask.CREATE | Mask.MOVED_TO):
            self._watch_file(names[name])  # a new inode under the name
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
