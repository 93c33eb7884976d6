"""A node's daemon dies and comes back while traffic flows: no lost packet (RFC 4724).

`kill -9` on n2 while a pod on n1 pings a pod on n2 every 50 ms:

- n2's routes stay in its kernel (the FIB leaves them when the process dies);
- n1 and n3 see the session drop without a NOTIFICATION and keep n2's routes as
  stale (graceful restart helper, RFC 4724 §4.2);
- the restarted daemon finds its routes in the kernel, adopts them as stale, sends
  OPENs with the Restart State bit (§3), defers best-path selection until the
  others' End-of-RIB (§4.1) and only then sweeps what is stale.

The same with the FRR ToR as the helper (option `peered`), and with VXLAN and no BGP
(option `vxlan`: routes from the datastore, the FIB's adoption alone keeps traffic up).
Then `SIGTERM` on n3, a restart stop (`bgp.restart`): a soft Cease with the N bit
(RFC 8538) to the other nodes, and to the ToR whatever keeps its routes, so n3's
block stays routed everywhere while n3's kernel keeps its routes.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import (
    Cluster,
    blocks,
    kill,
    mismatches,
    peers,
    routes,
    sessions,
    start,
    start_daemon,
    stop,
    wait,
)

from podbgp.lab.labplan import tor_address
from podbgp.lab.netns import IP

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module", params=["mesh", "peered", "vxlan"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    option = request.param
    c = start(Path(tmp_path_factory.mktemp(f"restart-{option}")), option, nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


def ping(c: Cluster, src: str, dst: str, seconds: int) -> subprocess.Popen[str]:
    args = [IP, "netns", "exec", c.pod_ns(src), "ping", "-n", "-q", "-i", "0.05",
            "-w", str(seconds), c.pod_ip(dst)]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ping_counts(proc: subprocess.Popen[str]) -> tuple[int, int, str]:
    out, _ = proc.communicate(timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)), int(m.group(2)), out


def test_kill_and_restart_loses_no_packet(cluster: Cluster) -> None:
    c = cluster
    n2_ip = c.plan.node("n2").ip
    n2_block = blocks(c, "n2")[0]
    n2_kernel = routes(c.ns("n2"))
    pinger = ping(c, "n1", "n2", seconds=14)
    time.sleep(0.5)  # a few replies before the crash
    kill(c, "n2", signal.SIGKILL)

    # While n2 is down: its kernel is untouched, its helpers keep its block as stale.
    assert routes(c.ns("n2")) == n2_kernel
    mesh = c.plan.option.bgp == "mesh"
    if mesh:
        wait(lambda: sessions(c, "n1").get(n2_ip) is None, 10, "n1 saw the session drop")
        error = peers(c, "n1")[n2_ip]["last_error"]
        assert error["code"] == 0, f"expected a drop without NOTIFICATION, got {error}"
        expected = {c.plan.node(n).ip for n in ("n1", "n3")}
    elif c.plan.option.bgp == "tor":  # FRR is the helper: it keeps the route meanwhile
        time.sleep(1.0)
        assert n2_block in routes(c.plan.ns("tor"), "bgp")
        expected = {tor_address(0)}
    else:  # VXLAN without BGP: the others' routes come from the datastore, which keeps them
        time.sleep(1.0)
        expected = set()
    assert n2_block in routes(c.ns("n1")) and n2_block in routes(c.ns("n3"))

    start_daemon(c, "n2")
    wait(lambda: set(sessions(c, "n2")) == expected, 30, "n2's sessions back")
    if mesh:
        # The helper saw the Restart State bit in n2's new OPEN (RFC 4724 §3).
        gr = peers(c, "n1")[n2_ip]["peer_graceful_restart"]
        assert gr["restarting"] is True and gr["forwarding_preserved"] == ["ipv4_unicast"], gr
    wait(lambda: c.ask("n2", "show.node")["converged"], 30, "n2 converged")
    assert "adopted as stale" in c.log("n2")
    fib = c.ask("n2", "show.fib")
    assert fib["stale"] == 0 and fib["counters"]["stale_adopted"] == len(n2_kernel), fib
    assert not mismatches(c, ["n1", "n2", "n3"])

    sent, received, out = ping_counts(pinger)
    assert sent >= 200, out
    assert received == sent, f"lost {sent - received} of {sent} replies during the restart"


def test_sigterm_is_a_restart_stop_and_everyone_keeps_the_routes(cluster: Cluster) -> None:
    c = cluster
    n3_ip = c.plan.node("n3").ip
    n3_block = blocks(c, "n3")[0]
    n3_kernel = routes(c.ns("n3"))
    kill(c, "n3", signal.SIGTERM)
    assert routes(c.ns("n3")) == n3_kernel
    if c.plan.option.bgp == "none":
        # No session to end: n3's blocks stay in the datastore, so they stay routed.
        time.sleep(1.0)
        assert all(n3_block in routes(c.ns(n)) for n in ("n1", "n2"))
        return
    if c.plan.option.bgp == "mesh":
        for node in ("n1", "n2"):
            wait(lambda node=node: sessions(c, node).get(n3_ip) is None, 10,  # type: ignore[misc]
                 f"{node} saw n3 stop")  # fmt: skip
            error = peers(c, node)[n3_ip]["last_error"]
            # RFC 8538: a soft Cease between two speakers with the N bit keeps the routes.
            assert (error["code"], error["subcode"], error["graceful"]) == (6, 4, True), error
    time.sleep(1.0)
    for node in ("n1", "n2"):
        assert n3_block in routes(c.ns(node)), f"{node} dropped n3's block"
    if c.plan.option.bgp == "tor":
        assert n3_block in routes(c.plan.ns("tor"), "bgp")
