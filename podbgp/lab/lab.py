"""`podbgp lab`: a cluster of podbgp nodes and pods in network namespaces, built and torn down.

What `up` builds (RECIPES.md §1 star variant, §2 FRR, §11 pods)::

    PREFIX+tor   br0 10.99.1.254/24 (br1 10.99.2.254/24 for two subnets), forwarding on,
                 203.0.113.1 on lo (an address outside the pools: nat_outgoing's target),
                 FRR (zebra + bgpd) with a listen range when the option peers with the ToR
    PREFIX+nI    eth0 10.99.S.I/24 on bridge brS, default route via the ToR,
                 `podbgp run --config STATE/nI.toml` (shared SQLite datastore STATE/podbgp.db,
                 created with its cluster ID before any daemon starts; each daemon records
                 that ID in STATE/cluster-id, beside its control socket)
    PREFIX+nI-pK a pod: eth0 with one address from podbgp's IPAM, default via 169.254.1.1,
                 plugged in by `podbgp-cni` the way a container runtime calls it

Everything it starts or creates is recorded in STATE/lab.json, and every namespace carries
PREFIX, so `down` removes a lab also after a crash of `up` (by prefix), and test runs with
their own prefix never touch the demo lab.

`up` ends with the sessions of every node (from each daemon's control socket), the podbgp
routes in each node's kernel, and a ping matrix between every pair of pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podbgp.api import APIError, ControlClient
from podbgp.lab.devices import KERNEL_OPTION, ProbeFailed, probe_devices
from podbgp.lab.labplan import (
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    EXTERNAL,
    EXTERNAL6,
    OPTIONS,
    POOL,
    POOL6,
    TOR_ASN,
    LabPlan,
    NodePlan,
    render_node_config,
    tor_address,
    tor_address6,
)
from podbgp.lab.matrix import (
    PingResult,
    format_matrix,
    ping_matrix,
    ping_pairs,
    pod_addresses,
    wait_matrix,
)
from podbgp.lab.netns import IP, Netns, cleanup_prefix, list_namespaces, new_netns, veth
from podbgp.lab.pods import add_pod, cni_plugin, init_datastore
from podbgp.lab.shell import LabError, Unsupported, run

__all__ = ["PingResult", "format_matrix", "ping_matrix", "ping_pairs", "pod_addresses",
           "wait_matrix"]  # fmt: skip
STATE_FILE = "lab.json"


# -- kernel support -----------------------------------------------------------------------
def missing_encap(encap: str) -> str | None:
    """Why this kernel cannot run `encap` tunnels, or None (`podbgp.lab.devices`)."""
    if not encap:
        return None
    try:
        error = probe_devices((encap,))[encap]
    except ProbeFailed as e:
        return f"could not test whether this kernel creates {encap} devices: {e}"
    if error is None:
        return None
    option = KERNEL_OPTION[encap]
    return f"this kernel cannot create {encap} devices ({error}): it was built without {option}"


def unsupported(plan: LabPlan) -> str | None:
    """Why `plan`'s option cannot run on this machine (with the options that can), or None."""
    opt = plan.option
    why = missing_encap(opt.encap)
    if why:
        others = [name for name, o in OPTIONS.items() if o.encap != opt.encap]
        return (f"option {opt.name} cannot run here: {why}; "
                f"options that do not need {opt.encap}: {', '.join(others)}")  # fmt: skip
    if opt.needs_tor_bgp:
        from podbgp.lab.peers import Frr

        why = Frr.missing()
        if why:
            return f"option {opt.name} needs FRR on the ToR: {why} (`make deps` installs it)"
    return None


# -- state --------------------------------------------------------------------------------
@dataclass
class LabState:
    """What a lab is made of, kept in STATE/lab.json so `down` and `status` find it."""

    prefix: str
    state_dir: str
    option: str = ""
    family: str = "ipv4"
    status: str = "building"  # building | up | failed
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    tor: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / STATE_FILE

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)

    @classmethod
    def load(cls, state_dir: str | Path) -> LabState | None:
        path = Path(state_dir) / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


# -- topology -----------------------------------------------------------------------------
def build_tor(plan: LabPlan) -> Netns:
    """The switch/router namespace: one bridge per subnet, routing between them."""
    tor = new_netns(plan.ns("tor"))
    tor.sysctl("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    for s, subnet in enumerate(plan.subnets):
        br = f"br{s}"
        tor.ip("link", "add", br, "type", "bridge")
        plen = subnet.split("/")[1]
        tor.ip("addr", "add", f"{tor_address(s)}/{plen}", "dev", br)
        if plan.v6:
            # nodad: the address is usable at once, not after duplicate address detection.
            plen6 = plan.subnets6[s].split("/")[1]
            tor.ip("addr", "add", f"{tor_address6(s)}/{plen6}", "dev", br, "nodad")
        tor.ip("link", "set", br, "up")
    tor.ip("addr", "add", f"{EXTERNAL}/32", "dev", "lo")
    if plan.v6:
        tor.ip("addr", "add", f"{EXTERNAL6}/128", "dev", "lo", "nodad")
    return tor


def build_node(plan: LabPlan, tor: Netns, node: NodePlan) -> Netns:
    ns = new_netns(plan.ns(node.name))
    veth(ns, "eth0", tor, node.name)
    tor.ip("link", "set", node.name, "master", f"br{node.subnet}")
    if node.address:
        ns.ip("addr", "add", node.address, "dev", "eth0")
        # The default route via the ToR also gives proxy ARP for 169.254.1.1 a route to
        # answer with (RECIPES.md §11 pitfall), and reaches the other subnet and EXTERNAL.
        ns.ip("route", "add", "default", "via", node.gateway)
    if node.address6:
        ns.ip("addr", "add", node.address6, "dev", "eth0", "nodad")
        ns.ip("-6", "route", "add", "default", "via", node.gateway6)
    ns.sysctl("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    return ns


# -- processes ----------------------------------------------------------------------------
def _popen_logged(ns: Netns, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return ns.popen(list(args), stdout=out, stderr=subprocess.STDOUT)


def start_tor_bgp(plan: LabPlan, tor: Netns) -> list[int]:
    """FRR on the ToR: one eBGP listen range per subnet, any AS but its own (RFC 7938)."""
    from podbgp.lab.peers import BgpConfig, Frr, ListenRange

    cfg = BgpConfig(
        asn=TOR_ASN,
        router_id=tor_address(0),
        listen_ranges=tor_listen_ranges(plan, ListenRange),
        hostname="tor",
    )
    frr = Frr(tor, plan.state_dir / "tor-frr", cfg)
    frr.start()
    return [p.pid for p in frr.procs]


def tor_listen_ranges(plan: LabPlan, cls: Any) -> list[Any]:
    """The ToR's listen ranges (`peers.ListenRange`): the node subnets of the family the
    sessions run over, carrying the lab's families (both over IPv4 in a dual lab)."""
    if plan.family == "ipv6":
        return [cls(s, None, families=("ipv6",)) for s in plan.subnets6]
    families = ("ipv4", "ipv6") if plan.v6 else ("ipv4",)
    return [cls(s, None, families=families) for s in plan.subnets]


def write_config(plan: LabPlan, node: NodePlan) -> Path:
    path = plan.config_path(node.name)
    path.write_text(render_node_config(plan, node))
    return path


def start_node_daemon(plan: LabPlan, node: NodePlan) -> subprocess.Popen[bytes]:
    path = write_config(plan, node)
    args = [sys.executable, "-m", "podbgp", "run", "--config", str(path)]
    return _popen_logged(Netns(plan.ns(node.name)), args, plan.state_dir / f"{node.name}.log")


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_daemon(
    plan: LabPlan, node: NodePlan, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    """Until the node's control socket answers; a daemon that exits is an error with its log."""
    log = plan.state_dir / f"{node.name}.log"
    wait_control(node.name, plan.socket_path(node.name), log, proc, timeout)


def wait_control(
    name: str, socket: Path, log: Path, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    """Until `socket` answers `show.node`; the daemon exiting first is an error with its log."""
    client = ControlClient(str(socket))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(
                f"podbgp on {name} exited with {proc.returncode}; {log}:\n{_log_tail(log)}"
            )
        with contextlib.suppress(APIError, OSError):
            client.request("show.node")
            return
        if time.monotonic() > deadline:
            raise LabError(f"podbgp on {name} did not answer on its socket in {timeout}s")
        time.sleep(0.1)


# -- checks -------------------------------------------------------------------------------
def expected_sessions(plan: LabPlan, node: NodePlan) -> int:
    bgp = plan.option.bgp
    n = len(plan.nodes)
    if bgp == "none":
        return 0
    if bgp == "tor":
        return 1
    if bgp == "rr":
        return n - 1 if node.route_reflector else 1
    return n - 1


def peers_of(state: LabState, node: dict[str, Any]) -> list[dict[str, Any]]:
    result = ControlClient(node["socket"]).request("show.peers")
    return list(result) if isinstance(result, list) else []


def wait_sessions(plan: LabPlan, state: LabState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        pending = []
        for nplan, node in zip(plan.nodes, state.nodes, strict=True):
            if expected_sessions(plan, nplan) == 0:
                continue  # no BGP: `show peers` says it is disabled
            try:
                up = sum(p.get("state") == "Established" for p in peers_of(state, node))
            except (APIError, OSError):
                up = -1
            if up < expected_sessions(plan, nplan):
                pending.append(f"{nplan.name} ({max(up, 0)}/{expected_sessions(plan, nplan)})")
        if not pending:
            return
        time.sleep(0.3)
    raise LabError(f"BGP sessions not Established after {timeout}s on {', '.join(pending)}")


def kernel_routes(ns: str, proto: str = "80", versions: Sequence[int] = (4,)) -> list[str]:
    lines: list[str] = []
    for v in versions:
        out = run([IP, "-n", ns, f"-{v}", "route", "show", "proto", proto], check=False)
        lines += [line.strip() for line in out.splitlines() if line.strip()]
    return lines


# -- life cycle ---------------------------------------------------------------------------
Printer = Callable[[str], None]


def prepare_state_dir(prefix: str, state_dir: Path, replace: bool, out: Printer) -> None:
    """Refuse to build over a running lab (unless `replace`), clear a crashed one's leftovers.

    Any lab's: the cluster topology (`podbgp.lab.cluster`) claims its state dir here too."""
    existing = LabState.load(state_dir)
    if existing is not None or list_namespaces(prefix):
        if not replace:
            raise LabError(
                f"a lab is already up (prefix {prefix}, state {state_dir}); "
                "`podbgp lab down` removes it"
            )
        out("removing the previous lab")
        down(prefix, state_dir)
    if state_dir.exists() and any(state_dir.iterdir()):
        raise LabError(f"{state_dir} is not empty and holds no lab; choose another --state-dir")
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o755)  # FRR runs as the frr user and needs to reach its dir


def prepare(plan: LabPlan, replace: bool = False, out: Printer = print) -> LabState:
    """Check the option can run, claim the state dir, record a lab that is being built, and
    create its datastore (nothing else creates one: `ipam.identity`)."""
    why = unsupported(plan)
    if why:
        raise Unsupported(why)
    prepare_state_dir(plan.prefix, plan.state_dir, replace, out)
    state = LabState(prefix=plan.prefix, state_dir=str(plan.state_dir), option=plan.option.name,
                     family=plan.family)  # fmt: skip
    state.save()
    out(f"creating the datastore {plan.datastore} (as `podbgp datastore init` does)")
    asyncio.run(init_datastore(plan))
    return state


def up(
    plan: LabPlan,
    replace: bool = False,
    out: Printer = print,
    converge_timeout: float = 60.0,
) -> tuple[LabState, dict[tuple[str, str], bool]]:
    """Build the lab of `plan`, start everything, wait for convergence; returns the state and
    the ping matrix. The lab stays up (also when some pair fails: it is there to inspect)."""
    state = prepare(plan, replace, out)
    try:
        _build(plan, state, out)
        out("waiting for BGP sessions" if plan.option.bgp != "none" else "no BGP in this option")
        wait_sessions(plan, state, timeout=converge_timeout / 2)
        out(f"pinging every pod from every pod (up to {converge_timeout:g}s for convergence)")
        matrix = wait_matrix(state, converge_timeout, out)
    except BaseException:
        state.status = "failed"
        state.save()
        raise
    state.status = "up" if all(matrix.values()) else "failed"
    state.save()
    return state, matrix


def _build(plan: LabPlan, state: LabState, out: Printer) -> None:
    out(f"building {len(plan.nodes)} nodes in namespaces {plan.prefix}*: {plan.option.summary}")
    tor = build_network(plan, state)
    if plan.option.needs_tor_bgp:
        out("starting FRR on the ToR")
        for i, pid in enumerate(start_tor_bgp(plan, tor)):
            state.pids[f"tor-frr-{i}"] = pid
        state.save()
    out("starting podbgp on every node")
    procs = {node.name: start_node_daemon(plan, node) for node in plan.nodes}
    for name, proc in procs.items():
        state.pids[name] = proc.pid
    state.save()
    for node in plan.nodes:
        wait_daemon(plan, node, procs[node.name], timeout=30)
    plugin = cni_plugin()
    out(f"creating {len(plan.pods)} pods " +
        ("with podbgp-cni" if plugin else "by hand (podbgp-cni is not installed)"))  # fmt: skip
    create_pods(plan, state, plugin)


def build_network(plan: LabPlan, state: LabState) -> Netns:
    """The ToR and the nodes (no processes yet), recorded in `state`; returns the ToR."""
    tor = build_tor(plan)
    state.tor = {"ns": tor.name, "addresses": [tor_address(i) for i in range(len(plan.subnets))],
                 "addresses6": [tor_address6(i) for i in range(len(plan.subnets6))],
                 "asn": TOR_ASN if plan.option.needs_tor_bgp else None}  # fmt: skip
    state.save()
    for node in plan.nodes:
        build_node(plan, tor, node)
        state.nodes.append({"name": node.name, "ns": plan.ns(node.name),
                            "address": node.address or node.address6,
                            "address6": node.address6,
                            "asn": node.asn, "config": str(plan.config_path(node.name)),
                            "socket": str(plan.socket_path(node.name)),
                            "log": str(plan.state_dir / f"{node.name}.log"),
                            "route_reflector": node.route_reflector})  # fmt: skip
        state.save()
    return tor


def create_pods(plan: LabPlan, state: LabState, plugin: str | None) -> None:
    for pod in plan.pods:
        state.pods.append(add_pod(plan, pod, plugin))
        state.save()


def down(prefix: str, state_dir: str | Path, out: Printer | None = None) -> bool:
    """Remove the lab: its processes, namespaces and state dir. True if anything was there.

    Works from the state file when there is one and by prefix always, so leftovers of a
    crashed `up` go too."""
    state = LabState.load(state_dir)
    if state is not None:
        prefix = state.prefix
    names = list_namespaces(prefix)
    # Processes first: a namespace with processes in it outlives `ip netns del`.
    for pid in state.pids.values() if state else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 15)
    cleanup_prefix(prefix)
    removed = _remove_state_dir(Path(state_dir), state is not None)
    if out:
        out(f"removed {len(names)} namespaces" + (f" and {state_dir}" if removed else ""))
    return bool(names) or removed


def _remove_state_dir(path: Path, has_state: bool) -> bool:
    """Only a dir that holds a lab's state (or nothing) is removed: never a user's dir."""
    if not path.is_dir():
        return False
    if has_state or not any(path.iterdir()) or (path / STATE_FILE).exists():
        shutil.rmtree(path, ignore_errors=True)
        return True
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- reports ------------------------------------------------------------------------------
def sessions_report(state: LabState) -> str:
    """Each node's `podbgp show peers` table, formatted by the same code."""
    from podbgp.cmd_show import peers_table

    parts = []
    for node in state.nodes:
        try:
            rows = peers_of(state, node)
            body = peers_table(rows) if rows else "(no BGP sessions)"
        except (APIError, OSError) as exc:  # the message says which: no daemon, no BGP
            body = f"({exc})"
        parts.append(f"{node['name']} {node['address']} AS{node['asn']}\n" + _indent(body))
    return "\n".join(parts)


def routes_report(state: LabState) -> str:
    parts = []
    versions = _versions(state)
    for node in state.nodes:
        routes = kernel_routes(node["ns"], versions=versions)
        parts.append(f"{node['name']}\n" + _indent("\n".join(routes) or "(none)"))
    if state.tor.get("asn"):
        routes = [r for r in kernel_routes(state.tor["ns"], "bgp", versions) if _in_pool(r)]
        parts.append("tor (FRR)\n" + _indent("\n".join(routes) or "(none)"))
    return "\n".join(parts)


def _in_pool(route: str) -> bool:
    import ipaddress

    try:
        net = ipaddress.ip_network(route.split()[0])
    except ValueError:
        return False
    if isinstance(net, ipaddress.IPv4Network):
        return net.subnet_of(ipaddress.IPv4Network(POOL))
    return net.subnet_of(ipaddress.IPv6Network(POOL6))


def _versions(state: LabState) -> tuple[int, ...]:
    return {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}.get(state.family, (4,))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def status_report(state_dir: str | Path, prefix: str) -> tuple[str, bool]:
    """What is up: (text, True if a lab exists)."""
    state = LabState.load(state_dir)
    names = list_namespaces(state.prefix if state else prefix)
    if state is None:
        if names:
            return (f"no lab state in {state_dir}, but {len(names)} namespaces named {prefix}* "
                    "are left over; `podbgp lab down` removes them", True)  # fmt: skip
        return (f"no lab is up (state dir {state_dir})", False)
    lines = [f"lab {state.prefix}* option {state.option} family {state.family}: {state.status}, "
             f"{len(state.nodes)} nodes, {len(state.pods)} pods, state {state.state_dir}"]  # fmt: skip
    for node in state.nodes:
        pid = state.pids.get(node["name"], 0)
        running = "running" if pid and alive(pid) else "NOT running"
        lines.append(f"  {node['name']:<4} {node['address']:<16} podbgp pid {pid} {running}")
    for pod in state.pods:
        addrs = " ".join(f"{a:<15}" for a in pod_addresses(pod))
        lines.append(f"  {pod['name']:<8} {addrs} on {pod['node']} ({pod['via']})")
    missing = {n["ns"] for n in state.nodes} - set(names)
    if missing:
        lines.append(f"  missing namespaces: {', '.join(sorted(missing))}")
    return "\n".join(lines), True


def podbgp_command() -> str:
    """How to call this podbgp from a shell: `podbgp` if PATH finds this one, else its path."""
    exe = Path(sys.executable).parent / "podbgp"
    if not exe.exists():
        return "podbgp"
    found = shutil.which("podbgp")
    return "podbgp" if found and Path(found).resolve() == exe.resolve() else str(exe)


def next_steps(state: LabState) -> str:
    n1 = state.nodes[0]
    p = state.pods[-1] if state.pods else None
    cmd = podbgp_command()
    lines = [
        "The lab stays up. Try:",
        f"  {cmd} show peers --socket {n1['socket']}",
        f"  {cmd} show routes --socket {n1['socket']}",
        f"  ip netns exec {n1['ns']} ip route",
    ]
    if p is not None and state.pods:
        for addr in pod_addresses(p):
            lines.append(f"  ip netns exec {state.pods[0]['ns']} ping -c3 {addr}")
    where = ""
    if state.prefix != DEFAULT_PREFIX:
        where += f" --prefix {state.prefix}"
    if Path(state.state_dir) != Path(DEFAULT_STATE_DIR):
        where += f" --state-dir {state.state_dir}"
    lines += [f"  {cmd} lab status{where}", f"  {cmd} lab down{where}      # removes everything"]
    return "\n".join(lines)


def diagnostics(state: LabState, log_lines: int = 20) -> str:
    """Each node's podbgp routes, VXLAN neighbours and FDB, and its log's tail: for failures."""
    parts = []
    for node in state.nodes:
        ns = node["ns"]
        cmds = [
            [IP, "-n", ns, f"-{v}", "route", "show", "proto", proto]
            for v in _versions(state)
            for proto in ("80", "81")
        ]
        cmds += [[IP, "-n", ns, "neigh", "show", "dev", "vxlan.podbgp"],
                 ["bridge", "-n", ns, "fdb", "show", "dev", "vxlan.podbgp"]]  # fmt: skip
        out = [f"== {node['name']}"]
        for cmd in cmds:
            text = run(cmd, check=False).strip()
            out.append(f"$ {' '.join(cmd[1:])}\n{text}" if text else f"$ {' '.join(cmd[1:])}")
        out.append(f"-- log\n{_log_tail(Path(node['log']), log_lines)}")
        parts.append("\n".join(out))
    return "\n".join(parts)
