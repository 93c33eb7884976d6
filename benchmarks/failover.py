"""Failover benchmark: how fast a dead path leaves the kernel, and BFD's timing under load.

Prints one JSON object. Needs root (network namespaces), FRR 8.4 with bfdd, nft and
tcpdump. Usage::

    .venv/bin/python benchmarks/failover.py --scenario bfd-detect [--repeat 5]
    .venv/bin/python benchmarks/failover.py --scenario hold-detect [--repeat 3]
    .venv/bin/python benchmarks/failover.py --scenario bfd-jitter [--prefixes 1000000]

Scenarios (each is one function in SCENARIOS):

- ``restart``: for each lab option (``--options``, default all but what the kernel
  cannot run), a three-node lab with two pods per node is built once; then n3's daemon
  gets SIGTERM (the restart stop) and, after that trial, SIGKILL (a crash); each time it
  stays down ``--down`` seconds and is started again while every pod of n1 and n2 pings
  every pod of n3 and back every 200 ms (``podbgp.lab.failover.restart_trial``). Per
  trial: ``outage_ms`` (first lost probe to last lost probe plus one interval; 0 when
  none was lost), ``lost``/``sent`` over all pairs, ``daemon_ready_seconds`` (process
  start to its control socket answering: interpreter, imports, datastore, FIB resync),
  ``sessions_back_seconds`` (process start to every session of n3 Established; minus
  the former is BGP's part) and ``kernel_changes`` (``ip monitor route`` lines on n1
  that touched n3's blocks). ``summary`` has the worst of each per option and signal.

- ``bfd-detect``: `podbgp run` (10.99.0.1, kernel FIB on) and FRR (10.99.0.2) over one
  veth, eBGP with BFD at 300 ms x 3 and hold time 9 s, one prefix each way. At t0
  nftables starts dropping BGP and BFD on podbgp's side (`podbgp.lab.bfd_lab`). Per
  round: ``bfd_down_ms`` (podbgp's BFD session left Up, from its state timestamp),
  ``podbgp_kernel_ms`` (FRR's prefix gone from podbgp's kernel table) and
  ``peer_kernel_ms`` (podbgp's prefix gone from FRR's), then the drop is lifted
  and everything comes back before the next round.
- ``hold-detect``: the same without BFD: only the hold time (9 s) notices.
- ``bfd-jitter``: podbgp on a LAN with a feeder (`podbgp.lab.feeder`, N prefixes into
  podbgp's RIB and kernel) and FRR running BFD at 300 ms x 3 with it. tcpdump in FRR's
  namespace timestamps every BFD packet podbgp sends; the intervals between them are
  reported while idle (before the feed) and during the ingest (feed start until the
  kernel holds N routes), as p50/p99/max in ms. RFC 5880 §6.8.7 itself makes every
  interval 75-100 % of 300 ms, so anything above 300 ms is lateness. ``flaps`` counts
  BFD Up -> Down on both ends during the run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

# `python benchmarks/failover.py` puts this directory first on sys.path, where
# benchmarks/ipam.py would shadow the ipam package that the lab imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from podbgp.api import APIError  # noqa: E402
from podbgp.lab import lab  # noqa: E402
from podbgp.lab.bfd_lab import (  # noqa: E402
    LabPeer,
    PodbgpNode,
    drop_bgp_and_bfd,
    kernel_hops,
    restore,
    wait_until,
)
from podbgp.lab.failover import restart_trial  # noqa: E402
from podbgp.lab.labplan import OPTIONS, plan_lab  # noqa: E402
from podbgp.lab.netns import NetnsGroup, cleanup_prefix, netns_group  # noqa: E402
from podbgp.lab.peer_link import Link, make_link  # noqa: E402
from podbgp.lab.peers import BgpConfig, Frr, Neighbor, Route  # noqa: E402

POD_AS, PEER_AS, FEED_AS = 64801, 64802, 64803
POD_PREFIX, PEER_PREFIX = "10.210.1.0/24", "10.220.1.0/24"
HOLD = 9


# ------------------------------------------------------------------ detect scenarios


def _detect(group: NetnsGroup, work: Path, repeat: int, bfd: bool) -> dict[str, Any]:
    link = make_link(group)
    cfg = BgpConfig(asn=PEER_AS, router_id=link.b4, routes=[Route(PEER_PREFIX)],
                    neighbors=[Neighbor(link.a4, POD_AS, bfd=bfd)], install_routes=True,
                    hold_time=HOLD, keepalive=HOLD // 3)  # fmt: skip
    rounds = []
    with (
        Frr(link.b, work / "frr", cfg),
        PodbgpNode(
            link.a,
            work / "podbgp",
            asn=POD_AS,
            address=link.a4,
            peers=[LabPeer(link.b4, PEER_AS, bfd=bfd)],
            originate=(POD_PREFIX,),
            hold_time=HOLD,
        ) as pod,  # fmt: skip
    ):
        for _ in range(repeat):
            _converged(link, pod, bfd)
            rounds.append(_one_failure(link, pod, bfd))
            restore(link.a)
    return {"rounds": rounds, **_summary(rounds)}


def _converged(link: Link, pod: PodbgpNode, bfd: bool) -> None:
    wait_until(lambda: kernel_hops(link.a, PEER_PREFIX) == [link.b4], 60, "route in podbgp")
    wait_until(lambda: kernel_hops(link.b, POD_PREFIX) == [link.a4], 60, "route in FRR")
    if bfd:
        wait_until(lambda: (pod.peer().get("bfd") or {}).get("up"), 30, "BFD Up")
        wait_until(lambda: pod.peer()["bfd"]["detection_time_ms"] == 900.0, 30, "timers")
    time.sleep(1.0)


def _one_failure(link: Link, pod: PodbgpNode, bfd: bool) -> dict[str, Any]:
    t0_wall, t0 = time.time(), time.monotonic()
    drop_bgp_and_bfd(link.a)
    out: dict[str, Any] = {}
    checks = {"podbgp_kernel_ms": (link.a, PEER_PREFIX), "peer_kernel_ms": (link.b, POD_PREFIX)}

    def gone() -> bool:
        for name, (ns, prefix) in checks.items():
            if name not in out and not kernel_hops(ns, prefix):
                out[name] = round((time.monotonic() - t0) * 1000, 1)
        return len(out) == 2

    wait_until(gone, HOLD + 20, "routes gone from both kernels", 0.01)
    if bfd:
        since = float(pod.peer()["bfd"]["state_since"])
        out["bfd_down_ms"] = round((since - t0_wall) * 1000, 1)
    return out


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({k for r in rounds for k in r})
    return {f"{k}_median": statistics.median(r[k] for r in rounds) for k in keys} | {
        f"{k}_max": max(r[k] for r in rounds) for k in keys
    }


def bfd_detect(group: NetnsGroup, work: Path, a: argparse.Namespace) -> dict[str, Any]:
    return _detect(group, work, a.repeat, bfd=True)


def hold_detect(group: NetnsGroup, work: Path, a: argparse.Namespace) -> dict[str, Any]:
    return _detect(group, work, a.repeat, bfd=False)


# ------------------------------------------------------------------------ jitter


def bfd_jitter(group: NetnsGroup, work: Path, a: argparse.Namespace) -> dict[str, Any]:
    hub, feed_ns, frr_ns = group.add("p"), group.add("f"), group.add("r")
    hub.ip("link", "add", "br0", "type", "bridge")
    hub.ip("addr", "add", "10.71.0.1/24", "dev", "br0")
    hub.ip("link", "set", "br0", "up")
    for i, ns in ((1, feed_ns), (2, frr_ns)):
        group.veth(hub, f"p{i}", ns, "eth0")
        hub.ip("link", "set", f"p{i}", "master", "br0")
        ns.ip("addr", "add", f"10.71.0.{i + 1}/24", "dev", "eth0")
    pod_addr, feeder, frr = "10.71.0.1", "10.71.0.2", "10.71.0.3"
    cfg = BgpConfig(asn=PEER_AS, router_id=frr, neighbors=[Neighbor(pod_addr, POD_AS, bfd=True)])
    peers = [LabPeer(feeder, FEED_AS, bfd=False, export="none"),
             LabPeer(frr, PEER_AS, export="none")]  # fmt: skip
    with (
        Frr(frr_ns, work / "frr", cfg) as peer,
        PodbgpNode(hub, work / "podbgp", asn=POD_AS, address=pod_addr, peers=peers) as pod,
    ):
        wait_until(lambda: (pod.peer(frr).get("bfd") or {}).get("up"), 30, "BFD Up")
        wait_until(lambda: peer.bfd_peer(pod_addr).get("status") == "up", 30, "FRR BFD Up")
        time.sleep(3)  # past FRR's re-registration of its session
        flaps0 = pod.peer(frr)["bfd"]["flaps"]
        cap = frr_ns.popen(
            ["tcpdump", "-i", "eth0", "-n", "-tt", "-l", "-Q", "in",
             f"udp dst port 3784 and src host {pod_addr}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(a.idle)
        t_feed = time.time()
        feed = feed_ns.popen(
            [sys.executable, "-m", "podbgp.lab.feeder", "--connect", pod_addr, "--local-as",
             str(FEED_AS), "--next-hop", feeder, "--prefixes", str(a.prefixes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        wait_until(lambda: _installed(pod) >= a.prefixes, a.timeout, "routes installed", 0.5)
        t_done = time.time()
        time.sleep(1)
        cap.terminate()
        stamps = [float(line.split()[0]) for line in cap.communicate()[0].decode().splitlines()
                  if line[:1].isdigit()]  # fmt: skip
        assert feed.stdin is not None
        feed.stdin.close()
        feed.wait(30)
        frr_bfd = peer.bfd_peer(pod_addr)
        row = _ask(lambda: pod.peer(frr))
    idle = _intervals([t for t in stamps if t < t_feed])
    busy = _intervals([t for t in stamps if t_feed <= t <= t_done])
    return {
        "prefixes": a.prefixes,
        "ingest_s": round(t_done - t_feed, 1),
        "tx_interval_idle_ms": idle,
        "tx_interval_ingest_ms": busy,
        "podbgp_flaps": row["bfd"]["flaps"] - flaps0,
        "frr_bfd_status": frr_bfd.get("status"),
        "frr_bfd_uptime_s": frr_bfd.get("uptime"),
    }


def _installed(pod: PodbgpNode) -> int:
    try:
        return int(pod.client().request("show.fib").get("installed", 0))
    except (APIError, OSError):
        return 0  # the control API shares the busy loop


def _ask(fn: Callable[[], Any]) -> Any:
    def attempt() -> Any:
        try:
            return fn()
        except (APIError, OSError):
            return None

    return wait_until(attempt, 60, "podbgp answers", 0.5)


def _intervals(stamps: list[float]) -> dict[str, Any]:
    gaps = sorted((b - a) * 1000 for a, b in itertools.pairwise(stamps))
    if not gaps:
        return {"n": 0}
    q = statistics.quantiles(gaps, n=100, method="inclusive") if len(gaps) > 1 else [gaps[0]] * 99
    return {
        "n": len(gaps),
        "p50": round(statistics.median(gaps), 1),
        "p99": round(q[98], 1),
        "max": round(gaps[-1], 1),
        "min": round(gaps[0], 1),
        "over_300": sum(g > 300 for g in gaps),
    }


# ------------------------------------------------------------------ restart scenario

RESTART_SIGNALS = (signal.SIGTERM, signal.SIGKILL)


def _restart_option(option: str, work: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Trials of one option in one lab: ``{signal: [trial, ...]}``, or ``{"skipped": why}``."""
    prefix = f"fr{os.getpid() % 10000}-"
    plan = plan_lab(option, 3, 2, prefix=prefix, state_dir=work / f"lab-{option}")
    why = lab.unsupported(plan)
    if why:
        return {"skipped": why}
    cleanup_prefix(prefix)
    out: dict[str, Any] = {sig.name: [] for sig in RESTART_SIGNALS}
    try:
        state, matrix = lab.up(plan, out=lambda _: None, converge_timeout=60)
        if not all(matrix.values()):
            return {"error": "the lab did not converge", "matrix": lab.format_matrix(state, matrix)}
        for _ in range(a.restart_repeat):
            for sig in RESTART_SIGNALS:
                trial = restart_trial(plan, state, "n3", sig, down=a.down, monitor_on="n1")
                print(f"{option} {sig.name}: lost {trial.lost}/{trial.sent}, outage "
                      f"{trial.outage_ms} ms, sessions back {trial.sessions_back_seconds} s",
                      file=sys.stderr, flush=True)  # fmt: skip
                out[sig.name].append(trial.as_dict())
    finally:
        lab.down(prefix, plan.state_dir)
        cleanup_prefix(prefix)
    return out


def _restart_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    def worst(key: str) -> Any:
        return max((t[key] or 0.0 for t in trials), default=None)

    bgp = [(t["sessions_back_seconds"] or 0.0) - (t["daemon_ready_seconds"] or 0.0) for t in trials]
    return {
        "lost": sum(t["lost"] for t in trials),
        "sent": sum(t["sent"] for t in trials),
        "outage_ms_max": worst("outage_ms"),
        "daemon_ready_seconds_max": worst("daemon_ready_seconds"),
        "sessions_back_seconds_max": worst("sessions_back_seconds"),
        "bgp_part_seconds_max": round(max(bgp), 3) if bgp else None,
        "kernel_changes": sum(len(t["kernel_changes"]) for t in trials),
    }


def restart(group: NetnsGroup, work: Path, a: argparse.Namespace) -> dict[str, Any]:
    """The ``restart`` scenario over ``--options`` (module docstring)."""
    options: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for option in filter(None, a.options.split(",")):
        result = _restart_option(option, work, a)
        if "skipped" in result:
            skipped[option] = result["skipped"]
        else:
            options[option] = result
    summary = {
        option: {sig: _restart_summary(trials) for sig, trials in by_sig.items()
                 if isinstance(trials, list)}
        for option, by_sig in options.items()
    }  # fmt: skip
    return {"down_seconds": a.down, "summary": summary, "options": options, "skipped": skipped}


SCENARIOS = {
    "bfd-detect": bfd_detect,
    "hold-detect": hold_detect,
    "bfd-jitter": bfd_jitter,
    "restart": restart,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    ap.add_argument("--repeat", type=int, default=5, help="detect scenarios: failures")
    ap.add_argument("--prefixes", type=int, default=1_000_000, help="bfd-jitter: feed size")
    ap.add_argument("--idle", type=float, default=10.0, help="bfd-jitter: idle capture, s")
    ap.add_argument("--timeout", type=float, default=900.0, help="bfd-jitter: ingest bound, s")
    ap.add_argument("--options", default=",".join(OPTIONS), help="restart: lab options")
    ap.add_argument("--down", type=float, default=5.0, help="restart: seconds the daemon is down")
    ap.add_argument("--restart-repeat", type=int, default=1, help="restart: trials per signal")
    a = ap.parse_args()
    with TemporaryDirectory(prefix="failover-") as tmp, netns_group(f"fo{os.getpid()}-") as g:
        os.chmod(tmp, 0o755)  # FRR's user must reach its run directory
        result = SCENARIOS[a.scenario](g, Path(tmp), a)
    print(json.dumps({"scenario": a.scenario, "python": platform.python_version(), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
