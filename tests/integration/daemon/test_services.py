"""Service and anycast announcements seen from a real FRR ToR.

The `peered` lab (three nodes, each its own AS, eBGP to FRR; the ToR does ECMP over
paths from different ASes): a `[[service]]` range reaches the ToR from every node; a
service record with traffic policy `local` is a /32 from exactly the nodes holding one
of its endpoint pods, and moves when an endpoint's pod is deleted (CNI DEL); a run-time
announcement behind a TCP health check is withdrawn within one check interval of the
service going away, and comes back with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import Cluster, start, stop, wait

from podbgp.lab import pods
from podbgp.lab.labplan import TOR_ASN, render_node_config
from podbgp.lab.netns import IP
from podbgp.lab.peers_frr import VTYSH

pytestmark = [pytest.mark.root, pytest.mark.e2e]
RANGE = "10.96.0.0/12"
LB = "192.0.2.80"
ANYCAST = "198.51.100.7/32"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("services")), "peered", nodes=3, spare=0)
    try:
        vtysh(c, "configure terminal", f"router bgp {TOR_ASN}", "bgp bestpath as-path multipath-relax",
              "address-family ipv4 unicast", "maximum-paths 8")  # fmt: skip
        yield c
    finally:
        stop(c)


def vtysh(c: Cluster, *commands: str) -> str:
    run = c.plan.state_dir / "tor-frr" / "run"
    args = [VTYSH, "--vty_socket", str(run)]
    for cmd in commands:
        args += ["-c", cmd]
    return subprocess.run(args, capture_output=True, text=True, timeout=10, check=True).stdout


def tor_hops(c: Cluster, prefix: str) -> set[str]:
    """The next hops of the ToR's paths for `prefix` (one per announcing node)."""
    data = json.loads(vtysh(c, f"show bgp ipv4 unicast {prefix} json") or "{}")
    return {(p.get("nexthops") or [{}])[0].get("ip", "") for p in data.get("paths", [])}


def kernel_hops(c: Cluster, prefix: str) -> set[str]:
    out = subprocess.run([IP, "-j", "-n", c.plan.ns("tor"), "route", "show", prefix],
                         capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    routes = json.loads(out or "[]")
    if not routes:
        return set()
    r = routes[0]
    return {h["gateway"] for h in r.get("nexthops", [])} or {r.get("gateway", "")}


def podbgp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podbgp", *args],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def hops_become(c: Cluster, prefix: str, want: set[str], timeout: float, what: str) -> None:
    """Wait until the ToR's next hops for `prefix` are `want`; a failure says what the
    ToR had and what each node announced."""
    try:
        wait(lambda: tor_hops(c, prefix) == want, timeout, what)
    except pytest.fail.Exception:
        seen = {n: podbgp("show", "announcements", "--json", "--socket",
                          str(c.plan.socket_path(n))).stdout[-600:] for n in ("n1", "n2", "n3")}  # fmt: skip
        pytest.fail(f"{what}: the ToR has {sorted(tor_hops(c, prefix))}, not {sorted(want)} after "
                    f"{timeout}s; the nodes announce: {seen}")  # fmt: skip


def node_ips(c: Cluster, *names: str) -> set[str]:
    return {c.plan.node(n).ip for n in names}


def test_range_from_every_node(cluster: Cluster) -> None:
    c = cluster
    for n in ("n1", "n2", "n3"):
        extra = (
            f'\n[[service]]\nname = "cluster-ips"\ncidr = "{RANGE}"\ncommunities = ["64512:300"]\n'
        )
        c.plan.config_path(n).write_text(render_node_config(c.plan, c.plan.node(n)) + extra)
        os.kill(c.pid(n), signal.SIGHUP)
    every = node_ips(c, "n1", "n2", "n3")
    wait(lambda: tor_hops(c, RANGE) == every, 20, "the range from all three nodes")
    wait(
        lambda: kernel_hops(c, RANGE) == every, 20, "ECMP over the three nodes in the ToR's kernel"
    )
    data = json.loads(vtysh(c, f"show bgp ipv4 unicast {RANGE} json"))
    comms = {p.get("community", {}).get("string") for p in data["paths"]}
    assert comms == {"64512:300"}
    shown = json.loads(podbgp("show", "announcements", "--json", "--socket",
                              str(c.plan.socket_path("n1"))).stdout)  # fmt: skip
    assert shown["services"] == [{"prefix": RANGE, "communities": ["64512:300"]}]


def test_local_policy_from_nodes_with_endpoints(cluster: Cluster) -> None:
    c = cluster
    store = f"sqlite:{c.plan.datastore}"
    set_ = podbgp("service", "set", "web", "--address", LB, "--traffic-policy", "local",
                  "--endpoint", c.pod_ip("n1"), "--endpoint", c.pod_ip("n2"),
                  "--datastore", store)  # fmt: skip
    assert set_.returncode == 0, set_.stderr
    both = node_ips(c, "n1", "n2")
    hops_become(c, f"{LB}/32", both, 20, "the LB address from n1 and n2 only")
    wait(lambda: kernel_hops(c, f"{LB}/32") == both, 20, "ECMP over n1 and n2 in the ToR")
    listed = json.loads(podbgp("service", "list", "--json", "--datastore", store).stdout)
    assert [r["name"] for r in listed] == ["web"]

    # n2's endpoint pod is deleted: only n1 announces it any more.
    pod = next(p for p in c.plan.pods if p.node == "n2")
    plugin = pods.cni_plugin()
    assert plugin is not None
    t0 = time.monotonic()
    pods.cni_call(c.plan, pod, "DEL", plugin)
    hops_become(c, f"{LB}/32", node_ips(c, "n1"), 20, "the LB address moved to n1")
    moved = time.monotonic() - t0
    assert moved < 20

    gone = podbgp("service", "delete", "web", "--datastore", store)
    assert gone.returncode == 0, gone.stderr
    wait(lambda: not tor_hops(c, f"{LB}/32"), 20, "the LB address withdrawn everywhere")
    again = podbgp("service", "delete", "web", "--datastore", store)
    assert again.returncode == 1 and "no service named 'web'" in again.stderr


def _listener(c: Cluster, node: str, port: int) -> subprocess.Popen[bytes]:
    code = ("import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
            f"socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',{port}));s.listen();"
            "[s.accept()[0].close() for _ in iter(int,1)]")  # fmt: skip
    return subprocess.Popen([IP, "netns", "exec", c.ns(node), sys.executable, "-c", code])


def test_health_checked_anycast(cluster: Cluster) -> None:
    c = cluster
    sock = str(c.plan.socket_path("n1"))
    port = 18080
    server = _listener(c, "n1", port)
    try:
        out = podbgp("announce", ANYCAST, "--check-tcp", f"127.0.0.1:{port}", "--interval", "1",
                     "--community", "64512:77", "--socket", sock)  # fmt: skip
        assert out.returncode == 0, out.stderr
        wait(
            lambda: tor_hops(c, ANYCAST) == node_ips(c, "n1"), 20, "the anycast address at the ToR"
        )
        server.kill()
        server.wait(5)
        t0 = time.monotonic()
        wait(lambda: not tor_hops(c, ANYCAST), 10, "withdrawn while the check fails")
        # One interval (1 s) plus the check's timeout and the BGP hop; never the hold time.
        assert time.monotonic() - t0 < 6
        shown = json.loads(podbgp("show", "announcements", "--json", "--socket", sock).stdout)
        [row] = shown["runtime"]
        assert row["announced"] is False and row["last_check"] == "connection refused"
        server = _listener(c, "n1", port)
        wait(lambda: tor_hops(c, ANYCAST) == node_ips(c, "n1"), 10, "back once the check passes")
    finally:
        server.kill()
    assert podbgp("withdraw", ANYCAST, "--socket", sock).returncode == 0
    wait(lambda: not tor_hops(c, ANYCAST), 10, "withdrawn by podbgp withdraw")
    bad = podbgp("withdraw", ANYCAST, "--socket", sock)
    assert bad.returncode == 1 and "was not announced" in bad.stderr
    garbage = podbgp("announce", "10.0.0.1/8", "--socket", sock)
    assert garbage.returncode == 2 and "Traceback" not in garbage.stderr


def test_prefix_advertisement_communities(cluster: Cluster) -> None:
    """`[[bgp.prefix_advertisement]]` on n1: its block reaches the ToR with the community,
    added on reload with no reset; the service range gets both its own and the added one."""
    c = cluster
    n1 = c.plan.node("n1")
    block = c.ask("n1", "show.ipam")["announced"]["prefixes"][0]
    extra = (
        f'\n[[service]]\nname = "cluster-ips"\ncidr = "{RANGE}"\ncommunities = ["64512:300"]\n'
        '\n[[bgp.prefix_advertisement]]\ncidr = "10.0.0.0/8"\ncommunities = ["64512:100"]\n'
    )
    before = c.ask("n1", "show.peers")[0]["established_at"]
    c.plan.config_path("n1").write_text(render_node_config(c.plan, n1) + extra)
    os.kill(c.pid("n1"), signal.SIGHUP)

    def communities(prefix: str) -> set[str]:
        data = json.loads(vtysh(c, f"show bgp ipv4 unicast {prefix} json") or "{}")
        for p in data.get("paths", []):
            if (p.get("nexthops") or [{}])[0].get("ip") == n1.ip:
                return set((p.get("community") or {}).get("string", "").split())
        return set()

    wait(lambda: communities(block) == {"64512:100"}, 20, "n1's block with the added community")
    wait(lambda: communities(RANGE) == {"64512:300", "64512:100"}, 20, "the range with both")
    assert c.ask("n1", "show.peers")[0]["established_at"] == before  # no reset
