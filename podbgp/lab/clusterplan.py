"""The cluster lab's plan: racks, nodes, their labels and addresses, etcd, the ToRs (pure).

`podbgp lab up --topology cluster` builds a small data centre instead of one segment::

    PREFIX+core   the router joining the racks (10.99.255.0/31 to ToR a, .2/31 to ToR b);
                  the 3 etcd members on its loopback (10.99.0.1..3, ports 2379/2380)
    PREFIX+tor-a  bridge br0 10.99.1.254/24 for rack a, FRR AS 65101 with a listen range
    PREFIX+tor-b  bridge br0 10.99.2.254/24 for rack b, FRR AS 65102
    PREFIX+a1..   the nodes of rack a on 10.99.1.0/24, b1.. of rack b on 10.99.2.0/24, each
                  one `podbgp run` with the labels ``rack`` and (reflectors) ``route-reflector``
    PREFIX+a1-p1  pods, plugged in by `podbgp-cni` with CNI_ARGS K8S_POD_NAMESPACE

The racks are two subnets, so pods talk across them with VXLAN (CrossSubnet) and directly
within one; every node also peers with its rack's ToR (a route collector: the node exports its
blocks and imports nothing, so pod paths never depend on the ToR). Nodes are split evenly over
the racks; the first `reflectors` nodes of each rack (two by default: six nodes are two
reflectors and one client per rack) carry ``route-reflector = "true"``; with
``bgp.route_reflector_group_label = "rack"`` a client peers with its own rack's reflectors
only, and every in-cluster session carries TCP MD5 (``bgp.mesh_password``).

The cluster is configured as a cluster: `render_resources` is the one resources file
(`podbgp apply -f`: the BGP settings, the pools, a ToR peer per rack selected by the ``rack``
label), and `render_node_identity` each node's own file -- its name, address and labels,
the datastore, its socket, the lab's short lease timers, and on a reflector its cluster ID.
`expected_peers` says which sessions the labels call for.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from podbgp.lab.labplan import (
    BLOCK_SIZE,
    CLUSTER_ASN,
    CONNECT_RETRY,
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    HOLD_TIME,
    KEEPALIVE,
    POOL,
    PlanError,
    PodPlan,
)

RACKS = ("a", "b")
RACK_SUBNETS = ("10.99.1.0/24", "10.99.2.0/24")
TOR_BASE_ASN = 65100  # rack a's ToR is 65101, rack b's 65102
ETCD_HOSTS = ("10.99.0.1", "10.99.0.2", "10.99.0.3")
RR_LABEL = "route-reflector"
RACK_LABEL = "rack"
MAX_NODES = 60
# Short enough that a node gone for good is noticed within a test's wait: gone after
# lease + restart time + grace (18 s), its blocks released after GONE_AFTER.
RESTART_TIME = 10
LEASE_TTL = 3
GONE_GRACE = 5
GONE_AFTER = 20
POD_NAMESPACE = "lab"
LEGACY_POOL = "10.245.0.0/24"
MESH_PASSWORD = "lab-mesh-key"
LEGACY_NAMESPACE = "legacy"


@dataclass(frozen=True)
class ClusterNode:
    name: str  # "a1": rack letter and index in the rack; the namespace is PREFIX + name
    rack: int  # index into RACKS
    address: str  # with prefix length
    reflector: bool

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    @property
    def rack_name(self) -> str:
        return RACKS[self.rack]

    @property
    def gateway(self) -> str:
        return tor_address(self.rack)

    @property
    def labels(self) -> dict[str, str]:
        labels = {RACK_LABEL: self.rack_name}
        if self.reflector:
            labels[RR_LABEL] = "true"
        return labels


@dataclass(frozen=True)
class ClusterPlan:
    prefix: str
    state_dir: Path
    nodes: tuple[ClusterNode, ...]
    pods: tuple[PodPlan, ...]

    def ns(self, short: str) -> str:
        return self.prefix + short

    def node(self, name: str) -> ClusterNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def rack_nodes(self, rack: int) -> tuple[ClusterNode, ...]:
        return tuple(n for n in self.nodes if n.rack == rack)

    def config_path(self, node: str) -> Path:
        return self.state_dir / f"{node}.toml"

    def socket_path(self, node: str) -> Path:
        return self.state_dir / f"{node}.sock"

    @property
    def etcd_endpoints(self) -> list[str]:
        return [f"http://{h}:2379" for h in ETCD_HOSTS]

    @property
    def datastore_url(self) -> str:
        return "etcd:" + ",".join(self.etcd_endpoints)


def tor_address(rack: int) -> str:
    return str(ipaddress.ip_network(RACK_SUBNETS[rack]).network_address + 254)


def tor_asn(rack: int) -> int:
    return TOR_BASE_ASN + rack + 1


def uplink(rack: int) -> tuple[str, str]:
    """(core side, ToR side) of rack `rack`'s /31 to the core router."""
    base = ipaddress.ip_address("10.99.255.0") + 2 * rack
    return f"{base}/31", f"{base + 1}/31"


def plan_cluster(
    nodes: int = 6,
    pods_per_node: int = 1,
    prefix: str = DEFAULT_PREFIX,
    state_dir: str | Path = DEFAULT_STATE_DIR,
    reflectors: int = 2,
) -> ClusterPlan:
    """`nodes` nodes over the two racks (rack a gets the odd one), `reflectors` per rack."""
    if not 2 <= nodes <= MAX_NODES:
        raise PlanError(f"--nodes must be 2..{MAX_NODES} for the cluster topology, not {nodes}")
    if not 0 <= pods_per_node <= 20:
        raise PlanError(f"--pods-per-node must be 0..20, not {pods_per_node}")
    if not prefix or len(prefix) > 40 or "/" in prefix:
        raise PlanError(f"lab prefix {prefix!r} must be 1..40 characters without '/'")
    per_rack = ((nodes + 1) // 2, nodes // 2)
    plans = []
    for rack, count in enumerate(per_rack):
        net = ipaddress.ip_network(RACK_SUBNETS[rack])
        for i in range(1, count + 1):
            plans.append(ClusterNode(f"{RACKS[rack]}{i}", rack,
                                     f"{net.network_address + i}/{net.prefixlen}",
                                     reflector=i <= reflectors))  # fmt: skip
    pods = tuple(
        PodPlan(f"{n.name}-p{k}", n.name) for n in plans for k in range(1, pods_per_node + 1)
    )
    if pods_per_node:  # one pod of namespace `legacy` on each rack's last node
        last = [[n for n in plans if n.rack == r][-1] for r in range(len(RACKS))]
        pods += tuple(PodPlan(f"{n.name}-legacy", n.name, LEGACY_NAMESPACE) for n in last)
    return ClusterPlan(prefix, Path(state_dir).absolute(), tuple(plans), pods)


def expected_peers(
    plan: ClusterPlan, node: ClusterNode, gone: frozenset[str] = frozenset()
) -> set[str]:
    """The peer addresses the labels call for: a reflector peers with every other reflector
    and with its rack's clients; a client with its rack's reflectors; everyone with its ToR.
    Nodes named in `gone` have left the cluster."""
    peers = {node.gateway}
    for other in plan.nodes:
        if other is node or other.name in gone:
            continue
        both = node.reflector and other.reflector
        one_in_rack = (node.reflector or other.reflector) and other.rack == node.rack
        if both or one_in_rack:
            peers.add(other.ip)
    return peers


def _q(value: str) -> str:
    return json.dumps(value)


def _labels(node: ClusterNode) -> str:
    return "{ " + ", ".join(f"{k} = {_q(v)}" for k, v in node.labels.items()) + " }"


def rack_cluster_id(rack: int) -> str:
    """The route-reflection cluster ID of a rack's reflector pair (RFC 4456 §7)."""
    return f"10.99.{rack + 1}.253"


def _lifecycle() -> list[str]:
    """Lease and grace short enough for a test to see a node go (CONFIG.md defaults are
    15 s, 60 s and a day); leaked addresses checked every 2 s."""
    return [
        "[ipam]",
        f"node_lease_ttl = {LEASE_TTL}",
        f"node_gone_grace = {GONE_GRACE}",
        f"node_gone_after = {GONE_AFTER}",
        "leak_grace = 5",
        "leak_check_interval = 2",
    ]


def _groups() -> list[str]:
    """Reflector groups by rack; TCP MD5 on every in-cluster session."""
    return [
        f"route_reflector_group_label = {_q(RACK_LABEL)}",
        f"mesh_password = {_q(MESH_PASSWORD)}",
    ]


def _legacy_pool() -> list[str]:
    """The pool of namespace `legacy`'s pods: an old firewall matches them by this range."""
    return [
        "[[ipam.pool]]",
        f"cidr = {_q(LEGACY_POOL)}",
        "block_size = 28",
        'vxlan_mode = "CrossSubnet"',
        f"namespace_selector = 'projectcalico.org/name == {_q(LEGACY_NAMESPACE)}'",
        'allowed_uses = ["workload"]',
    ]


def render_resources(plan: ClusterPlan, tor_peers: bool = True) -> str:
    """The cluster's resources file (`podbgp apply -f`): BGP settings, pools and (unless
    `tor_peers` is false) a peer resource per rack's ToR."""
    lines = [
        "# the cluster lab's resources: `podbgp apply -f` this file",
        "[bgp]",
        f"asn = {CLUSTER_ASN}",
        f"hold_time = {HOLD_TIME}",
        f"keepalive = {KEEPALIVE}",
        f"connect_retry = {CONNECT_RETRY}",
        "mesh = true",
        f"restart_time = {RESTART_TIME}",
        *_groups(),
        "",
        "[[pool]]",
        'name = "default"',
        f"cidr = {_q(POOL)}",
        f"block_size = {BLOCK_SIZE}",
        'vxlan_mode = "CrossSubnet"',
        "",
        "[[pool]]",
        f"name = {_q(LEGACY_NAMESPACE)}",
        *_legacy_pool()[1:],
    ]
    for rack in range(len(RACKS) if tor_peers else 0):
        lines += [
            "",
            "[[peer]]  # the rack's ToR, for that rack's nodes only; it learns the pod blocks",
            f'name = "tor-{RACKS[rack]}"',
            f"address = {_q(tor_address(rack))}",
            f"asn = {tor_asn(rack)}",
            f"node_selector = '{RACK_LABEL} == {_q(RACKS[rack])}'",
            'families = ["ipv4"]',
            'import = "none"',
        ]
    return "\n".join(lines) + "\n"


def render_node_identity(plan: ClusterPlan, node: ClusterNode) -> str:
    """A node's own file: five lines that say who it is and where the datastore is (the rest
    is the cluster's), then what only the lab needs -- its nodes share one file system, so
    each has its own socket, and timers short enough to watch a node go -- and, on a
    reflector, its cluster ID."""
    endpoints = ", ".join(_q(e) for e in plan.etcd_endpoints)
    lines = [
        f'datastore = {{ kind = "etcd", endpoints = [{endpoints}] }}',
        "[node]",
        f"name = {_q(node.name)}",
        f"address = {_q(node.address)}",
        f"labels = {_labels(node)}",
        "",
        "# the lab's own: one file system for every node, short timers",
        "[api]",
        f"socket = {_q(str(plan.socket_path(node.name)))}",
        'metrics = ""',
        *_lifecycle(),
    ]
    if node.reflector:
        lines += ["[bgp]", f"route_reflector_cluster_id = {_q(rack_cluster_id(node.rack))}"]
    return "\n".join(lines) + "\n"
