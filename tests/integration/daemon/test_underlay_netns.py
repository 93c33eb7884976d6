"""`node.address = "auto"` on a real kernel: a node namespace with several interfaces
(a docker bridge look-alike, a pod veth, two uplinks of different MTUs), each detection
method through `podbgp check`, the MTUs derived from the chosen interface, and a running
daemon that notices its address change (netlink address events) and re-registers."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import wait

from ipam.nodes import NodeRegistry
from ipam.store.sqlite import SqliteStore
from podbgp.api import APIError, ControlClient
from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = [pytest.mark.root]


def node_with_interfaces(netns: NetnsGroup) -> Netns:
    """docker0 (first in index order), vethab12, eth0 (MTU 9000, the default route),
    eth1 (MTU 1400) and eth2 (IPv6 only) — each a veth to a peer namespace, so it is up."""
    node, peer = netns.add("node"), netns.add("peer")
    for name, address, mtu in (
        ("docker0", "172.17.0.1/16", 1500),
        ("vethab12", "10.63.0.2/24", 1500),
        ("eth0", "10.61.0.2/24", 9000),
        ("eth1", "10.62.0.2/24", 1400),
        ("eth2", "", 1500),
    ):
        netns.veth(node, name, peer, f"p-{name}")
        node.ip("link", "set", name, "mtu", str(mtu))
        peer.ip("link", "set", f"p-{name}", "mtu", str(mtu))
        if address:
            node.ip("addr", "add", address, "dev", name)
    node.ip("-6", "addr", "add", "fd62::2/64", "dev", "eth2", "nodad")
    node.ip("route", "add", "default", "via", "10.61.0.1")
    node.ip("route", "add", "192.0.2.0/24", "via", "10.62.0.1")
    return node


CONFIG = """
[node]
name = "n1"
asn = 64512
address = "auto"
{detection}

[bgp]
enabled = false

[datastore]
path = "{dir}/podbgp.db"
create = true

[[ipam.pool]]
cidr = "10.244.0.0/16"
vxlan_mode = "Always"

[fib]
{fib}

[api]
socket = "{dir}/podbgp.sock"
metrics = ""
"""


def write_config(tmp: Path, detection: str, fib: str = "") -> Path:
    path = tmp / "node.toml"
    line = f'address_detection = "{detection}"' if detection else ""
    path.write_text(CONFIG.format(dir=tmp, detection=line, fib=fib))
    return path


def check(node: Netns, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", node.name, sys.executable, "-m", "podbgp", "check",
         "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("detection", "address", "interface", "mtu", "pods"),
    [
        ("", "10.61.0.2/24", "eth0", 9000, 8950),  # first-found: docker0 and the veth skipped
        ("first-found", "10.61.0.2/24", "eth0", 9000, 8950),
        ("interface=eth1", "10.62.0.2/24", "eth1", 1400, 1350),
        ("interface=dock.*", "172.17.0.1/16", "docker0", 1500, 1450),
        ("skip-interface=eth0", "10.62.0.2/24", "eth1", 1400, 1350),
        ("can-reach=192.0.2.7", "10.62.0.2/24", "eth1", 1400, 1350),
        ("can-reach=198.51.100.1", "10.61.0.2/24", "eth0", 9000, 8950),  # the default route
        ("cidr=10.62.0.0/16,10.61.0.0/16", "10.61.0.2/24", "eth0", 9000, 8950),
        ("cidr=10.63.0.0/24", "10.63.0.2/24", "vethab12", 1500, 1450),
    ],
)
def test_each_method_picks_the_expected_address_and_mtu(
    netns: NetnsGroup, tmp_path: Path, detection: str, address: str, interface: str, mtu: int,
    pods: int,
) -> None:  # fmt: skip
    node = node_with_interfaces(netns)
    proc = check(node, write_config(tmp_path, detection))
    assert proc.returncode == 0, proc.stderr
    assert f'# node.address = "auto" finds {address} on {interface} (MTU {mtu}) here' in (
        proc.stdout.splitlines()
    ), proc.stdout
    assert f"# MTUs here: pods {pods}, tunl0 {mtu - 20}, vxlan.podbgp {mtu - 50}" in proc.stdout
    assert proc.stderr == ""


def test_nothing_found_and_mtus_above_the_underlay_are_warnings(
    netns: NetnsGroup, tmp_path: Path
) -> None:
    node = node_with_interfaces(netns)
    proc = check(node, write_config(tmp_path, "interface=wlan0"))
    assert proc.returncode == 0  # the file is valid; this machine is not the node
    assert "warning: interface=wlan0 found no IPv4 address" in proc.stderr
    proc = check(node, write_config(tmp_path, "interface=eth1", "pod_mtu = 1400\nvxlan_mtu = 1300"))
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        "warning: fib.pod_mtu = 1400 is above the 1350 the underlay carries (eth1 MTU 1400); "
        "larger packets will be dropped or fragmented"
    ]


def _registered(tmp: Path) -> str:
    async def go() -> str:
        store = SqliteStore(tmp / "podbgp.db")
        try:
            rec = await NodeRegistry(store).get("n1")
            return "" if rec is None else rec.address
        finally:
            await store.close()

    return asyncio.run(go())


def test_the_daemon_follows_its_detected_address(netns: NetnsGroup, tmp_path: Path) -> None:
    node = node_with_interfaces(netns)
    path = write_config(tmp_path, "interface=eth1")
    log = tmp_path / "podbgp.log"
    with open(log, "wb") as out:
        proc = node.popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                          stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    client = ControlClient(str(tmp_path / "podbgp.sock"))

    def address() -> Any:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return client.request("show.node")["address"]
        except (APIError, OSError):
            return None

    try:
        assert wait(address, 30, "podbgp answers show.node") == "10.62.0.2/24"
        assert _registered(tmp_path) == "10.62.0.2/24"
        # The address is replaced (another subnet: deleting a primary address deletes the
        # secondaries of its subnet): the daemon follows, and so does the registry.
        node.ip("addr", "add", "10.62.1.9/24", "dev", "eth1")
        node.ip("addr", "del", "10.62.0.2/24", "dev", "eth1")
        wait(lambda: address() == "10.62.1.9/24", 30, "the new address in show.node")
        wait(lambda: _registered(tmp_path) == "10.62.1.9/24", 30, "the new address registered")
        # Gone altogether: the node keeps its address (and says why) until one is back.
        node.ip("addr", "del", "10.62.1.9/24", "dev", "eth1")
        wait(lambda: "interface=eth1 found no IPv4 address" in log.read_text(), 30, "a warning")
        assert address() == "10.62.1.9/24"
        node.ip("addr", "add", "10.62.0.20/24", "dev", "eth1")
        wait(lambda: address() == "10.62.0.20/24", 30, "the address back")
        text = log.read_text()
        assert re.search(r"underlay: node address 10\.62\.0\.2/24 -> 10\.62\.1\.9/24", text), text
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_the_vtep_comes_from_the_tunnel_pool_and_mtus_are_checked_at_start(
    netns: NetnsGroup, tmp_path: Path
) -> None:
    """A VXLAN node with a workload-only pool and a tunnel-only pool takes its VTEP
    address from the tunnel pool; a pod MTU above what eth1 (1400) carries once
    encapsulated (1350) is a warning in the daemon's log at start."""
    node = node_with_interfaces(netns)
    path = tmp_path / "node.toml"
    path.write_text(
        CONFIG.format(dir=tmp_path, detection='address_detection = "interface=eth1"',
                      fib="pod_mtu = 1400")
        .replace('cidr = "10.244.0.0/16"', 'cidr = "10.244.0.0/16"\nallowed_uses = ["workload"]')
        + '[[ipam.pool]]\ncidr = "10.99.0.0/24"\nallowed_uses = ["tunnel"]\nvxlan_mode = "Always"\n'
    )  # fmt: skip
    log = tmp_path / "podbgp.log"
    with open(log, "wb") as out:
        proc = node.popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                          stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    client = ControlClient(str(tmp_path / "podbgp.sock"))

    def vtep() -> Any:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return client.request("show.node")["vtep_address"]
        except (APIError, OSError):
            return None

    try:
        assert wait(vtep, 30, "podbgp answers show.node").startswith("10.99.0.")
        assert (
            "fib.pod_mtu = 1400 is above the 1350 the underlay carries (eth1 MTU 1400)"
            in log.read_text()
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize(
    "detection", ["first-found", "interface=eth2", "cidr=fd62::/64", "can-reach=fd62::99"]
)
def test_address6_auto(netns: NetnsGroup, tmp_path: Path, detection: str) -> None:
    node = node_with_interfaces(netns)
    path = write_config(tmp_path, "interface=eth0")
    path.write_text(
        path.read_text().replace(
            'address = "auto"',
            f'address = "auto"\naddress6 = "auto"\naddress6_detection = "{detection}"',
        )
    )
    proc = check(node, path)
    assert proc.returncode == 0, proc.stderr
    assert '# node.address6 = "auto" finds fd62::2/64 on eth2 (MTU 1500) here' in proc.stdout
    assert '# node.address = "auto" finds 10.61.0.2/24 on eth0 (MTU 9000) here' in proc.stdout


TWO = """
[node]
name = "{name}"
asn = 64512
{address}

[bgp]
enabled = false

[datastore]
path = "{db}"
create = {create}

[[ipam.pool]]
cidr = "10.244.0.0/16"
vxlan_mode = "Always"

[api]
socket = "{dir}/podbgp.sock"
metrics = ""
"""


def _fdb_dsts(node: Netns) -> set[str]:
    out = node.run("bridge", "-j", "fdb", "show", "dev", "vxlan.podbgp", check=False)
    return {e["dst"] for e in (json.loads(out) if out.strip() else []) if "dst" in e}


def test_another_node_follows_a_detected_address_that_moves(
    netns: NetnsGroup, tmp_path: Path
) -> None:
    """Node a detects its address; node b (VXLAN, no BGP) points its FDB entry for a's VTEP
    at it. a's address moves: a re-registers, and b's entry moves with it."""
    a, b = netns.add("a"), netns.add("b")
    netns.veth(a, "eth0", b, "eth0")
    a.ip("addr", "add", "10.62.0.2/24", "dev", "eth0")
    b.ip("addr", "add", "10.62.0.3/24", "dev", "eth0")
    db = tmp_path / "podbgp.db"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns, name, address, create in (
            (a, "a", 'address = "auto"\naddress_detection = "interface=eth0"', "true"),
            (b, "b", 'address = "10.62.0.3/24"', "false"),
        ):
            d = tmp_path / name
            d.mkdir()
            (d / "node.toml").write_text(TWO.format(name=name, address=address, db=db,
                                                    create=create, dir=d))  # fmt: skip
            with open(d / "podbgp.log", "wb") as out:
                procs.append(ns.popen(
                    [sys.executable, "-m", "podbgp", "run", "--config", str(d / "node.toml")],
                    stdout=out, stderr=subprocess.STDOUT))  # fmt: skip
            client = ControlClient(str(d / "podbgp.sock"))
            wait(functools.partial(_answers, client), 30, f"node {name} answers")
        wait(lambda: _fdb_dsts(b) == {"10.62.0.2"}, 30, "b's FDB entry for a's VTEP")
        a.ip("addr", "add", "10.62.5.9/24", "dev", "eth0")
        a.ip("addr", "del", "10.62.0.2/24", "dev", "eth0")
        wait(lambda: _fdb_dsts(b) == {"10.62.5.9"}, 30, "b's FDB entry at a's new address")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def _answers(client: ControlClient) -> bool:
    try:
        client.request("show.node")
        return True
    except (APIError, OSError):
        return False
