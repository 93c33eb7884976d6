"""The negotiated facts that change how bytes on the wire are read and written.

``CodecContext`` is frozen: the session builds one after the OPEN exchange
(``bgp.negotiate.negotiate``) and passes it to every decode and encode call.
There is no global codec state; the only mutable part is a private,
size-bounded cache of decoded path-attribute blobs, which lives on the
context because the meaning of a blob depends on these facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bgp.wire.constants import MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Family

__all__ = ["CodecContext"]


@dataclass(frozen=True, slots=True)
class CodecContext:
    """Negotiated codec facts for one session (or a test).

    - ``as4``: both sides sent the 4-octet AS capability (RFC 6793): AS_PATH and
      AGGREGATOR carry 4-octet ASNs; otherwise 2-octet with AS4_* reconciliation.
    - ``add_path_ipv4`` / ``add_path_ipv6``: we *receive* path identifiers
      (RFC 7911 §3); ``add_path_send_ipv4`` / ``add_path_send_ipv6``: we *send* them.
    - ``extended_message``: messages other than OPEN and KEEPALIVE may be up to
      65535 octets (RFC 8654).
    - ``extended_nexthop_ipv4``: IPv4 unicast NLRI may carry an IPv6 next hop (RFC 8950).
    - ``ebgp``: the peer is external (LOCAL_PREF discarded, RFC 7606 §7.5; first
      AS checked, RFC 4271 §6.3) when ``peer_as`` is known (non-zero).
    - ``local_as`` / ``peer_as``: our and the peer's AS, 0 if unknown.
    - ``confed_peer``: the peer is in our confederation (RFC 5065), so
      AS_CONFED_* segments are legal from it.
    - ``enforce_first_as``: check that an external peer's AS_PATH starts with
      its AS (RFC 4271 §6.3 makes the check a MAY). Off for a route server,
      which does not prepend its own AS (RFC 7947 §2.2.2.1).
    """

    as4: bool = True
    add_path_ipv4: bool = False
    add_path_ipv6: bool = False
    extended_message: bool = False
    extended_nexthop_ipv4: bool = False
    ebgp: bool = False
    local_as: int = 0
    peer_as: int = 0
    confed_peer: bool = False
    add_path_send_ipv4: bool = False
    add_path_send_ipv6: bool = False
    enforce_first_as: bool = True
    # Decoded attribute blobs, keyed by raw bytes; see bgp.wire.update.
    _attr_cache: dict[Any, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def max_message_len(self) -> int:
        """Largest UPDATE/NOTIFICATION/ROUTE-REFRESH allowed (RFC 8654 §4)."""
        return MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN

    def add_path_rx(self, family: Family) -> bool:
        """True if NLRI of ``family`` that we receive carry a path identifier."""
        return self.add_path_ipv4 if family is Family.IPV4_UNICAST else self.add_path_ipv6

    def add_path_tx(self, family: Family) -> bool:
        """True if NLRI of ``family`` that we send must carry a path identifier."""
        if family is Family.IPV4_UNICAST:
            return self.add_path_send_ipv4
        return self.add_path_send_ipv6
