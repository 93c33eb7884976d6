"""Helpers shared by the lab's end-to-end tests: where a lab lives, bringing one up, tcpdump."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from podbgp.lab import lab
from podbgp.lab.labplan import LabPlan, plan_lab
from podbgp.lab.netns import IP


@dataclass
class LabSpot:
    """Where a test's lab lives: its namespace prefix and its state dir."""

    prefix: str
    state_dir: Path


CONVERGE = 40.0


def lab_up(spot: LabSpot, option: str, **kw: object) -> tuple[LabPlan, lab.LabState]:
    plan = plan_lab(option, 3, 2, prefix=spot.prefix, state_dir=spot.state_dir, **kw)  # type: ignore[arg-type]
    why = lab.unsupported(plan)
    if why:
        pytest.skip(why)
    state, matrix = lab.up(plan, out=lambda _: None, converge_timeout=CONVERGE)
    bad = sorted(k for k, ok in matrix.items() if not ok)
    assert not bad, (
        f"unreachable pod pairs: {bad}\n{lab.format_matrix(state, matrix)}\n"
        + lab.diagnostics(state)
    )
    assert state.status == "up"
    return plan, state


def pod(state: lab.LabState, name: str) -> dict[str, str]:
    return next(p for p in state.pods if p["name"] == name)


class Capture:
    """tcpdump in a namespace for the duration of a `with` block (bounded by `limit` s)."""

    def __init__(self, ns: str, iface: str, expr: str, limit: float = 15.0) -> None:
        self.args = [IP, "netns", "exec", ns, "tcpdump", "-n", "-l", "-p", "-i", iface, expr]
        self.limit = limit
        self.lines: list[str] = []

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip
        assert self.proc.stderr is not None
        # tcpdump says "listening on IFACE" once its filter is attached (after a line or two).
        seen = []
        for _ in range(5):
            seen.append(self.proc.stderr.readline())
            if "listening on" in seen[-1]:
                break
        else:
            raise AssertionError(f"tcpdump did not start: {seen}")
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the last packets reach the capture buffer
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=max(1.0, self.limit))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines = [line for line in out.splitlines() if line.strip()]


def ping(ns: str, address: str, count: int = 3) -> bool:
    proc = subprocess.run([IP, "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i",
                           "0.2", "-W", "2", address], capture_output=True, timeout=30,
                          check=False)  # fmt: skip
    return proc.returncode == 0
