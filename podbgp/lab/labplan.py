"""The demo lab's plan: which networking option, which nodes, which addresses, which configs.

Pure: given an option name and sizes, `plan_lab` returns a `LabPlan` (namespaces, subnets,
node addresses and AS numbers, the ToR's role) and `render_node_config` turns one node of it
into a podbgp TOML config (CONFIG.md). `podbgp.lab.lab` then builds what the plan says.

The options are the networking choices of DESIGN.md's table:

* ``mesh`` -- unencapsulated, iBGP full node-to-node mesh, one L2 segment.
* ``rr`` -- unencapsulated, the first node is an in-cluster route reflector (RFC 4456).
* ``peered`` -- unencapsulated, each node has its own AS and an eBGP session to an FRR ToR,
  which learns every pod block (RFC 7938 style); pods are reachable from the ToR without NAT.
* ``vxlan`` -- VXLAN Always and no BGP at all: routes to other nodes' blocks come from the
  shared datastore (how a VXLAN-only cluster runs).
* ``vxlan-crosssubnet`` -- nodes on two subnets routed by the ToR; BGP mesh; VXLAN only
  between subnets.
* ``ipip`` / ``ipip-crosssubnet`` -- the same with IP-in-IP (needs the kernel's ``ipip``).

Each option runs in one of three address families (``--family``):

* ``ipv4`` -- IPv4 underlay, one IPv4 pool (the default);
* ``ipv6`` -- IPv6-only: IPv6 underlay (``node.address6``), one IPv6 pool of /122 blocks,
  BGP sessions over IPv6 carrying IPv6 unicast only;
* ``dual`` -- both underlays and both pools, every pod one address of each family; the BGP
  sessions run over IPv4 and carry both families, IPv6 routes with the node's global IPv6
  address as next hop (RFC 4760 §3: the MP_REACH next hop is of the NLRI's family), the way
  FRR and BIRD exchange IPv6 routes over an IPv4 session.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PREFIX = "podbgp-lab-"
DEFAULT_STATE_DIR = "/tmp/podbgp-lab"
POOL = "10.244.0.0/16"
BLOCK_SIZE = 26
CLUSTER_ASN = 64512
TOR_ASN = 65000
# The two node subnets; the ToR owns .254 in each.
SUBNETS = ("10.99.1.0/24", "10.99.2.0/24")
# An address outside every pool and node subnet, on the ToR: the "internet" for nat_outgoing.
EXTERNAL = "203.0.113.1"
# The IPv6 counterparts: a /56 pool of /122 blocks (CONFIG.md's IPv6 default), two /64s.
POOL6 = "fd00:10:244::/56"
BLOCK_SIZE6 = 122
SUBNETS6 = ("fd00:99:1::/64", "fd00:99:2::/64")
EXTERNAL6 = "2001:db8:203::1"
FAMILIES = ("ipv4", "ipv6", "dual")
DEFAULT_FAMILY = "ipv4"
MAX_NODES = 50
MAX_PODS = 20
# BGP timers small enough for a lab that converges in seconds (hold 9 / keepalive 3).
HOLD_TIME = 9
KEEPALIVE = 3
CONNECT_RETRY = 1


@dataclass(frozen=True)
class Option:
    """One networking option: its encapsulation, its BGP topology and its underlay.

    ``title`` names the option as `podbgp advise` and the docs do; ``summary`` says how the
    lab builds it. This is the one list of options: `podbgp advise` recommends among them.
    """

    name: str
    title: str
    summary: str
    encap: str = ""  # "" | "ipip" | "vxlan"
    mode: str = "Never"  # Never | Always | CrossSubnet
    bgp: str = "mesh"  # mesh | rr | tor | none
    two_subnets: bool = False

    @property
    def needs_tor_bgp(self) -> bool:
        return self.bgp == "tor"


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option(
            "mesh",
            "unencapsulated node-to-node mesh",
            "unencapsulated, iBGP full node-to-node mesh, one L2 segment",
        ),
        Option(
            "rr",
            "unencapsulated, in-cluster route reflector",
            "unencapsulated, node 1 is the route reflector, one L2 segment",
            bgp="rr",
        ),
        Option(
            "peered",
            "unencapsulated, peered with the physical network (ToR)",
            "unencapsulated, eBGP from every node (own AS) to an FRR ToR",
            bgp="tor",
        ),
        Option(
            "vxlan",
            "VXLAN Always",
            "VXLAN Always, no BGP: routes from the datastore",
            "vxlan",
            "Always",
            bgp="none",
        ),
        Option(
            "vxlan-crosssubnet",
            "VXLAN across subnets, unencapsulated within one",
            "two subnets, BGP mesh, VXLAN only across subnets",
            "vxlan",
            "CrossSubnet",
            two_subnets=True,
        ),
        Option(
            "ipip",
            "IP-in-IP Always",
            "IP-in-IP Always, BGP mesh, one L2 segment",
            "ipip",
            "Always",
        ),
        Option(
            "ipip-crosssubnet",
            "IP-in-IP across subnets, unencapsulated within one",
            "two subnets, BGP mesh, IP-in-IP only across subnets",
            "ipip",
            "CrossSubnet",
            two_subnets=True,
        ),
    )
}
DEFAULT_OPTION = "mesh"


@dataclass(frozen=True)
class NodePlan:
    name: str  # short name, e.g. "n1"; the namespace is PREFIX + name
    index: int  # 1-based
    asn: int
    address: str  # with prefix length, e.g. "10.99.1.1/24"; "" in an IPv6-only lab
    subnet: int  # index into SUBNETS (and SUBNETS6)
    route_reflector: bool = False
    address6: str = ""  # e.g. "fd00:99:1::1/64"; "" in an IPv4-only lab
    router_id: str = ""  # the IPv4 address the node has (or would have: IPv6-only)

    @property
    def ip(self) -> str:
        """The IPv4 address ("" in an IPv6-only lab)."""
        return str(ipaddress.ip_interface(self.address).ip) if self.address else ""

    @property
    def ip6(self) -> str:
        return str(ipaddress.ip_interface(self.address6).ip) if self.address6 else ""

    @property
    def session_ip(self) -> str:
        """Where its BGP sessions run: IPv4 when it has IPv4, else IPv6."""
        return self.ip or self.ip6

    @property
    def gateway(self) -> str:
        return tor_address(self.subnet)

    @property
    def gateway6(self) -> str:
        return tor_address6(self.subnet)


@dataclass(frozen=True)
class PodPlan:
    name: str  # short name, e.g. "n1-p1"; the namespace is PREFIX + name
    node: str
    namespace: str = "lab"  # the Kubernetes namespace the runtime names in CNI_ARGS

    @property
    def container_id(self) -> str:
        """The CNI container ID (CNI spec: alphanumerics, '-', '_', '.')."""
        return "lab-" + self.name


@dataclass(frozen=True)
class LabPlan:
    option: Option
    prefix: str
    state_dir: Path
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    nat_outgoing: bool = False
    subnets: tuple[str, ...] = field(default=SUBNETS[:1])
    family: str = DEFAULT_FAMILY

    @property
    def v4(self) -> bool:
        return self.family != "ipv6"

    @property
    def v6(self) -> bool:
        return self.family != "ipv4"

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(v for v, on in ((4, self.v4), (6, self.v6)) if on)

    @property
    def subnets6(self) -> tuple[str, ...]:
        return SUBNETS6[: len(self.subnets)] if self.v6 else ()

    def ns(self, short: str) -> str:
        return self.prefix + short

    def node(self, name: str) -> NodePlan:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def config_path(self, node: str) -> Path:
        return self.state_dir / f"{node}.toml"

    def socket_path(self, node: str) -> Path:
        return self.state_dir / f"{node}.sock"

    @property
    def datastore(self) -> Path:
        return self.state_dir / "podbgp.db"


class PlanError(ValueError):
    """The lab cannot be built as asked (unknown option, too many nodes...)."""


def tor_address(subnet: int) -> str:
    net = ipaddress.ip_network(SUBNETS[subnet])
    return str(net.network_address + 254)


def tor_address6(subnet: int) -> str:
    net = ipaddress.ip_network(SUBNETS6[subnet])
    return str(net.network_address + 254)


def plan_lab(
    option: str = DEFAULT_OPTION,
    nodes: int = 3,
    pods_per_node: int = 2,
    prefix: str = DEFAULT_PREFIX,
    state_dir: str | Path = DEFAULT_STATE_DIR,
    nat_outgoing: bool = False,
    family: str = DEFAULT_FAMILY,
) -> LabPlan:
    """The lab for `option`: N nodes split over one or two subnets, K pods each."""
    if option not in OPTIONS:
        raise PlanError(f"unknown option {option!r}; choose one of {', '.join(OPTIONS)}")
    if family not in FAMILIES:
        raise PlanError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if OPTIONS[option].encap == "ipip" and family != "ipv4":
        # RFC 2003 encapsulates IPv4 in IPv4; IPv6 pods would need another tunnel (sit or
        # ip6tnl), which podbgp does not build: VXLAN carries both families.
        raise PlanError(f"option {option} carries IPv4 only (IP-in-IP, RFC 2003); "
                        f"for --family {family} choose vxlan or vxlan-crosssubnet")  # fmt: skip
    if not 1 <= nodes <= MAX_NODES:
        raise PlanError(f"--nodes must be 1..{MAX_NODES}, not {nodes}")
    if not 1 <= pods_per_node <= MAX_PODS:
        raise PlanError(f"--pods-per-node must be 1..{MAX_PODS}, not {pods_per_node}")
    if not prefix or len(prefix) > 40 or "/" in prefix:
        raise PlanError(f"lab prefix {prefix!r} must be 1..40 characters without '/'")
    opt = OPTIONS[option]
    if opt.two_subnets and nodes < 2:
        raise PlanError(f"option {option} needs at least 2 nodes (one per subnet)")
    first_subnet = (nodes + 1) // 2  # nodes 1..ceil(N/2) on subnet 0, the rest on subnet 1
    node_plans = []
    for i in range(1, nodes + 1):
        subnet = 1 if opt.two_subnets and i > first_subnet else 0
        net = ipaddress.ip_network(SUBNETS[subnet])
        net6 = ipaddress.ip_network(SUBNETS6[subnet])
        address = f"{net.network_address + i}/{net.prefixlen}"
        address6 = f"{net6.network_address + i}/{net6.prefixlen}"
        asn = TOR_ASN + i if opt.bgp == "tor" else CLUSTER_ASN
        node_plans.append(
            NodePlan(
                name=f"n{i}",
                index=i,
                asn=asn,
                address=address if family != "ipv6" else "",
                subnet=subnet,
                route_reflector=opt.bgp == "rr" and i == 1,
                address6=address6 if family != "ipv4" else "",
                router_id=str(net.network_address + i),
            )
        )
    pods = tuple(
        PodPlan(f"{n.name}-p{k}", n.name) for n in node_plans for k in range(1, pods_per_node + 1)
    )
    return LabPlan(
        option=opt,
        prefix=prefix,
        state_dir=Path(state_dir).absolute(),
        nodes=tuple(node_plans),
        pods=pods,
        nat_outgoing=nat_outgoing,
        subnets=SUBNETS if opt.two_subnets else SUBNETS[:1],
        family=family,
    )


def _q(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these ASCII values)."""
    return json.dumps(value)


def render_node_config(plan: LabPlan, node: NodePlan) -> str:
    """The podbgp config (CONFIG.md) of one lab node."""
    opt = plan.option
    lines = [
        f"# podbgp lab node {node.name}, option {opt.name}: {opt.summary}",
        "[node]",
        f"name = {_q(node.name)}",
        f"asn = {node.asn}",
        f"router_id = {_q(node.router_id)}",
    ]
    if node.address:
        lines.append(f"address = {_q(node.address)}")
    if node.address6:
        lines.append(f"address6 = {_q(node.address6)}")
    lines += ["", "[bgp]"]
    if opt.bgp == "none":
        lines.append("enabled = false")
    else:
        lines += [
            f"listen = [{', '.join(_q(a) for a in (node.ip, node.ip6) if a)}]",
            f"hold_time = {HOLD_TIME}",
            f"keepalive = {KEEPALIVE}",
            f"connect_retry = {CONNECT_RETRY}",
            f"mesh = {'false' if opt.bgp == 'tor' else 'true'}",
            # Short restart time: a lab daemon restarted by hand should not hold stale
            # routes for the default two minutes.
            "restart_time = 30",
        ]
        if node.route_reflector:
            lines.append(f"route_reflector_cluster_id = {_q(node.router_id)}")
        if opt.bgp == "tor":
            lines += _tor_peer_lines(plan, node)
    lines += ["", "[datastore]", 'kind = "sqlite"', f"path = {_q(str(plan.datastore))}"]
    for cidr, size in ((POOL, BLOCK_SIZE), (POOL6, BLOCK_SIZE6)):
        if (":" in cidr and not plan.v6) or ("." in cidr and not plan.v4):
            continue
        lines += ["", "[[ipam.pool]]", f"cidr = {_q(cidr)}", f"block_size = {size}"]
        if opt.encap:
            lines.append(f"{opt.encap}_mode = {_q(opt.mode)}")
        lines.append(f"nat_outgoing = {'true' if plan.nat_outgoing else 'false'}")
    lines += ["", "[fib]", "enabled = true"]
    lines += ["", "[api]", f"socket = {_q(str(plan.socket_path(node.name)))}", 'metrics = ""']
    return "\n".join(lines) + "\n"


def _tor_peer_lines(plan: LabPlan, node: NodePlan) -> list[str]:
    """The eBGP session to the ToR: over IPv4 (both families in a dual lab), or over IPv6."""
    families = {"ipv4": '["ipv4"]', "dual": '["ipv4", "ipv6"]', "ipv6": '["ipv6"]'}
    address = node.gateway6 if plan.family == "ipv6" else node.gateway
    return ["", "[[bgp.peer]]", f"address = {_q(address)}", f"asn = {TOR_ASN}",
            f"families = {families[plan.family]}", 'export = "local"']  # fmt: skip
