"""A cluster of N nodes, timed for issue 15 goal 3; prints one JSON object on its last line.

    sudo .venv/bin/python benchmarks/cluster_scale.py --nodes 50 --topology both

Builds the network of the cluster lab (`podbgp.lab.cluster`: a core router with three etcd
members, two racks, one namespace and one `podbgp run` per node, the cluster's settings and
pool applied with `podbgp apply`), without the ToRs' FRR and ToR peers: only the nodes'
own sessions. Unlike the lab, the BGP timers (hold, keepalive, connect retry), the node
lease and leak-check timers and the metrics endpoint (`[api] metrics`, on by default) are
the daemon's defaults: they set what an idle node costs.
``--datastore sqlite`` puts every node on one shared SQLite file instead of etcd; ``--md5``
keeps the lab's TCP MD5 password on the in-cluster sessions (off by default, as in the
daemon). Two
topologies:

* ``mesh``: no reflector labels, every node peers with every other (`bgp.mesh`).
* ``rr``: two route reflectors (the first node of each rack, ``route-reflector = "true"``)
  serving every other node; the resources drop the lab's per-rack reflector groups, so each
  client peers with both reflectors and each reflector with every node.

Each round builds a fresh cluster per topology (interleaved: mesh, rr, then rr, mesh, ...)
and measures, with every node's kernel watched by ``ip -ts monitor route`` in its
namespace (rtnetlink events, stamped by `ip` as it reads them):

* ``block_ms``: for each node in turn (shuffled), its first pod created with the real
  `podbgp-cni` ADD, which claims a new block; milliseconds from the ADD returning until that
  block's route is in every other node's kernel (``block_from_add_start_ms``: from the ADD
  starting; ``block_from_owner_ms``: from the owner's daemon putting the block's blackhole
  route into its own kernel, i.e. once it has seen its new block). p50/p99/max over all
  nodes and rounds: with 50 nodes per round, p99 is nearly the max of a round. Negative:
  the route was everywhere before the ADD returned (it spreads while the plugin wires the
  pod).
* ``idle``: every daemon's RSS and USS (MB: all resident memory, and the part it shares
  with no other process, from /proc smaps_rollup; on a real node, one daemon per host,
  RSS is what it costs) and CPU (% of one core, utime + stime over ``--idle`` seconds)
  once the cluster has converged and nothing changes.
* ``cold_start_s``: every daemon stopped (SIGTERM), podbgp's routes (proto 80) flushed from
  every node's kernel, then all N daemons started at once; seconds from the first start
  until every node's kernel has every other node's block.

Every wait is bounded (``--timeout``); what does not converge is reported, not waited for.
Every namespace and process the run makes is removed on the way out, Ctrl-C and errors
included (`podbgp.lab.lab.down` by the round's prefix).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podbgp.lab import cluster, lab
from podbgp.lab.clusterplan import (
    ClusterNode,
    ClusterPlan,
    plan_cluster,
    render_node_identity,
)
from podbgp.lab.clusterplan import render_resources as lab_resources
from podbgp.lab.labplan import BLOCK_SIZE, PodPlan
from podbgp.lab.netns import IP, cleanup_prefix, have_netns, new_netns
from podbgp.lab.pods import cni_call, cni_plugin, result_ip
from podbgp.lab.shell import run

TOPOLOGIES = ("mesh", "rr")
PROTO = "80"  # podbgp's route protocol number in the kernel
MAX_BLOCK_ROUNDS = 10
Target = dict[str, set[str]]  # node -> route prefixes
# The lab's short BGP timers and its reflector groups are dropped: the daemon's defaults are
# what an idle node costs.
LAB_ONLY = ("hold_time =", "keepalive =", "connect_retry =", "route_reflector_group_label =")
# The lab's short lease and leak-check timers in each node's own file, dropped likewise, and
# its `metrics = ""` (the lab turns the endpoint off; a node serves it by default, each on
# 127.0.0.1:9469 in its own namespace).
LAB_NODE_ONLY = ("[ipam]", "node_lease_ttl =", "node_gone_grace =", "node_gone_after =",
                 "leak_grace =", "leak_check_interval =", 'metrics = ""')  # fmt: skip


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the kernels, watched ------------------------------------------------------------------
@dataclass
class KernelWatch:
    """`ip -ts monitor route` in every node's namespace: when each route prefix was last
    added (wall clock, from `ip`'s own stamp) and which are present now."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    added: dict[str, dict[str, float]] = field(default_factory=dict)
    present: dict[str, set[str]] = field(default_factory=dict)
    blackholes: dict[str, dict[str, float]] = field(default_factory=dict)  # a node's own blocks
    cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self, plan: ClusterPlan) -> None:
        for node in plan.nodes:
            self.added[node.name], self.present[node.name] = {}, set()
            self.blackholes[node.name] = {}
            cmd = [IP, "-n", plan.ns(node.name), "-ts", "-4", "monitor", "route"]
            # stderr: `ip` complains of other namespaces' peer ids it cannot resolve
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, start_new_session=True)  # fmt: skip
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(node.name, proc), daemon=True).start()
        time.sleep(0.5)  # each `ip` has its netlink socket bound before anything changes

    def _read(self, node: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("["):
                continue  # a multipath route's next-hop lines
            stamp, _, rest = line[1:].partition("] ")
            words = rest.split()
            deleted = bool(words) and words[0] == "Deleted"
            words = words[1:] if deleted else words
            when = datetime.datetime.fromisoformat(stamp).timestamp()
            if len(words) > 1 and words[0] == "blackhole" and not deleted:
                with self.cond:
                    self.blackholes[node].setdefault(words[1], when)
                continue
            if not words or words[0] in {"blackhole", "local", "broadcast", "unreachable"}:
                continue
            prefix = words[0] if "/" in words[0] else words[0] + "/32"
            with self.cond:
                if deleted:
                    self.present[node].discard(prefix)
                elif prefix not in self.present[node]:  # a replace keeps its first time
                    self.present[node].add(prefix)
                    self.added[node][prefix] = when
                self.cond.notify_all()

    def wait_for(self, want: Target, timeout: float) -> list[str]:
        """Until every node has the prefixes `want` names for it; returns "node: prefix"
        for what is still missing."""

        def missing() -> list[str]:
            return [f"{n}: {p}" for n, ps in want.items() for p in ps - self.present[n]]

        deadline = time.monotonic() + timeout
        with self.cond:
            while (left := missing()) and time.monotonic() < deadline:
                self.cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            return left

    def last_added(self, want: Target) -> float:
        """When the last of `want` appeared (wall clock)."""
        with self.cond:
            return max(self.added[n][p] for n, ps in want.items() for p in ps)

    def snapshot(self) -> Target:
        with self.cond:
            return {n: set(ps) for n, ps in self.present.items()}

    def count(self, want: Target) -> int:
        """How many of `want` are present, summed over the nodes."""
        with self.cond:
            return sum(len(ps & self.present[n]) for n, ps in want.items())

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


# -- the cluster ---------------------------------------------------------------------------
def bench_pool(r: int) -> tuple[str, str]:
    """(namespace, CIDR) of block round `r`'s pool: a /18, room for 64 blocks of /26."""
    return f"bench{r}", f"10.{246 + r // 4}.{(r % 4) * 64}.0/18"


def resources(plan: ClusterPlan, block_rounds: int, md5: bool) -> str:
    """The lab's resources without ToR peers, without reflector groups (with two
    reflectors, both serve every client) and with the default BGP timers, plus a pool per block round for pods of namespace
    ``bench<r>`` only: the first such pod on a node claims a new block. (The default pool's
    first block is claimed by the daemon itself, for its VXLAN address.)"""
    lines = lab_resources(plan, tor_peers=False).splitlines(keepends=True)
    drop = LAB_ONLY if md5 else (*LAB_ONLY, "mesh_password =")
    text = "".join(line for line in lines if not line.startswith(drop))
    for r in range(block_rounds):
        namespace, cidr = bench_pool(r)
        text += (f'\n[[pool]]\nname = "{namespace}"\ncidr = "{cidr}"\nblock_size = {BLOCK_SIZE}\n'
                 'vxlan_mode = "CrossSubnet"\nallowed_uses = ["workload"]\n'
                 f"namespace_selector = 'projectcalico.org/name == \"{namespace}\"'\n")  # fmt: skip
    return text


def node_file(plan: ClusterPlan, node: ClusterNode, sqlite: Path | None) -> str:
    """The lab's node file with the default lease and leak timers, on `sqlite` if given."""
    lines = render_node_identity(plan, node).splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith(LAB_NODE_ONLY))
    if sqlite is None:
        return text
    head, _, rest = text.partition("\n")
    assert head.startswith("datastore = "), head
    return f'datastore = {{ kind = "sqlite", path = {json.dumps(str(sqlite))} }}\n{rest}'


def build(plan: ClusterPlan, args: argparse.Namespace) -> lab.LabState:
    """Network, the datastore (3 etcd members or one SQLite file), the resources and node
    files (no FRR on the ToRs)."""
    state = cluster.prepare(plan, say)
    cluster.build_network(plan, state)
    sqlite = plan.state_dir / "podbgp.db" if args.datastore == "sqlite" else None
    if sqlite is None:
        cluster.start_etcd(plan, state)
        url = plan.datastore_url
    else:
        url = f"sqlite:{sqlite}"
        cluster.podbgp_in(plan, "core", "datastore", "init", "--datastore", url)
    path = plan.state_dir / "resources.toml"
    path.write_text(resources(plan, args.blocks, args.md5))
    cluster.podbgp_in(plan, "core", "apply", "-f", str(path), "--datastore", url)
    for node in plan.nodes:
        plan.config_path(node.name).write_text(node_file(plan, node, sqlite))
    return state


def expected_sessions(plan: ClusterPlan, node: ClusterNode) -> int:
    reflectors = sum(n.reflector for n in plan.nodes)
    if not reflectors or node.reflector:
        return len(plan.nodes) - 1
    return reflectors


def wait_sessions(plan: ClusterPlan, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        bad = []
        for node in plan.nodes:
            with contextlib.suppress(Exception):  # not up yet: socket or API error
                if len(cluster.established(str(plan.socket_path(node.name)))) >= (
                    expected_sessions(plan, node)
                ):
                    continue
            bad.append(node.name)
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(0.5)


def start_all(plan: ClusterPlan, state: lab.LabState) -> dict[str, subprocess.Popen[bytes]]:
    """Every daemon started at once; then until each answers on its socket."""
    procs = {node.name: cluster.start_node(plan, node) for node in plan.nodes}
    state.pids.update({name: p.pid for name, p in procs.items()})
    state.save()
    for node in plan.nodes:
        lab.wait_control(node.name, plan.socket_path(node.name),
                         plan.state_dir / f"{node.name}.log", procs[node.name], 120)  # fmt: skip
    return procs


def stop_all(procs: dict[str, subprocess.Popen[bytes]], timeout: float = 30) -> None:
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the measurements ----------------------------------------------------------------------
def block_latencies(plan: ClusterPlan, watch: KernelWatch, r: int, timeout: float,
                    out: dict[str, Any]) -> None:  # fmt: skip
    """Block round `r`: each node's first pod of namespace ``bench<r>`` (a new block of its
    pool), one node after the other in a random order."""
    plugin = cni_plugin()
    if plugin is None:
        raise RuntimeError("podbgp-cni is not installed next to this interpreter")
    namespace, cidr = bench_pool(r)
    order = list(plan.nodes)
    random.shuffle(order)
    for node in order:
        pod = PodPlan(f"{node.name}-{namespace}", node.name, namespace)
        new_netns(plan.ns(pod.name))
        t_start = time.time()
        ip = result_ip(cni_call(plan, pod, "ADD", plugin))
        t_end = time.time()
        block = str(ipaddress.ip_network(f"{ip}/{BLOCK_SIZE}", strict=False))
        if ipaddress.ip_address(ip) not in ipaddress.ip_network(cidr):
            raise RuntimeError(f"pod {pod.name} got {ip}, not from pool {cidr}")
        want = {n.name: {block} for n in plan.nodes if n is not node}
        left = watch.wait_for(want, timeout)
        if left:
            out["block_unconverged"].append(left[:3])
            continue
        seen = watch.last_added(want)
        out["block_ms"].append((seen - t_end) * 1000)
        out["block_from_add_start_ms"].append((seen - t_start) * 1000)
        out["cni_add_ms"].append((t_end - t_start) * 1000)
        with watch.cond:
            own = watch.blackholes[node.name].get(block)
        if own is not None:
            out["block_from_owner_ms"].append((seen - own) * 1000)
        time.sleep(0.2)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, USS): all resident memory, and the part no other process shares (private)."""
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        kb[key] = int(value.split()[0])
    return kb["Rss"] / 1024, (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024


def idle(plan: ClusterPlan, procs: dict[str, subprocess.Popen[bytes]], seconds: float,
         out: dict[str, Any]) -> None:  # fmt: skip
    """RSS and CPU of every daemon over `seconds` of a converged, unchanging cluster."""
    pids = {name: p.pid for name, p in procs.items()}
    cpu0, t0 = {n: proc_cpu_s(p) for n, p in pids.items()}, time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = {n: proc_cpu_s(p) for n, p in pids.items()}, time.monotonic()
    reflectors = {n.name for n in plan.nodes if n.reflector}
    for name, pid in pids.items():
        kind = "reflector" if name in reflectors else "node"
        rss, uss = proc_memory_mb(pid)
        out[f"idle_{kind}_rss_mb"].append(rss)
        out[f"idle_{kind}_uss_mb"].append(uss)
        out[f"idle_{kind}_cpu_pct"].append(100 * (cpu1[name] - cpu0[name]) / (t1 - t0))


def flush_podbgp_routes(plan: ClusterPlan) -> Target:
    """Every route podbgp installed (proto 80) and its next-hop objects, in every node;
    returns the routes to other nodes removed (not a node's blackholes for its own blocks)."""
    removed: Target = {}
    for node in plan.nodes:
        ns = plan.ns(node.name)
        rows = json.loads(run([IP, "-n", ns, "-j", "-4", "route", "show", "proto", PROTO]) or "[]")
        dsts = [r["dst"] for r in rows]
        if dsts:
            subprocess.run([IP, "-n", ns, "-batch", "-"], text=True, check=False,
                           input="".join(f"route del {d}\n" for d in dsts),
                           capture_output=True)  # fmt: skip
        run([IP, "-n", ns, "nexthop", "flush"], check=False)
        remote = [r["dst"] for r in rows if r.get("type", "unicast") == "unicast"]
        removed[node.name] = {d if "/" in d else d + "/32" for d in remote}
    return removed


def cold_start(plan: ClusterPlan, state: lab.LabState, procs: dict[str, subprocess.Popen[bytes]],
               watch: KernelWatch, timeout: float,
               out: dict[str, Any]) -> dict[str, subprocess.Popen[bytes]]:  # fmt: skip
    """Every daemon stopped (a graceful restart keeps its routes in the kernel, so they are
    flushed), then all started at once; until every kernel has every route podbgp had put
    there before."""
    stop_all(procs)
    removed = flush_podbgp_routes(plan)
    deadline = time.monotonic() + 10
    while watch.count(removed) and time.monotonic() < deadline:
        time.sleep(0.1)  # the deletions' events on their way to the watchers
    if watch.count(removed):
        raise RuntimeError(f"{watch.count(removed)} routes still in the kernels after the flush")
    t0 = time.time()
    new = start_all(plan, state)
    out["cold_daemons_up_s"].append(time.time() - t0)
    left = watch.wait_for(removed, timeout)
    if left:
        out["cold_unconverged"].append(left[:3])
    else:
        out["cold_start_s"].append(watch.last_added(removed) - t0)
        out["cold_routes"].append(float(sum(map(len, removed.values()))))
    return new


def one_round(args: argparse.Namespace, topology: str, rnd: int, out: dict[str, Any]) -> None:
    """A fresh cluster of `topology`: sessions, block rounds, idle, cold start; torn down."""
    prefix = f"cs{os.getpid() % 100000}{rnd}{topology[0]}-"
    base = Path(tempfile.mkdtemp(prefix=prefix))
    plan = plan_cluster(args.nodes, 0, prefix=prefix, state_dir=base / "lab",
                        reflectors=1 if topology == "rr" else 0)  # fmt: skip
    watch = KernelWatch()
    try:
        say(f"round {rnd} {topology}: building {args.nodes} nodes in {prefix}*")
        state = build(plan, args)
        watch.start(plan)
        t0 = time.monotonic()
        procs = start_all(plan, state)
        bad = wait_sessions(plan, args.timeout)
        if bad:
            raise RuntimeError(f"sessions not up after {args.timeout}s on {bad[:5]}")
        out["sessions_up_s"].append(time.monotonic() - t0)
        time.sleep(2)  # the daemons' own first blocks (VXLAN addresses) spread
        for r in range(args.blocks):
            say(f"round {rnd} {topology}: block round {r}, a new block on each node in turn")
            block_latencies(plan, watch, r, args.timeout, out)
        say(f"round {rnd} {topology}: idle for {args.idle}s")
        time.sleep(5)
        idle(plan, procs, args.idle, out)
        say(f"round {rnd} {topology}: cold start")
        procs = cold_start(plan, state, procs, watch, args.timeout, out)
    finally:
        watch.stop()
        lab.down(prefix, plan.state_dir)
        cleanup_prefix(prefix)
        run(["rm", "-rf", str(base)], check=False)


NEIGH_SYSCTL = "/proc/sys/net/ipv4/neigh/default/gc_thresh{}"


@contextlib.contextmanager
def neighbour_room(nodes: int) -> Iterator[None]:
    """Room in the kernel's ARP table for `nodes` nodes on one host, restored afterwards.

    The IPv4 neighbour table is one for the whole host, every namespace's entries counted
    against ``gc_thresh3`` (1024 by default); each node holds a permanent entry for every
    other node's VXLAN address and resolves its rack's nodes, so 50 nodes need several
    thousand. With the table full, ARP fails and connects time out ("no answer"): a real
    node has its own kernel, so this is the host's limit, not the cluster's."""
    want = {1: 16 * nodes * nodes // 10, 2: 32 * nodes * nodes // 10, 3: 64 * nodes * nodes // 10}
    old = {i: int(Path(NEIGH_SYSCTL.format(i)).read_text()) for i in want}
    raise_to = {i: max(old[i], want[i]) for i in want}
    try:
        for i in (3, 2, 1):
            if raise_to[i] != old[i]:
                say(f"gc_thresh{i}: {old[i]} -> {raise_to[i]} while the run lasts")
                Path(NEIGH_SYSCTL.format(i)).write_text(str(raise_to[i]))
        yield
    finally:
        for i in (1, 2, 3):
            if raise_to[i] != old[i]:  # only what this run raised
                Path(NEIGH_SYSCTL.format(i)).write_text(str(old[i]))


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0..1), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summary(samples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for topology, s in samples.items():
        t: dict[str, Any] = {}
        for key, values in s.items():
            if not values or not isinstance(values[0], float):
                if values:
                    t[key] = values
                continue
            t[key] = {"n": len(values), "p50": pct(values, 0.5), "p99": pct(values, 0.99),
                      "max": max(values), "median": statistics.median(values)}  # fmt: skip
        out[topology] = t
    return out


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT unwind like Ctrl-C, so the `finally` clauses clean up (SIGINT
    too when started in the background by a shell that ignores it for background jobs)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10, help="nodes per cluster (3..60)")
    ap.add_argument("--topology", choices=("mesh", "rr", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=1, help="clusters per topology")
    ap.add_argument("--datastore", choices=("etcd", "sqlite"), default="etcd",
                    help="3 etcd members in the core namespace, or one shared SQLite file")  # fmt: skip
    ap.add_argument("--md5", action="store_true",
                    help="TCP MD5 on every in-cluster session (the lab's bgp.mesh_password)")  # fmt: skip
    ap.add_argument("--blocks", type=int, default=2,
                    help=f"new-block rounds per cluster (1..{MAX_BLOCK_ROUNDS})")  # fmt: skip
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measured")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    why = have_netns()
    if why:
        print(json.dumps({"error": why}))
        return 2
    if not 3 <= args.nodes <= 60:
        print(json.dumps({"error": f"--nodes must be 3..60, not {args.nodes}"}))
        return 2
    if not 1 <= args.blocks <= MAX_BLOCK_ROUNDS:
        print(json.dumps({"error": f"--blocks must be 1..{MAX_BLOCK_ROUNDS}, not {args.blocks}"}))
        return 2
    topologies = list(TOPOLOGIES) if args.topology == "both" else [args.topology]
    keys = ("block_ms", "block_from_add_start_ms", "block_from_owner_ms", "cni_add_ms", "sessions_up_s",
            "cold_daemons_up_s", "cold_start_s", "cold_routes", "block_unconverged",
            "cold_unconverged", "idle_node_rss_mb", "idle_node_cpu_pct",
            "idle_reflector_rss_mb", "idle_reflector_cpu_pct", "idle_node_uss_mb",
            "idle_reflector_uss_mb")  # fmt: skip
    samples: dict[str, dict[str, Any]] = {t: {k: [] for k in keys} for t in topologies}
    result: dict[str, Any] = {"nodes": args.nodes, "rounds": args.rounds, "blocks": args.blocks,
                              "datastore": args.datastore, "md5": args.md5,
                              "cpus": os.cpu_count(), "load_before": os.getloadavg()}  # fmt: skip
    t0 = time.monotonic()
    try:
        with sigterm_as_interrupt(), neighbour_room(args.nodes):
            for rnd in range(args.rounds):
                order = topologies if rnd % 2 == 0 else topologies[::-1]
                for topology in order:
                    one_round(args, topology, rnd, samples[topology])
    except (Exception, KeyboardInterrupt) as exc:
        result["error"] = (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        )
    result.update(summary(samples))
    result["load_after"] = os.getloadavg()
    result["total_s"] = time.monotonic() - t0
    print(json.dumps(rounded(result), sort_keys=True))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
