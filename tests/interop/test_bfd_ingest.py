"""No BFD flap while podbgp ingests a big table (DESIGN.md performance rule 8).

podbgp (`podbgp run`, kernel FIB on) at 10.70.0.1 on a LAN; a feeder
(`podbgp.lab.feeder`) at 10.70.0.2 announces PREFIXES routes, which go through the
RIB into the kernel table, while FRR 8.4 at 10.70.0.3 runs BFD at 300 ms x 3 with
podbgp. The asyncio loop takes long steps during the ingest; the BFD thread must
keep transmitting and receiving: neither podbgp's session nor FRR's may go down.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rib_node import HUB, lan, spoke_address

from podbgp.api import APIError
from podbgp.lab.bfd_lab import LabPeer, PodbgpNode, wait_until
from podbgp.lab.netns import NetnsGroup
from podbgp.lab.peers import BgpConfig, Daemon, Neighbor

pytestmark = [pytest.mark.interop, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

PREFIXES = 200_000
POD_AS, FEED_AS, FRR_AS = 64720, 64721, 64722


def test_bfd_stays_up_during_a_big_ingest(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Callable[[str], type[Daemon]]
) -> None:
    frr_cls = require_daemon("frr")
    hub, (feed_ns, frr_ns) = lan(netns, 2)
    feeder, frr = spoke_address(1), spoke_address(2)
    frr_cfg = BgpConfig(asn=FRR_AS, router_id=frr, neighbors=[Neighbor(HUB, POD_AS, bfd=True)])
    peers = [
        LabPeer(feeder, FEED_AS, bfd=False, export="none"),
        LabPeer(frr, FRR_AS, export="none"),
    ]
    with (
        frr_cls(frr_ns, tmp_path / "frr", frr_cfg) as peer,
        PodbgpNode(hub, tmp_path / "podbgp", asn=POD_AS, address=HUB, peers=peers) as pod,
    ):
        wait_until(lambda: (pod.peer(frr).get("bfd") or {}).get("up"), 30, "BFD Up")
        wait_until(lambda: peer.bfd_peer(HUB).get("status") == "up", 30, "FRR's BFD Up")  # type: ignore[attr-defined]
        time.sleep(2)  # past FRR's re-registration of its session (see test_bfd_daemons)
        flaps = pod.peer(frr)["bfd"]["flaps"]
        frr_up_since = time.monotonic() - float(peer.bfd_peer(HUB)["uptime"])  # type: ignore[attr-defined]

        t0 = time.monotonic()
        proc = feed_ns.popen(
            [sys.executable, "-m", "podbgp.lab.feeder", "--connect", HUB, "--local-as",
             str(FEED_AS), "--next-hop", feeder, "--prefixes", str(PREFIXES)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            states = []

            def installed() -> bool:
                try:  # the control API shares the busy loop: a slow answer is no failure
                    states.append(pod.peer(frr)["bfd"]["state"])
                    fib = pod.client().request("show.fib")
                except (APIError, OSError):
                    return False
                return int(fib.get("installed", 0)) >= PREFIXES

            wait_until(installed, 240, f"{PREFIXES} routes in podbgp's kernel table", 0.5)
            ingest = time.monotonic() - t0
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(10)

        def settled_row() -> dict[str, Any] | None:
            try:
                return pod.peer(frr)
            except (APIError, OSError):
                return None

        row = wait_until(settled_row, 60, "podbgp answers show peers", 0.5)
        assert row["bfd"]["flaps"] == flaps, f"podbgp's BFD flapped during a {ingest:.1f} s ingest"
        assert set(states) == {"up"}, states
        assert row["state"] == "Established"
        frr_bfd = peer.bfd_peer(HUB)  # type: ignore[attr-defined]
        assert frr_bfd["status"] == "up"
        # FRR's session has been Up since before the feed started: it never went down.
        assert time.monotonic() - float(frr_bfd["uptime"]) <= frr_up_since + 2, frr_bfd
