"""The speed benchmarks of issue 15 run at a small size and print their JSON.

`benchmarks/fib_ingest.py` (BGP → kernel, through ../shared/bench/fibbench.py),
`benchmarks/fib_feed.py` (the FIB side in process), `benchmarks/kernel_floor.py` (the
kernel alone) and `benchmarks/propagate.py` (through ../shared/bench/bgpbench.py) with a
few thousand prefixes: every run completes with exact counts and the last line is the JSON
the docs quote, goal checks included. Speed is not asserted: the figures are for
docs/benchmarks.md, at 100k and 1M, on a quiet machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podbgp.lab.netns import have_netns

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
# ../shared/bench beside the checkout (or beside its worktree directory), as the scripts look
BENCH = next(
    (p for p in (ROOT.parent / "shared" / "bench", ROOT.parent.parent / "shared" / "bench")
     if p.is_dir()),
    ROOT.parent / "shared" / "bench",
)  # fmt: skip


def _last_json(args: list[str], timeout: float = 200) -> dict[str, Any]:
    env = {**os.environ, "BGPBENCH_DIR": str(BENCH)}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=env,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    assert lines, (proc.returncode, proc.stderr[-2000:])
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _references() -> list[str]:
    return [t for t, exe in (("bird", "bird"), ("frr", "/usr/lib/frr/zebra")) if shutil.which(exe)]


def _need(harness: str) -> None:
    why = have_netns()
    if why:
        pytest.skip(why)
    if not (BENCH / harness).exists():
        pytest.skip(f"the neutral harness {BENCH / harness} is not on this machine")


def test_fib_ingest_small_run_side_by_side() -> None:
    _need("fibbench.py")
    targets = ["podbgp", *_references()]
    res = _last_json(["benchmarks/fib_ingest.py", "--targets", ",".join(targets),
                      "--prefixes", "2000", "--rounds", "1"])  # fmt: skip
    assert res["all_ok"] is True, res
    size = res["sizes"]["2000"]
    for target in targets:
        row = size["targets"][target]
        assert row["ok_runs"] == "1/1", (target, row)
        assert row["announce_s"] > 0 and row["withdraw_s"] > 0 and row["routes_per_s"] > 0
    assert size["targets"]["podbgp"]["bytes_per_route"] > 0
    assert isinstance(size["goal_met"], bool)


def test_fib_feed_in_process() -> None:
    res = _last_json(["benchmarks/fib_feed.py", "--prefixes", "2000", "--rounds", "1"], 60)
    med = res["medians"]
    assert res["prefixes"] == 2000
    assert med["announce_routes_per_s"] > 0 and med["withdraw_routes_per_s"] > 0
    assert med["fib_bytes_per_route"] > 0 and 0 < med["bound_share"] <= 1


def test_kernel_floor_inserts_and_deletes_every_route() -> None:
    why = have_netns()
    if why:
        pytest.skip(why)
    res = _last_json(["benchmarks/kernel_floor.py", "--prefixes", "2000"], 60)
    assert res["benchmark"] == "kernel_floor" and res["results"]
    for row in res["results"]:
        assert row["installed"] == 2000 and row["left"] == 0, row


def test_propagate_small_run_checks_issue_15_goals(tmp_path: Path) -> None:
    _need("bgpbench.py")
    refs = [t for t in _references() if t == "bird"]
    targets = ["podbgp", *refs]
    res = _last_json(["benchmarks/propagate.py", "--targets", ",".join(targets),
                      "--prefixes", "2000", "--fanout", "", "--repeat", "1",
                      "--out", str(tmp_path / "p.jsonl")])  # fmt: skip
    assert res["benchmark"] == "propagate"
    goals = res["goals"]
    assert "podbgp_error" not in goals, goals
    assert goals["propagate_faster_than_openbgpd"] is None  # not run: no figure, no verdict
    for key in ("issue15_propagate_within_1.3x_bird", "issue15_withdraw_within_1.3x_bird"):
        assert goals[key] in ((True, False) if refs else (None,)), (key, goals)
    assert isinstance(goals["issue15_bytes_per_route_le_100"], bool)
    records = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert {r["target"] for r in records} >= set(targets)
