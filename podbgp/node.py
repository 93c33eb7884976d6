"""This node as the FIB sees it: its `fib.NodeInfo` (with the one look-up of the kernel
it needs: which interface carries the node's address, the underlay whose MTU tunnels
inherit) and the remote VTEPs from the registry. The pure config → part mappings
(pools, datastore URL, registry record, pool table) are in `podbgp.wiring`.
"""

from __future__ import annotations

import dataclasses
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
    dual = config.node.address6 if config.node.address is not None else None
    node = NodeInfo.parse(config.node.name, str(iface), underlay_interface(str(iface.ip)),
                          vtep_address, str(dual) if dual else "")  # fmt: skip
    return dataclasses.replace(node, ipip_mtu=config.fib.ipip_mtu, vxlan_mtu=config.fib.vxlan_mtu)


def vteps(nodes: Iterable[ipam.Node], me: str) -> dict[bytes, Vtep]:
    """Remote VTEPs from the registry, by each next hop they stand for (`Vtep.keys`): the
    underlay address (IPv4, or IPv6 on an IPv6-only node) and a dual-stack node's IPv6."""
    out: dict[bytes, Vtep] = {}
    for node in nodes:
        if node.name == me or not node.vtep_mac or not (node.address or node.address6):
            continue
        v4, v6 = (pack_addr(str(ipaddress.ip_interface(a).ip)) if a else b""
                  for a in (node.address, node.address6))  # fmt: skip
        vtep = Vtep(v4 or v6, pack_addr(node.vtep_address) if node.vtep_address else b"",
                    node.vtep_mac, v6 if v4 else b"")  # fmt: skip
        for key in vtep.keys:
            out[key] = vtep
    return out
