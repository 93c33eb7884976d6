"""Helpers shared by the lab's end-to-end tests: where a lab lives, bringing one up, tcpdump."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from podbgp.lab import lab, pods
from podbgp.lab.labplan import LabPlan, plan_lab
from podbgp.lab.netns import IP


@dataclass
class LabSpot:
    """Where a test's lab lives: its namespace prefix and its state dir."""

    prefix: str
    state_dir: Path


CONVERGE = 40.0


def lab_up(spot: LabSpot, option: str, **kw: object) -> tuple[LabPlan, lab.LabState]:
    plan = plan_lab(option, 3, 2, prefix=spot.prefix, state_dir=spot.state_dir, **kw)  # type: ignore[arg-type]
    why = lab.unsupported(plan)
    if why:
        pytest.skip(why)
    state, matrix = lab.up(plan, out=lambda _: None, converge_timeout=CONVERGE)
    bad = sorted(k for k, ok in matrix.items() if not ok)
    assert not bad, (
        f"unreachable pod pairs: {bad}\n{lab.format_matrix(state, matrix)}\n"
        + lab.diagnostics(state)
    )
    assert state.status == "up"
    return plan, state


def pod(state: lab.LabState, name: str) -> dict[str, str]:
    return next(p for p in state.pods if p["name"] == name)


class Capture:
    """tcpdump in a namespace for the duration of a `with` block (bounded by `limit` s)."""

    def __init__(self, ns: str, iface: str, expr: str, limit: float = 15.0) -> None:
        self.args = [IP, "netns", "exec", ns, "tcpdump", "-n", "-l", "-p", "-i", iface, expr]
        self.limit = limit
        self.lines: list[str] = []

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip
        assert self.proc.stderr is not None
        # tcpdump says "listening on IFACE" once its filter is attached (after a line or two).
        seen = []
        for _ in range(5):
            seen.append(self.proc.stderr.readline())
            if "listening on" in seen[-1]:
                break
        else:
            raise AssertionError(f"tcpdump did not start: {seen}")
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the last packets reach the capture buffer
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=max(1.0, self.limit))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines = [line for line in out.splitlines() if line.strip()]


def ping(ns: str, address: str, count: int = 3) -> bool:
    proc = subprocess.run([IP, "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i",
                           "0.2", "-W", "2", address], capture_output=True, timeout=30,
                          check=False)  # fmt: skip
    return proc.returncode == 0


def lab_up_with_tor(spot: LabSpot, tor_daemon: str) -> tuple[LabPlan, lab.LabState, object]:
    """Option `peered` with `tor_daemon` ("frr" or "bird") on the ToR: the same listen
    range for the nodes' eBGP sessions, learned routes installed in the ToR's kernel."""
    from podbgp.lab.labplan import TOR_ASN, tor_address
    from podbgp.lab.netns import Netns
    from podbgp.lab.peers import DAEMONS, BgpConfig, ListenRange

    cls = DAEMONS[tor_daemon]
    why = cls.missing()
    if why:
        pytest.skip(why)
    plan = plan_lab("peered", 3, 2, prefix=spot.prefix, state_dir=spot.state_dir)
    state = lab.prepare(plan, out=lambda _: None)
    tor = lab.build_network(plan, state)
    cfg = BgpConfig(asn=TOR_ASN, router_id=tor_address(0), hostname="tor", install_routes=True,
                    listen_ranges=[ListenRange(s, None) for s in plan.subnets])  # fmt: skip
    daemon = cls(Netns(tor.name), plan.state_dir / f"tor-{tor_daemon}", cfg)
    daemon.start()
    for i, proc in enumerate(daemon.procs):
        state.pids[f"tor-{tor_daemon}-{i}"] = proc.pid
    procs = {node.name: lab.start_node_daemon(plan, node) for node in plan.nodes}
    for name, proc in procs.items():
        state.pids[name] = proc.pid
    state.save()
    for node in plan.nodes:
        lab.wait_daemon(plan, node, procs[node.name], timeout=30)
    lab.create_pods(plan, state, pods.cni_plugin())
    lab.wait_sessions(plan, state, timeout=CONVERGE / 2)
    matrix = lab.wait_matrix(state, CONVERGE)
    assert all(matrix.values()), lab.format_matrix(state, matrix) + lab.diagnostics(state)
    state.status = "up"
    state.save()
    return plan, state, daemon


def tor_has_route(plan: LabPlan, prefix: str) -> bool:
    """The ToR's kernel forwards `prefix` to a node (whatever daemon put it there)."""
    out = subprocess.run([IP, "-n", plan.ns("tor"), "-4", "route", "show", prefix],
                         capture_output=True, text=True, timeout=10, check=False).stdout  # fmt: skip
    return " via " in out
