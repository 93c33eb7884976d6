"""One `podbgp run` per node, and start-up problems said in words before anything starts.

The lock. A node's daemon owns its control socket (`[api] socket`); a second daemon with
the same config would unlink that socket, adopt the first daemon's kernel routes as its
own, announce, and only then fail on the BGP port. So `podbgp run` first takes an
exclusive `flock` on `SOCKET.lock` beside the socket and writes its pid into it, before
it touches the kernel, the datastore or BGP. The kernel drops a `flock` when its holder
dies, however it dies, so a lock file left by a dead process is simply taken over: the
pid in the file is only there to name the holder in the error.

The pre-flight check. Each `[bgp] listen` address is bound once, with the same options
the speaker uses, and closed again: an address on no interface, a port in use or one
that needs privileges is reported as one line with what to do (`bind_problem`), instead
of a traceback after the FIB has already adopted routes. The speaker's own bind can
still fail in a race; the daemon reports that with the same words.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import socket

from podbgp.config import Config

__all__ = ["AlreadyRunning", "InstanceLock", "bind_problem", "check_listen", "lock_path"]


class AlreadyRunning(Exception):
    """Another live process holds the node's lock."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"already running ({holder}; lock {path})")


def lock_path(socket_path: str) -> str:
    """The lock file of the daemon whose control socket is `socket_path`."""
    return socket_path + ".lock"


class InstanceLock:
    """An exclusive `flock` on the node's lock file, held for the daemon's life."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `AlreadyRunning`; `OSError` when the file cannot be made."""
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, pid) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: unlinking it could let two holders in)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


# -- pre-flight ---------------------------------------------------------------------------------
def bind_problem(what: str, addr: str, port: int, exc: OSError) -> str:
    """One line saying why `addr`:`port` cannot be bound, and what to do about it."""
    where = f"{what} {addr} port {port}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{where}: {addr} is not an address of any interface on this host "
                f"(add it to an interface, or change {what})")  # fmt: skip
    if exc.errno == errno.EADDRINUSE:
        return (f"{where}: the port is in use by another process (another BGP daemon? "
                f"`ss -ltnp 'sport = :{port}'` shows which)")  # fmt: skip
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{where}: permission denied (ports below 1024 need root or "
                "CAP_NET_BIND_SERVICE; or set [bgp] port to 1024 or above)")  # fmt: skip
    return f"{where}: {exc.strerror or exc}"


def check_listen(config: Config) -> str | None:
    """Bind and close every BGP listen address as the speaker will; the first problem."""
    if not config.bgp.enabled:
        return None
    addrs = [str(a) for a in config.bgp.listen]
    # The speaker's rule: "::" alone is dual-stack, v6-only beside an IPv4 address.
    v6only = any(ipaddress.ip_address(a).version == 4 for a in addrs)
    for addr in addrs:
        family = socket.AF_INET if ipaddress.ip_address(addr).version == 4 else socket.AF_INET6
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
            try:
                sock.bind((addr, config.bgp.port))  # a listening socket there: EADDRINUSE
            except OSError as exc:
                return bind_problem("[bgp] listen", addr, config.bgp.port, exc)
    return None
