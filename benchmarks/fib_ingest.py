"""BGP → kernel FIB ingest beside BIRD and FRR: a wrapper around ../shared/bench/fibbench.py.

The neutral harness starts each daemon in fresh namespaces, feeds it N prefixes
over one eBGP session and times until all N are in the kernel's main table, then
until the withdrawal has removed them (rounds interleave the targets; see the
harness's docstring). This script runs it on THIS checkout (its `.venv`), reads
the harness's JSON report and prints one JSON object: per N and target the
medians (announce and withdraw seconds, routes/s, CPU seconds, peak RSS, whole
process tree bytes per route), podbgp's rate as a multiple of BIRD's and FRR's,
and whether issue 15's goal 1 holds (at least 1.5 times BIRD's rate and 3 times FRR's, at most 250 B/route).

    sudo .venv/bin/python benchmarks/fib_ingest.py --prefixes 100000,1000000 --rounds 3

The harness gives podbgp a fresh SQLite datastore path but does not create the store, and
`podbgp run` creates a store only on purpose (`datastore.create`, docs/configuration.md).
So podbgp is started through this script (the harness's `--podbgp-pyargs`): it runs
`podbgp datastore init` for the run's config, then replaces itself with `python -m podbgp
run ...` (same process id, so the harness measures it as before). The store exists before
the daemon's API socket does, long before the first UPDATE starts the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# ../shared/bench beside the checkout (or beside its worktree directory)
HARNESS = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()),
        ROOT.parent / "shared",
    )
    / "bench"
    / "fibbench.py"
)
GOAL_BIRD, GOAL_FRR, GOAL_BYTES = 1.5, 3.0, 250


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The harness's medians reshaped per N, with podbgp's multiples and the goal check."""
    by_n: dict[int, dict[str, Any]] = {}
    for m in report["medians"]:
        n = m["n"]
        rate = m.get("routes_per_s")
        wd = m.get("wd_routes_per_s")
        by_n.setdefault(n, {})[m["target"]] = {
            "ok_runs": f"{m['ok']}/{m['runs']}",
            "announce_s": m.get("announce_s"),
            "withdraw_s": m.get("withdraw_s"),
            "routes_per_s": rate,
            "withdraw_routes_per_s": wd,
            "cpu_s": m.get("cpu_s"),
            "withdraw_cpu_s": m.get("wd_cpu_s"),
            "rss_mb": m.get("rss_mb"),
            "bytes_per_route": round(m["rss_mb"] * 2**20 / n) if m.get("rss_mb") else None,
        }
    out: dict[str, Any] = {"date": report.get("date"), "rounds": report.get("rounds"),
                           "all_ok": report.get("all_ok"), "sizes": {}}  # fmt: skip
    for n, targets in sorted(by_n.items()):
        pod, bird, frr = (targets.get(t, {}) for t in ("podbgp", "bird", "frr"))
        multiples = {
            "announce_vs_bird": _ratio(pod.get("routes_per_s"), bird.get("routes_per_s")),
            "announce_vs_frr": _ratio(pod.get("routes_per_s"), frr.get("routes_per_s")),
            "withdraw_vs_bird": _ratio(
                pod.get("withdraw_routes_per_s"), bird.get("withdraw_routes_per_s")
            ),
            "withdraw_vs_frr": _ratio(
                pod.get("withdraw_routes_per_s"), frr.get("withdraw_routes_per_s")
            ),
        }
        speed = [v for v in multiples.values() if v is not None]
        goal = bool(speed) and all(
            (multiples[k] or 0) >= (GOAL_BIRD if k.endswith("bird") else GOAL_FRR)
            for k in multiples
        )
        out["sizes"][str(n)] = {
            "targets": targets,
            "podbgp_rate_multiple": multiples,
            "goal_met": goal and (pod.get("bytes_per_route") or 1e9) <= GOAL_BYTES,
        }
    return out


def start_podbgp(argv: list[str]) -> None:
    """`--_start DIR -m podbgp run ...`: create DIR's datastore, then become the daemon."""
    config = str(Path(argv[0]) / "podbgp.toml")
    subprocess.run([sys.executable, "-m", "podbgp", "datastore", "init", "--config", config],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    os.execv(sys.executable, [sys.executable, *argv[1:]])


def main() -> int:
    if sys.argv[1:2] == ["--_start"]:
        start_podbgp(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--targets", default="bird,frr,podbgp")
    ap.add_argument("--prefixes", default="100000,1000000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--harness", default=str(HARNESS), help="path to fibbench.py")
    ap.add_argument("--from-json", help="summarise a report the harness already wrote")
    args, extra = ap.parse_known_args()
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="fib_ingest.") as tmp:
            path = Path(tmp) / "report.json"
            cmd = [sys.executable, args.harness, "--targets", args.targets, "--prefixes",
                   args.prefixes, "--rounds", str(args.rounds), "--checkout", str(ROOT),
                   "--json", str(path), "--podbgp-pyargs", f"{Path(__file__).resolve()} --_start {{dir}}",
                   *extra]  # fmt: skip
            subprocess.run(cmd, stdout=sys.stderr, check=False)
            if not path.exists():
                print(json.dumps({"error": "the harness wrote no report"}))
                return 1
            report = json.loads(path.read_text())
    print(json.dumps(summarise(report)))
    return 0 if report.get("all_ok") else 1


if __name__ == "__main__":
    sys.exit(main())
