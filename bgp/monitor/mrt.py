"""MRT records (RFC 6396), encoded: table dumps and BGP message dumps.

Every record has the common header (§2: timestamp, type, subtype, length).

TABLE_DUMP_V2 (§4.3) is a snapshot of a RIB: first one PEER_INDEX_TABLE
(§4.3.1) naming every peer once (each RIB entry then refers to a peer by its
index in that table), then one RIB record per prefix (§4.3.2) with an entry
per path. RIB entries always carry 4-octet ASNs (§4.3.4), whatever the
session negotiated, so attributes are encoded with a 4-octet context; and
MP_REACH_NLRI is abbreviated to the next hop's length and address, since the
record already names the family and the prefix (§4.3.4). With ADD-PATH (RFC
8050 §4) the ``*_ADDPATH`` subtypes add each entry's path identifier.

BGP4MP_MESSAGE_AS4 (§4.4.3) wraps one whole BGP message as received from a
peer, with both ASes, both addresses and the AFI of the session; the
``_ADDPATH`` subtype (RFC 8050 §3) says its NLRI carry path identifiers.

Timestamps are arguments: the encoder reads no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

from bgp.wire.attributes import PathAttributes, encode_attribute
from bgp.wire.constants import AttrCode, Family
from bgp.wire.context import CodecContext

__all__ = [
    "Bgp4mpSubtype",
    "MrtPeer",
    "MrtType",
    "RibEntry",
    "TableDumpSubtype",
    "encode_bgp4mp_message",
    "encode_peer_index_table",
    "encode_rib",
    "rib_attributes",
]

Address = IPv4Address | IPv6Address

_HEADER = struct.Struct("!IHHI")
_AS4 = CodecContext(as4=True)
# Peer type bits of a PEER_INDEX_TABLE entry (§4.3.1).
_PEER_IPV6 = 0x01
_PEER_AS4 = 0x02


class MrtType(IntEnum):
    """RFC 6396 §4."""

    TABLE_DUMP_V2 = 13
    BGP4MP = 16


class TableDumpSubtype(IntEnum):
    """RFC 6396 §4.3; the ADDPATH subtypes from RFC 8050 §4."""

    PEER_INDEX_TABLE = 1
    RIB_IPV4_UNICAST = 2
    RIB_IPV6_UNICAST = 4
    RIB_IPV4_UNICAST_ADDPATH = 8
    RIB_IPV6_UNICAST_ADDPATH = 10


class Bgp4mpSubtype(IntEnum):
    """RFC 6396 §4.4; the ADDPATH subtype from RFC 8050 §3."""

    MESSAGE_AS4 = 4
    MESSAGE_AS4_ADDPATH = 9


_RIB_SUBTYPE = {
    (Family.IPV4_UNICAST, False): TableDumpSubtype.RIB_IPV4_UNICAST,
    (Family.IPV6_UNICAST, False): TableDumpSubtype.RIB_IPV6_UNICAST,
    (Family.IPV4_UNICAST, True): TableDumpSubtype.RIB_IPV4_UNICAST_ADDPATH,
    (Family.IPV6_UNICAST, True): TableDumpSubtype.RIB_IPV6_UNICAST_ADDPATH,
}


def _record(timestamp: int, mtype: MrtType, subtype: int, body: bytes) -> bytes:
    return _HEADER.pack(timestamp, mtype, subtype, len(body)) + body


@dataclass(frozen=True, slots=True)
class MrtPeer:
    """One PEER_INDEX_TABLE entry: a peer's BGP identifier, address and AS."""

    bgp_id: IPv4Address
    address: Address
    asn: int

    def encode(self) -> bytes:
        # Always the 4-octet AS form: it is never wrong, and the reader is told by the type.
        kind = _PEER_AS4 | (_PEER_IPV6 if isinstance(self.address, IPv6Address) else 0)
        return (
            bytes((kind,)) + self.bgp_id.packed + self.address.packed + struct.pack("!I", self.asn)
        )


def encode_peer_index_table(
    timestamp: int, collector_id: IPv4Address, view_name: str, peers: Sequence[MrtPeer]
) -> bytes:
    """PEER_INDEX_TABLE (§4.3.1): the collector's identifier, a view name, the peers."""
    name = view_name.encode()
    body = (
        collector_id.packed
        + struct.pack("!H", len(name))
        + name
        + struct.pack("!H", len(peers))
        + b"".join(p.encode() for p in peers)
    )
    return _record(timestamp, MrtType.TABLE_DUMP_V2, TableDumpSubtype.PEER_INDEX_TABLE, body)


@dataclass(frozen=True, slots=True)
class RibEntry:
    """One path of a RIB record: the peer's index, when it was received (seconds since
    the epoch), its attributes and, with ADD-PATH, its path identifier."""

    peer_index: int
    originated: int
    attrs: PathAttributes
    path_id: int | None = None


def rib_attributes(attrs: PathAttributes, family: Family) -> bytes:
    """Attributes as a RIB entry holds them (§4.3.4): 4-octet ASNs, and MP_REACH_NLRI
    reduced to the next hop's length and address when the next hop is not NEXT_HOP."""
    out = attrs.encode(_AS4)
    if family is Family.IPV4_UNICAST and attrs.next_hop is not None:
        return out
    if attrs.mp_next_hop:
        nh = b"".join(h.packed for h in attrs.mp_next_hop)
        mp = encode_attribute(0x80, AttrCode.MP_REACH_NLRI, bytes((len(nh),)) + nh)
        out = mp + out
    return out


def encode_rib(
    timestamp: int,
    sequence: int,
    family: Family,
    prefix: bytes,
    entries: Sequence[RibEntry],
    add_path: bool = False,
) -> bytes:
    """One RIB_IPV4_UNICAST / RIB_IPV6_UNICAST record (§4.3.2) for ``prefix``, a compact
    NLRI key (length octet, then the prefix's octets: ``bgp.wire.prefix``).

    ``add_path`` picks the RFC 8050 subtype: every entry then carries its path
    identifier (0 for a path received without one)."""
    parts = [struct.pack("!I", sequence & 0xFFFFFFFF), prefix, struct.pack("!H", len(entries))]
    for e in entries:
        ab = rib_attributes(e.attrs, family)
        head = struct.pack("!HI", e.peer_index, e.originated)
        if add_path:
            head += struct.pack("!I", e.path_id or 0)
        parts.append(head + struct.pack("!H", len(ab)) + ab)
    subtype = _RIB_SUBTYPE[(family, add_path)]
    return _record(timestamp, MrtType.TABLE_DUMP_V2, subtype, b"".join(parts))


def encode_bgp4mp_message(
    timestamp: int,
    peer_as: int,
    local_as: int,
    peer_address: Address,
    local_address: Address,
    message: bytes,
    add_path: bool = False,
    ifindex: int = 0,
) -> bytes:
    """BGP4MP_MESSAGE_AS4 (§4.4.3), or its ADDPATH subtype (RFC 8050 §3): one whole
    BGP message received from (or sent to) a peer. Both addresses are of one family."""
    if peer_address.version != local_address.version:
        raise ValueError("BGP4MP: the peer's and the local address must be of one family")
    afi = 1 if peer_address.version == 4 else 2
    body = (
        struct.pack("!IIHH", peer_as, local_as, ifindex, afi)
        + peer_address.packed
        + local_address.packed
        + message
    )
    subtype = Bgp4mpSubtype.MESSAGE_AS4_ADDPATH if add_path else Bgp4mpSubtype.MESSAGE_AS4
    return _record(timestamp, MrtType.BGP4MP, subtype, body)
