"""Helpers shared by the FIB namespace tests."""

from __future__ import annotations

from fib.netlink import NetlinkKernel
from fib.reconciler import FibConfig, Reconciler
from podbgp.lab.netns import Netns


def reconciler(ns: Netns, kernels: list[NetlinkKernel], **cfg: float) -> Reconciler:
    kernel = NetlinkKernel(ns.name)
    kernels.append(kernel)
    return Reconciler(kernel, FibConfig(**cfg))  # type: ignore[arg-type]


def routes(ns: Netns, *args: str) -> list[str]:
    return [" ".join(line.split()) for line in ns.ip("route", "show", *args).splitlines()]
