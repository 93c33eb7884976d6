"""The lab's plumbing without the daemon: topology, pods, ping matrix, state, down and status.

Routes between nodes are installed by hand here (what podbgp's FIB installs in the real lab),
so these tests show the lab's own parts work and that its ping matrix tells a reachable pair
from an unreachable one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from e2e_lab import LabSpot

from podbgp.lab import lab, pods
from podbgp.lab.labplan import EXTERNAL, LabPlan, plan_lab
from podbgp.lab.netns import Netns, list_namespaces

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def build(
    spot: LabSpot, option: str = "mesh", nodes: int = 3, pods: int = 2, plugin: str | None = None
) -> tuple[LabPlan, lab.LabState]:
    """The lab's network and pods (by hand, or through `plugin`), without daemons."""
    plan = plan_lab(option, nodes, pods, prefix=spot.prefix, state_dir=spot.state_dir)
    state = lab.prepare(plan, out=lambda _: None)
    lab.build_network(plan, state)
    for node in plan.nodes:
        lab.write_config(plan, node)
    lab.create_pods(plan, state, plugin)
    return plan, state


def hand_routes(plan: LabPlan, state: lab.LabState) -> None:
    """Each pod's /32 on every other node, via the pod's node (same subnet) or the ToR."""
    for pod in state.pods:
        owner = plan.node(pod["node"])
        for node in plan.nodes:
            if node.name == owner.name:
                continue
            via = owner.ip if node.subnet == owner.subnet else node.gateway
            Netns(plan.ns(node.name)).ip("route", "replace", f"{pod['ip']}/32", "via", via)
    if len(plan.subnets) > 1:
        tor = Netns(plan.ns("tor"))
        for pod in state.pods:
            tor.ip("route", "replace", f"{pod['ip']}/32", "via", plan.node(pod["node"]).ip)


def test_pods_get_pool_addresses_and_the_matrix_sees_routes(lab_spot: LabSpot) -> None:
    plan, state = build(lab_spot)
    ips = [p["ip"] for p in state.pods]
    assert len(set(ips)) == 6
    assert all(ip.startswith("10.244.") for ip in ips)
    # Pods of one node share its /26 block (IPAM block affinity).
    for node in ("n1", "n2", "n3"):
        blocks = {int(p["ip"].split(".")[3]) // 64 for p in state.pods if p["node"] == node}
        assert len(blocks) == 1

    before = lab.ping_matrix(state)
    same_node = {(a, b) for (a, b) in before if a[:2] == b[:2]}
    assert all(before[k] for k in same_node)
    assert not any(before[k] for k in before.keys() - same_node)

    hand_routes(plan, state)
    after = lab.ping_matrix(state)
    assert all(after.values()) and len(after) == 30
    text = lab.format_matrix(state, after)
    assert "30/30 pod pairs reachable" in text and "✗" not in text


def test_pods_through_the_cni_plugin(lab_spot: LabSpot) -> None:
    plugin = pods.cni_plugin()
    if plugin is None:
        pytest.skip("podbgp-cni is not installed")
    plan, state = build(lab_spot, nodes=2, pods=2, plugin=plugin)
    assert {p["via"] for p in state.pods} == {"cni"}
    assert len({p["ip"] for p in state.pods}) == 4
    for p in state.pods:
        assert f"{p['ip']}/32" in Netns(p["ns"]).addresses("eth0")
    hand_routes(plan, state)
    assert all(lab.ping_matrix(state).values())


def test_two_subnets_are_routed_by_the_tor(lab_spot: LabSpot) -> None:
    plan, state = build(lab_spot, "vxlan-crosssubnet", nodes=3, pods=1)
    n1, n3 = Netns(plan.ns("n1")), Netns(plan.ns("n3"))
    assert "10.99.1.1/24" in n1.addresses("eth0")
    assert "10.99.2.3/24" in n3.addresses("eth0")
    n1.run("ping", "-c1", "-W2", "10.99.2.3")  # across subnets, through the ToR
    n3.run("ping", "-c1", "-W2", EXTERNAL)  # the address outside the pools
    hand_routes(plan, state)
    assert all(lab.ping_matrix(state).values())


def test_state_file_records_the_lab(lab_spot: LabSpot) -> None:
    _, state = build(lab_spot, nodes=2, pods=1)
    raw = json.loads((lab_spot.state_dir / lab.STATE_FILE).read_text())
    assert raw["prefix"] == lab_spot.prefix and raw["option"] == "mesh"
    assert [n["name"] for n in raw["nodes"]] == ["n1", "n2"]
    assert [p["ns"] for p in raw["pods"]] == [lab_spot.prefix + "n1-p1", lab_spot.prefix + "n2-p1"]
    loaded = lab.LabState.load(lab_spot.state_dir)
    assert loaded is not None and loaded.pods == state.pods
    text, exists = lab.status_report(lab_spot.state_dir, lab_spot.prefix)
    assert exists and "option mesh" in text and state.pods[0]["ip"] in text


def test_up_refuses_to_build_over_a_lab(lab_spot: LabSpot) -> None:
    plan, _ = build(lab_spot, nodes=1, pods=1)
    with pytest.raises(lab.LabError, match="already up"):
        lab.prepare(plan, out=lambda _: None)


def test_replace_removes_the_previous_lab_first(lab_spot: LabSpot) -> None:
    plan, _ = build(lab_spot, nodes=2, pods=1)
    assert len(list_namespaces(lab_spot.prefix)) == 5
    lab.prepare(plan, replace=True, out=lambda _: None)
    assert not list_namespaces(lab_spot.prefix)
    assert json.loads((lab_spot.state_dir / lab.STATE_FILE).read_text())["nodes"] == []


def test_down_removes_processes_namespaces_and_state(lab_spot: LabSpot) -> None:
    plan, state = build(lab_spot, nodes=2, pods=1)
    sleeper = Netns(plan.ns("n1")).popen(["sleep", "300"])
    state.pids["n1"] = sleeper.pid
    state.save()
    assert lab.down(lab_spot.prefix, lab_spot.state_dir)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert not list_namespaces(lab_spot.prefix)
    assert not lab_spot.state_dir.exists()
    text, exists = lab.status_report(lab_spot.state_dir, lab_spot.prefix)
    assert not exists and "no lab is up" in text


def test_down_after_a_crash_finds_namespaces_by_prefix(lab_spot: LabSpot) -> None:
    build(lab_spot, nodes=2, pods=1)
    (lab_spot.state_dir / lab.STATE_FILE).unlink()  # as if `up` died before writing it
    text, exists = lab.status_report(lab_spot.state_dir, lab_spot.prefix)
    assert exists and "left over" in text
    lab.down(lab_spot.prefix, lab_spot.state_dir)
    assert not list_namespaces(lab_spot.prefix)


def test_down_never_removes_a_dir_that_is_not_a_lab(lab_spot: LabSpot) -> None:
    lab_spot.state_dir.mkdir()
    (lab_spot.state_dir / "precious.txt").write_text("keep me")
    lab.down(lab_spot.prefix, lab_spot.state_dir)
    assert (lab_spot.state_dir / "precious.txt").read_text() == "keep me"
    plan = plan_lab("mesh", 1, 1, prefix=lab_spot.prefix, state_dir=lab_spot.state_dir)
    with pytest.raises(lab.LabError, match="not empty"):
        lab.prepare(plan, out=lambda _: None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podbgp", "lab", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ}, check=False)  # fmt: skip


def test_cli_down_and_status(lab_spot: LabSpot) -> None:
    build(lab_spot, nodes=1, pods=1)
    where = ["--prefix", lab_spot.prefix, "--state-dir", str(lab_spot.state_dir)]
    status = _cli("status", *where)
    assert status.returncode == 0 and "n1-p1" in status.stdout
    down = _cli("down", *where)
    assert down.returncode == 0 and "removed 3 namespaces" in down.stdout
    assert _cli("status", *where).returncode == 3


def test_missing_ipip_is_reported_clearly(lab_spot: LabSpot) -> None:
    if lab.missing_encap("ipip") is None:
        pytest.skip("this kernel has ipip: the option runs, nothing to report")
    where = ["--prefix", lab_spot.prefix, "--state-dir", str(lab_spot.state_dir)]
    for option in ("ipip", "ipip-crosssubnet"):
        proc = _cli("up", "--option", option, *where)
        assert proc.returncode == 2
        assert "cannot create ipip devices" in proc.stderr
        assert "CONFIG_NET_IPIP" in proc.stderr and "vxlan" in proc.stderr
        assert not list_namespaces(lab_spot.prefix)
        assert not lab_spot.state_dir.exists()
