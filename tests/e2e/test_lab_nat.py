"""nat_outgoing end to end: a pod reaches an address outside the pools as its node.

The ToR holds 203.0.113.1 and has no route to the pod pool (option `mesh` never tells it), so
a pod's ping there is answered only if the node rewrote the source to its own address
(MASQUERADE for traffic from a pool with `nat_outgoing` to a destination outside every pool).
"""

from __future__ import annotations

import pytest
from e2e_lab import Capture, LabSpot, lab_up, ping, pod

from podbgp.lab.labplan import EXTERNAL, EXTERNAL6

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]


def test_nat_outgoing_uses_the_node_address(lab_spot: LabSpot) -> None:
    plan, state = lab_up(lab_spot, "mesh", nat_outgoing=True)
    src = pod(state, "n2-p2")
    with Capture(plan.ns("tor"), "br0", f"icmp and host {EXTERNAL}") as cap:
        assert ping(src["ns"], EXTERNAL), "a pod cannot reach an address outside the pools"
    sources = {line.split()[2] for line in cap.lines if "ICMP echo request" in line}
    assert sources == {plan.node("n2").ip}, cap.lines


def test_nat_outgoing_in_a_dual_stack_lab_translates_each_family(lab_spot: LabSpot) -> None:
    """The IPv6 pool's nat_outgoing masquerades to the node's IPv6 address (`ip6 podbgp`
    nftables table), as the IPv4 one does to its IPv4 address."""
    plan, state = lab_up(lab_spot, "mesh", nat_outgoing=True, family="dual")
    src, node = pod(state, "n2-p2"), plan.node("n2")
    for external, expr, request, own in (
        (EXTERNAL, f"icmp and host {EXTERNAL}", "ICMP echo request", node.ip),
        (EXTERNAL6, f"icmp6 and host {EXTERNAL6}", "ICMP6, echo request", node.ip6),
    ):
        with Capture(plan.ns("tor"), "br0", expr) as cap:
            assert ping(src["ns"], external), f"a pod cannot reach {external}"
        sources = {line.split()[2] for line in cap.lines if request in line}
        assert sources == {own}, cap.lines
