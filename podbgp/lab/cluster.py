"""`podbgp lab up --topology cluster`: two racks, three etcd members, one podbgp per node.

`podbgp.lab.clusterplan` says what is built (its docstring draws it); this module builds it,
starts it and checks it: the core router with etcd on its loopback, a ToR per rack (a bridge,
FRR), the nodes with their configs, the datastore created with `podbgp datastore init` inside
the core namespace (nothing creates one implicitly), the cluster's resources applied with
`podbgp apply`, a daemon per node whose own file is its identity, pods through the real CNI
plugin. The state file is `podbgp.lab.lab`'s `LabState` (option ``cluster``), so
`podbgp lab down` and `podbgp lab status` work on it as on the other labs; the etcd data
directory lives in the state dir and its members in a namespace carrying the prefix.

`session_mismatches` compares each node's Established sessions with what the labels call
for (`clusterplan.expected_peers`); `up` waits for them and for the ping matrix.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipam.etcdlab import EtcdCluster, have_etcd
from podbgp.api import APIError, ControlClient
from podbgp.lab.clusterplan import (
    ETCD_HOSTS,
    RACK_SUBNETS,
    ClusterNode,
    ClusterPlan,
    expected_peers,
    render_node_identity,
    render_resources,
    tor_address,
    tor_asn,
    uplink,
)
from podbgp.lab.lab import LabState, prepare_state_dir, wait_control, wait_matrix
from podbgp.lab.labplan import CLUSTER_ASN, PodPlan
from podbgp.lab.netns import IP, Netns, new_netns, veth
from podbgp.lab.pods import cni_call, cni_plugin, result_ip
from podbgp.lab.shell import Unsupported, run

Printer = Callable[[str], None]
OPTION = "cluster"


# -- network ------------------------------------------------------------------------------
def build_core(plan: ClusterPlan) -> Netns:
    """The router between the racks, with the etcd members' addresses on its loopback."""
    core = new_netns(plan.ns("core"))
    core.sysctl("net.ipv4.ip_forward=1")
    for host in ETCD_HOSTS:
        core.ip("addr", "add", f"{host}/32", "dev", "lo")
    return core


def build_tor(plan: ClusterPlan, core: Netns, rack: int) -> Netns:
    """Rack `rack`'s switch (bridge br0) and router: default route to the core."""
    tor = new_netns(plan.ns(f"tor-{'ab'[rack]}"))
    tor.sysctl("net.ipv4.ip_forward=1")
    tor.ip("link", "add", "br0", "type", "bridge")
    plen = RACK_SUBNETS[rack].split("/")[1]
    tor.ip("addr", "add", f"{tor_address(rack)}/{plen}", "dev", "br0")
    tor.ip("link", "set", "br0", "up")
    core_side, tor_side = uplink(rack)
    veth(tor, "uplink", core, f"rack{rack}")
    tor.ip("addr", "add", tor_side, "dev", "uplink")
    core.ip("addr", "add", core_side, "dev", f"rack{rack}")
    tor.ip("route", "add", "default", "via", core_side.split("/")[0])
    core.ip("route", "add", RACK_SUBNETS[rack], "via", tor_side.split("/")[0])
    return tor


def build_node(plan: ClusterPlan, tor: Netns, node: ClusterNode) -> Netns:
    ns = new_netns(plan.ns(node.name))
    veth(ns, "eth0", tor, node.name)
    tor.ip("link", "set", node.name, "master", "br0")
    ns.ip("addr", "add", node.address, "dev", "eth0")
    ns.ip("route", "add", "default", "via", node.gateway)
    ns.sysctl("net.ipv4.ip_forward=1")
    return ns


def build_network(plan: ClusterPlan, state: LabState) -> list[Netns]:
    """Core, ToRs and nodes (no processes yet), recorded in `state`; returns the ToRs."""
    core = build_core(plan)
    tors = [build_tor(plan, core, rack) for rack in range(len(RACK_SUBNETS))]
    state.tor = {"ns": tors[0].name, "core": core.name,
                 "addresses": [tor_address(r) for r in range(len(tors))]}  # fmt: skip
    for node in plan.nodes:
        build_node(plan, tors[node.rack], node)
        state.nodes.append(node_record(plan, node))
    state.save()
    return tors


def node_record(plan: ClusterPlan, node: ClusterNode) -> dict[str, Any]:
    return {"name": node.name, "ns": plan.ns(node.name), "address": node.address,
            "asn": CLUSTER_ASN, "config": str(plan.config_path(node.name)),
            "socket": str(plan.socket_path(node.name)),
            "log": str(plan.state_dir / f"{node.name}.log"), "rack": node.rack_name,
            "route_reflector": node.reflector, "labels": node.labels}  # fmt: skip


# -- processes ----------------------------------------------------------------------------
def start_etcd(plan: ClusterPlan, state: LabState) -> EtcdCluster:
    """Three etcd members in the core namespace, then the datastore with its cluster ID."""
    why = have_etcd()
    if why:
        raise Unsupported(f"the cluster topology needs etcd: {why} (`make deps-demo`)")
    etcd = EtcdCluster.start_at(
        list(ETCD_HOSTS), (IP, "netns", "exec", plan.ns("core")), plan.state_dir / "etcd"
    )
    for i, proc in enumerate(etcd.procs):
        if proc is not None:
            state.pids[f"etcd-{i}"] = proc.pid
    state.save()
    podbgp_in(plan, "core", "datastore", "init", "--datastore", plan.datastore_url)
    return etcd


def podbgp_in(plan: ClusterPlan, ns: str, *args: str, timeout: float = 60) -> str:
    """Run this tree's `podbgp ARGS` inside namespace PREFIX+ns (where etcd is reachable)."""
    return run([IP, "netns", "exec", plan.ns(ns), sys.executable, "-m", "podbgp", *args],
               timeout=timeout)  # fmt: skip


def start_tor_frr(plan: ClusterPlan, rack: int) -> list[int]:
    """FRR on the rack's ToR: eBGP with any node of the rack (a listen range, AS 64512)."""
    from podbgp.lab.peers import BgpConfig, Frr, ListenRange

    why = Frr.missing()
    if why:
        raise Unsupported(f"the cluster topology needs FRR on the ToRs: {why}")
    cfg = BgpConfig(asn=tor_asn(rack), router_id=tor_address(rack), hostname=f"tor-{'ab'[rack]}",
                    listen_ranges=[ListenRange(RACK_SUBNETS[rack], CLUSTER_ASN)])  # fmt: skip
    tor = Netns(plan.ns(f"tor-{'ab'[rack]}"))
    frr = Frr(tor, plan.state_dir / f"tor-{'ab'[rack]}-frr", cfg)
    frr.start()
    return [p.pid for p in frr.procs]


def write_config(plan: ClusterPlan, node: ClusterNode) -> Path:
    """The node's own file: its identity (the rest comes from the cluster's resources)."""
    path = plan.config_path(node.name)
    path.write_text(render_node_identity(plan, node))
    return path


def apply_resources(plan: ClusterPlan, text: str, name: str = "resources.toml") -> Path:
    """`podbgp apply -f` a resources file (kept in the state dir) from the core namespace."""
    path = plan.state_dir / name
    path.write_text(text)
    podbgp_in(plan, "core", "apply", "-f", str(path), "--datastore", plan.datastore_url)
    return path


def start_node(plan: ClusterPlan, node: ClusterNode) -> subprocess.Popen[bytes]:
    """`podbgp run` in the node's namespace with the config already written."""
    args = [sys.executable, "-m", "podbgp", "run", "--config", str(plan.config_path(node.name))]
    log = plan.state_dir / f"{node.name}.log"
    with open(log, "ab") as out:
        return Netns(plan.ns(node.name)).popen(args, stdout=out, stderr=subprocess.STDOUT)


def start_nodes(plan: ClusterPlan, state: LabState, nodes: list[ClusterNode]) -> None:
    procs = {node.name: start_node(plan, node) for node in nodes}
    for name, proc in procs.items():
        state.pids[name] = proc.pid
    state.save()
    for node in nodes:
        log = plan.state_dir / f"{node.name}.log"
        wait_control(node.name, plan.socket_path(node.name), log, procs[node.name], 60)


def add_pod(plan: ClusterPlan, pod: PodPlan, plugin: str) -> dict[str, Any]:
    """A pod namespace plugged in by `podbgp-cni ADD`, with its Kubernetes namespace."""
    new_netns(plan.ns(pod.name))
    address = result_ip(cni_call(plan, pod, "ADD", plugin))
    return {"name": pod.name, "node": pod.node, "ns": plan.ns(pod.name), "ip": address,
            "container_id": pod.container_id, "via": "cni", "namespace": pod.namespace}  # fmt: skip


def add_pods(plan: ClusterPlan, state: LabState, pods: tuple[PodPlan, ...]) -> None:
    plugin = cni_plugin()
    if plugin is None:
        raise Unsupported("the cluster topology needs podbgp-cni (pip install -e .)")
    for pod in pods:
        state.pods.append(add_pod(plan, pod, plugin))
        state.save()


# -- checks -------------------------------------------------------------------------------
def established(socket: str) -> dict[str, dict[str, Any]]:
    """The node's Established sessions by peer address (from its control socket)."""
    rows = ControlClient(socket).request("show.peers")
    return {str(r["address"]): r for r in rows or [] if r.get("state") == "Established"}


def session_mismatches(
    plan: ClusterPlan,
    nodes: list[ClusterNode] | None = None,
    gone: frozenset[str] = frozenset(),
) -> list[str]:
    """Nodes whose Established sessions differ from what the labels call for (without the
    nodes named in `gone`)."""
    bad = []
    for node in nodes if nodes is not None else plan.nodes:
        try:
            got = set(established(str(plan.socket_path(node.name))))
        except (APIError, OSError) as exc:
            bad.append(f"{node.name}: {exc}")
            continue
        want = expected_peers(plan, node, gone)
        if got != want:
            bad.append(
                f"{node.name}: missing {sorted(want - got)}, unexpected {sorted(got - want)}"
            )
    return bad


def wait_sessions(
    plan: ClusterPlan,
    timeout: float,
    nodes: list[ClusterNode] | None = None,
    gone: frozenset[str] = frozenset(),
) -> list[str]:
    """Until every node's sessions are what the labels say; returns the mismatches left."""
    deadline = time.monotonic() + timeout
    while True:
        bad = session_mismatches(plan, nodes, gone)
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(0.3)


# -- life cycle ---------------------------------------------------------------------------
def prepare(plan: ClusterPlan, out: Printer, replace: bool = False) -> LabState:
    """Claim the state dir (`replace`: remove a lab left there first) and record the lab."""
    prepare_state_dir(plan.prefix, plan.state_dir, replace, out)
    state = LabState(prefix=plan.prefix, state_dir=str(plan.state_dir), option=OPTION)
    state.save()
    return state


def build(
    plan: ClusterPlan,
    out: Printer = print,
    resources: str | None = None,
    replace: bool = False,
) -> LabState:
    """Network, etcd, ToRs, the cluster's resources (`resources`, by default the lab's own
    file) and node files: everything but the podbgp daemons and pods."""
    state = prepare(plan, out, replace)
    out(f"building the core, 2 racks and {len(plan.nodes)} nodes in namespaces {plan.prefix}*")
    build_network(plan, state)
    out("starting 3 etcd members in the core namespace and creating the datastore")
    start_etcd(plan, state)
    out("starting FRR on each rack's ToR")
    for rack in range(len(RACK_SUBNETS)):
        for i, pid in enumerate(start_tor_frr(plan, rack)):
            state.pids[f"tor-{'ab'[rack]}-frr-{i}"] = pid
    state.save()
    path = apply_resources(plan, render_resources(plan) if resources is None else resources)
    out(f"applied the cluster's resources with `podbgp apply -f {path}`:\n{_indent(path)}")
    for node in plan.nodes:
        write_config(plan, node)
    client = next((n for n in plan.nodes if not n.reflector), plan.nodes[-1])
    head = "\n".join(plan.config_path(client.name).read_text().splitlines()[:5]) + "\n"
    out(f"each node's own file starts with five lines, e.g. {plan.config_path(client.name)}:\n"
        f"{_indent(head)}")  # fmt: skip
    return state


def _indent(text: str | Path) -> str:
    body = text.read_text() if isinstance(text, Path) else text
    return "\n".join("    " + line for line in body.rstrip().splitlines())


def up(
    plan: ClusterPlan, out: Printer = print, converge_timeout: float = 90.0, replace: bool = False
) -> tuple[LabState, dict[tuple[str, str], bool]]:
    """Build and start the cluster lab, wait for the sessions the labels call for and for
    every pod to reach every other; the lab stays up either way."""
    state = build(plan, out, replace=replace)
    try:
        out("starting podbgp on every node")
        start_nodes(plan, state, list(plan.nodes))
        out(f"creating {len(plan.pods)} pods with podbgp-cni")
        add_pods(plan, state, plan.pods)
        out("waiting for the BGP sessions the labels call for")
        bad = wait_sessions(plan, converge_timeout / 2)
        for line in bad:
            out(f"sessions not as the labels say: {line}")
        out("pinging every pod from every pod")
        matrix = wait_matrix(state, converge_timeout, out)
    except BaseException:
        state.status = "failed"
        state.save()
        raise
    state.status = "up" if all(matrix.values()) and not bad else "failed"
    state.save()
    return state, matrix
