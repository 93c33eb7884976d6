"""Protocol numbers of the BGP wire format, as named enums.

Message types (RFC 4271 §4.1, RFC 2918), path attribute codes and flags
(RFC 4271 §4.3, RFC 4760, RFC 6793, RFC 8092, RFC 4360), ORIGIN values,
AS_PATH segment types (RFC 4271, RFC 5065), address families (RFC 4760),
the well-known communities (the one list the policy engine and the config
share) and the RFC 7606 error-handling actions, ordered so the strongest one
wins.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096  # RFC 4271 §4.1
MAX_EXTENDED_MESSAGE_LEN = 65535  # RFC 8654 §3
AS_TRANS = 23456  # RFC 6793 §9


class MessageType(IntEnum):
    """BGP message types (RFC 4271 §4.1; ROUTE-REFRESH RFC 2918)."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class Family(IntEnum):
    """The address families podbgp carries, valued ``(AFI << 16) | SAFI`` (RFC 4760).

    An ``IntEnum`` so that dict lookups keyed by family hash as fast as ints.
    """

    IPV4_UNICAST = (1 << 16) | 1
    IPV6_UNICAST = (2 << 16) | 1

    @property
    def afi(self) -> int:
        """Address Family Identifier (1 IPv4, 2 IPv6)."""
        return self.value >> 16

    @property
    def safi(self) -> int:
        """Subsequent Address Family Identifier (1 unicast)."""
        return self.value & 0xFF

    @property
    def max_bits(self) -> int:
        """Longest valid prefix length of the family."""
        return 32 if self is Family.IPV4_UNICAST else 128

    @classmethod
    def of(cls, afi: int, safi: int) -> Family | None:
        """The family of an (AFI, SAFI) pair, or None if podbgp does not carry it."""
        try:
            return cls((afi << 16) | safi)
        except ValueError:
            return None


AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1


class AttrFlag(IntFlag):
    """Path attribute flag bits (RFC 4271 §4.3)."""

    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class AttrCode(IntEnum):
    """Path attribute type codes podbgp understands."""

    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITY = 32


class Origin(IntEnum):
    """ORIGIN values (RFC 4271 §5.1.1)."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class SegmentType(IntEnum):
    """AS_PATH segment types (RFC 4271 §4.3; confederations RFC 5065 §3)."""

    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


class Action(IntEnum):
    """What RFC 7606 makes of a malformed UPDATE; the strongest one wins (§3(f)).

    A decoded ``Update`` never carries ``SESSION_RESET``: that case raises
    ``bgp.errors.BGPError`` instead.
    """

    NONE = 0
    ATTRIBUTE_DISCARD = 1
    TREAT_AS_WITHDRAW = 2
    AFI_SAFI_DISABLE = 3
    SESSION_RESET = 4


class RouteRefreshSubtype(IntEnum):
    """ROUTE-REFRESH message subtypes (RFC 7313 §3)."""

    NORMAL = 0
    BORR = 1  # Beginning of Route Refresh
    EORR = 2  # End of Route Refresh


class WellKnownCommunity(IntEnum):
    """Well-known RFC 1997 communities podbgp names or acts on (IANA registry)."""

    GRACEFUL_SHUTDOWN = 0xFFFF0000  # RFC 8326 §3
    ACCEPT_OWN = 0xFFFF0001  # RFC 7611
    LLGR_STALE = 0xFFFF0006  # RFC 9494 §6
    NO_LLGR = 0xFFFF0007  # RFC 9494 §6
    BLACKHOLE = 0xFFFF029A  # RFC 7999
    NO_EXPORT = 0xFFFFFF01  # RFC 1997
    NO_ADVERTISE = 0xFFFFFF02  # RFC 1997
    NO_EXPORT_SUBCONFED = 0xFFFFFF03  # RFC 1997
    NO_PEER = 0xFFFFFF04  # RFC 3765


# The names written in policies and in the config: lower case, dashes for underscores.
WELL_KNOWN_COMMUNITIES: dict[str, int] = {
    c.name.lower().replace("_", "-"): int(c) for c in WellKnownCommunity
}
