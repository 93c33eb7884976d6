"""Announcements beyond IPAM's blocks and `[[bgp.originate]]`, merged by source.

Services (`podbgp.services`) and run-time announcements (`podbgp.anycast`) each
give their whole set, prefix → communities, whenever it changes; `ExtraOrigins`
originates the union in the RIB and withdraws what no source wants any more. A
prefix IPAM or the config already originates keeps theirs (their origination owns
the RIB's one local slot per prefix); one wanted by two sources carries the
communities of both.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping

from rib.core import Rib

__all__ = ["Adornments", "ExtraOrigins"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Large = tuple[int, int, int]


class Adornments:
    """Communities added to every prefix originated inside a range
    (`[[bgp.prefix_advertisement]]`): `of(prefix)` gives the union of every range's that
    covers it, in the order first given."""

    def __init__(self, ranges: Iterable[tuple[IPNetwork, tuple[int, ...], tuple[Large, ...]]]):
        self.ranges = tuple(ranges)

    def of(self, prefix: str) -> tuple[tuple[int, ...], tuple[Large, ...]]:
        if not self.ranges:
            return (), ()
        net = ipaddress.ip_network(prefix)
        comms: dict[int, None] = {}
        large: dict[Large, None] = {}
        for cidr, c, lc in self.ranges:
            if cidr.version == net.version and net.subnet_of(cidr):  # type: ignore[arg-type]
                comms.update(dict.fromkeys(c))
                large.update(dict.fromkeys(lc))
        return tuple(comms), tuple(large)


class ExtraOrigins:
    def __init__(
        self, rib: Rib, owned: Callable[[], set[str]], adorn: Adornments | None = None
    ) -> None:
        self.rib = rib
        self.owned = owned  # prefixes originated by IPAM or the config
        self.adorn = adorn or Adornments(())
        self.sources: dict[str, dict[IPNetwork, tuple[int, ...]]] = {}
        self.current: dict[str, tuple[int, ...]] = {}  # what the RIB has from here

    def set(self, source: str, want: Mapping[IPNetwork, tuple[int, ...]]) -> None:
        self.sources[source] = dict(want)
        self.refresh()

    def refresh(self) -> None:
        """Bring the RIB to the union of the sources, less what others originate."""
        merged: dict[str, set[int]] = {}
        for wanted in self.sources.values():
            for net, values in wanted.items():
                merged.setdefault(str(net), set()).update(values)
        owned = self.owned()
        for prefix in self.current.keys() - merged.keys():
            if prefix not in owned:
                self.rib.withdraw_originated(prefix)
        now = time.monotonic()
        current: dict[str, tuple[int, ...]] = {}
        for prefix, comms in sorted(merged.items()):
            if prefix in owned:
                continue
            current[prefix] = tuple(sorted(comms))
            if self.current.get(prefix) != current[prefix]:
                extra, large = self.adorn.of(prefix)
                communities = tuple(dict.fromkeys((*current[prefix], *extra)))
                self.rib.originate(prefix, communities=communities, large_communities=large,
                                   now=now)  # fmt: skip
        self.current = current

    def reoriginate(self, adorn: Adornments) -> None:
        """New adornments: originate every prefix from here again with them."""
        self.adorn = adorn
        self.current = {}
        self.refresh()
