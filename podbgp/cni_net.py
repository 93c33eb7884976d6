"""Pod plumbing in the kernel, Calico style (RECIPES.md §11): one veth per pod, no bridge.

The pod gets its address as a /32 (/128) and a default route via a fixed
link-local gateway, 169.254.1.1 for IPv4 and fe80::ecee:eeff:feee:eeee for
IPv6 (the EUI-64 link-local address of MAC ee:ee:ee:ee:ee:ee). Every host end
has that MAC, so a pod's neighbour entry never changes:

* IPv4: the host end answers ARP for 169.254.1.1 by proxy ARP (``proxy_arp=1``,
  ``proxy_delay=0``). The kernel only proxies an address it has a route to
  through *another* interface, so the node needs a default route or a route to
  169.254.1.1 elsewhere (RECIPES.md §11 pitfall; `gateway_route_missing`
  detects it and ADD logs a warning).
* IPv6: the host end owns fe80::ecee:eeff:feee:eeee itself (generated from the
  MAC). We turn DAD off on both ends (``accept_dad=0`` on the host end, the
  pod address added with IFA_F_NODAD) so the pod can use it at once instead of
  after DAD's second.

The node reaches the pod through ``ADDR/32 dev caliXXX scope link`` with the
plugin's own rtm_protocol (see `podbgp.cni_conf`). Forwarding is switched on
for the host end only (``conf.caliXXX.forwarding``); IPv6 forwarding between
interfaces also needs ``net.ipv6.conf.all.forwarding=1`` on the node, which is
the node's (the daemon's or the operator's) setting, not the plugin's.

Namespaces: the plugin runs in the node's namespace. The veth is created there
with its peer placed straight into the pod's namespace (``IFLA_NET_NS_FD`` of
the opened CNI_NETNS path, so the pod-side name never exists on the node).
Netlink in the pod's namespace goes through ``IPRoute(netns=PATH, flags=0)``:
pyroute2 forks a helper that enters the namespace by path (``/var/run/netns/X``
or ``/proc/PID/ns/net`` alike) and hands back the socket; ``flags=0`` makes a
wrong path an error instead of creating a namespace. Sysctls inside the pod
are written by a short-lived thread that `setns(2)`-s into it (``fib.netns.in_netns``),
because
/proc/sys/net follows the calling thread's namespace.

DEL needs no access to the pod at all: deleting the host end deletes its peer,
and the kernel drops the routes through it.

pyroute2 here, an exception to "only ``fib.netlink`` imports pyroute2" (STYLE.md): the
plugin is a separate, short-lived process run once per pod by the container runtime, not
part of the daemon's FIB. It changes links, addresses and a handful of routes in two
namespaces, which ``fib.netlink``'s route-batch interface does not cover, and nothing
it does is on a hot path. ``podbgp.cni`` (its ``_warn_gateway`` read) is the only other
importer, for the same process. The daemon never imports this module.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from fib.netns import in_netns

GATEWAY4 = "169.254.1.1"
GATEWAY6 = "fe80::ecee:eeff:feee:eeee"
GATEWAYS = {4: GATEWAY4, 6: GATEWAY6}
HOST_MAC = "ee:ee:ee:ee:ee:ee"
HOST_PREFIX = "cali"
IFA_F_NODAD = 0x02
RT_SCOPE_LINK = 253
IFF_UP = 0x1

IPIface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class PlumbingError(Exception):
    """A kernel operation failed; the message says which and why."""


class NoNetns(PlumbingError):
    """CNI_NETNS does not name a network namespace."""


class CheckFailed(PlumbingError):
    """CHECK found the pod's network not as ADD left it."""


def host_ifname(container_id: str) -> str:
    """The node end of a pod's veth: ``cali`` + 11 hex digits = 15 characters (IFNAMSIZ-1)."""
    return HOST_PREFIX + hashlib.sha1(container_id.encode()).hexdigest()[:11]


def host_prefix(addr: IPIface) -> str:
    return f"{addr.ip}/{addr.max_prefixlen}"


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def open_netns(path: str) -> IPRoute:
    """Netlink inside the namespace at `path`; `NoNetns` if it is not one."""
    if not os.path.exists(path):
        raise NoNetns(f"{path}: no such network namespace")
    try:
        return IPRoute(netns=path, flags=0)
    except (OSError, NetlinkError) as e:
        raise NoNetns(f"{path}: cannot enter the network namespace: {e}") from e


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def _mac(ipr: IPRoute, index: int) -> str:
    return str(ipr.get_links(index)[0].get("IFLA_ADDRESS"))


def _host_sysctls(ifname: str, versions: Iterable[int]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if 4 in versions:
        out += [
            (f"/proc/sys/net/ipv4/conf/{ifname}/proxy_arp", "1"),
            (f"/proc/sys/net/ipv4/neigh/{ifname}/proxy_delay", "0"),
            (f"/proc/sys/net/ipv4/conf/{ifname}/forwarding", "1"),
        ]
    if 6 in versions:
        out += [
            (f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "0"),
            (f"/proc/sys/net/ipv6/conf/{ifname}/accept_dad", "0"),
            (f"/proc/sys/net/ipv6/conf/{ifname}/accept_ra", "0"),
            (f"/proc/sys/net/ipv6/conf/{ifname}/forwarding", "1"),
        ]
    return out


def _pod_sysctls(ifname: str) -> Callable[[], None]:
    def apply() -> None:
        for key in ("all", ifname):
            write_sysctl(f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6", "0")
        write_sysctl(f"/proc/sys/net/ipv6/conf/{ifname}/accept_dad", "0")

    return apply


@dataclass(frozen=True, slots=True)
class Plumbed:
    """The MACs of both ends, for the ADD result."""

    host_mac: str
    pod_mac: str


def gateway_route_missing(ipr: IPRoute, host_if: str) -> bool:
    """True if the node has no route to 169.254.1.1 except through `host_if` (the pitfall)."""
    try:
        routes = ipr.route("get", dst=GATEWAY4)
    except NetlinkError:
        return True
    host_idx = _index(ipr, host_if)
    return not routes or routes[0].get("RTA_OIF") in (None, host_idx)


def _create_veth(ipr: IPRoute, host_if: str, pod_if: str, netns_path: str, mtu: int) -> int:
    old = _index(ipr, host_if)
    if old is not None:  # a repeated ADD: start over (a veth goes with its peer)
        ipr.link("del", index=old)
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        ipr.link(
            "add",
            ifname=host_if,
            kind="veth",
            address=HOST_MAC,
            mtu=mtu,
            peer={"ifname": pod_if, "net_ns_fd": fd, "mtu": mtu},
        )
    finally:
        os.close(fd)
    idx = _index(ipr, host_if)
    if idx is None:
        raise PlumbingError(f"{host_if} vanished right after it was created")
    return idx


def _plumb_pod(pod: IPRoute, netns_path: str, pod_if: str, addresses: Sequence[IPIface]) -> str:
    idx = _index(pod, pod_if)
    if idx is None:
        raise PlumbingError(f"{pod_if} did not appear in {netns_path}")
    if any(a.version == 6 for a in addresses):
        in_netns(netns_path, _pod_sysctls(pod_if))
    pod.link("set", index=idx, state="up")
    for a in addresses:
        pod.addr(
            "add",
            index=idx,
            address=str(a.ip),
            prefixlen=a.max_prefixlen,
            family=_family(a.version),
            flags=IFA_F_NODAD if a.version == 6 else 0,
        )
    for v in sorted({a.version for a in addresses}):
        if v == 4:
            pod.route("add", dst=f"{GATEWAY4}/32", oif=idx, scope=RT_SCOPE_LINK)
            pod.route("add", dst="0.0.0.0/0", gateway=GATEWAY4, oif=idx)
        else:
            pod.route("add", dst="::/0", gateway=GATEWAY6, oif=idx, family=socket.AF_INET6)
    return _mac(pod, idx)


def _host_route_args(addr: IPIface, index: int, protocol: int) -> dict[str, Any]:
    args: dict[str, Any] = {
        "dst": host_prefix(addr),
        "oif": index,
        "proto": protocol,
        "family": _family(addr.version),
    }
    if addr.version == 4:
        args["scope"] = RT_SCOPE_LINK
    return args


def add(
    netns_path: str,
    pod_if: str,
    host_if: str,
    addresses: Sequence[IPIface],
    mtu: int,
    protocol: int,
) -> Plumbed:
    """Wire a pod: veth, sysctls, the pod's address and routes, the node's route to it."""
    versions = {a.version for a in addresses}
    try:
        with IPRoute() as ipr:
            host_idx = _create_veth(ipr, host_if, pod_if, netns_path, mtu)
            for path, value in _host_sysctls(host_if, versions):
                write_sysctl(path, value)
            ipr.link("set", index=host_idx, state="up")
            with open_netns(netns_path) as pod:
                pod_mac = _plumb_pod(pod, netns_path, pod_if, addresses)
            for a in addresses:
                ipr.route("replace", **_host_route_args(a, host_idx, protocol))
            return Plumbed(host_mac=_mac(ipr, host_idx), pod_mac=pod_mac)
    except NoNetns:
        raise
    except (OSError, NetlinkError) as e:
        raise PlumbingError(f"wiring {host_if} <-> {pod_if}: {e}") from e


def delete(host_if: str) -> bool:
    """Remove the pod's veth (both ends, and the routes through it); False if it was gone."""
    try:
        with IPRoute() as ipr:
            idx = _index(ipr, host_if)
            if idx is None:
                return False
            ipr.link("del", index=idx)
            return True
    except NetlinkError as e:
        if e.code == errno.ENODEV:  # deleted concurrently (the pod's namespace went away)
            return False
        raise PlumbingError(f"deleting {host_if}: {e}") from e


def _routes(ipr: IPRoute, family: int, **match: Any) -> list[Any]:
    return list(ipr.route("dump", family=family, **match))


def _check_host(ipr: IPRoute, host_if: str, addresses: Sequence[IPIface]) -> int:
    idx = _index(ipr, host_if)
    if idx is None:
        raise CheckFailed(f"host interface {host_if} is missing")
    link = ipr.get_links(idx)[0]
    if not link["flags"] & IFF_UP:
        raise CheckFailed(f"host interface {host_if} is down")
    if link.get("IFLA_ADDRESS") != HOST_MAC:
        raise CheckFailed(f"host interface {host_if} has MAC {link.get('IFLA_ADDRESS')}")
    for a in addresses:
        found = _routes(ipr, _family(a.version), oif=idx)
        if not any(
            r.get("RTA_DST") == str(a.ip) and r["dst_len"] == a.max_prefixlen for r in found
        ):
            raise CheckFailed(f"node route {host_prefix(a)} dev {host_if} is missing")
    return idx


def _check_pod(pod: IPRoute, pod_if: str, host_idx: int, addresses: Sequence[IPIface]) -> None:
    idx = _index(pod, pod_if)
    if idx is None:
        raise CheckFailed(f"pod interface {pod_if} is missing")
    link = pod.get_links(idx)[0]
    if link.get("IFLA_LINK") != host_idx:
        raise CheckFailed(f"pod interface {pod_if} is not the peer of the host interface")
    if not link["flags"] & IFF_UP:
        raise CheckFailed(f"pod interface {pod_if} is down")
    have = {(m.get("IFA_ADDRESS"), m["prefixlen"]) for m in pod.get_addr(index=idx)}
    for a in addresses:
        if (str(a.ip), a.max_prefixlen) not in have:
            raise CheckFailed(f"pod address {host_prefix(a)} is missing on {pod_if}")
    for v in sorted({a.version for a in addresses}):
        found = _routes(pod, _family(v), oif=idx)
        if not any(r["dst_len"] == 0 and r.get("RTA_GATEWAY") == GATEWAYS[v] for r in found):
            raise CheckFailed(f"pod default route via {GATEWAYS[v]} is missing")


def check(netns_path: str, pod_if: str, host_if: str, addresses: Sequence[IPIface]) -> None:
    """CHECK (SPEC.md §"CHECK"): `CheckFailed` says what is missing."""
    try:
        with IPRoute() as ipr:
            host_idx = _check_host(ipr, host_if, addresses)
        with open_netns(netns_path) as pod:
            _check_pod(pod, pod_if, host_idx, addresses)
    except (NoNetns, CheckFailed):
        raise
    except (OSError, NetlinkError) as e:
        raise PlumbingError(f"checking {host_if} <-> {pod_if}: {e}") from e
