"""Failover trials in a running lab: restart one node's daemon while every pod pings, and measure.

A trial (``restart_trial``) is what an operator's rolling upgrade does to a node: pods
on every node ping pods on the victim node and back every 200 ms (``ping -D -O``:
timestamps, and a line for every probe that got no answer), the victim's daemon gets
a signal (SIGTERM: a restart stop; SIGKILL: a crash), stays down for a while and is
started again. The result says how many probes were lost and when (the outage: from
the first lost probe to the last, plus one interval), how long after the start the
daemon answered on its control socket (interpreter start-up, imports, datastore, FIB
resync: not BGP's doing, and slow on a loaded machine) and every session of the
victim was Established, and — if asked — what another node's kernel
did meanwhile with the victim's routes (``ip monitor route``: a restart of a peer
must neither delete nor rewrite them, RFC 4724 §4.2).

``benchmarks/failover.py`` runs trials per lab option and prints JSON; the end-to-end
tests assert on the same results. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podbgp.api import APIError, ControlClient
from podbgp.lab import lab
from podbgp.lab.labplan import LabPlan
from podbgp.lab.netns import IP

INTERVAL = 0.2  # seconds between probes
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
_MISSED = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")


@dataclass
class Probe:
    """``ping`` every INTERVAL from one pod to another, until ``stop``."""

    src: str
    dst: str
    ns: str
    address: str
    proc: subprocess.Popen[str] | None = None
    sent: int = 0
    lost: list[tuple[int, float]] = field(default_factory=list)  # (icmp_seq, when noticed)

    def start(self) -> None:
        args = [IP, "netns", "exec", self.ns, "ping", "-n", "-D", "-O", "-i", str(INTERVAL),
                "-W", "1", self.address]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)  # fmt: skip

    def stop(self) -> None:
        """SIGINT (ping prints its summary), then read what it said."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self._parse(out)

    def _parse(self, out: str) -> None:
        replied: set[int] = set()
        missed: dict[int, float] = {}
        for line in out.splitlines():
            if m := _REPLY.match(line):
                replied.add(int(m.group(2)))
            elif m := _MISSED.match(line):
                missed.setdefault(int(m.group(2)), float(m.group(1)))
        summary = re.search(r"(\d+) packets transmitted", out)
        self.sent = int(summary.group(1)) if summary else len(replied | set(missed))
        # A probe reported missing may still have been answered late: not lost.
        self.lost = sorted((seq, ts) for seq, ts in missed.items() if seq not in replied)
        # The last probe may be in flight when ping stops; it is neither lost nor counted.
        if self.sent and self.sent not in replied and self.sent not in missed:
            self.sent -= 1


@dataclass
class TrialResult:
    option: str
    node: str
    signal: str
    down_seconds: float
    probes: int
    sent: int
    lost: int
    outage_ms: float  # first lost probe to last lost probe, plus one interval; 0 if none
    lost_per_pair: dict[str, int]
    daemon_ready_seconds: float | None  # from the daemon's start to its control socket answering
    sessions_back_seconds: float | None  # from the daemon's start to all Established
    kernel_changes: list[str]  # `ip monitor route` lines about the victim's blocks elsewhere
    during_down: Any = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probes_for(state: lab.LabState, victim: str) -> list[Probe]:
    """Every pod elsewhere to every pod of the victim, and each victim pod to one pod of
    every other node; to each address of the destination (both families when dual)."""
    pods = state.pods
    mine = [p for p in pods if p["node"] == victim]
    others = [p for p in pods if p["node"] != victim]
    first_of: dict[str, dict[str, Any]] = {}
    for p in others:
        first_of.setdefault(p["node"], p)
    pairs = [(a, b) for a in others for b in mine] + [
        (a, b) for a in mine for b in first_of.values()
    ]
    return [Probe(a["name"], b["name"], a["ns"], addr)
            for a, b in pairs for addr in lab.pod_addresses(b)]  # fmt: skip


def sessions_up(plan: LabPlan, state: lab.LabState, node: str) -> bool | None:
    """Every session of ``node`` Established; None while its daemon does not answer yet."""
    nplan = plan.node(node)
    entry = next(n for n in state.nodes if n["name"] == node)
    expected = lab.expected_sessions(plan, nplan)
    try:
        client = ControlClient(entry["socket"])
        if not expected:  # no BGP here (`show.peers` says so): answering is all there is
            client.request("show.node")
            return True
        peers = client.request("show.peers")
    except (APIError, OSError):
        return None
    up = sum(p.get("state") == "Established" for p in peers) if isinstance(peers, list) else 0
    return up >= expected


class RouteMonitor:
    """``ip monitor route`` in one namespace, keeping the lines that mention ``words``."""

    def __init__(self, ns: str, words: list[str]) -> None:
        self.words = words
        self.proc = subprocess.Popen([IP, "-n", ns, "monitor", "route"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        time.sleep(0.2)  # let it subscribe before anything happens

    def stop(self) -> list[str]:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return [ln for ln in out.splitlines() if any(w in ln.split() for w in self.words)]


def victim_blocks(state: lab.LabState, node: str) -> list[str]:
    """The victim's pod blocks as kernel route prefixes on other nodes (a /26 each)."""
    entry = next(n for n in state.nodes if n["name"] == node)
    try:
        ipam = ControlClient(entry["socket"]).request("show.ipam")
    except (APIError, OSError):
        return []
    announced = (ipam or {}).get("announced") or {}
    return sorted(str(p) for p in announced.get("prefixes", []))


def _wait_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while lab.alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        time.sleep(0.02)
    if lab.alive(pid):
        os.kill(pid, signal.SIGKILL)


def restart_trial(
    plan: LabPlan,
    state: lab.LabState,
    node: str,
    sig: signal.Signals,
    down: float = 5.0,
    settle: float = 3.0,
    monitor_on: str | None = None,
    while_down: Callable[[], Any] | None = None,
    sessions_timeout: float = 30.0,
    from_tor: bool = False,
) -> TrialResult:
    """One restart of ``node``'s daemon (module docstring). The lab must be up.

    ``from_tor``: the ToR pings the victim's pods too (its own forwarding table)."""
    probes = probes_for(state, node)
    if from_tor:
        tor = plan.ns("tor")
        mine = [p for p in state.pods if p["node"] == node]
        probes += [Probe("tor", p["name"], tor, a) for p in mine for a in lab.pod_addresses(p)]
    ready: float | None
    back: float | None
    blocks = victim_blocks(state, node)
    monitor = RouteMonitor(plan.ns(monitor_on), blocks) if monitor_on and blocks else None
    for p in probes:
        p.start()
    seen: Any = None
    try:
        time.sleep(1.0)  # probes answered before the stop
        pid = state.pids[node]
        os.kill(pid, sig)
        _wait_exit(pid, 15.0)
        time.sleep(down / 2)
        if while_down is not None:
            seen = while_down()
        time.sleep(down / 2)
        started = time.monotonic()
        proc = lab.start_node_daemon(plan, plan.node(node))
        state.pids[node] = proc.pid
        state.save()
        ready = back = None
        deadline = started + sessions_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            up = sessions_up(plan, state, node)
            now = time.monotonic() - started
            if up is not None and ready is None:
                ready = now
            if up:
                back = now
                break
            time.sleep(0.02)
        time.sleep(settle)
    finally:
        for p in probes:
            p.stop()
        changes = monitor.stop() if monitor is not None else []
    lost = [ts for p in probes for _, ts in p.lost]
    outage = (max(lost) - min(lost) + INTERVAL) * 1000 if lost else 0.0
    return TrialResult(
        option=plan.option.name,
        node=node,
        signal=sig.name,
        down_seconds=down,
        probes=len(probes),
        sent=sum(p.sent for p in probes),
        lost=sum(len(p.lost) for p in probes),
        outage_ms=round(outage, 1),
        lost_per_pair={f"{p.src}>{p.dst}": len(p.lost) for p in probes if p.lost},
        daemon_ready_seconds=None if ready is None else round(ready, 3),
        sessions_back_seconds=None if back is None else round(back, 3),
        kernel_changes=changes,
        during_down=seen,
    )
