"""What the RIB keeps about each configured peer (``PeerState``) and shows of it (``PeerSummary``).

``PeerState`` is ``rib.core.Rib``'s own record, written by the Rib and by
``rib.restart``/``rib.reconfigure`` on its behalf (``rib.show`` reads it);
the daemon outside ``rib`` reads a peer through ``Rib.peer_summary``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from rib.adjout import Member
from rib.path import Path, Source
from rib.settings import PeerPolicy, SessionFacts

__all__ = ["Address", "ImportKey", "PeerState", "PeerSummary"]

# An import cache key: id(attrs), with ADD-PATH (path id, id(attrs)).
ImportKey = int | tuple[int, int]
Address = IPv4Address | IPv6Address


@dataclass
class PeerState:
    """Everything the RIB tracks about one configured peer."""

    policy: PeerPolicy
    source: Source
    facts: SessionFacts | None = None
    up: bool = False
    counts: dict[Family, int] = field(default_factory=dict)
    members: dict[Family, Member] = field(default_factory=dict)
    # Import verdicts per family: id(attrs) (with ADD-PATH: (path id, id)) -> (attrs, Path | None).
    imports: dict[Family, dict[ImportKey, tuple[PathAttributes, Path | None]]] = field(
        default_factory=dict
    )
    pre_policy: dict[Family, dict[bytes, PathAttributes]] = field(default_factory=dict)
    pre_add_path: set[Family] = field(default_factory=set)
    stale: set[Family] = field(default_factory=set)
    stale_deadline: float | None = None
    # RFC 9494: stale families in the long-lived phase -> when that phase ends.
    llgr: dict[Family, float] = field(default_factory=dict)
    eor_received: set[Family] = field(default_factory=set)
    over_limit: bool = False
    disabled_until: float = 0.0
    # Our addresses as this peer sees them: its routes may not use them as next hop.
    own: frozenset[Address] = frozenset()
    # RFC 4760 §7: families whose routes are ignored for the rest of this session.
    disabled: set[Family] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def families(self) -> frozenset[Family]:
        """The families this session carries: negotiated, configured, not disabled."""
        f = self.facts
        if f is None:
            return frozenset()
        return (frozenset(f.families) & frozenset(self.policy.families)) - self.disabled

    @property
    def all_eor(self) -> bool:
        """Up with graceful restart and End-of-RIB in for each of ``families``; True
        as well for a peer that is down or does not do graceful restart (nothing
        to wait for)."""
        f = self.facts
        if not self.up or f is None or not f.does_gr:
            return True
        return self.families <= self.eor_received


@dataclass(frozen=True, slots=True)
class PeerSummary:
    """What the RIB knows of one peer's session, for the daemon's views (``Rib.peer_summary``).

    ``families``: negotiated and configured, RFC 4760 §7 disabled ones left out;
    ``eor_received``: End-of-RIB seen this session (RFC 4724 §2); ``stale``:
    families whose routes are kept as stale (RFC 4724 §4.2, RFC 9494);
    ``received``: accepted prefixes per family.
    """

    key: str
    up: bool
    graceful_restart: bool
    families: frozenset[Family]
    eor_received: frozenset[Family]
    disabled: frozenset[Family]
    stale: frozenset[Family]
    received: dict[Family, int]
