"""Fixtures for interop tests against real BGP daemons in network namespaces.

`link` builds two namespaces joined by one veth with IPv4 and IPv6 addresses
(`podbgp.lab.peer_link`); `require_daemon` skips with the reason when a daemon's binaries are
missing (`make deps` installs them).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from podbgp.lab.netns import NetnsGroup
from podbgp.lab.peer_link import Link, make_link
from podbgp.lab.peers import DAEMONS, Daemon


@pytest.fixture
def link(netns: NetnsGroup) -> Link:
    return make_link(netns)


@pytest.fixture
def require_daemon() -> Callable[[str], type[Daemon]]:
    """`require_daemon("bird")` returns the runner class, or skips naming what is missing."""

    def require(name: str) -> type[Daemon]:
        cls = DAEMONS[name]
        why = cls.missing()
        if why:
            pytest.skip(f"{why} (install with `make deps`)")
        return cls

    return require
