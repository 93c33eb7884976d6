"""podbgp as a BMP client of the real pmacct collector, pmbmpd (Debian's `pmacct`).

A (the node under test, with two real podbgp peers, `monitor_lab`) sends to a
pmbmpd in the same namespace, whose JSON message log is read back: Initiation,
a Peer Up per session, Route Monitoring for each route (pre-policy, and
post-policy after A's import policy), End-of-RIB, Statistics Reports, and a
Peer Down when a peer goes. A restarted station gets everything again from A's
reconnection; a stopped A ends with Termination.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import monitor_lab as lab
import pytest

from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = pytest.mark.root

PORT = 17990
STATION = f"""
[bmp]
sys_name = "node-a"

[[bmp.station]]
address = "127.0.0.1"
port = {PORT}
route_monitoring = "both"
statistics_interval = 1
reconnect_max = 2
"""
# A keeps B's routes before policy, and rejects C's 10.212.0.0/24.
POLICY = """
[[policy]]
name = "no-212"
default_action = "accept"
[[policy.rule]]
match = { prefix = "10.212.0.0/24" }
action = "reject"
"""


class Collector:
    """pmbmpd in a namespace, logging every BMP message it decodes as JSON lines."""

    def __init__(self, ns: Netns, tmp: Path) -> None:
        self.ns = ns
        self.log = tmp / "msglog.json"
        self.conf = tmp / "pmbmpd.conf"
        self.conf.write_text(
            f"bmp_daemon_ip: 127.0.0.1\nbmp_daemon_port: {PORT}\n"
            f"bmp_daemon_msglog_file: {self.log}\nbmp_daemon_msglog_output: json\n"
            f"logfile: {tmp / 'pmbmpd.log'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = self.ns.popen(["pmbmpd", "-f", str(self.conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        lab.wait(lambda: self._listening(), "pmbmpd listens", timeout=15)

    def _listening(self) -> bool:
        return f":{PORT}" in self.ns.run("ss", "-Hltn", check=False)

    def stop(self) -> None:
        if self.proc is not None:
            # pmbmpd does not exit on SIGTERM here; it keeps nothing that needs a clean
            # stop (each message is written to the log as it is decoded).
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def messages(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line being written
        return out

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            m for m in self.messages()
            if m.get("bmp_msg_type") == kind and all(m.get(k) == v for k, v in match.items())
        ]  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, netns: NetnsGroup) -> Iterator[tuple[lab.Trio, Collector]]:
    if shutil.which("pmbmpd") is None:
        pytest.skip("pmbmpd is not installed (Debian package pmacct: make deps installs it)")
    t = lab.make(netns.add("b"), tmp_path)
    col = Collector(t.ns, tmp_path)
    try:
        col.start()
        t.start("b")
        t.start("c")
        a_extra = STATION + POLICY
        t.start("a", a_extra, {"b": "soft_reconfiguration = true", "c": 'import = "no-212"'})
        yield t, col
    finally:
        t.close()
        col.stop()


def _routes(col: Collector, post: int) -> set[tuple[str, str, str]]:
    """(peer, prefix, update|withdraw) of the Route Monitoring the collector decoded."""
    return {
        (m["peer_ip"], m["ip_prefix"], m["log_type"])
        for m in col.of("route_monitor")
        if m.get("is_post") == post and "ip_prefix" in m
    }


def _stat(col: Collector, peer: str, kind: int) -> int | None:
    values = [m["counter_value"] for m in col.of("stats", peer_ip=peer, counter_type=kind)]
    return values[-1] if values else None


def _seen_everything(col: Collector) -> bool:
    pre = {
        ("10.78.0.2", "10.210.0.0/24", "update"), ("10.78.0.2", "10.211.0.0/24", "update"),
        ("10.78.0.3", "10.210.0.0/24", "update"), ("10.78.0.3", "10.212.0.0/24", "update"),
    }  # fmt: skip
    post = {
        ("10.78.0.2", "10.210.0.0/24", "update"), ("10.78.0.2", "10.211.0.0/24", "update"),
        ("10.78.0.3", "10.210.0.0/24", "update"),
    }  # fmt: skip
    return (
        len(col.of("init")) >= 1
        and {m["peer_ip"] for m in col.of("peer_up")} == {"10.78.0.2", "10.78.0.3"}
        and pre <= _routes(col, 0)
        and post <= _routes(col, 1)
        and ("10.78.0.3", "10.212.0.0/24", "update") not in _routes(col, 1)
    )


def test_peer_up_routes_statistics_peer_down(setup: tuple[lab.Trio, Collector]) -> None:
    t, col = setup
    lab.wait(lambda: _seen_everything(col), "pmbmpd logged A's sessions and routes", 40)
    (init,) = col.of("init")
    assert init["bmp_init_info_sysname"] == "node-a"
    assert init["bmp_init_info_sysdescr"].startswith("podbgp ")
    # Peer Up: the session's own addresses and ports, from both OPENs and the socket.
    peers = {m["peer_ip"]: m for m in col.of("peer_up")}
    b = peers["10.78.0.2"]
    assert (b["peer_asn"], b["bgp_id"], b["local_ip"], b["remote_port"]) == (
        65002, "10.78.0.2", "10.78.0.1", lab.PORTS["b"])  # fmt: skip
    shown = {p["address"]: p for p in t.ask("a", "show.peers")}
    assert b["local_port"] == int(shown["10.78.0.2"]["local"].rsplit(":", 1)[1])
    # Pre-policy as received (B's with its ADD-PATH identifier, its community); A's
    # policy rejects C's 10.212.0.0/24, so after policy it is a withdrawal.
    pre_b = [m for m in col.of("route_monitor", is_post=0, peer_ip="10.78.0.2")
             if m.get("ip_prefix") == "10.211.0.0/24"]  # fmt: skip
    assert pre_b[0]["comms"] == "65002:11" and pre_b[0]["as_path"] == "65002"
    assert pre_b[0]["bgp_nexthop"] == "10.78.0.2" and "as_path_id" in pre_b[0]
    assert ("10.78.0.3", "10.212.0.0/24", "withdraw") in _routes(col, 1)
    # Statistics (§4.8): C's rejected prefix, routes in each Adj-RIB-In after policy.
    lab.wait(lambda: _stat(col, "10.78.0.3", 0) == 1, "C's rejected prefix counted")
    assert _stat(col, "10.78.0.2", 7) == 2 and _stat(col, "10.78.0.3", 7) == 1
    # C goes: Peer Down.
    t.stop("c")
    down = lab.wait(lambda: col.of("peer_down", peer_ip="10.78.0.3"), "Peer Down for C")
    # C's daemon stopping sends a NOTIFICATION (Cease): reason 3, received from the peer.
    assert down[0]["reason_type"] == 3, down[0]
    assert not col.of("peer_down", peer_ip="10.78.0.2")


def test_station_restart_resyncs_then_termination(
    setup: tuple[lab.Trio, Collector],
) -> None:
    t, col = setup
    lab.wait(lambda: _seen_everything(col), "first connection complete", 40)
    col.stop()
    col.log.unlink()
    col.start()
    # A reconnects (within reconnect_max) and sends the state again: Initiation, both
    # Peer Ups, B's table before policy (soft reconfiguration keeps it) and every
    # table after policy.
    lab.wait(lambda: len(col.of("peer_up")) == 2 and col.of("init"), "A reconnected", 30)
    want_pre = {("10.78.0.2", "10.210.0.0/24", "update"), ("10.78.0.2", "10.211.0.0/24", "update")}
    want_post = want_pre | {("10.78.0.3", "10.210.0.0/24", "update")}
    lab.wait(lambda: want_pre <= _routes(col, 0) and want_post <= _routes(col, 1),
             "A resent its tables")  # fmt: skip
    # C's routes before policy were not kept: they are not invented.
    assert not {r for r in _routes(col, 0) if r[0] == "10.78.0.3"}
    assert ("10.78.0.3", "10.212.0.0/24", "update") not in _routes(col, 1)
    shown = {p["station"]: p for p in t.ask("a", "show.node")["bmp"]}
    assert shown[f"127.0.0.1:{PORT}"]["connected"] is True
    assert shown[f"127.0.0.1:{PORT}"]["connects"] >= 2
    # A stops: a Peer Down per session, then Termination.
    t.stop("a")
    lab.wait(lambda: col.of("term"), "Termination")
    assert {m["peer_ip"] for m in col.of("peer_down")} == {"10.78.0.2", "10.78.0.3"}
