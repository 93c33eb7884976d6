"""Propagation and fan-out of podbgp beside BIRD, FRR, OpenBGPD and GoBGP (issue 4 benchmark).

Runs ``../shared/bench/bgpbench.py`` (real sessions in network namespaces; needs
root) for every target in the same invocation, so the ratios come from one
machine state, then writes a markdown table with the goals checked:

    sudo .venv/bin/python benchmarks/propagate.py                       # full matrix
    sudo .venv/bin/python benchmarks/propagate.py --prefixes 100000 --fanout 20 --repeat 1
    .venv/bin/python benchmarks/propagate.py --report results.jsonl     # table only

Scenarios: propagate N prefixes feeder → target → 1 monitor for each N in
``--prefixes``; fan-out ``--fanout-prefixes`` to M monitors for each M in
``--fanout``. Goals (issue 4): 1M propagation and withdrawal within 1.5x BIRD
and faster than FRR, OpenBGPD, GoBGP; ≤ 200 bytes per route; 100k to 100
peers within 1.5x FRR. Issue 15's tighter ones (``issue15_*``): within 1.3x
BIRD both ways, ≤ 100 bytes per route, 100k to 100 peers within 1.0x FRR. A podbgp target that fails to start or to deliver is
reported with bgpbench's error instead of a time. Prints one JSON object
(the goal checks) last.

Repeats are interleaved: each of the ``--repeat`` rounds runs every target once
(bgpbench itself would run all repeats of one target before the next), so a
machine that drifts over the minutes of a run moves every target alike and
the ratios of the medians stay fair.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = os.environ.get(
    "BGPBENCH_DIR", os.path.normpath(os.path.join(ROOT, "..", "shared", "bench"))
)
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
REFS = ("bird", "frr", "openbgpd", "gobgp")


def run_bench(
    targets: str, prefixes: str, monitors: str, repeat: int, out: str, extra: list[str]
) -> int:
    """One bgpbench invocation; its records are appended to ``out``."""
    py = PYTHON if os.path.exists(PYTHON) else sys.executable
    cmd = [py, os.path.join(BENCH, "bgpbench.py"), "--target", targets, "--prefixes", prefixes]
    cmd += ["--monitors", monitors, "--repeat", str(repeat), "--out", os.path.abspath(out), *extra]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    # From the harness's directory: it takes a target name that is also a directory here
    # (the `podbgp` package) for a target directory of its own.
    return subprocess.call(cmd, cwd=BENCH)


def load(path: str) -> list[dict[str, Any]]:
    recs = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    recs.append(json.loads(line))
    return recs


def _median_of(ok: list[dict[str, Any]]) -> Any:
    def med(field: str) -> float | None:
        vals = [r[field] for r in ok if r.get(field) is not None]
        return statistics.median(vals) if vals else None

    return med


def summarize(recs: list[dict[str, Any]]) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Median figures per (target, N, M), with the first error of failed runs."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault(
            (r.get("target", "?"), int(r.get("n", 0)), int(r.get("m", 0))), []
        ).append(r)
    out = {}
    for k, rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        med = _median_of(ok)
        out[k] = {
            "runs": len(rs),
            "ok": len(ok),
            "ann": med("wall_ann"),
            "wd": med("wall_wd"),
            "bpr": med("bytes_per_route"),
            "error": next((r.get("error") for r in rs if not r.get("ok")), None),
        }
    return out


def _fmt(v: float | None, nd: int = 3) -> str:
    return "—" if v is None else f"{v:,.{nd}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def table(summary: dict[tuple[str, int, int], dict[str, Any]]) -> str:
    lines = [
        "| target | N | M | ok | announce (s) | withdraw (s) | B/route | ann ÷ BIRD | ann ÷ FRR | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (t, n, m), s in sorted(summary.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        bird = summary.get(("bird", n, m), {}).get("ann")
        frr = summary.get(("frr", n, m), {}).get("ann")
        note = "" if s["ok"] == s["runs"] else f"failed: {s['error']}"
        lines.append(
            f"| {t} | {n:,} | {m} | {s['ok']}/{s['runs']} | {_fmt(s['ann'])} | {_fmt(s['wd'])} | "
            f"{_fmt(s['bpr'], 0)} | {_ratio(s['ann'], bird)} | {_ratio(s['ann'], frr)} | {note} |"
        )
    return "\n".join(lines)


def goals(
    summary: dict[tuple[str, int, int], dict[str, Any]], n: int, fan_n: int
) -> dict[str, Any]:
    """The goals of issue 4 and of issue 15 (goal 2: 1M within 1.3x BIRD both ways,
    <= 100 B/route, 100k to 100 peers within 1.0x FRR), each True/False/None (None: a
    figure is missing)."""
    g = lambda t, nn, m, f: summary.get((t, nn, m), {}).get(f)  # noqa: E731

    def lt(a: float | None, b: float | None, k: float = 1.0) -> bool | None:
        return None if a is None or b is None else a <= k * b

    p_ann, p_wd = g("podbgp", n, 1, "ann"), g("podbgp", n, 1, "wd")
    res: dict[str, Any] = {
        "propagate_within_1.5x_bird": lt(p_ann, g("bird", n, 1, "ann"), 1.5),
        "withdraw_within_1.5x_bird": lt(p_wd, g("bird", n, 1, "wd"), 1.5),
        "bytes_per_route_le_200": lt(g("podbgp", n, 1, "bpr"), 200.0),
        "fanout_100_within_1.5x_frr": lt(
            g("podbgp", fan_n, 100, "ann"), g("frr", fan_n, 100, "ann"), 1.5
        ),
    }
    res["issue15_propagate_within_1.3x_bird"] = lt(p_ann, g("bird", n, 1, "ann"), 1.3)
    res["issue15_withdraw_within_1.3x_bird"] = lt(p_wd, g("bird", n, 1, "wd"), 1.3)
    res["issue15_bytes_per_route_le_100"] = lt(g("podbgp", n, 1, "bpr"), 100.0)
    res["issue15_fanout_100_within_1.0x_frr"] = lt(
        g("podbgp", fan_n, 100, "ann"), g("frr", fan_n, 100, "ann"), 1.0
    )
    for ref in ("frr", "openbgpd", "gobgp"):
        res[f"propagate_faster_than_{ref}"] = lt(p_ann, g(ref, n, 1, "ann"))
        res[f"withdraw_faster_than_{ref}"] = lt(p_wd, g(ref, n, 1, "wd"))
    podbgp = summary.get(("podbgp", n, 1))
    if podbgp is not None and podbgp["ok"] == 0:
        res["podbgp_error"] = podbgp["error"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--targets", default="podbgp," + ",".join(REFS))
    ap.add_argument("--prefixes", default="100000,1000000", help="propagate: comma list of N")
    ap.add_argument("--fanout", default="20,100", help="fan-out: comma list of M ('' to skip)")
    ap.add_argument("--fanout-prefixes", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--out",
        default=None,
        help="JSONL records (default benchmarks/results/propagate-<stamp>.jsonl)",
    )
    ap.add_argument("--md", default=None, help="markdown output (default: next to --out)")
    ap.add_argument("--report", default=None, help="only build the table from this JSONL")
    ap.add_argument("--bench-arg", action="append", default=[], help="extra bgpbench.py argument")
    a = ap.parse_args()
    if a.report:
        out = a.report
    else:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        out = a.out or os.path.join(HERE, "results", time.strftime("propagate-%Y%m%d-%H%M%S.jsonl"))
        rc = 0
        for _ in range(a.repeat):  # interleaved rounds (see the module docstring)
            if a.prefixes:
                rc |= run_bench(a.targets, a.prefixes, "1", 1, out, a.bench_arg)
            if a.fanout:
                rc |= run_bench(a.targets, str(a.fanout_prefixes), a.fanout, 1, out, a.bench_arg)
        if rc:
            print(
                f"bgpbench exited with {rc}; failed runs are listed in the table", file=sys.stderr
            )
    summary = summarize(load(out))
    if not any(t == "podbgp" for t, _, _ in summary) and "podbgp" in a.targets:
        print("podbgp produced no records (did the target start?)", file=sys.stderr)
    # The goals are judged at the largest N propagated (in this run, or in the records).
    sizes = [int(x) for x in a.prefixes.split(",") if x] or [n for _, n, m in summary if m == 1]
    n = max(sizes, default=1_000_000)
    cmd = "sudo .venv/bin/python benchmarks/propagate.py " + " ".join(sys.argv[1:])
    md = f"Produced by `{cmd.strip()}` on {time.strftime('%Y-%m-%d')}.\n\n{table(summary)}\n"
    res = goals(summary, n, a.fanout_prefixes)
    md += (
        "\nGoals (issue 4; issue15_*: issue 15 goal 2):\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in res.items())
        + "\n"
    )
    md_path = a.md or os.path.splitext(out)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(md)
    print(md, file=sys.stderr)
    print(json.dumps({"benchmark": "propagate", "records": out, "markdown": md_path, "goals": res}))


if __name__ == "__main__":
    main()
