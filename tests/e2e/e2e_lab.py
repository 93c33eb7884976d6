"""Helpers shared by the lab's end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class LabSpot:
    """Where a test's lab lives: its namespace prefix and its state dir."""

    prefix: str
    state_dir: Path
