"""Per-peer `local_asn` and `allow_own_as` against FRR (the `peered` lab's ToR, AS
65000, whose listen range takes any external AS).

- `local_asn`: n1 presents AS 65150 to the ToR instead of its own. FRR's session comes
  up with 65150 as the remote AS (the OPEN), and the block n1 announces has AS_PATH
  "65150" alone: the node's AS is replaced, not added (RFC 7705 §3.2).
- `allow_own_as`: FRR originates a prefix whose AS_PATH holds n1's own AS and the local
  AS ("65000 N1 65150"). Loop detection drops it (RFC 4271 §9.1.2) with
  allow_own_as 0 and 1 (two occurrences of our ASes); with 2 n1 takes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import daemon_lab as dl
import pytest

from podbgp.lab.labplan import TOR_ASN, render_node_config, tor_address
from podbgp.lab.peers_frr import VTYSH

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.interop]

LOCAL = 65150
OWN_PREFIX = "10.210.0.0/24"
WITNESS = "10.211.0.0/24"  # from FRR too, with no AS of ours: the session's routes are in


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dl.Cluster]:
    c = dl.start(Path(tmp_path_factory.mktemp("localas")), "peered", nodes=1, spare=0)
    try:
        yield c
    finally:
        dl.stop(c)


def vtysh(c: dl.Cluster, *commands: str) -> str:
    run = c.plan.state_dir / "tor-frr" / "run"
    args = [VTYSH, "--vty_socket", str(run)]
    for cmd in commands:
        args += ["-c", cmd]
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout


def frr_json(c: dl.Cluster, command: str) -> Any:
    return json.loads(vtysh(c, command))


def reload_tor_peer(c: dl.Cluster, extra: str) -> None:
    """n1's lab config with `extra` keys on its ToR peer; then SIGHUP."""
    text = render_node_config(c.plan, c.plan.node("n1"))
    text = text.replace('export = "local"\n', f'export = "local"\n{extra}', 1)
    c.plan.config_path("n1").write_text(text)
    os.kill(c.pid("n1"), signal.SIGHUP)


def frr_neighbor_as(c: dl.Cluster, address: str) -> int | None:
    nb = frr_json(c, "show bgp neighbors json").get(address)
    if nb is None or nb.get("bgpState") != "Established":
        return None
    return int(nb["remoteAs"])


def frr_path(c: dl.Cluster, prefix: str) -> str | None:
    paths = frr_json(c, f"show bgp ipv4 unicast {prefix} json").get("paths", [])
    return paths[0]["aspath"]["string"] if paths else None


def n1_paths(c: dl.Cluster, prefix: str) -> list[str]:
    return [r["as_path"] for r in c.ask("n1", "show.routes", prefix=prefix)]


def test_local_asn_is_presented_and_replaces_the_node_as(cluster: dl.Cluster) -> None:
    c = cluster
    n1 = c.plan.node("n1")
    (block,) = dl.blocks(c, "n1")
    dl.wait(lambda: frr_neighbor_as(c, n1.ip) == n1.asn, 30, "FRR has n1 as its own AS")
    assert frr_path(c, block) == str(n1.asn)

    reload_tor_peer(c, f"local_asn = {LOCAL}\n")
    dl.wait(lambda: frr_neighbor_as(c, n1.ip) == LOCAL, 30, f"FRR sees n1 as AS {LOCAL}")
    # RFC 7705 §3.2 (replace): only the local AS, the node's own is not added.
    dl.wait(lambda: frr_path(c, block) == str(LOCAL), 30, f"{block} with AS_PATH {LOCAL}")
    tor = tor_address(n1.subnet)
    assert dl.sessions(c, "n1").keys() == {tor}


def test_allow_own_as_relaxes_loop_detection(cluster: dl.Cluster) -> None:
    c = cluster
    n1 = c.plan.node("n1")
    vtysh(
        c,
        "configure terminal",
        "route-map OWN permit 10",
        f"set as-path prepend {n1.asn} {LOCAL}",
        "exit",
        f"router bgp {TOR_ASN}",
        "no bgp network import-check",
        "address-family ipv4 unicast",
        f"network {OWN_PREFIX} route-map OWN",
        f"network {WITNESS}",
    )
    dl.wait(lambda: frr_path(c, OWN_PREFIX) == f"{n1.asn} {LOCAL}", 30, "FRR originates it")
    want = f"{TOR_ASN} {n1.asn} {LOCAL}"

    tor = tor_address(n1.subnet)
    for allowed in (0, 1):
        before = dl.sessions(c, "n1").get(tor)
        reload_tor_peer(c, f"local_asn = {LOCAL}\nallow_own_as = {allowed}\n")
        if allowed:  # a changed session key resets the session (0 was already in effect)
            dl.wait(lambda b=before: dl.sessions(c, "n1").get(tor, b) != b, 30, "a new session")
        dl.wait(lambda: n1_paths(c, WITNESS) == [str(TOR_ASN)], 30, "FRR's routes at n1")
        # Both our ASes are in the path: a loop unless two occurrences are allowed.
        assert n1_paths(c, OWN_PREFIX) == [], allowed

    reload_tor_peer(c, f"local_asn = {LOCAL}\nallow_own_as = 2\n")
    dl.wait(lambda: n1_paths(c, OWN_PREFIX) == [want], 30, f"{OWN_PREFIX} taken by n1")
