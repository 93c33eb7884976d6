"""The probes behind `podbgp advise`: the kernel's addresses and default routes, the
gateway's TCP 179, the ipip/vxlan device probe, the node registry, the cloud from DMI.

Each is thin and read-only; `podbgp.cmd_advise.decide` turns what they find into advice.
The routing table and addresses are read with iproute2's JSON output (rtnetlink belongs to
``fib.netlink``), for IPv4 and IPv6 alike.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from podbgp.lab.devices import ProbeFailed, probe_devices
from podbgp.lab.netns import IP
from podbgp.lab.shell import run

IPIface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
DMI_ROOT = "/sys/class/dmi/id"
DMI_KEYS = ("sys_vendor", "product_name", "bios_vendor", "chassis_asset_tag")
# Azure writes this asset tag into every VM's DMI chassis record; plain Hyper-V
# shares the "Microsoft Corporation" / "Virtual Machine" strings but not this.
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
BGP_PORT = 179


def detect_cloud(dmi: Mapping[str, str]) -> str | None:
    """AWS, Azure or GCP from DMI strings; None for anything else (Hyper-V is not Azure)."""
    vendor = dmi.get("sys_vendor", "").strip().lower()
    product = dmi.get("product_name", "").strip().lower()
    bios = dmi.get("bios_vendor", "").strip().lower()
    if "amazon" in vendor or "amazon" in bios:
        return "aws"
    if dmi.get("chassis_asset_tag", "").strip() == AZURE_ASSET_TAG:
        return "azure"
    if vendor == "google" or product == "google compute engine" or bios == "google":
        return "gcp"
    return None


def read_dmi(root: str = DMI_ROOT) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in DMI_KEYS:
        with contextlib.suppress(OSError):
            out[key] = Path(root, key).read_text(errors="replace").strip()
    return out


def _default_route(routes: Iterable[Mapping[str, Any]]) -> tuple[IPAddr | None, str | None]:
    """The main table's default gateway and its device, from ``ip -j -4|-6 route``: the
    unicast default route of lowest metric (the first hop of a multipath one)."""
    best: tuple[int, IPAddr | None, str | None] | None = None
    for r in routes:
        if r.get("dst") != "default" or r.get("type", "unicast") != "unicast":
            continue
        if r.get("table", "main") != "main":
            continue
        gw, dev = r.get("gateway"), r.get("dev")
        hops = r.get("nexthops") or []
        if gw is None and hops:
            gw, dev = hops[0].get("gateway"), hops[0].get("dev")
        metric = int(r.get("metric", 0))
        if best is None or metric < best[0]:
            best = (metric, ipaddress.ip_address(gw) if gw else None, dev)
    return (None, None) if best is None else (best[1], best[2])


def _global_addresses(
    links: Iterable[Mapping[str, Any]], family: str = "inet"
) -> list[tuple[str, IPIface]]:
    """(device, address with its subnet) of every global address of `family` ("inet" or
    "inet6"), from ``ip -j -4|-6 addr``; temporary and deprecated IPv6 addresses are
    not underlay addresses."""
    return [
        (str(link["ifname"]), ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
        for link in links
        for a in link.get("addr_info", [])
        if a.get("family", "inet") == family and a.get("scope") == "global"
        and not a.get("temporary") and not a.get("deprecated")
    ]  # fmt: skip


def kernel_facts(version: int = 4) -> tuple[IPIface | None, IPAddr | None]:
    """This node's underlay address (with its subnet) and default gateway of one IP version,
    from the kernel (read with iproute2's JSON output: rtnetlink belongs to ``fib.netlink``)."""
    routes = json.loads(run([IP, "-j", f"-{version}", "route", "show", "table", "main"]) or "[]")
    links = json.loads(run([IP, "-j", f"-{version}", "addr", "show"]) or "[]")
    gateway, dev = _default_route(routes)
    family = "inet" if version == 4 else "inet6"
    return pick_address(_global_addresses(links, family), gateway, dev), gateway


def pick_address(
    addrs: list[tuple[str, IPIface]], gateway: IPAddr | None, dev: str | None
) -> IPIface | None:
    """The address on the default route's device whose subnet holds the gateway."""
    on_dev = [a for d, a in addrs if d == dev]
    for a in on_dev:
        if gateway is not None and gateway.version == a.version and gateway in a.network:
            return a
    if on_dev:
        return on_dev[0]
    return addrs[0][1] if addrs else None


def probe_bgp(gateway: IPAddr, timeout: float = 1.0) -> bool:
    """Does `gateway` accept a TCP connection on 179? One attempt, closed at once."""
    try:
        with socket.create_connection((str(gateway), BGP_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def probe_encap() -> dict[str, Any]:
    """``{"ipip": bool, "vxlan": bool}`` from the lab's device probe, or ``{"error": ...}``."""
    try:
        found = probe_devices(("ipip", "vxlan"))
    except ProbeFailed as e:
        return {"error": str(e)}
    return {kind: error is None for kind, error in found.items()}


async def registry_addresses(url: str, me: str) -> list[IPAddr]:
    """Other nodes' IPv4 and IPv6 underlay addresses from the node registry."""
    from ipam import NodeRegistry
    from ipam.store import OpenMode, open_store

    store = open_store(url, OpenMode.READ_ONLY)
    try:
        nodes = await NodeRegistry(store).list()
    finally:
        await store.close()
    out: list[IPAddr] = []
    for node in nodes.values():
        for text in (node.address, node.address6) if node.name != me else ():
            if text:
                out.append(ipaddress.ip_interface(text).ip)
    return out
