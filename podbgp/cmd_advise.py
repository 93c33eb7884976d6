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

Pod address families (``--family``, default ``auto``): ``dual`` when the node has both a
global IPv4 and a global IPv6 underlay address (``--address6`` or the kernel), ``ipv6``
when it has only IPv6, else ``ipv4``. podbgp announces a node's IPv6 blocks with its IPv6
address as next hop (RFC 2545 §3), so IPv6 pods need an IPv6 address on every node: dual
stack asked on a node without one is advised IPv4-only, with a note saying why. An
IPv6-only node is judged by its IPv6 subnet, gateway and other nodes' IPv6 addresses.
IP-in-IP carries IPv4 only (RFC 2003): where the table says ``ipip-crosssubnet``, a dual
or IPv6 cluster gets ``vxlan-crosssubnet`` (VXLAN carries both families).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from podbgp.advise_probes import (
    IPAddr,
    IPIface,
    detect_cloud,
    kernel_facts,
    probe_bgp,
    probe_encap,
    read_dmi,
    registry_addresses,
)
from podbgp.lab.labplan import OPTIONS as LAB_OPTIONS
from podbgp.lab.shell import CommandFailed

# The options advise recommends among, from the one list of options (podbgp.lab.labplan).
OPTIONS = ("peered", "mesh", "ipip-crosssubnet", "vxlan-crosssubnet", "vxlan")
TITLES = {name: LAB_OPTIONS[name].title for name in OPTIONS}
CLOUDS = ("aws", "azure", "gcp")
CLOUD_NAMES = {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}

IPv4Iface = ipaddress.IPv4Interface
IPv4Addr = ipaddress.IPv4Address
IPv6Iface = ipaddress.IPv6Interface
IPv6Addr = ipaddress.IPv6Address
FAMILIES = ("auto", "ipv4", "ipv6", "dual")
POOL6 = "fd00:10:244::/56"


@dataclass(frozen=True, slots=True)
class Facts:
    """What `decide` knows; None means not known (not probed, or the probe could not tell)."""

    address: IPIface | None = None
    others: tuple[IPAddr, ...] = ()
    gateway: IPAddr | None = None
    gateway_bgp: bool | None = None
    ipip: bool | None = None
    vxlan: bool | None = None
    cloud: str | None = None
    underlay_filters: bool | None = None
    node_name: str = "node-a"
    pool: str = "10.244.0.0/16"
    datastore: str = ""
    address6: IPv6Iface | None = None
    others6: tuple[IPv6Addr, ...] = ()
    gateway6: IPv6Addr | None = None
    family: str = "auto"  # asked: auto | ipv4 | ipv6 | dual
    pool6: str = POOL6

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("address", "gateway", "address6", "gateway6"):
            value = getattr(self, key)
            out[key] = None if value is None else str(value)
        out["others"] = [str(a) for a in self.others]
        out["others6"] = [str(a) for a in self.others6]
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
    family: str = "ipv4"  # the pods' families: ipv4 | ipv6 | dual

    def to_json(self) -> dict[str, Any]:
        return {
            "option": self.option,
            "title": TITLES[self.option],
            "family": self.family,
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


def pod_family(facts: Facts) -> tuple[str, list[str]]:
    """The pods' families for `facts` (module docstring), and notes on what was asked."""
    has4, has6 = facts.address is not None, facts.address6 is not None
    if facts.family == "auto":
        return ("dual" if has4 and has6 else "ipv6" if has6 else "ipv4"), []
    if facts.family in ("dual", "ipv6") and not has6:
        note = (f"{facts.family} needs an IPv6 address on every node (node.address6): "
                "podbgp announces IPv6 blocks with it as next hop (RFC 2545 §3); none was "
                "found here (give --address6)")  # fmt: skip
        if facts.family == "dual":
            return "ipv4", [note + ", so this advice is IPv4-only"]
        return "ipv6", [note]
    return facts.family, []


def _ipv6_view(facts: Facts) -> Facts:
    """An IPv6-only node judged as the table judges IPv4: its IPv6 subnet, gateway, peers."""
    return replace(facts, address=facts.address6, others=facts.others6,
                   gateway=facts.gateway6, ipip=False)  # fmt: skip


def split_others(facts: Facts) -> tuple[list[IPAddr], list[IPAddr]]:
    """The other nodes on this node's subnet, and those elsewhere."""
    if facts.address is None:
        return [], list(facts.others)
    net = facts.address.network
    mine = [a for a in facts.others if a.version == net.version and a in net]
    return mine, [a for a in facts.others if a not in mine]


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
    family, family_notes = pod_family(facts)
    judged = _ipv6_view(facts) if family == "ipv6" else facts
    if family == "dual" and facts.ipip:
        judged = replace(facts, ipip=False)
    option, why, notes = _choose(judged)
    if family != "ipv4" and facts.ipip and option == "vxlan-crosssubnet":
        why = (why[0], "IP-in-IP carries IPv4 only (RFC 2003), so VXLAN encapsulates the "
               "traffic that leaves the subnet, IPv6 pods' too.")  # fmt: skip
    return Advice(
        option=option,
        why=why,
        snippet=snippet(option, facts, family),
        notes=tuple(family_notes + notes),
        cloud_note=CLOUD_NOTES.get(facts.cloud or "", ()),
        facts=facts,
        family=family,
    )


# -- the config snippet (docs/configuration.md) ------------------------------------------
def _toml_str(s: str) -> str:
    return json.dumps(s)


def _datastore_lines(url: str) -> list[str]:
    kind, _, rest = url.partition(":")
    if kind == "sqlite" and rest:
        return ["[datastore]", 'kind = "sqlite"', f"path = {_toml_str(rest)}"]
    rest, _, query = rest.partition("?")
    eps = [e for e in rest.split(",") if e] if kind == "etcd" else []
    shown = ", ".join(_toml_str(e) for e in eps) or '"http://127.0.0.1:2379"'
    note = "" if eps else "   # your etcd cluster: every node shares it"
    lines = ["[datastore]", 'kind = "etcd"', f"endpoints = [{shown}]{note}"]
    if query and kind == "etcd":  # TLS files
        from ipam.store import StoreError
        from ipam.store.etcd import TlsFiles

        try:
            tls = TlsFiles.from_query(query)
        except StoreError:  # reported with the registry probe; the snippet goes without it
            tls = TlsFiles()
        named = (("ca_file", tls.ca), ("cert_file", tls.cert), ("key_file", tls.key))
        lines += [f"{key} = {_toml_str(path)}" for key, path in named if path]
    return lines


def _bgp_lines(option: str, facts: Facts, family: str = "ipv4") -> list[str]:
    if option == "vxlan":
        return ["[bgp]", "enabled = false                 # routes come from the datastore"]
    if option == "peered":
        if family == "ipv6":
            gw = str(facts.gateway6) if facts.gateway6 else "fd00::fe"
        else:
            gw = str(facts.gateway) if facts.gateway else "10.0.0.254"
        # Dual stack: one session over IPv4 carries both families (RFC 4760).
        families = {"ipv4": '["ipv4"]', "dual": '["ipv4", "ipv6"]', "ipv6": '["ipv6"]'}[family]
        return [
            "[bgp]",
            "mesh = false",
            "",
            "[[bgp.peer]]",
            f"address = {_toml_str(gw)}          # the ToR / default gateway",
            "asn = 65000                     # the ToR's AS: ask the network team",
            f"families = {families}",
            'export = "local"                # own blocks and borrowed /32s',
        ]
    return ["[bgp]", "mesh = true"]


def _node_lines(facts: Facts, family: str) -> list[str]:
    lines = ["[node]", f"name = {_toml_str(facts.node_name)}", "asn = 64512"]
    if family != "ipv6":
        address = str(facts.address) if facts.address else "10.0.0.1/24"
        lines.append(f"address = {_toml_str(address)}")
    else:
        lines.append('router_id = "10.0.0.1"          # unique per node: no IPv4 to take it from')
    if family != "ipv4":
        address6 = str(facts.address6) if facts.address6 else "fd00::1/64"
        lines.append(f"address6 = {_toml_str(address6)}")
    return lines


def _pool_lines(cidr: str, block_size: int, option: str) -> list[str]:
    opt = LAB_OPTIONS[option]
    ipip = opt.mode if opt.encap == "ipip" else "Never"
    vxlan = opt.mode if opt.encap == "vxlan" else "Never"
    return [
        "[[ipam.pool]]",
        f"cidr = {_toml_str(cidr)}",
        f"block_size = {block_size}",
        f'ipip_mode = "{ipip}"',
        f'vxlan_mode = "{vxlan}"',
        # Pods routed by the physical network keep their source; elsewhere the
        # underlay cannot route replies to pod addresses, so leave by NAT.
        f"nat_outgoing = {'false' if option == 'peered' else 'true'}",
    ]


def snippet(option: str, facts: Facts, family: str = "ipv4") -> str:
    """The TOML for `option` and the pods' `family` with this node's facts filled in
    (docs/configuration.md): a pool per family, /122 blocks for IPv6 (Calico's default)."""
    lines = [
        *_node_lines(facts, family),
        "",
        *_bgp_lines(option, facts, family),
        "",
        *_datastore_lines(facts.datastore),
    ]
    if family != "ipv6":
        lines += ["", *_pool_lines(facts.pool, 26, option)]
    if family != "ipv4":
        lines += ["", *_pool_lines(facts.pool6, 122, option)]
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------
def _tristate(text: str | None) -> bool | None:
    return None if text in (None, "auto") else text == "yes"


def gather(args: argparse.Namespace) -> tuple[Facts, list[str]]:
    """Facts from the flags and the probes; the second value lists what could not be probed."""
    problems: list[str] = []
    found: dict[int, tuple[IPIface | None, IPAddr | None]] = {4: (None, None), 6: (None, None)}
    for version in (4, 6):
        try:
            found[version] = kernel_facts(version)
        except (OSError, CommandFailed, ValueError) as e:
            problems.append(f"IPv{version} routing table: {e}")
    (address, gateway), (address6, gateway6) = found[4], found[6]
    if args.address:
        address = ipaddress.IPv4Interface(args.address)
    if args.address6:
        address6 = ipaddress.IPv6Interface(args.address6)
    others = [ipaddress.ip_address(p) for p in args.peer]
    if args.datastore:
        try:
            others += asyncio.run(registry_addresses(args.datastore, args.node))
        except Exception as e:  # the registry is optional: say why it was skipped
            problems.append(f"node registry {args.datastore}: {e}")
    own = {a.ip for a in (address, address6) if a is not None}
    others = [o for o in others if o not in own]
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
        address=address if isinstance(address, IPv4Iface) else None,
        others=tuple(dict.fromkeys(o for o in others if o.version == 4)),
        gateway=gateway,
        gateway_bgp=gateway_bgp,
        ipip=encap.get("ipip"),
        vxlan=encap.get("vxlan"),
        cloud=cloud,
        underlay_filters=_tristate(args.underlay_filters),
        node_name=args.node,
        pool=args.pool,
        datastore=args.datastore or "",
        address6=address6 if isinstance(address6, IPv6Iface) else None,
        others6=tuple(dict.fromkeys(o for o in others if isinstance(o, IPv6Addr))),
        gateway6=gateway6 if isinstance(gateway6, IPv6Addr) else None,
        family=args.family,
        pool6=args.pool6,
    )
    return facts, problems


def render(advice: Advice, problems: list[str]) -> str:
    pods = {"ipv4": "IPv4", "ipv6": "IPv6-only", "dual": "dual stack (IPv4 and IPv6)"}
    lines = [
        f"Recommended: {advice.option} ({TITLES[advice.option]}), pods {pods[advice.family]}",
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
        if args.address6:
            ipaddress.IPv6Interface(args.address6)
        for p in args.peer:
            ipaddress.ip_address(p)
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
    p.add_argument("--address6", metavar="IP6/LEN", help="its IPv6 underlay address and subnet")
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="IP",
        help="another node, IPv4 or IPv6 (repeat)",
    )
    p.add_argument("--family", choices=FAMILIES, default="auto",
                   help="pod addresses: ipv4, ipv6, dual, or auto (dual when the node has "
                   "both an IPv4 and an IPv6 underlay address)")  # fmt: skip
    p.add_argument("--datastore", metavar="URL", help="read other nodes from the node registry")
    p.add_argument("--node", default=os.uname().nodename, help="this node's name")
    p.add_argument("--pool", default="10.244.0.0/16", help="pod CIDR for the snippet")
    p.add_argument("--pool6", default=POOL6, help="IPv6 pod CIDR for the snippet (/122 blocks)")
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
