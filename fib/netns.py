"""Run a function inside a network namespace: the one home of ``in_netns``.

A network namespace belongs to a thread on Linux, and a socket stays in the
namespace it was created in. So ``in_netns`` starts a short-lived thread that
joins the namespace with setns(2), runs the function there and exits: the
caller's threads never change namespace, and no other code ever runs in it.
What the function returns (a socket, a sysctl written, a connection) is handed
back to the caller's thread, and so is what it raises.

The FIB opens its netlink sockets this way (``fib.netlink``); the CNI plugin
writes the pod's sysctls this way (``podbgp.cni_net``), and tests dial from
inside their namespaces. It lives in ``fib`` because ``fib`` may import nothing
above it, while everything above may import ``fib``.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["CLONE_NEWNET", "in_netns", "netns_path"]

CLONE_NEWNET = 0x40000000  # setns(2) nstype: a network namespace
T = TypeVar("T")


def netns_path(netns: str) -> str:
    """A namespace named as ``ip netns`` names it (``/run/netns/NAME``), or by a path
    (``/proc/PID/ns/net``, ``/var/run/netns/X``: anything with a slash)."""
    return netns if "/" in netns else f"/run/netns/{netns}"


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """``fn()`` run in a thread that has joined network namespace ``netns`` (a name or a
    path, see ``netns_path``), or here when ``netns`` is None or empty.

    ``FileNotFoundError`` if there is no such namespace; ``OSError`` if setns fails."""
    if not netns:
        return fn()
    path = netns_path(netns)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            _join(path)
            out.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            err.append(exc)

    thread = threading.Thread(target=run, name=f"setns-{netns}")
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return out[0]


def _join(path: str) -> None:
    """setns(2) the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)
