"""This node as the FIB sees it: its `fib.NodeInfo` (with the one look-up of the kernel
it needs: which interface carries the node's address, the underlay whose MTU tunnels
inherit) and the remote VTEPs from the registry. The pure config → part mappings
(pools, datastore URL, registry record, pool table) are in `podbgp.wiring`.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable

import ipam
from fib.model import NodeInfo, Vtep, pack_addr
from podbgp.config import Config

VXLAN_HANDLE = "vxlan-tunnel-addr-{node}"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def underlay_interface(address: str) -> str:
    """The interface carrying `address` in this network namespace ("eth0" if none is found)."""
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        for link in json.loads(out):
            for info in link.get("addr_info", []):
                if info.get("local") == address:
                    return str(link["ifname"])
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return "eth0"


def fib_node(config: Config, vtep_address: str = "") -> NodeInfo | None:
    """The FIB's view of this node: its IPv4 underlay, or its IPv6 one when it has no IPv4
    (an IPv6-only node)."""
    iface = config.node.address or config.node.address6
    if iface is None:
        return None
    return NodeInfo.parse(config.node.name, str(iface),
                          underlay_interface(str(iface.ip)), vtep_address)  # fmt: skip


def vteps(nodes: Iterable[ipam.Node], me: str) -> dict[bytes, Vtep]:
    """Remote VTEPs by underlay address, from the registry."""
    out: dict[bytes, Vtep] = {}
    for node in nodes:
        if node.name == me or not (node.vtep_address and node.vtep_mac and node.address):
            continue
        underlay = pack_addr(str(ipaddress.ip_interface(node.address).ip))
        out[underlay] = Vtep(underlay, pack_addr(node.vtep_address), node.vtep_mac)
    return out
