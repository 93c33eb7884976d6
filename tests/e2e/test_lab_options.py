"""Every networking option end to end: podbgp on every node, pods through the lab, ping all.

For each option this kernel supports, `lab.up` builds three nodes with two pods each, starts
`podbgp run` on every node (and FRR on the ToR for `peered`), and every pod must reach every
other pod. Then what tells the options apart is checked on the wire with tcpdump:

* peered: the ToR reaches every pod, and sees pod addresses as sources (no NAT);
* CrossSubnet: between nodes of one subnet packets are plain, across subnets encapsulated.
"""

from __future__ import annotations

import pytest
from e2e_lab import Capture, LabSpot, lab_up, ping, pod

from podbgp.api import APIError
from podbgp.lab import lab
from podbgp.lab.labplan import OPTIONS, tor_address

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]


@pytest.mark.parametrize("option", list(OPTIONS))
def test_every_pod_reaches_every_pod(option: str, lab_spot: LabSpot) -> None:
    plan, state = lab_up(lab_spot, option)
    assert len(state.pods) == 6
    for nplan, node in zip(plan.nodes, state.nodes, strict=True):
        if plan.option.bgp == "none":  # `show peers` says BGP is off, as `show routes` does
            with pytest.raises(APIError, match="BGP is disabled"):
                lab.peers_of(state, node)
            continue
        peers = lab.peers_of(state, node)
        established = [p for p in peers if p.get("state") == "Established"]
        assert len(established) == lab.expected_sessions(plan, nplan), peers


def test_peered_pods_are_reachable_from_the_tor_without_nat(lab_spot: LabSpot) -> None:
    plan, state = lab_up(lab_spot, "peered")
    tor = plan.ns("tor")
    for p in state.pods:
        assert ping(tor, p["ip"], count=1), f"the ToR cannot reach {p['name']} {p['ip']}"
    # The ToR sees the pod's own address as the source: nothing translated it on the way.
    src = pod(state, "n2-p1")
    with Capture(tor, "br0", f"icmp and dst host {tor_address(0)}") as cap:
        assert ping(src["ns"], tor_address(0))
    sources = {line.split()[2] for line in cap.lines if "ICMP echo request" in line}
    assert sources == {src["ip"]}, cap.lines


@pytest.mark.parametrize(
    ("option", "encap_filter"),
    [("vxlan-crosssubnet", "udp port 4789"), ("ipip-crosssubnet", "ip proto 4")],
)
def test_crosssubnet_encapsulates_only_across_subnets(
    option: str, encap_filter: str, lab_spot: LabSpot
) -> None:
    plan, state = lab_up(lab_spot, option)
    # n1 and n2 share 10.99.1.0/24; n3 is on 10.99.2.0/24.
    assert [n.subnet for n in plan.nodes] == [0, 0, 1]
    src, same, other = pod(state, "n1-p1"), pod(state, "n2-p1"), pod(state, "n3-p1")
    n1 = plan.ns("n1")

    with Capture(n1, "eth0", f"icmp or {encap_filter}") as cap:
        assert ping(src["ns"], same["ip"])
    plain = [ln for ln in cap.lines if f"{src['ip']} > {same['ip']}: ICMP echo request" in ln]
    assert len(plain) == 3, cap.lines
    assert not any(("VXLAN" in ln or "ipip" in ln.lower()) for ln in cap.lines), cap.lines

    with Capture(n1, "eth0", f"icmp or {encap_filter}") as cap:
        assert ping(src["ns"], other["ip"])
    outer = [ln for ln in cap.lines if "10.99.1.1" in ln and "10.99.2.3" in ln]
    assert len(outer) >= 6, cap.lines  # 3 requests out, 3 replies in, all encapsulated
    bare = [ln for ln in cap.lines if ln.split()[2:3] == [src["ip"]]]
    assert not bare, f"pod traffic left the node unencapsulated: {bare}"
