"""This node's identity as the rest of podbgp needs it: registry record, FIB node, pools.

Small pure mappings from the config (`podbgp.config`) to the types of the parts
below (`ipam`, `fib`), plus the one look-up of the kernel that they need: which
interface carries the node's address (the underlay whose MTU tunnels inherit).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import ipam
from fib.model import Encap, NodeInfo, Prefix, RemoteRoute, Vtep, pack_addr, vtep_mac
from podbgp.config import Config, IPAMConfig, Pool
from podbgp.fibfeed import PoolTable

VXLAN_HANDLE = "vxlan-tunnel-addr-{node}"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def ipam_config(config: Config) -> ipam.IpamConfig:
    """`[ipam]` as the IPAM package takes it."""
    return pools_config(config.ipam)


def pools_config(ic: IPAMConfig) -> ipam.IpamConfig:
    """An `[ipam]` table (validated by `podbgp.config`) as the IPAM package takes it."""
    pools = tuple(
        ipam.Pool(
            cidr=p.cidr,
            block_size=p.block_size,
            ipip_mode=p.ipip_mode.value,
            vxlan_mode=p.vxlan_mode.value,
            nat_outgoing=p.nat_outgoing,
            disabled=p.disabled,
            disable_bgp_export=p.disable_bgp_export,
            node_selector=p.node_selector,
        )
        for p in ic.pools
    )
    return ipam.IpamConfig(
        pools=pools, strict_affinity=ic.strict_affinity, max_blocks_per_node=ic.max_blocks_per_node
    )


def datastore_url(config: Config) -> str:
    ds = config.datastore
    if str(ds.kind) == "etcd":
        return "etcd:" + ",".join(ds.endpoints)
    return f"sqlite:{ds.path}"


def cluster_id_file(config: Config) -> str:
    """Where this node records the cluster ID it joined (`ipam.identity`).

    ``datastore.cluster_id_file``, or ``cluster-id`` in the control socket's
    directory: per node even when several nodes share a host (the lab), and
    never inside the store it vouches for. The default directory (/run) is
    emptied by a reboot, after which the node records the ID at its next
    contact with the store; set the key to a persistent path to keep it.
    """
    if config.datastore.cluster_id_file:
        return config.datastore.cluster_id_file
    return str(Path(config.api.socket).parent / "cluster-id")


def uses_vxlan(config: Config) -> bool:
    return any(p.vxlan_mode is not Encap.NEVER for p in config.ipam.pools)


def registry_record(config: Config, vtep_address: str = "") -> ipam.Node:
    n = config.node
    return ipam.Node(
        name=n.name,
        asn=n.asn,
        address=str(n.address) if n.address else "",
        address6=str(n.address6) if n.address6 else "",
        vtep_mac=vtep_mac(n.name) if vtep_address else "",
        vtep_address=vtep_address,
        route_reflector_cluster_id=str(config.bgp.route_reflector_cluster_id or ""),
        labels=dict(n.labels),
    )


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
    if config.node.address is None:
        return None
    ip = str(config.node.address.ip)
    return NodeInfo.parse(config.node.name, str(config.node.address),
                          underlay_interface(ip), vtep_address)  # fmt: skip


def vteps(nodes: Iterable[ipam.Node], me: str) -> dict[bytes, Vtep]:
    """Remote VTEPs by underlay address, from the registry."""
    out: dict[bytes, Vtep] = {}
    for node in nodes:
        if node.name == me or not (node.vtep_address and node.vtep_mac and node.address):
            continue
        underlay = pack_addr(str(ipaddress.ip_interface(node.address).ip))
        out[underlay] = Vtep(underlay, pack_addr(node.vtep_address), node.vtep_mac)
    return out


def pool_table(config: Config) -> PoolTable:
    """The pools' encapsulation modes as a longest-match table (built once per pool set)."""
    return _pool_table(config.ipam.pools)


@functools.lru_cache(maxsize=4)
def _pool_table(pools: tuple[Pool, ...]) -> PoolTable:
    return PoolTable((p.cidr, p.ipip_mode, p.vxlan_mode) for p in pools)


def remote_route(config: Config, prefix: IPNetwork, next_hops: Iterable[str]) -> RemoteRoute:
    """The FIB route to a remote prefix, encapsulated as its pool says (none outside pools).

    For the datastore-fed routes (VXLAN without BGP); BGP's best paths take the
    bulk path in `podbgp.fibfeed`."""
    fprefix = Prefix(prefix.network_address.packed, prefix.prefixlen)
    ipip, vxlan = pool_table(config).modes(fprefix.addr, fprefix.length)
    return RemoteRoute(fprefix, tuple(sorted(pack_addr(h) for h in next_hops)), ipip, vxlan)
