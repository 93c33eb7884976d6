"""Fixtures for the lab's end-to-end tests: a lab prefix and state dir unique to each test.

Every lab a test builds is named `e<pid>x<n>-*`, never the demo's `podbgp-lab-`, and is
always removed at teardown (by prefix, so also after a failure half-way through `up`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_lab import LabSpot

from podbgp.lab import lab
from podbgp.lab.netns import cleanup_prefix, have_netns, list_namespaces

_counter = itertools.count()


@pytest.fixture
def lab_spot(tmp_path: Path) -> Iterator[LabSpot]:
    why = have_netns()
    if why:
        pytest.skip(why)
    prefix = f"e{os.getpid() % 100000}x{next(_counter)}-"
    cleanup_prefix(prefix)
    spot = LabSpot(prefix, tmp_path / "lab")
    try:
        yield spot
    finally:
        lab.down(spot.prefix, spot.state_dir)
        cleanup_prefix(spot.prefix)
        assert not list_namespaces(spot.prefix)
