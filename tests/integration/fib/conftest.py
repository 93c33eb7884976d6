"""Nodes for FIB tests: namespaces with an underlay veth, reconcilers on the real kernel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fib.netlink import NetlinkKernel
from podbgp.lab.netns import Netns, NetnsGroup


@pytest.fixture
def node(netns: NetnsGroup) -> Netns:
    """Namespace `a` (eth0 10.0.0.1/24) wired to `b` (eth0 10.0.0.2/24, 10.0.0.3/24)."""
    a, b = netns.add("a"), netns.add("b")
    netns.veth(a, "eth0", b, "eth0")
    a.ip("addr", "add", "10.0.0.1/24", "dev", "eth0")
    b.ip("addr", "add", "10.0.0.2/24", "dev", "eth0")
    b.ip("addr", "add", "10.0.0.3/24", "dev", "eth0")
    return a


@pytest.fixture
def kernels() -> Iterator[list[NetlinkKernel]]:
    """Kernels opened by a test, closed at teardown (before the namespaces go)."""
    opened: list[NetlinkKernel] = []
    yield opened
    for k in opened:
        k.close()
