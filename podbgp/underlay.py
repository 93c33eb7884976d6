"""The underlay: `node.address = "auto"` detection, and the MTUs derived from it.

Detection follows Calico's IP autodetection methods (the same names and arguments, so a
Calico user's ``IP_AUTODETECTION_METHOD`` carries over):

* ``first-found``: the first global unicast address of an interface that is up, in
  interface index order, skipping the interfaces of containers, bridges and tunnels
  (`SKIPPED_INTERFACES`) and loopback;
* ``interface=RE[,RE]``: the first address of an interface whose whole name matches;
* ``skip-interface=RE[,RE]``: ``first-found`` that also skips the names that match;
* ``can-reach=DEST``: the source address of the kernel's route to DEST (a route
  look-up, RTM_GETROUTE; nothing is sent), on the interface that route leaves by;
* ``cidr=CIDR[,CIDR]``: the first address inside one of the prefixes.

Only global-scope addresses whose duplicate address detection is done count. The
detected address keeps its prefix length: it is the node's subnet, which CrossSubnet
compares against.

The logic is pure over a `Kernel` (the interface list and one route look-up), so it is
tested as tables; `NetlinkUnderlay` is that kernel through `fib.netlink`, whose calls
block and belong on a thread of their own. `resolve` fills a config's "auto" addresses in
(the daemon at start and after every address change `fib.netlink.AddressWatch` reports;
`podbgp check`; the CNI plugin for the pod MTU).

MTUs: the underlay MTU is the MTU of the interface carrying the node's address. Each
encapsulation costs its outer headers (`OVERHEAD`): IP-in-IP 20 (RFC 2003 §3: one IPv4
header), VXLAN 50 over IPv4 and 70 over IPv6 (RFC 7348 §5: outer IP + UDP 8 + VXLAN 8 +
the inner Ethernet header 14). Tunnel devices get the underlay's less their overhead; a
pod gets the underlay's less the largest overhead of any enabled pool, since its packets
may take any of them. ``[fib] pod_mtu``/``ipip_mtu``/``vxlan_mtu`` win when set, and one
above what the underlay carries once encapsulated is a warning (`mtu_warnings`), not an
error: the operator may know the path better (jumbo frames beyond the first hop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fib import netlink
from fib.model import LinkAddress
from podbgp.config import Config, FIBConfig, Pool
from podbgp.config.schema import ROUTER_ID_FROM_ADDRESS, AddressDetection, DetectMethod

log = logging.getLogger("podbgp.underlay")

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Interfaces `first-found` never picks: loopback, container ends and bridges, tunnels,
# and node-local DNS/IPVS dummies whose addresses are not the node's.
SKIPPED_INTERFACES = re.compile(
    r"lo|docker.*|cbr.*|lxcbr.*|virbr.*|br-.*|veth.*|cali.*|cni.*|flannel.*|tunl.*|vxlan.*"
    r"|kube-ipvs.*|nodelocaldns.*|dummy.*"
)
RT_SCOPE_UNIVERSE = 0
BASE_MTU = 1500  # when no underlay interface is known (no address configured or found)
OVERHEAD = {("ipip", 4): 20, ("vxlan", 4): 50, ("vxlan", 6): 70}
SETTLE = 0.2  # seconds from an address event to the re-detection it triggers


class NoAddress(Exception):
    """Detection found nothing; the message says which method looked where."""


@dataclass(frozen=True, slots=True)
class Detected:
    """An underlay address with the interface carrying it and that interface's MTU."""

    address: IPInterface
    interface: str
    mtu: int


class Kernel(Protocol):
    """What detection reads from the kernel (`NetlinkUnderlay`; tables in tests)."""

    def addresses(self) -> Sequence[LinkAddress]:
        """Every address of every interface, interfaces in index order."""
        ...

    def route_source(self, destination: IPAddress) -> tuple[IPAddress, str] | None:
        """The source address and interface of the route to `destination`, if any."""
        ...


class NetlinkUnderlay:
    """`Kernel` on this network namespace, through `fib.netlink` (blocking calls)."""

    def addresses(self) -> Sequence[LinkAddress]:
        return netlink.link_addresses()

    def route_source(self, destination: IPAddress) -> tuple[IPAddress, str] | None:
        found = netlink.route_source(str(destination))
        return None if found is None else (ipaddress.ip_address(found[0]), found[1])


# ---------------------------------------------------------------- detection


def _usable(
    addresses: Sequence[LinkAddress], version: int
) -> list[tuple[LinkAddress, IPInterface]]:
    out = []
    for a in addresses:
        iface = ipaddress.ip_interface(a.address)
        if iface.version == version and a.up and a.scope == RT_SCOPE_UNIVERSE and not a.tentative:
            out.append((a, iface))
    return out


def _first(found: list[tuple[LinkAddress, IPInterface]]) -> Detected | None:
    return Detected(found[0][1], found[0][0].ifname, found[0][0].mtu) if found else None


def detect(method: AddressDetection, version: int, kernel: Kernel) -> Detected:
    """The IPv`version` address `method` picks; `NoAddress` saying why if none."""
    usable = _usable(kernel.addresses(), version)
    kind = method.method
    if kind is DetectMethod.CAN_REACH:
        assert method.destination is not None
        got = _can_reach(method.destination, usable, kernel)
    elif kind is DetectMethod.INTERFACE:
        got = _first([u for u in usable if any(p.fullmatch(u[0].ifname) for p in method.patterns)])
    elif kind is DetectMethod.CIDR:
        got = _first([u for u in usable if any(u[1].ip in c for c in method.cidrs)])
    else:  # first-found, skip-interface
        skip = (SKIPPED_INTERFACES, *method.patterns)
        got = _first([u for u in usable if not any(p.fullmatch(u[0].ifname) for p in skip)])
    if got is None:
        names = sorted({u[0].ifname for u in usable}) or ["none"]
        raise NoAddress(
            f"{method} found no IPv{version} address (interfaces with a global IPv{version} "
            f"address: {', '.join(names)})"
        )
    return got


def _can_reach(
    destination: IPAddress, usable: list[tuple[LinkAddress, IPInterface]], kernel: Kernel
) -> Detected | None:
    route = kernel.route_source(destination)
    if route is None:
        return None
    source, interface = route
    return _first([u for u in usable if u[1].ip == source]) or _first(
        [u for u in usable if u[0].ifname == interface]
    )


def carrier(address: IPInterface, kernel: Kernel) -> Detected | None:
    """The interface carrying a configured `address` (and its MTU), if it is there."""
    for a in kernel.addresses():
        iface = ipaddress.ip_interface(a.address)
        if iface.ip == address.ip:
            return Detected(address, a.ifname, a.mtu)
    return None


@dataclass(frozen=True, slots=True)
class Underlay:
    """What `resolve` found: the underlay of each family (None: none configured or found)."""

    v4: Detected | None = None
    v6: Detected | None = None

    @property
    def primary(self) -> Detected | None:
        """The underlay tunnels run over: IPv4's if there is one (VXLAN and IP-in-IP use it)."""
        return self.v4 or self.v6


def resolve(config: Config, kernel: Kernel) -> tuple[Config, Underlay]:
    """`config` with its "auto" addresses (and the router ID they imply) filled in, and the
    underlay of each family; `NoAddress` if a method finds nothing."""
    node = config.node
    v4 = v6 = None
    if node.address_detection is not None:
        v4 = detect(node.address_detection, 4, kernel)
    elif node.address is not None:
        v4 = carrier(node.address, kernel)
    if node.address6_detection is not None:
        v6 = detect(node.address6_detection, 6, kernel)
    elif node.address6 is not None:
        v6 = carrier(node.address6, kernel)
    changes: dict[str, object] = {}
    if node.address_detection is not None and v4 is not None:
        changes["address"] = v4.address
        if node.router_id == ROUTER_ID_FROM_ADDRESS:
            changes["router_id"] = v4.address.ip
    if node.address6_detection is not None and v6 is not None:
        changes["address6"] = v6.address
    if node.router_id == ROUTER_ID_FROM_ADDRESS and "router_id" not in changes:
        raise NoAddress("node.router_id: an IPv4 address is needed to derive it from")
    resolved = dataclasses.replace(config, node=dataclasses.replace(node, **changes))  # type: ignore[arg-type]
    return resolved, Underlay(v4, v6)


# ---------------------------------------------------------------- MTU


@dataclass(frozen=True, slots=True)
class Mtus:
    """The MTUs podbgp sets: a pod's veth, `tunl0`, `vxlan.podbgp`."""

    underlay: int
    pod: int
    ipip: int
    vxlan: int


def _enabled(pools: Sequence[Pool]) -> list[Pool]:
    return [p for p in pools if not p.disabled]


def derived_mtus(underlay_mtu: int, underlay_version: int, pools: Sequence[Pool]) -> Mtus:
    """What the underlay allows: tunnels its MTU less their overhead, pods less the largest
    overhead any enabled pool's encapsulation adds."""
    ipip = underlay_mtu - OVERHEAD[("ipip", 4)]
    vxlan = underlay_mtu - OVERHEAD[("vxlan", underlay_version)]
    pod = underlay_mtu
    for p in _enabled(pools):
        if p.vxlan_mode.value != "Never":
            pod = min(pod, vxlan)
        if p.ipip_mode.value != "Never":
            pod = min(pod, ipip)
    return Mtus(underlay_mtu, pod, ipip, vxlan)


def effective_mtus(fib: FIBConfig, derived: Mtus) -> Mtus:
    """The configured MTUs where set, the derived ones elsewhere."""
    return Mtus(
        derived.underlay,
        fib.pod_mtu or derived.pod,
        fib.ipip_mtu or derived.ipip,
        fib.vxlan_mtu or derived.vxlan,
    )


def mtu_warnings(fib: FIBConfig, derived: Mtus, interface: str) -> list[str]:
    """A line per configured MTU above what the underlay carries once encapsulated."""
    out = []
    for key, configured, limit in (
        ("pod_mtu", fib.pod_mtu, derived.pod),
        ("ipip_mtu", fib.ipip_mtu, derived.ipip),
        ("vxlan_mtu", fib.vxlan_mtu, derived.vxlan),
    ):
        if configured > limit:
            out.append(
                f"fib.{key} = {configured} is above the {limit} the underlay carries "
                f"({interface} MTU {derived.underlay}); larger packets will be dropped or "
                "fragmented"
            )
    return out


def underlay_mtus(config: Config, underlay: Underlay) -> tuple[Mtus, list[str]]:
    """The effective MTUs for `config` over `underlay`, and the warnings they raise.

    Without a known underlay interface the base is 1500 (and nothing is warned about)."""
    primary = underlay.primary
    if primary is None:
        base = derived_mtus(BASE_MTU, 4, config.ipam.pools)
        return effective_mtus(config.fib, base), []
    derived = derived_mtus(primary.mtu, primary.address.version, config.ipam.pools)
    return effective_mtus(config.fib, derived), mtu_warnings(config.fib, derived, primary.interface)


# ---------------------------------------------------------------- following changes


def is_detected(config: Config) -> bool:
    """Whether an address of `config` is "auto" (and so followed while running)."""
    return config.node.address_detection is not None or config.node.address6_detection is not None


async def follow(
    current: Callable[[], Config],
    on_change: Callable[[Config, Underlay], Awaitable[None]],
    kernel: Kernel | None = None,
    settle: float = SETTLE,
) -> None:
    """Re-detect on every address or link change the kernel reports (no polling) and call
    `on_change` with the re-resolved config when an address moved.

    `current` gives the running config (a reload may replace it). A burst of changes
    (an address replaced is a delete and an add) is read once `settle` seconds after its
    first event. A method that finds nothing keeps the address in use, with a warning:
    an interface flapping must not take the node's address away."""
    kernel = kernel or NetlinkUnderlay()
    watch = netlink.AddressWatch()
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def readable() -> None:
        if watch.drain():
            changed.set()

    loop.add_reader(watch.fileno(), readable)
    try:
        while True:
            await changed.wait()
            await asyncio.sleep(settle)
            changed.clear()
            config = current()
            try:
                new, found = await asyncio.to_thread(resolve, config, kernel)
            except NoAddress as exc:
                log.warning("underlay: %s; keeping %s", exc, _addresses(config))
                continue
            if _addresses(new) != _addresses(config):
                log.warning("underlay: node address %s -> %s", _addresses(config), _addresses(new))
                await on_change(new, found)
    finally:
        loop.remove_reader(watch.fileno())
        watch.close()


def _addresses(config: Config) -> str:
    return " ".join(str(a) for a in (config.node.address, config.node.address6) if a is not None)
