"""fib.netns.in_netns: the one way the tree runs code inside a network namespace."""

from __future__ import annotations

import os

import pytest

from fib.netns import in_netns, netns_path
from podbgp.lab.netns import NetnsGroup


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_a_name_is_looked_up_under_run_netns_and_a_path_is_taken_as_it_is() -> None:
    assert netns_path("pod1") == "/run/netns/pod1"
    assert netns_path("/proc/42/ns/net") == "/proc/42/ns/net"


def test_no_namespace_runs_the_function_here() -> None:
    here = _netns_inode()
    assert in_netns(None, _netns_inode) == here
    assert in_netns("", _netns_inode) == here


def test_the_function_runs_in_the_namespace_by_name_or_by_path(netns: NetnsGroup) -> None:
    ns = netns.add("a")
    here = _netns_inode()
    by_name = in_netns(ns.name, _netns_inode)
    by_path = in_netns(f"/run/netns/{ns.name}", _netns_inode)
    assert by_name == by_path != here
    assert _netns_inode() == here  # the caller's thread never moved


def test_a_missing_namespace_is_file_not_found() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-netns-podbgp"):
        in_netns("no-such-netns-podbgp", _netns_inode)


def test_what_the_function_raises_reaches_the_caller(netns: NetnsGroup) -> None:
    ns = netns.add("a")

    def fail() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        in_netns(ns.name, fail)
