"""Helpers shared by the FIB namespace tests."""

from __future__ import annotations

import re

from fib.netlink import NetlinkKernel
from fib.reconciler import FibConfig, Reconciler
from podbgp.lab.netns import Netns


def reconciler(ns: Netns, kernels: list[NetlinkKernel], **cfg: float) -> Reconciler:
    kernel = NetlinkKernel(ns.name)
    kernels.append(kernel)
    return Reconciler(kernel, FibConfig(**cfg))  # type: ignore[arg-type]


def routes(ns: Netns, *args: str) -> list[str]:
    """`ip route show ARGS` lines, without the `nhid N` of routes through nexthop objects."""
    return [_NHID.sub("", raw_line) for raw_line in raw_routes(ns, *args)]


def raw_routes(ns: Netns, *args: str) -> list[str]:
    """`ip route show ARGS` lines, whitespace squeezed."""
    return [" ".join(line.split()) for line in ns.ip("route", "show", *args).splitlines()]


def nexthops(ns: Netns, *args: str) -> list[str]:
    """`ip nexthop show ARGS` lines, whitespace squeezed."""
    return [" ".join(line.split()) for line in ns.ip("nexthop", "show", *args).splitlines()]


_NHID = re.compile(r" nhid \d+")
