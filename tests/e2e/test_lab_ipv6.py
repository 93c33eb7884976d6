"""Every networking option in an IPv6-only and a dual-stack lab, end to end.

Each (option, family) lab is built once for the module (three nodes, two pods each,
`podbgp run` on every node, FRR on the ToR for `peered`) and every test reads it:

* every pod reaches every other pod over each of the lab's families (ping and ping6);
* in a dual lab every pod has one address of each family, from the two pools;
* each node's kernel has an IPv6 route to every other node's IPv6 block, a blackhole for
  its own (RFC 4760 routes with an IPv6 next hop, over IPv4 sessions in a dual lab);
* peered: the ToR reaches every pod's IPv6 address and sees it as the source (no NAT);
* VXLAN: IPv6 pod traffic between nodes is on the wire as VXLAN (UDP 4789) over the lab's
  underlay: IPv6 in an IPv6-only lab, IPv4 in a dual one (IPv6 inside VXLAN over IPv4,
  next hop the remote device's link-local address); CrossSubnet leaves it plain within a
  subnet. IP-in-IP carries IPv4 only (RFC 2003): its options have no IPv6 lab.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_lab import Capture, LabSpot, lab_up, ping, pod

from podbgp.lab import lab
from podbgp.lab.labplan import POOL, POOL6, LabPlan, tor_address6
from podbgp.lab.netns import IP, cleanup_prefix, have_netns, list_namespaces
from podbgp.lab.shell import run

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

LABS = [
    (o, f) for f in ("ipv6", "dual") for o in ("mesh", "rr", "peered", "vxlan", "vxlan-crosssubnet")
]
_counter = itertools.count()


@pytest.fixture(scope="module", params=LABS, ids=[f"{o}-{f}" for o, f in LABS])
def running_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LabPlan, lab.LabState]]:
    why = have_netns()
    if why:
        pytest.skip(why)
    option, family = request.param
    prefix = f"s{os.getpid() % 100000}x{next(_counter)}-"
    spot = LabSpot(prefix, Path(tmp_path_factory.mktemp("six")) / "lab")
    cleanup_prefix(prefix)
    try:
        yield lab_up(spot, option, family=family)
    finally:
        lab.down(spot.prefix, spot.state_dir)
        cleanup_prefix(spot.prefix)
        assert not list_namespaces(spot.prefix)


def test_every_pod_reaches_every_pod_in_each_family(
    running_lab: tuple[LabPlan, lab.LabState],
) -> None:
    plan, state = running_lab
    assert len(state.pods) == 6
    pools = {4: ipaddress.ip_network(POOL), 6: ipaddress.ip_network(POOL6)}
    for p in state.pods:
        addrs = [ipaddress.ip_address(a) for a in lab.pod_addresses(p)]
        assert sorted(a.version for a in addrs) == list(plan.versions), p
        assert all(a in pools[a.version] for a in addrs), p
    for v in plan.versions:
        matrix = lab.ping_matrix(state, version=v)
        assert len(matrix) == 30 and all(matrix.values()), lab.format_matrix(state, matrix)
    for nplan, node in zip(plan.nodes, state.nodes, strict=True):
        if plan.option.bgp == "none":
            continue  # VXLAN without BGP: routes from the datastore
        peers = lab.peers_of(state, node)
        up = [p for p in peers if p.get("state") == "Established"]
        assert len(up) == lab.expected_sessions(plan, nplan), peers
        # The sessions run over IPv4 in a dual lab and over IPv6 in an IPv6-only one.
        assert all((":" in p["address"]) == (plan.family == "ipv6") for p in up), up


def _own_blocks6(state: lab.LabState, node: str) -> set[ipaddress.IPv6Network]:
    """The /122 blocks that hold `node`'s pods' IPv6 addresses."""
    return {
        ipaddress.ip_network(f"{p['ip6']}/122", strict=False)
        for p in state.pods
        if p["node"] == node
    }


def test_kernel_has_ipv6_routes_blackholes_and_pod_routes(
    running_lab: tuple[LabPlan, lab.LabState],
) -> None:
    plan, state = running_lab
    for node in plan.nodes:
        routes = run([IP, "-n", plan.ns(node.name), "-6", "route", "show", "proto", "80"])
        own = _own_blocks6(state, node.name)
        for block in own:
            assert f"blackhole {block}" in routes, routes
        for other in plan.nodes:
            if other.name == node.name:
                continue
            for block in _own_blocks6(state, other.name):
                line = next((ln for ln in routes.splitlines() if ln.startswith(str(block))), "")
                assert line and " via " in line, f"{node.name} has no route to {block}: {routes}"
        for p in state.pods:
            if p["node"] == node.name:  # the pod's /128 behind its veth
                got = run([IP, "-n", plan.ns(node.name), "-6", "route", "get", p["ip6"]])
                assert " dev eth0 " not in got and "unreachable" not in got, got


def test_the_tor_reaches_pods_over_ipv6_without_nat(
    running_lab: tuple[LabPlan, lab.LabState],
) -> None:
    plan, state = running_lab
    if plan.option.bgp != "tor":
        pytest.skip("only the peered option tells the ToR the pod routes")
    tor = plan.ns("tor")
    for p in state.pods:
        assert ping(tor, p["ip6"], count=1), f"the ToR cannot reach {p['name']} {p['ip6']}"
    src = pod(state, "n2-p1")
    with Capture(tor, "br0", f"icmp6 and dst host {tor_address6(0)}") as cap:
        assert ping(src["ns"], tor_address6(0))
    sources = {ln.split()[2] for ln in cap.lines if "ICMP6, echo request" in ln}
    assert sources == {src["ip6"]}, cap.lines


def _echo_lines(lines: list[str], src: str, dst: str) -> list[int]:
    """Indexes of the ICMPv6 echo requests src > dst in a capture."""
    return [i for i, ln in enumerate(lines)
            if f"{src} > {dst}: ICMP6, echo request" in ln]  # fmt: skip


def test_vxlan_carries_ipv6_pods_over_the_labs_underlay(
    running_lab: tuple[LabPlan, lab.LabState],
) -> None:
    plan, state = running_lab
    if plan.option.encap != "vxlan":
        pytest.skip("no VXLAN in this option")
    src, far = pod(state, "n1-p1"), pod(state, "n3-p1")
    n1, n3 = plan.node("n1"), plan.node("n3")
    # The outer header is of the underlay's family: the node addresses the tunnel runs on.
    outer_src, outer_dst = (n1.ip6, n3.ip6) if plan.family == "ipv6" else (n1.ip, n3.ip)
    with Capture(plan.ns("n1"), "eth0", "udp port 4789 or icmp6") as cap:
        assert ping(src["ns"], far["ip6"])
    requests = _echo_lines(cap.lines, src["ip6"], far["ip6"])
    assert len(requests) == 3, cap.lines
    for i in requests:  # tcpdump prints the inner packet on the line after the VXLAN header
        header = cap.lines[i - 1]
        assert "VXLAN" in header and "vni 4096" in header, cap.lines
        assert f"{outer_src}." in header and f"{outer_dst}.4789" in header, header
    if plan.option.mode == "CrossSubnet":
        near = pod(state, "n2-p1")  # n2 shares n1's subnet: no tunnel
        with Capture(plan.ns("n1"), "eth0", "udp port 4789 or icmp6") as cap:
            assert ping(src["ns"], near["ip6"])
        plain = _echo_lines(cap.lines, src["ip6"], near["ip6"])
        assert len(plain) == 3 and not any("VXLAN" in ln for ln in cap.lines), cap.lines


def test_the_demo_command_prints_a_dual_stack_ping_matrix(lab_spot: LabSpot) -> None:
    """What `make demo` runs (the Makefile's command, with the test's own prefix and state
    dir): an IPv4 and an IPv6 matrix, every pair reachable in both, exit status 0."""
    import re
    import subprocess
    import sys

    demo = re.search(r"^demo:.*\n\t\$\(PY\) (-m podbgp lab up .*)$",
                     (Path(__file__).parents[2] / "Makefile").read_text(), re.M)  # fmt: skip
    assert demo is not None and "--family dual" in demo.group(1)
    args = demo.group(1).split()[1:]
    where = ["--prefix", lab_spot.prefix, "--state-dir", str(lab_spot.state_dir)]
    proc = subprocess.run([sys.executable, *args, *where, "--timeout", "40"],
                          capture_output=True, text=True, timeout=150, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out = proc.stdout
    assert "== IPv4 ping matrix" in out and "== IPv6 ping matrix" in out, out
    assert out.count("30/30 pod pairs reachable") == 2, out
    assert "✗" not in out


def test_hand_plumbed_pods_get_both_families(lab_spot: LabSpot) -> None:
    """Without the CNI plugin the lab allocates and wires each pod itself: a /32 and a /128,
    default routes via 169.254.1.1 and the node veth's link-local address; two pods of one
    node reach each other in both families through the node."""
    from podbgp.lab.labplan import plan_lab
    from podbgp.lab.netns import Netns

    plan = plan_lab("mesh", 1, 2, prefix=lab_spot.prefix, state_dir=lab_spot.state_dir,
                    family="dual")  # fmt: skip
    state = lab.prepare(plan, out=lambda _: None)
    lab.build_network(plan, state)
    lab.write_config(plan, plan.nodes[0])
    lab.create_pods(plan, state, None)
    assert {p["via"] for p in state.pods} == {"plumbing"}
    for p in state.pods:
        addrs = Netns(p["ns"]).addresses("eth0")
        assert f"{p['ip']}/32" in addrs and f"{p['ip6']}/128" in addrs, addrs
    a, b = state.pods
    assert ping(a["ns"], b["ip"]) and ping(a["ns"], b["ip6"])
