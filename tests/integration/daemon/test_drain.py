"""`podbgp drain` with an FRR ToR that has two paths to the same address (RFC 8326).

Lab option `peered` with two nodes: each peers over eBGP with the FRR ToR. Both nodes
carry the anycast address 10.250.0.1 on their loopback and announce 10.250.0.1/32
through `[[bgp.originate]]` (added by a SIGHUP reload), so the ToR has two paths. A
client namespace on its own link to the ToR (10.98.0.2, default route via the ToR)
pings the address every 200 ms throughout, so every ping crosses the ToR's routing
table. Then `podbgp drain` on the node whose
path the ToR prefers:

- the ToR's kernel route moves to the other node while the drained node still
  announces its path (FRR's bgpd still holds it, with LOCAL_PREF 0: FRR gives
  GRACEFUL_SHUTDOWN routes from eBGP peers LOCAL_PREF 0 on receipt);
- the drain ends because the ToR announced the other path back to the drained node
  (not at the timeout), then the drained node withdraws and stops its session;
- not one ping is lost; `show node` says `drained`, and `undrain` brings the
  session and the route back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import Cluster, sessions, start, stop, wait

from podbgp.lab.netns import IP
from podbgp.lab.peers_frr import VTYSH

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.interop]

ANYCAST = "10.250.0.1"
CLIENT, CLIENT_GW = "10.98.0.2", "10.98.0.1"
PREFIX = f"{ANYCAST}/32"
TIMEOUT = 40.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("drain")), "peered", nodes=2, spare=0)
    try:
        _add_client(c)
        for node in ("n1", "n2"):
            _announce_anycast(c, node)
        wait(lambda: len(_tor_paths(c)) == 2, 30, "the ToR has a path via each node")
        wait(lambda: _tor_kernel_hops(c), 30, "the ToR's kernel has the route")
        wait(lambda: _reachable(c), 30, "the client reaches the anycast address")
        yield c
    finally:
        stop(c)


def _add_client(c: Cluster) -> None:
    """The pinging host: its own namespace (removed with the lab's prefix) and link."""
    ns, tor = c.plan.ns("client"), c.plan.ns("tor")
    for cmd in (
        ["netns", "add", ns],
        ["link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "cl0", "netns", tor],
        ["-n", tor, "addr", "add", f"{CLIENT_GW}/24", "dev", "cl0"],
        ["-n", tor, "link", "set", "cl0", "up"],
        ["-n", ns, "addr", "add", f"{CLIENT}/24", "dev", "eth0"],
        ["-n", ns, "link", "set", "eth0", "up"],
        ["-n", ns, "route", "add", "default", "via", CLIENT_GW],
    ):
        subprocess.run([IP, *cmd], check=True, capture_output=True, timeout=10)


def _announce_anycast(c: Cluster, node: str) -> None:
    ns = c.ns(node)
    # On lo: this kernel may lack the dummy device; the address is local either way.
    subprocess.run([IP, "-n", ns, "addr", "add", f"{ANYCAST}/32", "dev", "lo"], check=True)
    path = c.plan.config_path(node)
    path.write_text(path.read_text() + f'\n[[bgp.originate]]\nprefix = "{PREFIX}"\n')
    os.kill(c.pid(node), signal.SIGHUP)  # reload: `[[bgp.originate]]` applies live


def _vtysh_json(c: Cluster, command: str) -> Any:
    run = c.plan.state_dir / "tor-frr" / "run"
    out = subprocess.run([VTYSH, "--vty_socket", str(run), "-c", command],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    return json.loads(out or "{}")


def _tor_paths(c: Cluster) -> dict[str, dict[str, Any]]:
    """The ToR's BGP paths for the anycast prefix, by the node (next hop) they go to."""
    data = _vtysh_json(c, f"show bgp ipv4 unicast {PREFIX} json")
    out = {}
    for p in data.get("paths", []):
        hop = (p.get("nexthops") or [{}])[0].get("ip", "")
        out[hop] = p
    return out


def _tor_kernel_hops(c: Cluster) -> set[str]:
    """Where the ToR's kernel sends the anycast address (one hop, or an ECMP set)."""
    out = subprocess.run([IP, "-j", "-n", c.plan.ns("tor"), "route", "show", PREFIX],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    hops: set[str] = set()
    for r in json.loads(out or "[]"):
        if r.get("gateway"):
            hops.add(r["gateway"])
        hops |= {h["gateway"] for h in r.get("nexthops", []) if h.get("gateway")}
    return hops


class Timeline:
    """Polls the ToR every 50 ms from a thread: when its kernel stopped using `node`,
    and when its BGP table lost `node`'s path (the drained node's withdrawal)."""

    def __init__(self, c: Cluster, node_ip: str) -> None:
        self.c, self.ip = c, node_ip
        self.moved: float | None = None
        self.withdrawn: float | None = None
        self.lp_seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Timeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            hops = _tor_kernel_hops(self.c)
            if self.moved is None and hops and self.ip not in hops:
                self.moved = now
            path = _tor_paths(self.c).get(self.ip)
            if path is None and self.withdrawn is None:
                self.withdrawn = now
            elif path is not None:
                self.lp_seen.append(int(path.get("locPrf", path.get("localpref", -1))))
            time.sleep(0.05)


def _reachable(c: Cluster) -> bool:
    args = [IP, "netns", "exec", c.plan.ns("client"), "ping", "-n", "-q", "-c", "1", "-W", "1",
            ANYCAST]  # fmt: skip
    return subprocess.run(args, capture_output=True, timeout=10, check=False).returncode == 0


def _ping(c: Cluster) -> subprocess.Popen[str]:
    args = [IP, "netns", "exec", c.plan.ns("client"), "ping", "-n", "-q", "-i", "0.2", ANYCAST]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ping_counts(proc: subprocess.Popen[str]) -> tuple[int, int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)), int(m.group(2)), out


def _cli(c: Cluster, node: str, *args: str) -> dict[str, Any]:
    """`podbgp ARGS --json` against the node's daemon, as an operator runs it."""
    argv = [sys.executable, "-m", "podbgp", *args, "--socket", str(c.plan.socket_path(node)),
            "--json"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 60, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_drain_moves_traffic_before_withdrawing_and_loses_no_ping(cluster: Cluster) -> None:
    c = cluster
    paths = _tor_paths(c)
    # Drain the node the ToR prefers: it announces the other path back once it moves.
    best_ip = next(ip for ip, p in paths.items() if p.get("bestpath", {}).get("overall"))
    node = next(n.name for n in c.plan.nodes if n.ip == best_ip)
    other = next(n.name for n in c.plan.nodes if n.name != node)
    other_ip = c.plan.node(other).ip
    assert c.ask(node, "show.node")["state"] == "running"
    pinger = _ping(c)
    time.sleep(1.0)  # replies before the drain
    with Timeline(c, best_ip) as tl:
        t0 = time.monotonic()
        report = _cli(c, node, "drain", "--timeout", str(TIMEOUT))
        done = time.monotonic()
        time.sleep(2.0)  # replies after the drain, from the other node
    sent, received, out = _ping_counts(pinger)
    rel = [None if t is None else round(t - t0, 2) for t in (tl.moved, tl.withdrawn, done)]
    print(f"drain report {report}; ToR moved, withdrawal, drain done at +{rel} s; "
          f"pings {received}/{sent}")  # fmt: skip

    assert report["state"] == "drained", report
    # The drain ended because the ToR moved (its announcement back), not at the timeout.
    assert report["peers_moved"] is True and report["waited_seconds"] < TIMEOUT / 2, report
    assert tl.moved is not None and tl.withdrawn is not None, (tl.moved, tl.withdrawn)
    assert t0 < tl.moved < tl.withdrawn <= done + 1.0, (t0, tl.moved, tl.withdrawn, done)
    assert 0 in tl.lp_seen, tl.lp_seen  # FRR held our path at LOCAL_PREF 0 meanwhile
    assert _tor_kernel_hops(c) == {other_ip}
    assert sent >= 15, out
    assert received == sent, f"lost {sent - received} of {sent} pings during the drain"

    node_view = c.ask(node, "show.node")
    assert node_view["state"] == "drained" and node_view["drain"]["peers_moved"] is True
    peer = c.ask(node, "show.peers")[0]
    assert peer["admin"] == "down" and peer["state"] != "Established"

    # undrain: the session comes back and the ToR has both paths again.
    out_undrain = _cli(c, node, "undrain")
    assert out_undrain["state"] == "running"
    wait(lambda: sessions(c, node), 30, f"{node}'s session back after undrain")
    wait(lambda: len(_tor_paths(c)) == 2, 30, "the ToR has both paths again")
    gshut = [p for p in _tor_paths(c).values() if "65535:0" in str(p.get("community", ""))]
    assert gshut == [], "undrained routes still carry GRACEFUL_SHUTDOWN"
