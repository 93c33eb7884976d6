"""Shared fixtures: network namespaces that each test creates and always removes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from podbgp.lab.netns import NetnsGroup, cleanup_prefix, have_netns

_counter = itertools.count()


@pytest.fixture
def netns() -> Iterator[NetnsGroup]:
    """A group of namespaces with a prefix unique to this test; removed at teardown."""
    why = have_netns()
    if why:
        pytest.skip(why)
    prefix = f"t{os.getpid() % 100000}x{next(_counter)}-"
    cleanup_prefix(prefix)
    group = NetnsGroup(prefix)
    try:
        yield group
    finally:
        group.close()
