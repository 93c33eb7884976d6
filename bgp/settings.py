"""Typed settings for the BGP speaker, its peers and its listen ranges.

``bgp`` sits below ``podbgp`` in the layering, so it cannot read the daemon's
config; the daemon maps ``[bgp]``, ``[[bgp.peer]]`` and ``[[bgp.listen_range]]``
(CONFIG.md) onto these frozen dataclasses. Defaults follow CONFIG.md.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from bgp.ndp import Discovery
from bgp.wire.capabilities import AddPathMode
from bgp.wire.constants import Family

LLGR_STALE_TIME_MAX = 0xFFFFFF  # RFC 9494 §3: a 24-bit field, seconds

__all__ = [
    "AddPathMode",
    "Discovery",
    "ListenRange",
    "PeerSettings",
    "SpeakerSettings",
    "link_peer_address",
]


def link_peer_address(interface: str) -> str:
    """The name of an unnumbered peer whose address is discovered on ``interface``:
    ``fe80::%eth1``. fe80:: is the subnet-router anycast address of the link-local
    prefix (RFC 4291 §2.6.1), never a neighbour's own address, so the name cannot
    be taken by a peer configured with a fixed address."""
    return f"fe80::%{interface}"


@dataclass(frozen=True, slots=True)
class PeerSettings:
    """One neighbour (or the template of a listen range, whose ``address`` is unused).

    - ``asn``: the peer's AS; 0 accepts any AS (listen ranges: "any").
    - ``ttl_security``: GTSM hops (RFC 5082), 0 = off. ``multihop``: outgoing
      TTL for eBGP when GTSM is off (1 = directly connected).
    - ``hold_time``: 0 or ≥ 3 (RFC 4271 §4.2); ``keepalive`` None = hold/3.
    - ``connect_retry``: the first ConnectRetry interval; it doubles on each
      failed attempt up to ``connect_retry_max`` (back-off).
    - ``delay_open``: DelayOpen seconds (RFC 4271 §8.1.1 attributes 20-22), 0 = off.
    - ``restarting``: we are a restarting speaker (RFC 4724 §3: Restart State
      bit set, forwarding state preserved for every family).
    - ``long_lived_stale_time``: seconds of long-lived graceful restart (RFC
      9494 §3), 0 = off; offered (with graceful restart only) for every family,
      and the longest we keep a peer's routes as long-lived stale.
    - ``graceful_notification``: set the N bit in our graceful-restart
      capability (RFC 8538 §2): with the peer's N too, NOTIFICATIONs other
      than Hard Reset keep routes stale (``bgp.restart``).
    - ``connect_on_start``: a ``passive`` peer still dials once when the
      session is started (not on later retries): after a restart of this
      node the peer learns of it at once (a new OPEN ends its old session,
      RFC 4724 §4.2) instead of after its own retry timer or hold time.
    - ``connect_delay``: how long that one dial waits for the peer's own
      connection first (0 = at once). Where both sides add each other at the
      same moment, the active side's connection then arrives first and no
      collision (RFC 4271 §6.8) is opened; if none comes, the dial still goes.
    - ``shutdown_message``: the RFC 9003 text sent when the peer is shut down
      or removed without a message of its own.
    - ``enforce_first_as``: an eBGP UPDATE whose AS_PATH does not start with
      the peer's AS is treated as withdraw (RFC 4271 §6.3, RFC 7606 §7.2);
      turn off for a route server that does not prepend its AS (RFC 7947).
    - ``local_as``: the AS this session presents (OPEN's My Autonomous System
      and the 4-octet AS capability, RFC 6793) in place of the speaker's; 0 =
      the speaker's. RFC 7705 §3's "local AS" for AS migration; what it does to
      AS_PATH is the RIB's business (``rib.settings.PeerPolicy.local_as``).
    - ``interface``: an unnumbered session over this link's IPv6 link-local
      addresses. ``address`` is then the neighbour's link-local address with
      the interface as its zone (``fe80::2%eth1``), or, with ``discovery``
      set, ``link_peer_address(interface)``: the neighbour is found on the link
      (``bgp.ndp``), every ``discovery_interval`` seconds until it is.
    """

    address: str
    asn: int
    local_address: str | None = None
    port: int = 179
    passive: bool = False
    password: str | None = None
    ttl_security: int = 0
    multihop: int = 1
    hold_time: int = 90
    keepalive: int | None = None
    connect_retry: float = 5.0
    connect_retry_max: float = 120.0
    delay_open: float = 0.0
    families: tuple[Family, ...] = (Family.IPV4_UNICAST, Family.IPV6_UNICAST)
    add_path: AddPathMode = AddPathMode.OFF
    graceful_restart: bool = False
    restart_time: int = 120
    restarting: bool = False
    long_lived_stale_time: int = 0
    graceful_notification: bool = True
    connect_on_start: bool = False
    connect_delay: float = 0.0
    route_refresh: bool = True
    extended_message: bool = True
    extended_nexthop: bool = False
    shutdown_message: str = ""
    enabled: bool = True
    description: str = ""
    enforce_first_as: bool = True
    local_as: int = 0
    interface: str = ""
    discovery: Discovery | None = None
    discovery_interval: float = 10.0

    def __post_init__(self) -> None:
        if self.interface:
            ip = ipaddress.ip_address(self.address)
            if not (isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local):
                raise ValueError("an unnumbered peer's address is IPv6 link-local")
        elif self.discovery is not None:
            raise ValueError("neighbour discovery needs an interface")
        if self.hold_time != 0 and self.hold_time < 3:
            raise ValueError("hold_time must be 0 or at least 3 (RFC 4271 §4.2)")
        if not 0 <= self.asn <= 0xFFFFFFFF:
            raise ValueError(f"{self.asn} is not an AS number")
        if not 0 <= self.local_as <= 0xFFFFFFFF:
            raise ValueError(f"{self.local_as} is not an AS number")
        if not 0 <= self.long_lived_stale_time <= LLGR_STALE_TIME_MAX:
            raise ValueError("long_lived_stale_time is a 24-bit field (RFC 9494 §3)")

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.address)

    @property
    def fixed_neighbour(self) -> ipaddress.IPv6Address | None:
        """An unnumbered peer's configured link-local address (no zone), if not discovered."""
        if not self.interface or self.discovery is not None:
            return None
        return ipaddress.IPv6Address(self.address.split("%")[0])

    def for_address(self, address: str) -> PeerSettings:
        """This template applied to one dynamic neighbour."""
        return replace(self, address=address)


@dataclass(frozen=True, slots=True)
class ListenRange:
    """Dynamic neighbours: any address inside ``prefix`` may connect in (passive)."""

    prefix: str
    template: PeerSettings

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.prefix, strict=False)

    def contains(self, address: str) -> bool:
        addr = ipaddress.ip_address(address)
        net = self.network
        return addr.version == net.version and addr in net


@dataclass(frozen=True, slots=True)
class SpeakerSettings:
    """The local speaker: our AS and identifier, where sessions are accepted.

    ``listen`` empty means connect out only. ``"::"`` alone listens dual-stack.
    """

    asn: int
    router_id: str
    listen: tuple[str, ...] = ("0.0.0.0", "::")
    port: int = 179
    listen_ranges: tuple[ListenRange, ...] = field(default=())
    max_dynamic_peers: int = 100

    @property
    def router_id_int(self) -> int:
        return int(ipaddress.IPv4Address(self.router_id))
