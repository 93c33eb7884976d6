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
from collections.abc import Callable, Mapping

from rib.core import Rib

__all__ = ["ExtraOrigins"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ExtraOrigins:
    def __init__(self, rib: Rib, owned: Callable[[], set[str]]) -> None:
        self.rib = rib
        self.owned = owned  # prefixes originated by IPAM or the config
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
                self.rib.originate(prefix, communities=current[prefix], now=now)
        self.current = current
