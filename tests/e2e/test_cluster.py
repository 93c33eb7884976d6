"""The cluster as one system (issue 16): two racks, 3 etcd members, 6 nodes, pods via CNI.

The lab (`podbgp.lab.cluster`) is built once for the module, by the command `make demo`
runs (read from the Makefile) under a pid-prefixed name, and removed at the end. The tests
run in file order, the destructive ones last:

1. every node converges: every pod's block is routed on every other node, and every pod
   reaches every other pod, across racks (VXLAN CrossSubnet) and within one;
2. pods of namespace ``legacy`` get addresses from the pool selected for it;
3. the sessions are exactly what the labels call for (reflector pair per rack);
4. `podbgp apply` of a changed peer (rack a's ToR) and a changed pool (legacy: VXLAN
   Always) moves only that: rack a's ToR sessions reset, every other session keeps its
   uptime, every route to a legacy block is re-planned through VXLAN, the other pool's
   routes stay as they were; applying the lab's resources again puts it all back;
5. a node restarted inside the grace (kill -9, start again) changes nothing on the others:
   their sessions to it come back, no other session resets, no route moves;
6. a node killed with SIGKILL and never started again is gone from every other node's
   sessions, FDB and kernel after lease + restart time + grace, its blocks are released and
   `podbgp node list` says it was removed.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ipam.etcdlab import have_etcd
from podbgp.api import ControlClient
from podbgp.lab import cluster, lab
from podbgp.lab.clusterplan import (
    GONE_AFTER,
    GONE_GRACE,
    LEASE_TTL,
    LEGACY_NAMESPACE,
    LEGACY_POOL,
    RESTART_TIME,
    ClusterPlan,
    plan_cluster,
    render_resources,
)
from podbgp.lab.labplan import POOL
from podbgp.lab.netns import cleanup_prefix, have_netns, list_namespaces
from podbgp.lab.peers import Frr
from podbgp.lab.pods import cni_plugin
from podbgp.lab.shell import run

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.etcd, pytest.mark.timeout(240)]

CONVERGE = 60.0
_counter = itertools.count()


@dataclass
class Cluster:
    plan: ClusterPlan
    state: lab.LabState


def _skip_reason() -> str | None:
    plugin = None if cni_plugin() else "podbgp-cni is not installed"
    return have_netns() or Frr.missing() or have_etcd() or plugin


ROOT = Path(__file__).resolve().parents[2]


def demo_command(prefix: str, state_dir: Path) -> list[str]:
    """The Makefile's `make demo` line for the cluster, with this test's prefix and dir."""
    line = re.search(r"^\t\$\(PY\) -m podbgp (lab up --topology cluster .*)$",
                     (ROOT / "Makefile").read_text(), re.M)  # fmt: skip
    assert line is not None, "make demo builds no cluster lab"
    args = line.group(1).split()
    for flag in ("--prefix", "--state-dir"):
        i = args.index(flag)
        del args[i : i + 2]
    return [
        sys.executable,
        "-m",
        "podbgp",
        *args,
        "--prefix",
        prefix,
        "--state-dir",
        str(state_dir),
    ]


@pytest.fixture(scope="module")
def lab_cluster() -> Iterator[Cluster]:
    """The cluster `make demo` builds (its very command), under this test's own names."""
    why = _skip_reason()
    if why:
        pytest.skip(why)
    prefix = f"c{os.getpid() % 100000}x{next(_counter)}-"
    cleanup_prefix(prefix)
    # Not under pytest's tmp dir: a pytest starting elsewhere on the host resets
    # /tmp/pytest-of-root to 0700, and FRR (user frr) then cannot reach its files.
    state_dir = Path(tempfile.mkdtemp(prefix=prefix)) / "lab"
    try:
        proc = subprocess.run(demo_command(prefix, state_dir), capture_output=True, text=True,
                              timeout=200, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        plan = plan_cluster(6, 2, prefix=prefix, state_dir=state_dir)
        state = lab.LabState.load(state_dir)
        assert state is not None and len(state.pods) == len(plan.pods) == 14
        pairs = len(plan.pods) * (len(plan.pods) - 1)
        assert f"{pairs}/{pairs} pod pairs reachable" in proc.stdout, proc.stdout[-4000:]
        assert "sessions not as the labels say" not in proc.stdout, proc.stdout[-4000:]
        # What README shows: the one resources file the cluster was configured from.
        assert render_resources(plan) in (state_dir / "resources.toml").read_text()
        yield Cluster(plan, state)
    finally:
        lab.down(prefix, state_dir)
        cleanup_prefix(prefix)
        shutil.rmtree(state_dir.parent, ignore_errors=True)
        assert not list_namespaces(prefix)


def _routes(ns: str) -> set[str]:
    """The node's podbgp kernel routes, one line each (prefix, next hop, device)."""
    return set(lab.kernel_routes(ns))


def _routed_everywhere(c: Cluster) -> list[str]:
    """(node, pod) pairs where the node has no podbgp route covering the pod's address."""
    missing = []
    for node in c.plan.nodes:
        nets = [ipaddress.ip_network(r.split()[1 if r.startswith("blackhole") else 0])
                for r in _routes(c.plan.ns(node.name))]  # fmt: skip
        for pod in c.state.pods:
            if pod["node"] != node.name and not any(
                ipaddress.ip_address(pod["ip"]) in n for n in nets
            ):
                missing.append(f"{node.name} has no route to {pod['name']} {pod['ip']}")
    return missing


def _wait(what: str, check: object, timeout: float = CONVERGE) -> None:
    """Poll `check()` (a list of what is still wrong) until it is empty or `timeout` passes."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        bad = check()
        if not bad:
            return
        assert time.monotonic() < deadline, f"{what} after {timeout:g}s: {bad}"
        time.sleep(0.5)


def _assert_matrix(c: Cluster) -> None:
    matrix = lab.wait_matrix(c.state, CONVERGE)
    bad = sorted(k for k, ok in matrix.items() if not ok)
    assert not bad, f"{lab.format_matrix(c.state, matrix)}\n{lab.diagnostics(c.state)}"


def test_every_block_is_routed_everywhere_and_every_pod_reaches_every_pod(
    lab_cluster: Cluster,
) -> None:
    _wait("pods not routed", lambda: _routed_everywhere(lab_cluster))
    _assert_matrix(lab_cluster)
    racks = {p["name"]: p["node"][0] for p in lab_cluster.state.pods}
    assert len(set(racks.values())) == 2  # the matrix above crossed racks


def test_pods_of_namespace_legacy_get_the_legacy_pools_addresses(lab_cluster: Cluster) -> None:
    # Reachability of these pods is in the ping matrix above.
    legacy = ipaddress.ip_network(LEGACY_POOL)
    by_ns = {
        p["name"]: (p["namespace"], ipaddress.ip_address(p["ip"])) for p in lab_cluster.state.pods
    }
    assert sum(ns == LEGACY_NAMESPACE for ns, _ in by_ns.values()) == 2
    for name, (ns, ip) in by_ns.items():
        assert (ip in legacy) == (ns == LEGACY_NAMESPACE), (name, ns, ip)


def test_sessions_are_what_the_labels_say(lab_cluster: Cluster) -> None:
    bad = cluster.wait_sessions(lab_cluster.plan, CONVERGE)
    assert not bad, bad


def _uptimes(c: Cluster, skip: str = "") -> dict[tuple[str, str], float]:
    """(node, peer) → session uptime in seconds, for every node but `skip`."""
    out = {}
    for node in c.plan.nodes:
        if node.name == skip:
            continue
        for addr, row in cluster.established(str(c.plan.socket_path(node.name))).items():
            out[(node.name, addr)] = float(row["uptime_seconds"])
    return out


def _in_pool(route: str, pool: str) -> bool:
    dst = route.split()[1 if route.startswith("blackhole") else 0]
    return ipaddress.ip_network(dst).subnet_of(ipaddress.ip_network(pool))


def _legacy_routes(c: Cluster) -> dict[str, set[str]]:
    """Each node's routes to another node's block of the legacy pool."""
    return {n.name: {r for r in _routes(c.plan.ns(n.name))
                     if _in_pool(r, LEGACY_POOL) and not r.startswith("blackhole")}
            for n in c.plan.nodes}  # fmt: skip


def _hops(routes: set[str]) -> set[str]:
    """Routes without their nexthop object's ID (which a re-plan may renumber)."""
    return {re.sub(r" nhid \d+", "", r) for r in routes}


def _not_vxlan(c: Cluster) -> list[str]:
    """Routes to another node's legacy block that do not go through vxlan.podbgp."""
    return [r for routes in _legacy_routes(c).values() for r in routes if "vxlan.podbgp" not in r]


def _changed_resources(c: Cluster) -> str:
    """The lab's resources with rack a's ToR peer and the legacy pool changed."""
    text = render_resources(c.plan)
    text = text.replace('name = "tor-a"\n', 'name = "tor-a"\nhold_time = 12\n')
    legacy = f'cidr = "{LEGACY_POOL}"\nblock_size = 28\nvxlan_mode = '
    text = text.replace(legacy + '"CrossSubnet"', legacy + '"Always"')
    assert text.count("hold_time = 12") == 1 and text.count('vxlan_mode = "Always"') == 1
    assert text.count('vxlan_mode = "CrossSubnet"') == 1  # the default pool's
    return text


def _wait_reset(c: Cluster, keys: set[tuple[str, str]], since: float) -> None:
    def not_reset() -> list[tuple[str, str]]:
        now = _uptimes(c)
        return [k for k in keys if now.get(k, 1e9) > time.monotonic() - since]

    _wait("sessions not reset", not_reset)


def test_a_changed_peer_and_pool_move_only_what_changed(lab_cluster: Cluster) -> None:
    c = lab_cluster
    pods_pool = {n.name: {r for r in _routes(c.plan.ns(n.name)) if _in_pool(r, POOL)}
                 for n in c.plan.nodes}  # fmt: skip
    legacy = _legacy_routes(c)
    assert sum(map(len, legacy.values())) == 2 * (len(c.plan.nodes) - 1)  # 2 blocks, everywhere
    assert _not_vxlan(c), "no legacy block is routed directly within its rack"
    before = _uptimes(c)
    t0 = time.monotonic()
    cluster.apply_resources(c.plan, _changed_resources(c), "resources-changed.toml")

    _wait("legacy blocks not re-planned through VXLAN", lambda: _not_vxlan(c))
    tor_a = {(n.name, n.gateway) for n in c.plan.rack_nodes(0)}
    _wait_reset(c, tor_a, t0)
    after = _uptimes(c)
    elapsed = time.monotonic() - t0
    assert set(after) == set(before)
    reset = sorted(k for k, up in before.items() if k not in tor_a and after[k] < up + elapsed - 5)
    assert not reset, f"sessions the change does not touch were reset: {reset}"
    for node in c.plan.nodes:
        got = {r for r in _routes(c.plan.ns(node.name)) if _in_pool(r, POOL)}
        assert got == pods_pool[node.name], f"{node.name}: routes of the untouched pool moved"
    _assert_matrix(c)  # the legacy pods, now through VXLAN also within a rack

    # Back to the lab's resources: direct routes within a rack again, tor-a reset again.
    t1 = time.monotonic()
    cluster.apply_resources(c.plan, render_resources(c.plan))
    _wait("legacy routes not back",
          lambda: [n for n, r in _legacy_routes(c).items() if _hops(r) != _hops(legacy[n])])  # fmt: skip
    _wait_reset(c, tor_a, t1)
    assert not cluster.wait_sessions(c.plan, CONVERGE)
    _assert_matrix(c)


def test_a_node_restarted_inside_the_grace_changes_nothing(lab_cluster: Cluster) -> None:
    c = lab_cluster
    victim = c.plan.node("a3")
    others = [n for n in c.plan.nodes if n is not victim]
    routes = {n.name: _routes(c.plan.ns(n.name)) for n in others}
    before = _uptimes(c, victim.name)
    t0 = time.monotonic()
    os.kill(c.state.pids[victim.name], signal.SIGKILL)
    cluster.start_nodes(c.plan, c.state, [victim])
    _wait("sessions not back", lambda: set(before) ^ set(_uptimes(c, victim.name)))
    after = _uptimes(c, victim.name)
    elapsed = time.monotonic() - t0
    reset = [k for k, up in before.items()
             if k[1] != victim.ip and after[k] < up + elapsed - 5]  # fmt: skip
    assert not reset, f"sessions not involving {victim.name} were reset: {reset}"
    assert {n.name: _routes(c.plan.ns(n.name)) for n in others} == routes
    _assert_matrix(c)


def _seen(c: Cluster, victim: str, blocks: list[str]) -> list[str]:
    """Where the other nodes still know `victim`: a configured session, an FDB entry towards
    it, a kernel route to one of its blocks or through it."""
    ip = c.plan.node(victim).ip
    left = []
    for node in c.plan.nodes:
        if node.name == victim:
            continue
        ns = c.plan.ns(node.name)
        rows = ControlClient(str(c.plan.socket_path(node.name))).request("show.peers") or []
        if any(str(r["address"]) == ip for r in rows):
            left.append(f"{node.name}: session")
        fdb = run(["bridge", "-n", ns, "fdb", "show", "dev", "vxlan.podbgp"], check=False)
        if f"dst {ip} " in fdb:
            left.append(f"{node.name}: fdb")
        for route in _routes(ns):
            if route.split()[0] in blocks or f"via {ip} " in route + " ":
                left.append(f"{node.name}: {route}")
    return left


def _blocks_held(c: Cluster, victim: str) -> list[str]:
    """The datastore's blocks still affine to `victim`, asked from another node."""
    out = cluster.podbgp_in(c.plan, "a1", "ipam", "blocks", "--json", "--config",
                            str(c.plan.config_path("a1")))  # fmt: skip
    return [b["cidr"] for b in json.loads(out)["blocks"] if b["affinity"] == victim]


def _node_list(c: Cluster) -> list[dict[str, object]]:
    """`podbgp node list --json`, asked from node a1 with its config (the lab's timers)."""
    out = cluster.podbgp_in(c.plan, "a1", "node", "list", "--json", "--config",
                            str(c.plan.config_path("a1")))  # fmt: skip
    return list(json.loads(out)["nodes"])


def test_a_node_killed_for_good_is_gone_after_lease_and_grace(lab_cluster: Cluster) -> None:
    c = lab_cluster
    victim = c.plan.node("b3")
    blocks = [r.split()[1] for r in _routes(c.plan.ns(victim.name)) if r.startswith("blackhole")]
    assert blocks and _seen(c, victim.name, blocks)
    assert sorted(_blocks_held(c, victim.name)) == sorted(blocks)
    os.kill(c.state.pids[victim.name], signal.SIGKILL)
    killed = time.monotonic()
    floor = LEASE_TTL + RESTART_TIME + GONE_GRACE
    _wait("still known", lambda: _seen(c, victim.name, blocks), floor + 40)
    # Not before the lease lapsed and the grace ran out (a restart inside it changes nothing).
    assert time.monotonic() - killed > RESTART_TIME + GONE_GRACE
    _wait("blocks still held", lambda: _blocks_held(c, victim.name), GONE_AFTER + 40)
    phases = {n["name"]: n["phase"] for n in _node_list(c)}
    assert phases == {n.name: "removed" if n is victim else "live" for n in c.plan.nodes}
    # The rest of the cluster is as before: sessions as the labels say, pods reachable.
    rest = [n for n in c.plan.nodes if n is not victim]
    c.state.pods = [p for p in c.state.pods if p["node"] != victim.name]
    assert not cluster.wait_sessions(c.plan, CONVERGE, rest, gone=frozenset({victim.name}))
    _assert_matrix(c)
