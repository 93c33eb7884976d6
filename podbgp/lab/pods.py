"""Pods in the lab: each one a namespace plugged in as a container runtime would.

With the CNI plugin installed, `add_pod` runs `podbgp-cni ADD` in the node's namespace with
the environment and stdin a runtime gives it (CNI spec 1.0), and reads the pod's address
from its result. Without it, the lab allocates from podbgp's IPAM itself and plumbs the
pod the plugin's way (a veth, the pod's /32, a default route via the link-local gateway
that the node answers by proxy ARP). `init_datastore` creates the lab's shared SQLite
datastore with its cluster ID before any daemon starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from podbgp.lab.labplan import LabPlan, PodPlan, render_node_config
from podbgp.lab.netns import IP, Netns, new_netns
from podbgp.lab.shell import LabError, run

GATEWAY = "169.254.1.1"  # the pods' default gateway, answered by proxy ARP on the node
GATEWAY6 = "fe80::ecee:eeff:feee:eeee"  # the link-local address of the node's veth end
CNI_VERSION = "1.0.0"


def host_ifname(container_id: str) -> str:
    """The node side of a pod's veth: 15 characters at most (IFNAMSIZ)."""
    return "lab" + hashlib.sha1(container_id.encode()).hexdigest()[:11]


def cni_plugin() -> str | None:
    """The `podbgp-cni` executable next to this interpreter, if the plugin is installed."""
    if importlib.util.find_spec("podbgp.cni") is None:
        return None
    exe = Path(sys.executable).parent / "podbgp-cni"
    return str(exe) if exe.exists() else shutil.which("podbgp-cni")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class CniLab(Protocol):
    """What a CNI call needs of a lab: `LabPlan` and the cluster lab's `ClusterPlan`."""

    @property
    def state_dir(self) -> Path: ...

    def ns(self, short: str) -> str: ...

    def config_path(self, node: str) -> Path: ...

    def node(self, name: str) -> _Named: ...


def cni_netconf(plan: CniLab, node: _Named) -> dict[str, Any]:
    """The network configuration a runtime would pass on stdin (CNI spec §"Network config")."""
    return {
        "cniVersion": CNI_VERSION,
        "name": "podbgp-lab",
        "type": "podbgp-cni",
        "podbgp_config": str(plan.config_path(node.name)),
        "ipam": {"type": "podbgp"},
        "log_file": str(plan.state_dir / "cni.log"),
    }


def cni_call(
    plan: CniLab, pod: PodPlan, command: str, plugin: str, timeout: float = 30
) -> dict[str, Any]:
    """Run the plugin in the node's namespace as a runtime would (CNI spec 1.0 §"Execution")."""
    node = plan.node(pod.node)
    env = {
        **os.environ,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": f"/run/netns/{plan.ns(pod.name)}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(plugin).parent),
        "CNI_ARGS": f"K8S_POD_NAME={pod.name};K8S_POD_NAMESPACE={pod.namespace}",
    }
    stdin = json.dumps(cni_netconf(plan, node))
    proc = subprocess.run(
        [IP, "netns", "exec", plan.ns(node.name), plugin],
        input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise LabError(f"podbgp-cni {command} {pod.name}: {proc.stdout.strip()} {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def result_ip(result: dict[str, Any]) -> str:
    """The pod's IPv4 address from a CNI result."""
    return result_ips(result, (4,))[4]


def result_ips(result: dict[str, Any], versions: Sequence[int]) -> dict[int, str]:
    """The pod's address of each IP version in `versions` from a CNI result (SPEC.md
    §"Success": ``ips``), one per version, or a LabError naming what is missing."""
    found: dict[int, str] = {}
    for ip in result.get("ips", []):
        addr = str(ip.get("address", "")).split("/")[0]
        found.setdefault(6 if ":" in addr else 4, addr)
    missing = [f"IPv{v}" for v in versions if v not in found]
    if missing:
        raise LabError(f"the CNI result has no {' or '.join(missing)} address: {result}")
    return found


async def init_datastore(plan: LabPlan) -> str:
    """Create the lab's SQLite store and its cluster ID: no podbgp process creates one itself."""
    from ipam.identity import init_cluster
    from ipam.store import OpenMode, open_store

    store = open_store(f"sqlite:{plan.datastore}", OpenMode.CREATE)
    try:
        return (await init_cluster(store)).cluster_id
    finally:
        await store.close()


async def _allocate(plan: LabPlan, pod: PodPlan) -> dict[int, str]:
    import ipam
    from ipam.identity import join
    from ipam.store import open_store
    from podbgp import wiring
    from podbgp.config import load_config_text

    config = load_config_text(render_node_config(plan, plan.node(pod.node)))
    store = open_store(f"sqlite:{plan.datastore}")
    try:
        joined = await join(store, wiring.cluster_id_file(config))
        alloc = ipam.Ipam(joined, wiring.ipam_config(config))
        found = {}
        for v in plan.versions:
            got = await alloc.allocate(pod.node, pod.container_id, v, {"pod": pod.name})
            found[v] = str(got.address)
        return found
    finally:
        await store.close()


def plumb_pod(plan: LabPlan, pod: PodPlan, addresses: dict[int, str]) -> None:
    """Calico-style pod wiring by hand (RECIPES.md §11): /32 on the pod, proxy ARP on the
    node; for IPv6 a /128 and the link-local gateway the node's veth owns (`cni_net`).

    Only used when the CNI plugin is not installed; `podbgp-cni ADD` does the same."""
    node = Netns(plan.ns(pod.node))
    ns = Netns(plan.ns(pod.name))
    hif = host_ifname(pod.container_id)
    run([IP, "link", "add", "eth0", "netns", ns.name, "type", "veth",
          "peer", "name", hif, "netns", node.name])  # fmt: skip
    node.ip("link", "set", hif, "address", "ee:ee:ee:ee:ee:ee", "up")
    ns.ip("link", "set", "eth0", "up")
    if 4 in addresses:
        address = addresses[4]
        node.sysctl(f"net.ipv4.conf.{hif}.proxy_arp=1", f"net.ipv4.neigh.{hif}.proxy_delay=0")
        node.ip("route", "replace", f"{address}/32", "dev", hif, "scope", "link")
        ns.ip("addr", "add", f"{address}/32", "dev", "eth0")
        ns.ip("route", "add", GATEWAY, "dev", "eth0", "scope", "link")
        ns.ip("route", "add", "default", "via", GATEWAY, "dev", "eth0")
    if 6 in addresses:
        address = addresses[6]
        node.ip("route", "replace", f"{address}/128", "dev", hif)
        ns.ip("addr", "add", f"{address}/128", "dev", "eth0", "nodad")
        ns.ip("-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0")


def add_pod(plan: LabPlan, pod: PodPlan, plugin: str | None) -> dict[str, Any]:
    """Create the pod's namespace and put it on the network; returns its state record."""

    new_netns(plan.ns(pod.name))
    if plugin:
        addresses = result_ips(cni_call(plan, pod, "ADD", plugin), plan.versions)
        via = "cni"
    else:
        addresses = asyncio.run(_allocate(plan, pod))
        plumb_pod(plan, pod, addresses)
        via = "plumbing"
    # "ip" is the pod's first address (IPv4 unless the lab is IPv6-only), "ip6" its IPv6.
    primary = addresses[min(addresses)]
    return {"name": pod.name, "node": pod.node, "ns": plan.ns(pod.name), "ip": primary,
            "ip6": addresses.get(6, ""), "container_id": pod.container_id, "via": via}  # fmt: skip
