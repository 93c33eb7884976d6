"""Helpers for the daemon's integration tests: a lab with a spare node, and views of it.

The plumbing is `podbgp.lab.lab`'s (namespaces, ToR, FRR, node configs, daemons, pods
through podbgp-cni). What this adds: a lab planned for four nodes but brought up with
three, so the fourth can join later (`join`), and small read-only views (sessions from
each daemon's control socket, podbgp's kernel routes as JSON) with a polling `wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

import ipam
from ipam.store import open_store
from podbgp import wiring
from podbgp.api import APIError, ControlClient
from podbgp.config import load_config
from podbgp.lab import lab, pods
from podbgp.lab.labplan import LabPlan, NodePlan, plan_lab, tor_address
from podbgp.lab.netns import IP, Netns, cleanup_prefix, have_netns

T = TypeVar("T")
CONVERGE = 40.0


@dataclass
class Cluster:
    """A running lab: `plan` has every node (also those not started), `state` what runs."""

    plan: LabPlan
    state: lab.LabState
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def running(self) -> list[NodePlan]:
        names = {n["name"] for n in self.state.nodes}
        return [n for n in self.plan.nodes if n.name in names]

    def ns(self, node: str) -> str:
        return self.plan.ns(node)

    def client(self, node: str) -> ControlClient:
        return ControlClient(str(self.plan.socket_path(node)))

    def ask(self, node: str, cmd: str, **args: Any) -> Any:
        return self.client(node).request(cmd, **args)

    def pid(self, node: str) -> int:
        return int(self.state.pids[node])

    def pod_ip(self, node: str) -> str:
        return next(p["ip"] for p in self.state.pods if p["node"] == node)

    def pod_ns(self, node: str) -> str:
        return next(p["ns"] for p in self.state.pods if p["node"] == node)

    def log(self, node: str, lines: int = 40) -> str:
        path = self.plan.state_dir / f"{node}.log"
        with contextlib.suppress(OSError):
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def start(tmp: Path, option: str, nodes: int = 3, spare: int = 1) -> Cluster:
    """Bring up `option` with `nodes` nodes (one pod each), planned for `nodes + spare`."""
    why = have_netns()
    if why:
        pytest.skip(why)
    prefix = f"d{os.getpid() % 100000}{option[:2]}{int(time.time() * 1000) % 10000}-"
    cleanup_prefix(prefix)
    full = plan_lab(option, nodes + spare, 1, prefix=prefix, state_dir=tmp / "lab")
    plan = replace(full, nodes=full.nodes[:nodes], pods=full.pods[:nodes])
    why = lab.unsupported(plan)
    if why:
        pytest.skip(why)
    try:
        state, matrix = lab.up(plan, out=lambda _: None, converge_timeout=CONVERGE)
    except BaseException:
        lab.down(prefix, plan.state_dir)
        raise
    bad = sorted(k for k, ok in matrix.items() if not ok)
    if bad:
        report = lab.diagnostics(state)
        lab.down(prefix, plan.state_dir)
        pytest.fail(f"{option}: unreachable pod pairs {bad}\n{report}")
    cluster = Cluster(full, state)
    # Pods (and so blocks) come last in `up` and the pings may pass by the ToR's default
    # route: wait until BGP (or the datastore) has put every block into every kernel.
    names = [n.name for n in cluster.running]
    deadline = time.monotonic() + CONVERGE
    while (bad := mismatches(cluster, names)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if bad:
        report = lab.diagnostics(state)
        stop(cluster)
        pytest.fail(f"{option}: routes not converged:\n" + "\n".join(bad) + "\n" + report)
    return cluster


def stop(cluster: Cluster) -> None:
    for proc in cluster.procs.values():
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    lab.down(cluster.plan.prefix, cluster.plan.state_dir)
    cleanup_prefix(cluster.plan.prefix)


def _record(cluster: Cluster, node: NodePlan, pid: int) -> None:
    p = cluster.plan
    if all(n["name"] != node.name for n in cluster.state.nodes):
        cluster.state.nodes.append({
            "name": node.name, "ns": p.ns(node.name), "address": node.address,
            "asn": node.asn, "config": str(p.config_path(node.name)),
            "socket": str(p.socket_path(node.name)),
            "log": str(p.state_dir / f"{node.name}.log"),
            "route_reflector": node.route_reflector,
        })  # fmt: skip
    cluster.state.pids[node.name] = pid
    cluster.state.save()


def start_daemon(cluster: Cluster, name: str, config: str | None = None) -> subprocess.Popen[bytes]:
    """(Re)start podbgp on a node whose namespace exists (with the lab's config, or the
    `config` text given); returns once its control socket answers."""
    node = cluster.plan.node(name)
    path = lab.write_config(cluster.plan, node)
    if config is not None:
        path.write_text(config)
    log = open(cluster.plan.state_dir / f"{name}.log", "ab")  # noqa: SIM115 (child keeps it)
    with log:
        proc = Netns(cluster.plan.ns(name)).popen(
            [sys.executable, "-m", "podbgp", "run", "--config", str(path)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    cluster.procs[name] = proc
    _record(cluster, node, proc.pid)
    lab.wait_daemon(cluster.plan, node, proc, timeout=30)
    return proc


def join(cluster: Cluster, name: str) -> None:
    """A new node: its namespace on the ToR's bridge, its daemon, one pod."""
    node = cluster.plan.node(name)
    lab.build_node(cluster.plan, Netns(cluster.plan.ns("tor")), node)
    start_daemon(cluster, name)
    pod = next(p for p in cluster.plan.pods if p.node == name)
    cluster.state.pods.append(pods.add_pod(cluster.plan, pod, pods.cni_plugin()))
    cluster.state.save()


def kill(cluster: Cluster, name: str, sig: int = signal.SIGKILL) -> None:
    """Signal a node's daemon and wait until it is gone."""
    pid = cluster.pid(name)
    os.kill(pid, sig)
    proc = cluster.procs.get(name)
    if proc is not None:
        proc.wait(15)
        return
    deadline = time.monotonic() + 15
    while lab.alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    assert not lab.alive(pid), f"podbgp on {name} (pid {pid}) did not exit"


# -- views --------------------------------------------------------------------------------
def peers(cluster: Cluster, node: str) -> dict[str, dict[str, Any]]:
    """`show peers` by address (empty when the daemon does not answer)."""
    with contextlib.suppress(APIError, OSError):
        return {p["address"]: p for p in cluster.ask(node, "show.peers")}
    return {}


def sessions(cluster: Cluster, node: str) -> dict[str, tuple[float, int]]:
    """Established sessions: address → (established_at, flaps)."""
    return {
        a: (p["established_at"], p["flaps"])
        for a, p in peers(cluster, node).items()
        if p["state"] == "Established"
    }


def routes(ns: str, proto: str = "80") -> dict[str, dict[str, Any]]:
    """IPv4 routes of one protocol in a namespace's main table, by destination."""
    out = subprocess.run([IP, "-j", "-n", ns, "-4", "route", "show", "proto", proto],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    return {r["dst"]: r for r in json.loads(out or "[]")}


def blocks(cluster: Cluster, node: str) -> list[str]:
    """The blocks a node announces (its `show ipam`)."""
    return list(cluster.ask(node, "show.ipam")["announced"]["prefixes"])


def vtep(cluster: Cluster, node: str) -> str | None:
    value = cluster.ask(node, "show.node")["vtep_address"]
    return str(value) if value else None


def expected_route(cluster: Cluster, at: str, owner: str) -> dict[str, Any]:
    """What `at`'s kernel should hold for a block of `owner`, per the lab's option."""
    opt = cluster.plan.option
    here, there = cluster.plan.node(at), cluster.plan.node(owner)
    if opt.bgp == "tor":
        # eBGP via the ToR: it keeps a next hop on the receiver's own subnet (RFC 4271
        # §5.1.3 third-party next hop) and puts itself in otherwise.
        hop = there.ip if here.subnet == there.subnet else tor_address(here.subnet)
        return {"gateway": hop, "dev": "eth0"}
    encap = opt.mode == "Always" or (opt.mode == "CrossSubnet" and here.subnet != there.subnet)
    if opt.encap == "vxlan" and encap:
        return {"gateway": vtep(cluster, owner), "dev": "vxlan.podbgp", "onlink": True}
    if opt.encap == "ipip" and encap:
        return {"gateway": there.ip, "dev": "tunl0", "onlink": True}
    return {"gateway": there.ip, "dev": "eth0"}


def route_shape(route: dict[str, Any] | None) -> dict[str, Any] | None:
    if route is None:
        return None
    if route.get("type") == "blackhole":
        return {"type": "blackhole"}
    shape = {"gateway": route.get("gateway"), "dev": route.get("dev")}
    if "onlink" in route.get("flags", []):
        shape["onlink"] = True
    return shape


def mismatches(c: Cluster, nodes: list[str]) -> list[str]:
    """Every (node, block) whose kernel route is not the one the option gives."""
    owned = {n: blocks(c, n) for n in nodes}
    bad = []
    for at in nodes:
        have = routes(c.ns(at))
        for owner, prefixes in owned.items():
            for prefix in prefixes:
                if owner == at and prefix.endswith(("/32", "/128")):
                    continue  # an address borrowed from another's block: the pod's veth route
                want = {"type": "blackhole"} if owner == at else expected_route(c, at, owner)
                host = prefix.removesuffix("/32").removesuffix("/128")  # ip -j: no /32 on a host
                got = route_shape(have.get(prefix) or have.get(host))
                if got != want:
                    bad.append(f"{at}: {prefix} of {owner}: want {want}, have {got}")
    return bad


def wait(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `check` until it returns a truthy value; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout}s (last: {value!r})")
        time.sleep(interval)


# -- datastore ----------------------------------------------------------------------------
def store_write(cluster: Cluster, ops: list[Any]) -> None:
    """Write raw keys to the lab's SQLite store in one transaction (a break made on purpose)."""

    async def go() -> None:
        store = open_store(f"sqlite:{cluster.plan.datastore}")
        try:
            await store.txn([], ops)
        finally:
            await store.close()

    asyncio.run(go())


def remove_node(cluster: Cluster, name: str) -> None:
    """What an operator does when a node leaves: registry record and IPAM state go."""
    config = load_config(str(cluster.plan.config_path(name)))

    async def go() -> None:
        store = open_store(f"sqlite:{cluster.plan.datastore}")
        try:
            assert await ipam.NodeRegistry(store).remove(name)
            await ipam.Ipam(store, wiring.ipam_config(config)).remove_node(name)
        finally:
            await store.close()

    asyncio.run(go())
