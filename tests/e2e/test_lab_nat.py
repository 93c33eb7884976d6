"""nat_outgoing end to end: a pod reaches an address outside the pools as its node.

The ToR holds 203.0.113.1 and has no route to the pod pool (option `mesh` never tells it), so
a pod's ping there is answered only if the node rewrote the source to its own address
(MASQUERADE for traffic from a pool with `nat_outgoing` to a destination outside every pool).
"""

from __future__ import annotations

import pytest
from e2e_lab import Capture, LabSpot, lab_up, ping, pod

from podbgp.lab.labplan import EXTERNAL

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]


def test_nat_outgoing_uses_the_node_address(lab_spot: LabSpot) -> None:
    plan, state = lab_up(lab_spot, "mesh", nat_outgoing=True)
    src = pod(state, "n2-p2")
    with Capture(plan.ns("tor"), "br0", f"icmp and host {EXTERNAL}") as cap:
        assert ping(src["ns"], EXTERNAL), "a pod cannot reach an address outside the pools"
    sources = {line.split()[2] for line in cap.lines if "ICMP echo request" in line}
    assert sources == {plan.node("n2").ip}, cap.lines
