"""benchmarks/cluster_scale.py runs at a small size (3 nodes, reflectors, one block round)
and leaves nothing behind.

It must print its JSON with a sample for every node's new block (the route in both other
nodes' kernels), a cold start that converged and the idle figures of each daemon; and every
namespace it made (named after its pid) must be gone when it exits. Speed is not asserted:
the figures are for docs/benchmarks.md, at 50 nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ipam.etcdlab import have_etcd
from podbgp.lab.netns import have_netns, list_namespaces
from podbgp.lab.pods import cni_plugin

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.etcd, pytest.mark.slow,
              pytest.mark.timeout(180)]  # fmt: skip

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cluster_scale.py"


def test_three_nodes_with_reflectors_measured_and_cleaned_up() -> None:
    why = have_netns() or have_etcd() or (None if cni_plugin() else "podbgp-cni missing")
    if why:
        pytest.skip(why)
    cmd = [sys.executable, str(SCRIPT), "--nodes", "3", "--topology", "rr", "--blocks", "1",
           "--idle", "2", "--timeout", "60"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=170)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the script cleans up on SIGTERM
            proc.communicate(timeout=30)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert "error" not in result, (result, stderr[-2000:])
    rr = result["rr"]
    assert rr["block_ms"]["n"] == 3
    assert rr["block_from_add_start_ms"]["p50"] > 0
    assert rr["cold_start_s"]["n"] == 1 and rr["cold_routes"]["max"] >= 3 * 2
    assert rr["idle_reflector_rss_mb"]["n"] == 2 and rr["idle_node_rss_mb"]["n"] == 1
    assert rr["idle_node_cpu_pct"]["max"] >= 0
    assert not list_namespaces(f"cs{proc.pid % 100000}")
