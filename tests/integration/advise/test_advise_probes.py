"""`podbgp advise` probes in namespaces: the routing table, the gateway's TCP 179, the registry, ipip/vxlan.

The command runs inside a node namespace whose default route points at a
"ToR" namespace, exactly as an operator would run it on a node.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ipam import Node, NodeRegistry
from ipam.store import OpenMode
from ipam.store.sqlite import SqliteStore
from podbgp.lab.netns import IP, Netns, NetnsGroup

pytestmark = [pytest.mark.root]

PODBGP = str(Path(sys.executable).parent / "podbgp")
LISTENER = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('10.0.1.254', 179)); s.listen(4); print('ready', flush=True)\n"
    "while True:\n    c, _ = s.accept(); c.close()\n"
)


def lan(netns: NetnsGroup) -> tuple[Netns, Netns]:
    node, tor = netns.add("node"), netns.add("tor")
    netns.veth(node, "eth0", tor, "p1")
    node.ip("addr", "add", "10.0.1.5/24", "dev", "eth0")
    tor.ip("addr", "add", "10.0.1.254/24", "dev", "p1")
    node.ip("route", "add", "default", "via", "10.0.1.254")
    return node, tor


def advise(node: Netns, *flags: str) -> dict[str, Any]:
    out = node.run(PODBGP, "advise", "--json", "--cloud", "none", "--node", "n1", *flags)
    result: dict[str, Any] = json.loads(out)
    return result


def test_routing_table_and_a_bgp_speaking_gateway(netns: NetnsGroup) -> None:
    node, tor = lan(netns)
    listener = tor.popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE)
    assert listener.stdout is not None and listener.stdout.readline().strip() == b"ready"
    out = advise(node, "--probe", "--no-encap-probe")
    assert out["facts"]["address"] == "10.0.1.5/24"
    assert out["facts"]["gateway"] == "10.0.1.254"
    assert out["facts"]["gateway_bgp"] is True
    assert out["option"] == "peered"
    assert 'address = "10.0.1.254"' in out["config"]


def test_gateway_without_bgp_and_no_probe_without_the_flag(netns: NetnsGroup) -> None:
    node, _ = lan(netns)
    probed = advise(node, "--probe", "--timeout", "0.5", "--no-encap-probe")
    assert probed["facts"]["gateway_bgp"] is False
    assert probed["option"] == "mesh"
    unprobed = advise(node, "--no-encap-probe")
    assert unprobed["facts"]["gateway_bgp"] is None


def test_other_nodes_from_the_registry(netns: NetnsGroup, tmp_path: Path) -> None:
    node, _ = lan(netns)
    db = tmp_path / "podbgp.db"

    async def register() -> None:
        store = SqliteStore(db, mode=OpenMode.CREATE)
        try:
            reg = NodeRegistry(store)
            for name, addr in (("n1", "10.0.1.5/24"), ("n2", "10.0.1.6/24"), ("n3", "10.0.2.8/24")):
                await reg.register(Node(name=name, asn=64512, address=addr))
        finally:
            await store.close()

    asyncio.run(register())
    out = advise(node, "--datastore", f"sqlite:{db}")
    assert sorted(out["facts"]["others"]) == ["10.0.1.6", "10.0.2.8"]  # n1 is this node
    expected = "ipip-crosssubnet" if out["facts"]["ipip"] else "vxlan-crosssubnet"
    assert out["option"] == expected
    assert f'path = "{db}"' in out["config"]
    same = advise(node, "--datastore", f"sqlite:{db}", "--address", "10.0.0.5/16")
    assert same["option"] == "mesh"


def test_encap_probe_matches_the_kernel_and_leaves_nothing(netns: NetnsGroup) -> None:
    node, _ = lan(netns)
    scratch = netns.add("scratch")
    truth = {}
    for kind, extra in (("ipip", ()), ("vxlan", ("id", "7", "dstport", "4789"))):
        scratch.ip("link", "add", f"t-{kind}", "type", kind, *extra, check=False)
        truth[kind] = f"t-{kind}" in scratch.ip("link")
    before = node.ip("-o", "link")
    out = advise(node)
    assert out["facts"]["ipip"] is truth["ipip"]
    assert out["facts"]["vxlan"] is truth["vxlan"]
    assert node.ip("-o", "link") == before
    assert (
        "probe-"
        not in subprocess.run([IP, "-o", "link"], capture_output=True, text=True, check=True).stdout
    )


def test_a_dual_stack_underlay_is_advised_dual_stack(netns: NetnsGroup) -> None:
    """The node's global IPv6 address and IPv6 default route are read like the IPv4 ones;
    with both, the advice and its snippet are dual stack."""
    node, tor = lan(netns)
    node.ip("addr", "add", "fd00:1::5/64", "dev", "eth0", "nodad")
    tor.ip("addr", "add", "fd00:1::fe/64", "dev", "p1", "nodad")
    node.ip("-6", "route", "add", "default", "via", "fd00:1::fe")
    out = advise(node, "--no-encap-probe", "--peer", "fd00:1::6", "--peer", "10.0.1.6")
    assert out["family"] == "dual" and out["option"] == "mesh", out
    facts = out["facts"]
    assert (facts["address6"], facts["gateway6"]) == ("fd00:1::5/64", "fd00:1::fe")
    assert facts["others"] == ["10.0.1.6"] and facts["others6"] == ["fd00:1::6"]
    assert 'address6 = "fd00:1::5/64"' in out["config"] and "block_size = 122" in out["config"]
    only4 = advise(node, "--no-encap-probe", "--family", "ipv4")
    assert only4["family"] == "ipv4" and "address6" not in only4["config"]
