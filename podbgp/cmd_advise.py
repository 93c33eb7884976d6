"""`podbgp advise`: which networking option fits this node's network, and its config.

The decision is a pure function, `decide(Facts) -> Advice`, so the whole table
is tested without a network. The facts come from thin probes:

* the node's underlay address and default gateway: the kernel's main routing
  table (the interface of the default route, the address on it whose subnet
  holds the gateway), or ``--address``;
* the other nodes: the node registry (``--datastore``) and ``--peer``;
* whether the default gateway accepts TCP on 179 (only with ``--probe``; only
  the gateway this node's own routing table names; one connection attempt
  with a short timeout);
* whether ``ipip`` and ``vxlan`` devices can be created: the probe that
  ``podbgp lab`` uses too (``podbgp.lab.devices``), in a throwaway private
  network namespace of a child process;
* the cloud: DMI strings in /sys/class/dmi/id (no metadata service is
  contacted), or ``--cloud``.

Decision order (first match wins):

1. the underlay filters source addresses it did not assign (every public
   cloud by default; ``--underlay-filters yes|no`` overrides) -> ``vxlan``
   (VXLAN Always: every packet on the wire carries node addresses);
2. the default gateway speaks BGP (outside a cloud) -> ``peered``;
3. every known node shares this node's subnet -> ``mesh``;
4. some are elsewhere and IP-in-IP works (never on Azure, whose fabric drops
   IP protocol 4) -> ``ipip-crosssubnet``; else ``vxlan-crosssubnet``.

Only IPv4 underlays are judged (IP-in-IP and the CrossSubnet test are IPv4).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from podbgp.lab.devices import ProbeFailed, probe_devices
from podbgp.lab.labplan import OPTIONS as LAB_OPTIONS
from podbgp.lab.netns import IP
from podbgp.lab.shell import CommandFailed, run

# The options advise recommends among, from the one list of options (podbgp.lab.labplan).
OPTIONS = ("peered", "mesh", "ipip-crosssubnet", "vxlan-crosssubnet", "vxlan")
TITLES = {name: LAB_OPTIONS[name].title for name in OPTIONS}
CLOUDS = ("aws", "azure", "gcp")
CLOUD_NAMES = {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}
DMI_ROOT = "/sys/class/dmi/id"
DMI_KEYS = ("sys_vendor", "product_name", "bios_vendor", "chassis_asset_tag")
# Azure writes this asset tag into every VM's DMI chassis record; plain Hyper-V
# shares the "Microsoft Corporation" / "Virtual Machine" strings but not this.
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
BGP_PORT = 179

IPv4Iface = ipaddress.IPv4Interface
IPv4Addr = ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class Facts:
    """What `decide` knows; None means not known (not probed, or the probe could not tell)."""

    address: IPv4Iface | None = None
    others: tuple[IPv4Addr, ...] = ()
    gateway: IPv4Addr | None = None
    gateway_bgp: bool | None = None
    ipip: bool | None = None
    vxlan: bool | None = None
    cloud: str | None = None
    underlay_filters: bool | None = None
    node_name: str = "node-a"
    pool: str = "10.244.0.0/16"
    datastore: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["address"] = None if self.address is None else str(self.address)
        out["others"] = [str(a) for a in self.others]
        out["gateway"] = None if self.gateway is None else str(self.gateway)
        return out


@dataclass(frozen=True, slots=True)
class Advice:
    """One recommendation: the option, two lines of why, notes and the config snippet."""

    option: str
    why: tuple[str, str]
    snippet: str
    notes: tuple[str, ...] = ()
    cloud_note: tuple[str, ...] = ()
    facts: Facts = field(default_factory=Facts)

    def to_json(self) -> dict[str, Any]:
        return {
            "option": self.option,
            "title": TITLES[self.option],
            "why": list(self.why),
            "notes": list(self.notes),
            "cloud": self.facts.cloud,
            "cloud_note": list(self.cloud_note),
            "config": self.snippet,
            "facts": self.facts.to_json(),
        }


# -- the decision -----------------------------------------------------------------------
CLOUD_NOTES: dict[str, tuple[str, ...]] = {
    "aws": (
        "AWS: the Amazon VPC CNI gives pods VPC addresses from the node's ENIs, so the VPC "
        "routes pods natively, with no overlay and no BGP.",
        "podbgp instead gives pods addresses from its own pools (no VPC addresses used, pod "
        "count not tied to ENI limits), which the VPC cannot route: unencapsulated traffic "
        "needs the source/destination check disabled on every instance and stays within one "
        "subnet, so VXLAN (or CrossSubnet with the check disabled) carries the rest; pods are "
        "not reachable from outside the cluster without NAT.",
    ),
    "azure": (
        "Azure: Azure CNI gives pods VNet addresses, routed natively by the VNet.",
        "podbgp's pod addresses are unknown to the VNet, which drops them (user-defined "
        "routes plus IP forwarding on the NICs aside) and blocks IP-in-IP entirely, so VXLAN "
        "is the only encapsulation; BGP sessions between nodes add nothing the VNet uses.",
    ),
    "gcp": (
        "GCP: GKE VPC-native clusters give pods alias IP ranges of the VPC, routed natively.",
        "podbgp's pod addresses are not in the VPC: unencapsulated pod traffic needs instances "
        "created with IP forwarding and VPC routes per node, so VXLAN Always is the portable "
        "choice; the VPC does not learn pod routes from podbgp's BGP sessions.",
    ),
}


def split_others(facts: Facts) -> tuple[list[IPv4Addr], list[IPv4Addr]]:
    """The other nodes on this node's subnet, and those elsewhere."""
    if facts.address is None:
        return [], list(facts.others)
    net = facts.address.network
    mine = [a for a in facts.others if a in net]
    return mine, [a for a in facts.others if a not in net]


def _filters(facts: Facts) -> bool:
    if facts.underlay_filters is not None:
        return facts.underlay_filters
    return facts.cloud is not None


def _choose(facts: Facts) -> tuple[str, tuple[str, str], list[str]]:
    """(option, why, notes) by the module docstring's order."""
    notes: list[str] = []
    subnet = "this node's subnet" if facts.address is None else str(facts.address.network)
    if _filters(facts):
        where = f"{CLOUD_NAMES[facts.cloud]}'s network" if facts.cloud else "The underlay"
        why = (
            f"{where} drops packets whose addresses it did not assign, so pod addresses "
            "cannot appear on the wire.",
            "VXLAN Always wraps every pod packet in a UDP packet between node addresses, "
            "which any IP underlay delivers.",
        )
        if facts.vxlan is False:
            notes.append("this kernel could not create a vxlan device: load the vxlan module")
        return "vxlan", why, notes
    if facts.gateway_bgp:
        return (
            "peered",
            (
                f"The default gateway {facts.gateway} accepts BGP connections (TCP 179), so it "
                "can learn each node's pod blocks.",
                "Peering with it routes pods natively, unencapsulated and reachable from the "
                "physical network without NAT.",
            ),
            notes,
        )
    local, remote = split_others(facts)
    if facts.address is None and facts.others:
        notes.append("this node's own address is unknown; give --address to check subnets")
    if not remote:
        first = (
            f"All {len(local)} other known node(s) share {subnet}, so every pod block's "
            "next hop is directly reachable."
        )
        if not facts.others:
            first = (
                f"No other nodes are known, so this assumes they all share {subnet} "
                "(give --datastore or --peer to check)."
            )
        return (
            "mesh",
            (
                first,
                "A node-to-node BGP mesh needs no encapsulation and no router configuration.",
            ),
            notes,
        )
    first = (
        f"{len(remote)} of {len(facts.others)} other node(s) are outside {subnet} (e.g. "
        f"{remote[0]}), so their pod blocks are reached through a router that does not know them."
    )
    if facts.ipip and facts.cloud != "azure":
        return (
            "ipip-crosssubnet",
            (
                first,
                "IP-in-IP works here and CrossSubnet encapsulates only traffic that leaves the subnet.",
            ),
            notes,
        )
    if facts.vxlan is False:
        notes.append("this kernel could not create vxlan or ipip devices: load their modules")
    second = (
        "IP-in-IP is not available here, so VXLAN encapsulates only traffic that leaves the subnet."
        if facts.ipip is False or facts.cloud == "azure"
        else "VXLAN (CrossSubnet) encapsulates only traffic that leaves the subnet."
    )
    return "vxlan-crosssubnet", (first, second), notes


def decide(facts: Facts) -> Advice:
    """The recommendation for `facts` (pure; see the module docstring for the order)."""
    option, why, notes = _choose(facts)
    return Advice(
        option=option,
        why=why,
        snippet=snippet(option, facts),
        notes=tuple(notes),
        cloud_note=CLOUD_NOTES.get(facts.cloud or "", ()),
        facts=facts,
    )


# -- the config snippet (docs/configuration.md) ------------------------------------------
def _toml_str(s: str) -> str:
    return json.dumps(s)


def _datastore_lines(url: str) -> list[str]:
    kind, _, rest = url.partition(":")
    if kind == "sqlite" and rest:
        return ["[datastore]", 'kind = "sqlite"', f"path = {_toml_str(rest)}"]
    eps = [e for e in rest.split(",") if e] if kind == "etcd" else []
    shown = ", ".join(_toml_str(e) for e in eps) or '"http://127.0.0.1:2379"'
    note = "" if eps else "   # your etcd cluster: every node shares it"
    return ["[datastore]", 'kind = "etcd"', f"endpoints = [{shown}]{note}"]


def _bgp_lines(option: str, facts: Facts) -> list[str]:
    if option == "vxlan":
        return ["[bgp]", "enabled = false                 # routes come from the datastore"]
    if option == "peered":
        gw = str(facts.gateway) if facts.gateway else "10.0.0.254"
        return [
            "[bgp]",
            "mesh = false",
            "",
            "[[bgp.peer]]",
            f"address = {_toml_str(gw)}          # the ToR / default gateway",
            "asn = 65000                     # the ToR's AS: ask the network team",
            'export = "local"                # own blocks and borrowed /32s',
        ]
    return ["[bgp]", "mesh = true"]


def snippet(option: str, facts: Facts) -> str:
    """The TOML for `option` with this node's facts filled in (docs/configuration.md)."""
    address = str(facts.address) if facts.address else "10.0.0.1/24"
    opt = LAB_OPTIONS[option]
    ipip = opt.mode if opt.encap == "ipip" else "Never"
    vxlan = opt.mode if opt.encap == "vxlan" else "Never"
    lines = [
        "[node]",
        f"name = {_toml_str(facts.node_name)}",
        "asn = 64512",
        f"address = {_toml_str(address)}",
        "",
        *_bgp_lines(option, facts),
        "",
        *_datastore_lines(facts.datastore),
        "",
        "[[ipam.pool]]",
        f"cidr = {_toml_str(facts.pool)}",
        f'ipip_mode = "{ipip}"',
        f'vxlan_mode = "{vxlan}"',
        # Pods routed by the physical network keep their source; elsewhere the
        # underlay cannot route replies to pod addresses, so leave by NAT.
        f"nat_outgoing = {'false' if option == 'peered' else 'true'}",
    ]
    return "\n".join(lines) + "\n"


# -- probes ---------------------------------------------------------------------------------
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


def _default_route(routes: Iterable[Mapping[str, Any]]) -> tuple[IPv4Addr | None, str | None]:
    """The main table's default gateway and its device, from ``ip -j -4 route``: the
    unicast default route of lowest metric (the first hop of a multipath one)."""
    best: tuple[int, IPv4Addr | None, str | None] | None = None
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
            best = (metric, ipaddress.IPv4Address(gw) if gw else None, dev)
    return (None, None) if best is None else (best[1], best[2])


def _global_addresses(links: Iterable[Mapping[str, Any]]) -> list[tuple[str, IPv4Iface]]:
    """(device, address with its subnet) of every global IPv4 address, from ``ip -j -4 addr``."""
    return [
        (str(link["ifname"]), ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}"))
        for link in links
        for a in link.get("addr_info", [])
        if a.get("family", "inet") == "inet" and a.get("scope") == "global"
    ]


def kernel_facts() -> tuple[IPv4Iface | None, IPv4Addr | None]:
    """This node's underlay address (with its subnet) and default gateway, from the kernel
    (read with iproute2's JSON output: pyroute2 belongs to ``fib.netlink``)."""
    routes = json.loads(run([IP, "-j", "-4", "route", "show", "table", "main"]) or "[]")
    links = json.loads(run([IP, "-j", "-4", "addr", "show"]) or "[]")
    gateway, dev = _default_route(routes)
    return pick_address(_global_addresses(links), gateway, dev), gateway


def pick_address(
    addrs: list[tuple[str, IPv4Iface]], gateway: IPv4Addr | None, dev: str | None
) -> IPv4Iface | None:
    """The address on the default route's device whose subnet holds the gateway."""
    on_dev = [a for d, a in addrs if d == dev]
    for a in on_dev:
        if gateway is not None and gateway in a.network:
            return a
    if on_dev:
        return on_dev[0]
    return addrs[0][1] if addrs else None


def probe_bgp(gateway: IPv4Addr, timeout: float = 1.0) -> bool:
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


async def registry_addresses(url: str, me: str) -> list[IPv4Addr]:
    """Other nodes' IPv4 underlay addresses from the node registry."""
    from ipam import NodeRegistry
    from ipam.store import OpenMode, open_store

    store = open_store(url, OpenMode.READ_ONLY)
    try:
        nodes = await NodeRegistry(store).list()
    finally:
        await store.close()
    out = []
    for node in nodes.values():
        if node.name != me and node.address:
            out.append(ipaddress.IPv4Interface(node.address).ip)
    return out


# -- the command ------------------------------------------------------------------------
def _tristate(text: str | None) -> bool | None:
    return None if text in (None, "auto") else text == "yes"


def gather(args: argparse.Namespace) -> tuple[Facts, list[str]]:
    """Facts from the flags and the probes; the second value lists what could not be probed."""
    problems: list[str] = []
    address, gateway = (None, None)
    try:
        address, gateway = kernel_facts()
    except (OSError, CommandFailed, ValueError) as e:
        problems.append(f"routing table: {e}")
    if args.address:
        address = ipaddress.IPv4Interface(args.address)
    others = [ipaddress.IPv4Address(p) for p in args.peer]
    if args.datastore:
        try:
            others += asyncio.run(registry_addresses(args.datastore, args.node))
        except Exception as e:  # the registry is optional: say why it was skipped
            problems.append(f"node registry {args.datastore}: {e}")
    if address is not None:
        others = [o for o in others if o != address.ip]
    gateway_bgp = _tristate(args.gateway_bgp)
    if args.probe and gateway_bgp is None and gateway is not None:
        gateway_bgp = probe_bgp(gateway, args.timeout)
    encap = probe_encap() if not args.no_encap_probe else {}
    if "error" in encap:
        problems.append(f"ipip/vxlan probe: {encap['error']}")
    cloud = None if args.cloud == "none" else args.cloud
    if args.cloud == "auto":
        cloud = detect_cloud(read_dmi())
    facts = Facts(
        address=address,
        others=tuple(dict.fromkeys(others)),
        gateway=gateway,
        gateway_bgp=gateway_bgp,
        ipip=encap.get("ipip"),
        vxlan=encap.get("vxlan"),
        cloud=cloud,
        underlay_filters=_tristate(args.underlay_filters),
        node_name=args.node,
        pool=args.pool,
        datastore=args.datastore or "",
    )
    return facts, problems


def render(advice: Advice, problems: list[str]) -> str:
    lines = [
        f"Recommended: {advice.option} ({TITLES[advice.option]})",
        f"  {advice.why[0]}",
        f"  {advice.why[1]}",
    ]
    lines += [f"  note: {n}" for n in advice.notes]
    lines += [f"  not probed: {p}" for p in problems]
    if advice.cloud_note:
        lines += ["", *advice.cloud_note]
    lines += ["", "Config snippet (every key: docs/configuration.md):", "", advice.snippet.rstrip()]
    return "\n".join(lines)


def cmd_advise(args: argparse.Namespace) -> int:
    try:
        if args.address:
            ipaddress.IPv4Interface(args.address)
        for p in args.peer:
            ipaddress.IPv4Address(p)
    except ValueError as e:
        print(f"podbgp advise: {e}", file=sys.stderr)
        return 2
    facts, problems = gather(args)
    advice = decide(facts)
    if args.json:
        print(json.dumps({**advice.to_json(), "not_probed": problems}, indent=2))
    else:
        print(render(advice, problems))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("advise", help="recommend a networking option for this environment")
    p.add_argument("--address", metavar="IP/LEN", help="this node's underlay address and subnet")
    p.add_argument(
        "--peer", action="append", default=[], metavar="IP", help="another node (repeat)"
    )
    p.add_argument("--datastore", metavar="URL", help="read other nodes from the node registry")
    p.add_argument("--node", default=os.uname().nodename, help="this node's name")
    p.add_argument("--pool", default="10.244.0.0/16", help="pod CIDR for the snippet")
    p.add_argument("--probe", action="store_true", help="try TCP 179 on the default gateway")
    p.add_argument("--timeout", type=float, default=1.0, help="gateway probe timeout (s)")
    p.add_argument(
        "--gateway-bgp", choices=("auto", "yes", "no"), default="auto",
        help="state whether the gateway speaks BGP instead of probing",
    )  # fmt: skip
    p.add_argument(
        "--underlay-filters", choices=("auto", "yes", "no"), default="auto",
        help="does the underlay drop unknown source addresses (auto: yes in a cloud)",
    )  # fmt: skip
    p.add_argument("--cloud", choices=("auto", "none", *CLOUDS), default="auto")
    p.add_argument("--no-encap-probe", action="store_true", help="skip the ipip/vxlan probe")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_advise)
