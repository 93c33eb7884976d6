"""`show routes --peer ToR --advertised/--received` of a lab node against what FRR (the
lab's ToR) holds: what podbgp says it advertised is what FRR received from it, attribute
for attribute; what podbgp says it received is what FRR says it advertised to it (less the
node's own blocks, which come back and are dropped by AS-path loop detection, RFC 4271
§9.1.2). The demo's session table (`lab.sessions_report`) shows real counters.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import daemon_lab as dl

from podbgp.cmd_show import peers_table
from podbgp.lab import lab
from podbgp.lab.labplan import TOR_ASN, tor_address
from podbgp.lab.peers_frr import VTYSH


def vtysh(cluster: dl.Cluster, command: str) -> Any:
    run = cluster.plan.state_dir / "tor-frr" / "run"
    out = subprocess.run([VTYSH, "--vty_socket", str(run), "-c", command],
                         capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
    return json.loads(out)


def frr_received_from(cluster: dl.Cluster, address: str) -> dict[str, tuple[str, str]]:
    """FRR's table, paths learned from `address`: prefix -> (next hop, AS path)."""
    table = vtysh(cluster, "show bgp ipv4 unicast json")["routes"]
    out = {}
    for prefix, paths in table.items():
        for p in paths:
            if p.get("peerId") == address:
                out[prefix] = (p["nexthops"][0]["ip"], p.get("path", ""))
    return out


def test_views_agree_with_the_frr_tor(tmp_path: Path) -> None:
    cluster = dl.start(tmp_path, "peered", nodes=2, spare=0)
    try:
        n1 = cluster.running[0]
        tor = tor_address(n1.subnet)
        sock = str(cluster.plan.socket_path(n1.name))

        def ours(**view: bool) -> list[dict[str, Any]]:
            return list(dl.ControlClient(sock).request("show.routes", peer=tor, **view))

        own = set(dl.blocks(cluster, n1.name))
        other = set(dl.blocks(cluster, cluster.running[1].name))
        # What n1 advertised to the ToR is what the ToR holds from n1.
        sent = dl.wait(lambda: {r["prefix"]: (r["next_hop"], r["as_path"])
                                for r in ours(advertised=True)}, 30, "n1 advertised")  # fmt: skip
        at_frr = dl.wait(lambda: frr_received_from(cluster, n1.ip) or None, 30, "FRR has n1's")
        assert sent == at_frr
        assert own <= set(sent) and all(hop == n1.ip for hop, _ in sent.values())
        # What the ToR advertised to n1 is what n1 received (after import policy: all),
        # less n1's own blocks, which carry n1's AS and are dropped on receipt.
        frr_sent = set(vtysh(cluster, f"show bgp ipv4 unicast neighbors {n1.ip} "
                                      "advertised-routes json")["advertisedRoutes"])  # fmt: skip
        received = ours(received=True)
        assert {r["prefix"] for r in received} == frr_sent - own
        assert other <= {r["prefix"] for r in received}
        assert all(r["as_path"].startswith(str(TOR_ASN)) for r in received)
        # The demo's first table: every established row has counters and capabilities.
        report = lab.sessions_report(cluster.state)
        rows = dl.ControlClient(sock).request("show.peers")
        section = report.split(f"{n1.name} {n1.ip}")[1].splitlines()[1:3]
        assert [line.split()[:3] for line in section] == [
            line.split()[:3] for line in peers_table(rows).splitlines()[:2]
        ]
        cells = section[1].split()
        assert cells[2] == "Established" and "-" not in cells[4:6] and cells[6] == "mp4"
    finally:
        dl.stop(cluster)
