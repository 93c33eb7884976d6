"""The operator trial's outage, replayed in the lab: the store is deleted while pods run.

Before: the next CNI ADD on n3 created a fresh empty store, handed out n3-p1's address again,
re-pointed its /32 to the new veth, and the newcomer's DEL then cut n3-p1 off. Now the ADD is
refused with a CNI error naming the missing store, no address is handed out, every daemon
reports the loss (once, in its log; in `show node`), and the running pods keep working.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_lab import LabSpot, lab_up, ping, pod

from podbgp.api import ControlClient
from podbgp.lab import pods
from podbgp.lab.labplan import LabPlan, PodPlan
from podbgp.lab.netns import IP

pytestmark = [pytest.mark.root]


def wait_all_report(sockets: dict[str, str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {n: ControlClient(s).request("show.node")["datastore"] for n, s in sockets.items()}
        if all(not s["ok"] for s in states.values()):
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


def cni_add(plan: LabPlan, pod: PodPlan, plugin: str) -> tuple[int, dict[str, Any]]:
    """`podbgp-cni ADD` in the node's namespace, as the lab (and a runtime) calls it."""
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id,
           "CNI_NETNS": f"/run/netns/{plan.ns(pod.name)}", "CNI_IFNAME": "eth0",
           "CNI_PATH": str(Path(plugin).parent)}  # fmt: skip
    proc = subprocess.run(
        [IP, "netns", "exec", plan.ns(pod.node), plugin],
        input=json.dumps(pods.cni_netconf(plan, plan.node(pod.node))),
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def test_deleted_store_stops_allocation_and_the_pods_stay_up(lab_spot: LabSpot) -> None:
    plugin = pods.cni_plugin()
    if plugin is None:
        pytest.skip("podbgp-cni is not installed")
    plan, state = lab_up(lab_spot, "mesh")
    victim = pod(state, "n3-p1")
    for suffix in ("", "-wal", "-shm"):  # the careless `rm podbgp.db*`
        Path(f"{plan.datastore}{suffix}").unlink(missing_ok=True)
    wait_all_report({n["name"]: n["socket"] for n in state.nodes})

    newcomer = PodPlan("n3-p9", "n3")
    subprocess.run([IP, "netns", "add", plan.ns(newcomer.name)], check=True)
    try:
        rc, out = cni_add(plan, newcomer, plugin)
        assert rc != 0 and out["code"] == 11, out
        assert f"{plan.datastore}: the datastore does not exist" in out["msg"], out
        assert not plan.datastore.exists()
        addrs = subprocess.run([IP, "-n", plan.ns(newcomer.name), "-4", "-o", "addr"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "10.244." not in addrs  # nothing handed out, nothing wired
    finally:
        subprocess.run([IP, "netns", "del", plan.ns(newcomer.name)], check=False)

    # The running pods are untouched: n3-p1 is still reachable from the other nodes' pods.
    assert ping(plan.ns("n1-p1"), victim["ip"])
    assert ping(plan.ns("n2-p1"), victim["ip"])
    for node in state.nodes:
        log = Path(node["log"]).read_text()
        assert log.count("deleted while in use") == 1, node["name"]
