"""Node lifecycle and leaks with real daemons: pods gone behind the runtime's back are
reclaimed by their node and nothing else is; a restart inside the grace changes nothing; a node
killed for good is taken out of every other node's sessions, FDB and kernel after its
lease and the grace, and its blocks are released after ``node_gone_after``; a removed node
that comes back takes back its running pods' addresses; a node whose daemon is frozen (as in
a partition) past the grace but not removed comes back as it was, and one frozen through its
removal is registered and meshed again, neither restarted.

Option ``vxlan-crosssubnet`` (BGP mesh, VXLAN across the two subnets, so every node has
an FDB entry and a neighbour for every other node's VTEP). The lab's configs are
rewritten with short timers (lease 2 s, graceful restart 15 s -- long enough for a
restart under load -- grace 5 s, removal 30 s after the lapse) and every daemon restarted with SIGTERM, which is itself a restart: nothing of the
cluster may move for it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import (
    Cluster,
    blocks,
    kill,
    mismatches,
    peers,
    routes,
    sessions,
    start,
    start_daemon,
    stop,
    wait,
)

from ipam import Ipam, IpamConfig
from ipam.lifecycle import Lifecycle, Phase, Timing
from ipam.nodes import node_key
from ipam.store import open_store
from podbgp import cni, wiring
from podbgp.cni_conf import parse_netconf
from podbgp.cni_proto import parse_env
from podbgp.config import load_config
from podbgp.lab import pods
from podbgp.lab.labplan import PodPlan, render_node_config
from podbgp.lab.netns import IP, new_netns
from podbgp.lab.shell import LabError

pytestmark = [pytest.mark.root, pytest.mark.e2e]

BRIDGE = shutil.which("bridge") or "/usr/sbin/bridge"
TTL, RESTART, GRACE, REMOVE = 2, 15, 5, 30
TIMING = Timing(gone_after=RESTART + GRACE, remove_after=REMOVE)
N3_SECOND = PodPlan("n3-p2", "n3")


def short_timers(c: Cluster, name: str) -> str:
    text = render_node_config(c.plan, c.plan.node(name))
    assert "restart_time = 30" in text and "[[ipam.pool]]" in text
    text = text.replace("restart_time = 30", f"restart_time = {RESTART}")
    ipam = (f"[ipam]\nnode_lease_ttl = {TTL}\nnode_gone_grace = {GRACE}\n"
            f"node_gone_after = {REMOVE}\nleak_check_interval = 1\nleak_grace = 2\n\n")  # fmt: skip
    return text.replace("[[ipam.pool]]", ipam + "[[ipam.pool]]", 1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("lifecycle")), "vxlan-crosssubnet", nodes=3, spare=0)
    try:
        for n in ("n1", "n2", "n3"):
            kill(c, n, signal.SIGTERM)
            start_daemon(c, n, config=short_timers(c, n))
        wait(lambda: not mismatches(c, ["n1", "n2", "n3"]), 60, "routes after the restarts")
        wait(lambda: all(len(sessions(c, n)) == 2 for n in ("n1", "n2", "n3")), 60, "sessions")
        pods.add_pod(c.plan, N3_SECOND, pods.cni_plugin())  # n3 runs two pods
        yield c
    finally:
        stop(c)


def fdb_dsts(c: Cluster, node: str) -> set[str]:
    """Underlay addresses the node's VXLAN device forwards to (its FDB entries)."""
    out = subprocess.run([BRIDGE, "-j", "-n", c.ns(node), "fdb", "show", "dev", "vxlan.podbgp"],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    return {e["dst"] for e in json.loads(out or "[]") if e.get("dst")}


def neighbours(c: Cluster, node: str) -> set[str]:
    out = subprocess.run([IP, "-j", "-n", c.ns(node), "neigh", "show", "dev", "vxlan.podbgp"],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    return {e["dst"] for e in json.loads(out or "[]")}


def members(c: Cluster) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        store = open_store(f"sqlite:{c.plan.datastore}")
        try:
            return await Lifecycle(store).members()
        finally:
            await store.close()

    return asyncio.run(go())


def held_by(c: Cluster, node: str) -> tuple[list[str], list[str]]:
    """(blocks affine to `node`, addresses allocated by `node`) in the datastore."""

    async def go() -> tuple[list[str], list[str]]:
        store = open_store(f"sqlite:{c.plan.datastore}")
        try:
            bs = await Ipam(store, IpamConfig()).blocks()
        finally:
            await store.close()
        return ([str(b.cidr) for b in bs if b.affinity == node],
                [str(a) for b in bs for a, al in b.held() if al.node == node])  # fmt: skip

    return asyncio.run(go())


def registered(c: Cluster, node: str) -> bool:
    """Whether `node` has a registry record (what the other nodes mesh with)."""

    async def go() -> bool:
        store = open_store(f"sqlite:{c.plan.datastore}")
        try:
            return await store.get(node_key(node)) is not None
        finally:
            await store.close()

    return asyncio.run(go())


def vtep_of(c: Cluster, node: str) -> str:
    return str(c.ask(node, "show.node")["vtep_address"])


def pod_addresses(c: Cluster) -> dict[str, str]:
    """Handle -> IPv4 address, from the datastore."""

    async def go() -> dict[str, str]:
        store = open_store(f"sqlite:{c.plan.datastore}")
        try:
            handles = await Ipam(store, IpamConfig()).handles()
        finally:
            await store.close()
        return {h: a for h, rec in handles.items() for a in rec["addrs"] if "." in a}

    return asyncio.run(go())


def allocate_then_die(c: Cluster, pod: PodPlan) -> str:
    """What podbgp-cni ADD does up to the wiring (its own code), then nothing: the plugin was
    killed between allocation and wiring, and no DEL follows."""
    env = parse_env({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id,
                     "CNI_NETNS": f"/run/netns/{c.plan.ns(pod.name)}", "CNI_IFNAME": "eth0",
                     "CNI_PATH": "/", "CNI_ARGS": f"K8S_POD_NAME={pod.name}"})  # fmt: skip
    conf = parse_netconf(pods.cni_netconf(c.plan, c.plan.node(pod.node)))
    return str(cni._allocate(conf, env)[0].ip)


def test_the_daemon_reclaims_exactly_the_leaked_pod_addresses(cluster: Cluster) -> None:
    c = cluster
    plugin = pods.cni_plugin()
    assert plugin, "podbgp-cni is not installed in this venv"
    before = pod_addresses(c)
    plans = {n: PodPlan(f"n1-{n}", "n1") for n in ("kept", "deleted", "killed", "retrying")}
    for name in ("kept", "deleted"):
        pods.add_pod(c.plan, plans[name], plugin)  # real namespaces, real ADD
    for name in ("killed", "retrying"):
        new_netns(c.plan.ns(plans[name].name))
        allocate_then_die(c, plans[name])
    mine = {n: pod_addresses(c)[p.container_id] for n, p in plans.items()}
    # Behind the runtime's back: one wired pod's namespace, and the killed ADD's sandbox.
    for name in ("deleted", "killed"):
        subprocess.run([IP, "netns", "delete", c.plan.ns(plans[name].name)], check=True)
    leaked = {plans[n].container_id for n in ("deleted", "killed")}
    wait(lambda: not leaked & pod_addresses(c).keys(), 30, "the leaked addresses released")
    after = pod_addresses(c)
    # Exactly those: the live pod, the ADD whose sandbox still exists (the runtime will
    # retry it) and every lab pod keep their addresses.
    assert after == {**before, **{plans[n].container_id: mine[n] for n in ("kept", "retrying")}}
    log = c.log("n1", 400)
    assert all(f"released {mine[n]} of pod {plans[n].container_id}" in log
               for n in ("deleted", "killed"))  # fmt: skip
    assert "leaked" not in c.log("n2", 400) and "leaked" not in c.log("n3", 400)


def test_a_restart_inside_the_grace_changes_nothing(cluster: Cluster) -> None:
    c = cluster
    n3_ip, n3_vtep, n3_blocks = c.plan.node("n3").ip, vtep_of(c, "n3"), blocks(c, "n3")
    other = {n: sessions(c, n)[c.plan.node("n2" if n == "n1" else "n1").ip] for n in ("n1", "n2")}
    before = {n: (fdb_dsts(c, n), neighbours(c, n)) for n in ("n1", "n2")}
    assert all(n3_ip in f and n3_vtep in nb for f, nb in before.values()), before
    kill(c, "n3")  # kill -9
    time.sleep(TTL + 1)  # the lease lapses: a lapse is not a departure
    start_daemon(c, "n3", config=short_timers(c, "n3"))
    # Past the point where a node that stayed away would be gone, nothing has moved.
    deadline = time.monotonic() + TIMING.gone_after + 2
    while time.monotonic() < deadline:
        for n in ("n1", "n2"):
            assert (fdb_dsts(c, n), neighbours(c, n)) == before[n], n
            have = routes(c.ns(n))
            assert all(b in have for b in n3_blocks), f"{n} lost a route to n3's blocks"
            assert n3_ip in peers(c, n), f"{n} dropped its session with n3"
        time.sleep(0.5)
    assert blocks(c, "n3") == n3_blocks and vtep_of(c, "n3") == n3_vtep
    for n, s in other.items():  # the sessions that do not involve n3 kept their uptime
        peer = c.plan.node("n2" if n == "n1" else "n1").ip
        assert sessions(c, n)[peer] == s
    m = members(c)["n3"]
    assert m.phase(time.time(), TIMING) is Phase.LIVE and m.state.lapsed_at is None
    wait(lambda: n3_ip in sessions(c, "n1") and n3_ip in sessions(c, "n2"), 30, "n3 back")
    wait(lambda: not mismatches(c, ["n1", "n2", "n3"]), 30, "routes after the restart")


def test_a_node_killed_for_good_is_taken_out_then_removed(cluster: Cluster) -> None:
    c = cluster
    n3_ip, n3_vtep, n3_blocks = c.plan.node("n3").ip, vtep_of(c, "n3"), blocks(c, "n3")
    assert n3_blocks and held_by(c, "n3")[0]
    kill(c, "n3")
    t0 = time.monotonic()
    # Inside the grace the others keep the peer and the forwarding entries.
    time.sleep(TTL + RESTART)
    if time.monotonic() - t0 < TTL + TIMING.gone_after - 2:
        for n in ("n1", "n2"):
            assert n3_ip in peers(c, n) and n3_ip in fdb_dsts(c, n), f"{n}: n3 dropped early"

    def taken_out() -> bool:
        for n in ("n1", "n2"):
            have = routes(c.ns(n))
            if n3_ip in peers(c, n) or n3_ip in fdb_dsts(c, n) or n3_vtep in neighbours(c, n):
                return False
            if any(b in have for b in n3_blocks):
                return False
        return True

    wait(taken_out, TTL + TIMING.gone_after + 30, "n3 out of n1's and n2's sessions, FDB, kernel")
    took = time.monotonic() - t0
    assert took >= TTL + RESTART, f"taken out after {took:.1f} s, before its lease and grace"
    wait(lambda: held_by(c, "n3") == ([], []), REMOVE + 30, "n3's blocks and addresses free")
    m = members(c)["n3"]
    assert m.node is None and m.phase(time.time(), TIMING) is Phase.REMOVED
    # Both said why; n1 (the live node with the smallest name) removed it, once.
    assert "node n3: lease lapsed more than" in c.log("n1", 400)
    assert "node n3: lease lapsed more than" in c.log("n2", 400)
    assert "removed it" in c.log("n1", 400) and "removed it" not in c.log("n2", 400)
    # The survivors are untouched: their sessions and routes are as before.
    assert len(sessions(c, "n1")) == 1 and len(sessions(c, "n2")) == 1
    assert not mismatches(c, ["n1", "n2"])


def pod_address(c: Cluster, pod: PodPlan) -> str:
    """The IPv4 address the running pod has on eth0 (from its namespace, not from IPAM)."""
    out = subprocess.run([IP, "-j", "-4", "-n", c.plan.ns(pod.name), "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    return str(json.loads(out)[0]["addr_info"][0]["local"])


def test_a_removed_node_that_comes_back_takes_back_its_running_pods_addresses(
    cluster: Cluster,
) -> None:
    """n3 was away long enough to be removed (the test before: killed for good, reaped) and
    every address it held was released, while its pods kept running. It comes back: each
    pod whose namespace still exists holds its own address again under its own handle, and
    the one address another pod got meanwhile is named in the log, not taken."""
    c = cluster
    if members(c)["n3"].phase(time.time(), TIMING) is not Phase.REMOVED:
        kill(c, "n3")  # run alone: remove n3 the operator's way
        subprocess.run([sys.executable, "-m", "podbgp", "node", "remove", "n3", "--force",
                        "--datastore", f"sqlite:{c.plan.datastore}"], check=True, timeout=30)  # fmt: skip
    assert held_by(c, "n3") == ([], [])
    running = [p for p in c.plan.pods if p.node == "n3"] + [N3_SECOND]
    want = {p.container_id: pod_address(c, p) for p in running}
    stolen_pod, kept = running[0], running[1:]
    assert not set(want.values()) & set(pod_addresses(c).values())  # all free now

    async def take(address: str) -> None:  # another pod on n1 gets one of them meanwhile
        pools = wiring.ipam_config(load_config(str(c.plan.config_path("n1"))))
        store = open_store(f"sqlite:{c.plan.datastore}")
        try:
            await Ipam(store, pools).assign(ipaddress.ip_address(address), "n1", "pod-elsewhere")
        finally:
            await store.close()

    asyncio.run(take(want[stolen_pod.container_id]))
    # While n3 is removed its runtime may still call the plugin: refused, code 11, and
    # nothing allocated (the reaper would release it and hand it out again).
    late = PodPlan("n3-late", "n3")
    new_netns(c.plan.ns(late.name))
    with pytest.raises(LabError) as refused:
        pods.cni_call(c.plan, late, "ADD", pods.cni_plugin() or "")
    text = str(refused.value)
    assert '"code": 11' in text and "node n3 was removed from the cluster" in text, text
    assert late.container_id not in pod_addresses(c)
    subprocess.run([IP, "netns", "delete", c.plan.ns(late.name)], check=True, timeout=10)
    start_daemon(c, "n3", config=short_timers(c, "n3"))
    wait(lambda: all(pod_addresses(c).get(p.container_id) == want[p.container_id] for p in kept),
         30, "n3's running pods' addresses taken back")  # fmt: skip
    time.sleep(3)  # three housekeeping ticks of the reaper (n1), which saw n3 removed
    held = pod_addresses(c)
    assert all(held.get(p.container_id) == want[p.container_id] for p in kept), held
    assert "vxlan-tunnel-addr-n3" in held, "the reaper released the returning node's block"
    assert held.get("pod-elsewhere") == want[stolen_pod.container_id]
    assert stolen_pod.container_id not in held
    log = c.log("n3", 400)
    assert "was removed from the cluster while it was away" in log
    assert f"took back {len(kept)} addresses" in log
    # before its lease, its VTEP address or any pod could take one of them
    assert log.rindex("took back") < log.rindex("node n3: holding lease")
    assert f"still uses {want[stolen_pod.container_id]}, which cannot be taken back" in log
    wait(lambda: all(len(sessions(c, n)) == 2 for n in ("n1", "n2", "n3")), 60, "n3 meshed")
    wait(lambda: not mismatches(c, ["n1", "n2", "n3"]), 60, "routes after n3's return")
    # and the pod that got its address back is reachable at it from another node's pod
    target = want[kept[0].container_id]
    ping = [
        IP,
        "netns",
        "exec",
        c.plan.ns("n1-p1"),
        "ping",
        "-n",
        "-q",
        "-c",
        "1",
        "-W",
        "1",
        target,
    ]
    wait(lambda: subprocess.run(ping, capture_output=True, timeout=10).returncode == 0, 30,
         f"n1-p1 reaches {target} on n3")  # fmt: skip


def test_a_node_cut_off_past_the_grace_but_not_removed_comes_back_as_it_was(
    cluster: Cluster,
) -> None:
    """The common partition: n2's daemon stops answering (SIGSTOP) past its lease and the
    grace, so the others take it out of their sessions and forwarding, but not as long as
    ``node_gone_after``: nothing of its is released. It runs again (SIGCONT), never
    restarted: it holds a lease again and is meshed and routed as before, with every
    address it held still its own."""
    c = cluster
    handles = [p.container_id for p in c.plan.pods if p.node == "n2"] + ["vxlan-tunnel-addr-n2"]
    before = {h: a for h, a in pod_addresses(c).items() if h in handles}
    assert len(before) == len(handles)
    held_before = held_by(c, "n2")
    assert held_before[0] and held_before[1]
    pid = c.pid("n2")
    subprocess.run(["kill", "-STOP", str(pid)], check=True, timeout=10)
    try:
        wait(lambda: members(c)["n2"].phase(time.time(), TIMING) is Phase.GONE
             and len(sessions(c, "n1")) == 1, 60, "n2 taken out by the others")  # fmt: skip
        assert held_by(c, "n2") == held_before  # gone, not removed: nothing released
    finally:
        subprocess.run(["kill", "-CONT", str(pid)], check=True, timeout=10)
    wait(lambda: members(c)["n2"].phase(time.time(), TIMING) is Phase.LIVE, 30, "n2's lease")
    wait(lambda: all(len(sessions(c, n)) == 2 for n in ("n1", "n2", "n3")), 60, "n2 meshed")
    wait(lambda: not mismatches(c, ["n1", "n2", "n3"]), 60, "routes after n2's return")
    assert c.pid("n2") == pid and registered(c, "n2")
    assert held_by(c, "n2") == held_before
    assert {h: a for h, a in pod_addresses(c).items() if h in before} == before
    assert "registered again" not in c.log("n2", 400)  # it never left the registry


def test_a_node_cut_off_past_node_gone_after_rejoins_without_a_restart(cluster: Cluster) -> None:
    """n2's daemon stops answering (SIGSTOP: a partition, a hung host) for longer than its
    lease, the grace and ``node_gone_after``: the others take it out and the reaper removes
    it, releasing its blocks, VTEP address and pods' addresses. Then it runs again (SIGCONT),
    never restarted: its next renewal holds a new lease, its running pods take their
    addresses back, its registry record comes back, and it is meshed and routed as before."""
    c = cluster
    mine = [p for p in c.plan.pods if p.node == "n2"]
    want = {p.container_id: pod_address(c, p) for p in mine}
    assert want and all(pod_addresses(c).get(k) == a for k, a in want.items())
    pid = c.pid("n2")
    subprocess.run(["kill", "-STOP", str(pid)], check=True, timeout=10)
    try:
        wait(lambda: members(c)["n2"].phase(time.time(), TIMING) is Phase.REMOVED
             and held_by(c, "n2") == ([], []), 90, "n2 removed by the reaper")  # fmt: skip
        assert not set(want.values()) & set(pod_addresses(c).values())
    finally:
        subprocess.run(["kill", "-CONT", str(pid)], check=True, timeout=10)
    wait(lambda: all(pod_addresses(c).get(k) == a for k, a in want.items()), 30,
         "n2's running pods' addresses taken back")  # fmt: skip
    wait(lambda: members(c)["n2"].phase(time.time(), TIMING) is Phase.LIVE
         and registered(c, "n2"), 30, "n2 back in the registry")  # fmt: skip
    assert c.pid("n2") == pid and Path(f"/proc/{pid}").exists()  # never restarted
    wait(lambda: all(len(sessions(c, n)) == 2 for n in ("n1", "n2", "n3")), 60, "n2 meshed")
    wait(lambda: not mismatches(c, ["n1", "n2", "n3"]), 60, "routes after n2's return")
    assert "vxlan-tunnel-addr-n2" in pod_addresses(c)
    assert vtep_of(c, "n2") in neighbours(c, "n1")
    log = c.log("n2", 400)
    assert "was removed from the cluster while it was away" in log
    assert "registered again" in log
