"""README's cluster from one resources file is the one `make demo` builds.

The resources file and the five-line node file README shows are what the cluster lab
renders for the Makefile's demo command (its prefix and state dir), so neither can drift;
the e2e test (tests/e2e/test_cluster.py) runs that very command and checks the cluster
converges from that file.
"""

from __future__ import annotations

import re
from pathlib import Path

from podbgp.lab.clusterplan import plan_cluster, render_node_identity, render_resources

ROOT = Path(__file__).resolve().parents[3]


def _demo_args() -> dict[str, str]:
    line = re.search(r"^\t\$\(PY\) -m podbgp lab up --topology cluster (.*)$",
                     (ROOT / "Makefile").read_text(), re.M)  # fmt: skip
    assert line is not None, "make demo builds no cluster lab"
    args = line.group(1).split()
    return {
        args[i]: args[i + 1] for i in range(len(args)) if args[i] in ("--prefix", "--state-dir")
    }


def _toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, re.S)


def test_readme_shows_the_demo_clusters_resources_and_a_five_line_node_file() -> None:
    args = _demo_args()
    plan = plan_cluster(6, 2, prefix=args["--prefix"], state_dir=args["--state-dir"])
    readme = (ROOT / "README.md").read_text()
    blocks = _toml_blocks(readme)
    assert render_resources(plan) in blocks
    five = [b for b in blocks if b.startswith("datastore = ")]
    assert len(five) == 1 and len(five[0].splitlines()) == 5
    assert render_node_identity(plan, plan.node("a3")).startswith(five[0])
    assert f"--state-dir {args['--state-dir']}" in readme
    assert f"{args['--prefix']}core" in readme and f"{args['--state-dir']}/a3.sock" in readme
