"""The cluster as one system, timed (issue 16 benchmark); prints one JSON object.

    sudo .venv/bin/python benchmarks/cluster.py --nodes 10
    sudo .venv/bin/python benchmarks/cluster.py --nodes 30 --leaks 200

Builds the cluster lab (`podbgp.lab.cluster`: two racks with an FRR ToR each, 3 etcd
members, two reflectors per rack chosen by label, one podbgp per node, one pod per node via
podbgp-cni) and measures, each from the moment the command that causes it starts (its own
run time, mostly Python start-up, is ``*_cmd_s``) or the process dies:

* ``apply_peers_s``: the cluster runs on its bgp resource and pools; `podbgp apply` adds the
  two ToR peers (each selected by the ``rack`` label). Converged: every node's Established
  sessions are exactly what the labels call for (its rack's reflectors or, for a reflector,
  the other reflectors and its clients; and its ToR).
* ``apply_pool_s``: `podbgp apply` sets ``disable_bgp_export`` on the pool of namespace
  ``legacy`` (one pod in each rack). Converged: no node has a route to another node's block
  of that pool any more.
* ``node_gone_s``: one client node is killed with SIGKILL and never started again. Gone:
  no other node has a session with it, a VXLAN FDB entry towards it or a route to its
  block. The lab sets a short lease (``ipam.node_lease_ttl``), restart time and grace, so
  this is mostly those timers: ``node_gone_timers_s`` is their sum, the floor.
* ``gc_per_s``: ``--leaks`` addresses allocated on one node as the CNI plugin records them,
  all for one pod namespace, which is then deleted behind the runtime's back (a CNI DEL that
  never came); leaked addresses reclaimed per second by the
  node's own leak check (``ipam.leaks``) between the first and the last release;
  ``leaks_first_released_s`` includes the lab's ``ipam.leak_grace`` (5 s).

Every wait is bounded (``--timeout``); a phase that does not converge reports null and why.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podbgp.api import ControlClient
from podbgp.lab import cluster, lab
from podbgp.lab.clusterplan import (
    GONE_GRACE,
    LEASE_TTL,
    LEGACY_NAMESPACE,
    LEGACY_POOL,
    RESTART_TIME,
    ClusterPlan,
    expected_peers,
    plan_cluster,
    render_resources,
)
from podbgp.lab.labplan import BLOCK_SIZE, POOL
from podbgp.lab.netns import IP, cleanup_prefix, have_netns
from podbgp.lab.shell import run


def wait_until(check: Callable[[], list[str]], timeout: float) -> tuple[float | None, list[str]]:
    """Seconds until `check()` (what is still wrong) is empty, or (None, what was left)."""
    t0 = time.monotonic()
    while True:
        bad = check()
        now = time.monotonic()
        if not bad:
            return now - t0, []
        if now - t0 > timeout:
            return None, bad
        time.sleep(0.1)


def in_cluster_sessions(plan: ClusterPlan) -> list[str]:
    """Nodes whose sessions with other nodes (the ToRs aside) are not what the labels say."""
    bad = []
    for node in plan.nodes:
        got = set(cluster.established(str(plan.socket_path(node.name)))) - {node.gateway}
        if got != expected_peers(plan, node) - {node.gateway}:
            bad.append(node.name)
    return bad


def legacy_routes(plan: ClusterPlan) -> dict[str, set[str]]:
    """Each node's routes to another node's block of the legacy pool (prefixes)."""
    legacy = ipaddress.ip_network(LEGACY_POOL)
    out = {}
    for node in plan.nodes:
        routes = [r.split()[0] for r in lab.kernel_routes(plan.ns(node.name))]
        out[node.name] = {r for r in routes if r != "blackhole"
                          and ipaddress.ip_network(r).subnet_of(legacy)}  # fmt: skip
    return out


def gone_from_others(plan: ClusterPlan, victim: str, blocks: list[str]) -> list[str]:
    """Where the victim is still seen: sessions, FDB entries, kernel routes."""
    ip = plan.node(victim).ip
    bad = []
    for node in plan.nodes:
        if node.name == victim:
            continue
        ns = plan.ns(node.name)
        rows = ControlClient(str(plan.socket_path(node.name))).request("show.peers") or []
        if any(str(r["address"]) == ip for r in rows):
            bad.append(f"{node.name}: session")
        fdb = run(["bridge", "-n", ns, "fdb", "show", "dev", "vxlan.podbgp"], check=False)
        if f"dst {ip} " in fdb:
            bad.append(f"{node.name}: fdb")
        if any(r.split()[0] in blocks for r in lab.kernel_routes(ns)):
            bad.append(f"{node.name}: route")
    return bad


def phase(out: dict[str, Any], name: str, check: Callable[[], list[str]], timeout: float,
          t0: float | None = None) -> None:  # fmt: skip
    """`out[name]`: seconds from `t0` (default now) until `check()` is empty."""
    start = time.monotonic() if t0 is None else t0
    took, bad = wait_until(check, timeout)
    out[name] = None if took is None else time.monotonic() - start
    if bad:
        out[f"{name}_unconverged"] = bad[:5]


def timed_apply(plan: ClusterPlan, out: dict[str, Any], text: str, name: str) -> float:
    """`podbgp apply` from the core namespace; returns when it started (the phase's t0) and
    records how long the command itself took (Python start-up and the transaction)."""
    t0 = time.monotonic()
    cluster.apply_resources(plan, text, name)
    out[name.removesuffix(".toml").replace("-", "_") + "_cmd_s"] = time.monotonic() - t0
    return t0


def measure(args: argparse.Namespace, plan: ClusterPlan, out: dict[str, Any]) -> None:
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    # The cluster starts on its bgp resource and pools; the ToR peers come with the apply.
    state = cluster.build(plan, say, render_resources(plan, tor_peers=False))
    t0 = time.monotonic()
    cluster.start_nodes(plan, state, list(plan.nodes))
    out["daemons_started_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    cluster.add_pods(plan, state, plan.pods)
    out["pods_created_s"] = time.monotonic() - t0
    settled, bad = wait_until(lambda: in_cluster_sessions(plan), args.timeout)
    legacy = wait_until(lambda: [n for n, r in legacy_routes(plan).items() if len(r) < 2 and
                                 n not in {p.node for p in plan.pods if p.namespace != "lab"}],
                        args.timeout)  # fmt: skip
    if settled is None or legacy[0] is None:
        out["error"] = f"the cluster did not settle: {bad or legacy[1]}"
        return
    say("apply: the ToR peers")
    t0 = timed_apply(plan, out, render_resources(plan), "apply-peers.toml")
    phase(out, "apply_peers_s", lambda: cluster.session_mismatches(plan), args.timeout, t0)
    say("apply: the legacy pool no longer announced")
    hidden = render_resources(plan).replace(
        f'name = "{LEGACY_NAMESPACE}"\n',
        f'name = "{LEGACY_NAMESPACE}"\ndisable_bgp_export = true\n',
    )
    t0 = timed_apply(plan, out, hidden, "apply-pool.toml")
    phase(out, "apply_pool_s", lambda: [n for n, r in legacy_routes(plan).items() if r],
          args.timeout, t0)  # fmt: skip
    say("node gone: SIGKILL, never restarted")
    victim = plan.rack_nodes(1)[-1].name
    routes = lab.kernel_routes(plan.ns(victim))
    blocks = [r.split()[1] for r in routes if r.startswith("blackhole")]
    t0 = time.monotonic()
    os.kill(state.pids[victim], signal.SIGKILL)
    out["node_gone_timers_s"] = LEASE_TTL + RESTART_TIME + GONE_GRACE
    phase(out, "node_gone_s", lambda: gone_from_others(plan, victim, blocks), args.timeout, t0)
    say(f"leaks: {args.leaks} addresses of pods whose namespace is gone")
    cmd = [IP, "netns", "exec", plan.ns("core"), sys.executable, __file__, "--leak-worker",
           plan.datastore_url, plan.nodes[0].name, str(args.leaks), str(args.timeout)]  # fmt: skip
    out.update(json.loads(run(cmd, timeout=args.timeout * 3).strip().splitlines()[-1]))


async def leak_worker(url: str, node: str, n: int, timeout: float) -> dict[str, Any]:
    """`n` addresses on `node`, recorded as the CNI plugin records a pod's (its network
    namespace's path and identity), all for one namespace that is then deleted behind the
    runtime's back; times the node's daemon releasing them (`ipam.leaks`)."""
    from ipam import Ipam, IpamConfig, Pool
    from ipam.identity import join
    from ipam.model import handle_key
    from ipam.store import open_store

    ns = f"leak{os.getpid()}"
    run([IP, "netns", "add", ns])
    st = os.stat(f"/run/netns/{ns}")
    attrs = {"netns": f"/run/netns/{ns}", "netns_id": f"{st.st_dev}:{st.st_ino}",
             "namespace": "lab"}  # fmt: skip
    store = open_store(url)
    try:
        pool = Pool.parse({"cidr": POOL, "block_size": BLOCK_SIZE})
        ipam_ = Ipam(await join(store, None), IpamConfig(pools=(pool,)))
        handles = [f"leak-{os.getpid()}-{i}" for i in range(n)]
        t_alloc = time.monotonic()
        for h in handles:
            await ipam_.allocate(node, h, 4, attrs)
        run([IP, "netns", "del", ns])
        t0 = time.monotonic()
        held, first, last = set(handles), None, None
        while held and time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.1)
            for h in list(held):
                if await store.get(handle_key(h)) is None:
                    held.discard(h)
                    first = first if first is not None else time.monotonic()
                    last = time.monotonic()
        result: dict[str, Any] = {"leaks": n, "leaks_left": len(held),
                                  "leaks_allocated_s": t0 - t_alloc}  # fmt: skip
        if first is not None and last is not None:
            result["leaks_first_released_s"] = first - t0
            result["leaks_all_released_s"] = last - t0 if not held else None
            result["gc_per_s"] = (n - len(held)) / max(last - first, 0.1)
        return result
    finally:
        run([IP, "netns", "del", ns], check=False)
        await store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--leaks", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--leak-worker", nargs=4, metavar=("URL", "NODE", "N", "TIMEOUT"),
                    help=argparse.SUPPRESS)  # fmt: skip
    args = ap.parse_args()
    if args.leak_worker:
        url, node, n, timeout = args.leak_worker
        print(json.dumps(asyncio.run(leak_worker(url, node, int(n), float(timeout)))))
        return 0
    why = have_netns()
    if why:
        print(json.dumps({"error": why}))
        return 2
    prefix = f"bc{os.getpid() % 100000}-"
    base = Path(tempfile.mkdtemp(prefix=prefix))
    plan = plan_cluster(args.nodes, 1, prefix=prefix, state_dir=base / "lab")
    out: dict[str, Any] = {"nodes": args.nodes, "cpus": os.cpu_count()}
    t0 = time.monotonic()
    try:
        measure(args, plan, out)
    finally:
        lab.down(prefix, plan.state_dir)
        cleanup_prefix(prefix)
        run(["rm", "-rf", str(base)], check=False)
    out["total_s"] = round(time.monotonic() - t0, 1)
    for k, v in out.items():
        if isinstance(v, float):
            out[k] = round(v, 2)
    print(json.dumps(out, sort_keys=True))
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    sys.exit(main())
