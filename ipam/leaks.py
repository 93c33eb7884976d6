"""Leaked pod addresses: allocations whose pod's network namespace is gone.

The CNI plugin records, with each address it allocates, the pod's network
namespace: its path (attribute ``netns``, CNI_NETNS) and the identity of the
namespace behind it (``netns_id``, ``"DEV:INODE"`` of the nsfs file), so a path
reused by a later pod does not count as the old pod's. A pod is gone when its
path no longer names that namespace. Its address leaks when the runtime never
sends the DEL -- a plugin killed between allocation and wiring, a sandbox
deleted behind the runtime's back, a node agent restarted at the wrong time.

Each daemon looks after its own pods only (allocations whose ``node`` is
itself, borrowed addresses included): it is the only one that can see their
namespaces. `LeakTracker` (sans-IO) remembers since when each pod has been
seen gone and hands out those gone for at least the grace; `reclaim_leaks`
releases them by (address, sequence number), so an address that has since
been released and given to another pod is never touched. Allocations with no
``netns`` attribute (the VXLAN device's address, ``podbgp ipam allocate``, a
plugin from before this attribute) are never considered: nothing says where
their owner lives.

What is never released: an allocation whose namespace still exists, or whose
existence cannot be decided (a permission error, say): only a definite "no
such file" or "another namespace" counts as gone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ipam.block import Block, IPAddress

NETNS = "netns"
NETNS_ID = "netns_id"


@dataclass(frozen=True, slots=True)
class Pod:
    """One address of one of this node's pods, as its allocation records it."""

    address: IPAddress
    handle: str
    seq: int
    netns: str
    netns_id: str


def netns_id(path: str) -> str:
    """``"DEV:INODE"`` of a namespace file (what `netns_alive` compares)."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def netns_alive(path: str, ident: str) -> bool:
    """Does `path` still name the namespace `ident` (any, if `ident` is empty)?"""
    try:
        now = netns_id(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: never release on a guess
    return not ident or now == ident


def pods_of(blocks: Iterable[Block], node: str) -> list[Pod]:
    """The CNI-made allocations of `node` (those that record a namespace)."""
    out: list[Pod] = []
    for b in blocks:
        for addr, a in b.held():
            if a.node == node and a.attrs.get(NETNS):
                out.append(Pod(addr, a.handle, a.seq, a.attrs[NETNS], a.attrs.get(NETNS_ID, "")))
    return out


class LeakTracker:
    """Which pods have been gone for at least `grace` seconds (sans-IO: time is passed in)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._gone_since: dict[tuple[IPAddress, int], float] = {}

    def observe(self, pods: Iterable[Pod], alive: Callable[[Pod], bool], now: float) -> list[Pod]:
        """Record which `pods` are gone now; return those gone for the whole grace."""
        due: list[Pod] = []
        seen: dict[tuple[IPAddress, int], float] = {}
        for pod in pods:
            if alive(pod):
                continue
            key = (pod.address, pod.seq)
            since = seen[key] = self._gone_since.get(key, now)
            if now - since >= self.grace:
                due.append(pod)
        self._gone_since = seen  # a pod alive again, or released, starts over
        return due


class Releaser(Protocol):
    """What `reclaim_leaks` needs of `ipam.Ipam`: the blocks, and release by (address, seq)."""

    async def blocks(self) -> list[Block]: ...

    async def release_address(self, address: IPAddress, seq: int | None = None) -> bool: ...


async def reclaim_leaks(
    ipam: Releaser,
    node: str,
    tracker: LeakTracker,
    alive: Callable[[str, str], bool],
    now: float,
) -> list[tuple[str, str]]:
    """Release `node`'s pods gone for the grace; returns (address, handle) of each released."""
    pods = pods_of(await ipam.blocks(), node)
    freed: list[tuple[str, str]] = []
    for pod in tracker.observe(pods, lambda p: alive(p.netns, p.netns_id), now):
        if await ipam.release_address(pod.address, pod.seq):
            freed.append((str(pod.address), pod.handle))
    return freed
