"""Session events in a node's log, with FRR (the peered lab's ToR) as the peer.

What an operator used to FRR's ADJCHANGE or BIRD's state lines looks for at 3 a.m.: a
line when the session is Established, when it goes down and why — the NOTIFICATION's
code and subcode by name and the RFC 9003 shutdown text as the peer sent it — and
when an operator acted on it (``podbgp peer reset``), with who asked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import daemon_lab as dl

from podbgp.lab.labplan import TOR_ASN, tor_address
from podbgp.lab.peers_frr import VTYSH


def frr(cluster: dl.Cluster, *commands: str) -> None:
    run = cluster.plan.state_dir / "tor-frr" / "run"
    args = [VTYSH, "--vty_socket", str(run)]
    for c in commands:
        args += ["-c", c]
    subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)


def lines(cluster: dl.Cluster, node: str, *needles: str) -> list[str]:
    """The node's log lines that hold every needle."""
    text = (cluster.plan.state_dir / f"{node}.log").read_text(errors="replace")
    return [line for line in text.splitlines() if all(n in line for n in needles)]


def test_session_events_are_logged_with_names_and_the_shutdown_text(tmp_path: Path) -> None:
    cluster = dl.start(tmp_path, "peered", nodes=1, spare=0)
    try:
        n1 = cluster.running[0]
        tor = tor_address(n1.subnet)
        sock = str(cluster.plan.socket_path(n1.name))
        up = f"{tor}: session Established (AS {TOR_ASN}"
        dl.wait(lambda: lines(cluster, n1.name, up), 30, "Established logged")

        # The peer shuts the session down with a message (FRR: a peer-group shutdown, RFC
        # 9003 text): logged as received, by name, the text whole.
        text = "maintenance window 42, back at 04:00"
        bgp = f"router bgp {TOR_ASN}"
        group = f"RANGE{n1.subnet}"  # the ToR's listen range for n1's subnet (lab.py)
        frr(cluster, "configure terminal", bgp, f"neighbor {group} shutdown message {text}")
        down = dl.wait(
            lambda: lines(cluster, n1.name, f"{tor}: session down: NOTIFICATION received",
                          "Administrative Shutdown", repr(text)),
            30, f"the ToR's shutdown logged\n{cluster.log(n1.name)}",
        )  # fmt: skip
        assert len(down) == 1, down
        err = dl.ControlClient(sock).request("show.peer", address=tor)["last_error"]
        assert err["direction"] == "received" and err["shutdown_message"] == text, err

        frr(cluster, "configure terminal", bgp, f"no neighbor {group} shutdown")
        dl.wait(lambda: len(lines(cluster, n1.name, up)) >= 2, 30, "Established again")

        # An operator's reset: who asked, and the NOTIFICATION we sent, by name.
        subprocess.run([sys.executable, "-m", "podbgp", "peer", "reset", tor, "--message",
                        "testing the log", "--socket", sock],
                       capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
        dl.wait(lambda: lines(cluster, n1.name, f"{tor}: reset by", "'testing the log'"),
                10, f"the operator's reset logged\n{cluster.log(n1.name)}")  # fmt: skip
        sent = dl.wait(
            lambda: lines(cluster, n1.name, f"{tor}: session down: NOTIFICATION sent",
                          "Administrative Reset", "'testing the log'"),
            10, f"the reset's NOTIFICATION logged\n{cluster.log(n1.name)}",
        )  # fmt: skip
        assert len(sent) == 1, sent
        dl.wait(lambda: len(lines(cluster, n1.name, up)) >= 3, 30, "Established after reset")
    finally:
        dl.stop(cluster)
