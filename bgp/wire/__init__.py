"""bgp.wire — the BGP-4 wire codec: bytes in, typed values out, and back. No I/O.

Parts
    ``constants``     message types, attribute codes/flags, ``Family``, ``Action``
    ``context``       ``CodecContext``: the negotiated facts every call takes
    ``framer``        ``Framer``: TCP stream → whole messages, header errors raised
    ``messages``      OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH; dispatch
    ``update``        UPDATE decode (RFC 7606), encode, bulk packing, End-of-RIB
    ``attributes``    ``PathAttributes`` and the RFC 7606 attribute table
    ``capabilities``  OPEN capabilities
    ``prefix``        compact NLRI ("keys") and the printable ``Prefix``
Errors live in ``bgp.errors`` (``BGPError`` with ``code``, ``subcode``, ``data``).

RFCs: 4271 (BGP-4), 4760 (multiprotocol), 2918 and 7313 (route refresh),
5492 (capabilities), 6793 (4-octet AS), 4724 (graceful restart), 7911
(ADD-PATH), 8950 (extended next hop), 8654 (extended message), 9072
(extended optional parameters), 9003 (shutdown communication), 7606 (error
handling), 7607 (AS 0), 1997/4360/8092 (communities), 4456 (reflection).

API (stable: the names re-exported below; other packages import them from here or
from the submodule that defines them). The submodules also hold a lower-level
surface that only the hot paths of ``bgp`` and ``rib`` use, not re-exported here
and free to change with them: ``update.plain_withdrawals``/``withdraws_only``
(the session core's run-of-UPDATEs path), ``attributes.next_hop_changes`` and
``prepend`` (the RIB's export), ``messages.check_header``, ``prefix.parse_nlri``.
    ctx = CodecContext(as4=True, add_path_ipv4=False, add_path_ipv6=False,
                       extended_message=False, extended_nexthop_ipv4=False,
                       ebgp=False, local_as=0, peer_as=0, confed_peer=False,
                       add_path_send_ipv4=False, add_path_send_ipv6=False)
    msg = decode_message(frame, ctx)  # Open | Update | Notification | Keepalive | RouteRefresh
                                      # raises bgp.errors.BGPError → send Notification.from_error(e)
    raw = encode_message(msg, ctx)    # ValueError if msg cannot be encoded / does not fit

    Framer: ``f.feed(data)``; ``while (fr := f.next_frame()) is not None: ...``;
    set ``f.max_message_len = ctx.max_message_len`` after the OPEN exchange.

    Update (decoded; treat as immutable):
        .attrs     PathAttributes | None (interned: equal blobs → same object)
        .reach     dict[Family, list[bytes]]  compact NLRI announced
        .unreach   dict[Family, list[bytes]]  compact NLRI withdrawn (incl. treat-as-withdraw)
        .action    Action: NONE < ATTRIBUTE_DISCARD < TREAT_AS_WITHDRAW < AFI_SAFI_DISABLE
        .disabled  Family to flush and ignore when action is AFI_SAFI_DISABLE
        .errors    tuple[AttrError, ...] for logs
        .end_of_rib  Family | None
        .announced / .withdrawn  list[Prefix] (slow path; str(p) == "10.0.0.0/24")
      Compact NLRI ("key") = length octet + significant octets, e.g. 10.0.0.0/24 →
      b"\\x18\\n\\x00\\x00"; with ADD-PATH received for the family, 4 octets of
      path id come first (``split_path_id``/``join_path_id``). Applying
      ``reach`` and ``unreach`` as they are is always correct.

    PathAttributes (frozen, hashable): origin, as_path (tuple of
        (segment_type, tuple_of_asns)), next_hop, med, local_pref,
        atomic_aggregate, aggregator, communities, ext_communities,
        large_communities, originator_id, cluster_list, mp_next_hop, unknown.
        .nexthop(family), .replace(**kw), .prepend_as(asn, n), .with_next_hop(family, *hops),
        .as_path_length, .encode(ctx) (cached bytes, without MP attributes).

    Sending routes in bulk (one attribute encoding shared by many UPDATEs):
        encode_announce(attrs, family, nlri_list, ctx) -> list[bytes]
        announce_head(attrs, family, ctx) -> (body head, NLRI room) | None, and
        update_header(body_len): frame IPv4 announcements without re-encoding
        encode_withdraw(family, nlri_list, ctx) -> list[bytes]
        encode_end_of_rib(family) -> bytes

    Prefixes: Prefix.from_str("10.0.0.0/24"), str(prefix), prefix.key,
        key_from_network(text) -> (Family, key), key_to_str(family, key).
"""

from bgp.wire.attributes import (
    AsPath,
    AttrError,
    PathAttributes,
    UnknownAttribute,
    as_path_length,
    as_path_str,
)
from bgp.wire.capabilities import (
    AddPathCapability,
    AddPathMode,
    Capability,
    CapCode,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    ExtendedNextHopCapability,
    FourOctetAsCapability,
    FqdnCapability,
    GracefulRestartCapability,
    LongLivedGracefulRestartCapability,
    MultiprotocolCapability,
    RouteRefreshCapability,
    UnknownCapability,
)
from bgp.wire.constants import (
    AS_TRANS,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    Action,
    AttrCode,
    AttrFlag,
    Family,
    MessageType,
    Origin,
    RouteRefreshSubtype,
    SegmentType,
)
from bgp.wire.context import CodecContext
from bgp.wire.framer import Framer
from bgp.wire.messages import (
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from bgp.wire.prefix import (
    Prefix,
    join_path_id,
    key_from_network,
    key_to_network,
    key_to_str,
    split_path_id,
)
from bgp.wire.update import (
    Update,
    announce_head,
    encode_announce,
    encode_end_of_rib,
    encode_withdraw,
    update_header,
)

__all__ = [
    "AS_TRANS",
    "MAX_EXTENDED_MESSAGE_LEN",
    "MAX_MESSAGE_LEN",
    "Action",
    "AddPathCapability",
    "AddPathMode",
    "AsPath",
    "AttrCode",
    "AttrError",
    "AttrFlag",
    "CapCode",
    "Capability",
    "CodecContext",
    "EnhancedRouteRefreshCapability",
    "ExtendedMessageCapability",
    "ExtendedNextHopCapability",
    "Family",
    "FourOctetAsCapability",
    "FqdnCapability",
    "Framer",
    "GracefulRestartCapability",
    "Keepalive",
    "LongLivedGracefulRestartCapability",
    "Message",
    "MessageType",
    "MultiprotocolCapability",
    "Notification",
    "Open",
    "Origin",
    "PathAttributes",
    "Prefix",
    "RouteRefresh",
    "RouteRefreshCapability",
    "RouteRefreshSubtype",
    "SegmentType",
    "UnknownAttribute",
    "UnknownCapability",
    "Update",
    "announce_head",
    "as_path_length",
    "as_path_str",
    "decode_message",
    "encode_announce",
    "encode_end_of_rib",
    "encode_message",
    "encode_withdraw",
    "join_path_id",
    "key_from_network",
    "key_to_network",
    "key_to_str",
    "split_path_id",
    "update_header",
]
