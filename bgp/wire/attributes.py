"""Path attributes: the immutable ``PathAttributes`` set, its decoder and encoder.

Model
    ``PathAttributes`` is a frozen, hashable value holding every attribute
    podbgp understands (RFC 4271 §5.1, RFC 1997, RFC 4360, RFC 4456, RFC 8092,
    RFC 4760 next hops) plus unknown optional transitive attributes kept raw.
    Decoding happens once per distinct attribute blob (see ``bgp.wire.update``);
    derived copies are cheap (``replace``, ``prepend_as``, ``with_next_hop``)
    and ``encode`` caches its bytes per AS width, so one set is encoded once
    and the bytes are reused for every UPDATE that carries it.

Decoding (RFC 7606 as data)
    ``ATTRS`` maps each type code to an ``AttrSpec`` (name, expected
    Optional/Transitive flags, decoder, the action for a malformed value).
    ``decode_attributes`` is the one generic loop applying RFC 7606 §3 and §4:
    framing overruns are treat-as-withdraw with the Total Path Attribute
    Length trusted (§4), except a truncated MP_REACH_NLRI/MP_UNREACH_NLRI,
    which resets the session (§3(j)); Optional/Transitive bits that conflict
    are treat-as-withdraw for every attribute but AS4_PATH/AS4_AGGREGATOR
    (§3(c): §7.6 and §7.7 soften only a wrong length); a Partial bit on a
    well-known or optional non-transitive attribute makes it malformed
    (RFC 4271 §4.3),
    repeats after the first are discarded (§3(g)), unknown optional
    non-transitive attributes are dropped and unknown optional transitive ones
    are kept with the Partial bit set (RFC 4271 §5), an unrecognised
    well-known attribute resets the session (RFC 4271 §6.3). MP_REACH_NLRI and
    MP_UNREACH_NLRI are not decoded here: they carry per-message NLRI and are
    handed back raw to ``bgp.wire.update``.

    The per-attribute rules are RFC 7606 §7: ORIGIN, AS_PATH, NEXT_HOP, MED,
    COMMUNITIES, ORIGINATOR_ID, CLUSTER_LIST, EXTENDED_COMMUNITIES and
    LARGE_COMMUNITY (RFC 8092 §6, duplicates removed per §3) malformed →
    treat-as-withdraw; LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST from an
    external peer → discarded whatever their form (§7.5, §7.9, §7.10);
    ATOMIC_AGGREGATE and AGGREGATOR of the wrong length → attribute discard
    (§7.6, §7.7); AS_CONFED_* segments in AS_PATH from a peer outside our
    confederation → treat-as-withdraw (RFC 5065 §5, §7.2); AS 0 in AS_PATH →
    treat-as-withdraw and in AGGREGATOR/AS4_* → discard (RFC 7607 §2);
    AS4_PATH/AS4_AGGREGATOR malformed → discard, confederation segments in
    AS4_PATH dropped and the rest kept (RFC 6793 §6), then reconciled with
    AS_PATH/AGGREGATOR on 2-octet sessions (RFC 6793 §4.2.3).

Size (over ~600 lines, one concern): the attribute table is the module. Each
attribute's decoder, its RFC 7606 action and its encoder sit beside the
``PathAttributes`` fields they fill; split by direction or by attribute, the
table and the generic loop would have to reach across modules for every entry.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any, NamedTuple

from bgp.errors import UpdateMessageError, UpdateSubcode
from bgp.wire.constants import (
    AS_TRANS,
    Action,
    AttrCode,
    AttrFlag,
    Family,
    Origin,
    SegmentType,
)
from bgp.wire.context import CodecContext

__all__ = [
    "ATTRS",
    "AsPath",
    "AttrError",
    "AttrSpec",
    "DecodedAttributes",
    "PathAttributes",
    "UnknownAttribute",
    "as_path_length",
    "as_path_str",
    "decode_attributes",
    "encode_attribute",
    "is_martian_v4",
    "is_martian_v6",
    "next_hop_changes",
    "prepend",
]

Segment = tuple[int, tuple[int, ...]]
AsPath = tuple[Segment, ...]
Address = IPv4Address | IPv6Address

_O = int(AttrFlag.OPTIONAL)
_T = int(AttrFlag.TRANSITIVE)
_P = int(AttrFlag.PARTIAL)
_E = int(AttrFlag.EXTENDED_LENGTH)
_OT = _O | _T


class UnknownAttribute(NamedTuple):
    """An optional transitive attribute podbgp does not know, kept raw (RFC 4271 §5)."""

    flags: int
    code: int
    value: bytes


class AttrError(NamedTuple):
    """One RFC 7606 finding: what to do, about which attribute, and the
    NOTIFICATION subcode/data to use if it ends up as a session reset."""

    action: Action
    code: int
    subcode: int
    data: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class PathAttributes:
    """An immutable, hashable set of path attributes.

    ``as_path`` is a tuple of ``(segment_type, asns)`` with 4-octet ASNs
    (after RFC 6793 reconciliation); ``None`` means the attribute is absent.
    ``communities`` are 32-bit ints (RFC 1997), ``ext_communities`` 64-bit
    ints (RFC 4360), ``large_communities`` ``(global, local1, local2)``
    (RFC 8092). ``mp_next_hop`` is the MP_REACH_NLRI next hop: ``(global,)`` or
    ``(global, link_local)`` (RFC 4760 §3, RFC 2545 §3); use ``nexthop(family)``.
    ``unknown`` holds optional transitive attributes podbgp does not know,
    with the Partial bit already set so they are passed on as RFC 4271 §5 says.
    """

    origin: int | None = None
    as_path: AsPath | None = None
    next_hop: IPv4Address | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: tuple[int, IPv4Address] | None = None
    communities: tuple[int, ...] = ()
    ext_communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    originator_id: IPv4Address | None = None
    cluster_list: tuple[IPv4Address, ...] = ()
    mp_next_hop: tuple[Address, ...] = ()
    unknown: tuple[UnknownAttribute, ...] = ()
    # Memos in slots, not a dict per instance (~250 B less per attribute set, and a
    # full table holds a few of them per distinct path): the hash and the encoding
    # for each AS number width. ``replace`` does not copy them (``init=False``).
    _hash: int | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _enc2: bytes | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _enc4: bytes | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(
                (
                    self.origin,
                    self.as_path,
                    self.next_hop,
                    self.med,
                    self.local_pref,
                    self.atomic_aggregate,
                    self.aggregator,
                    self.communities,
                    self.ext_communities,
                    self.large_communities,
                    self.originator_id,
                    self.cluster_list,
                    self.mp_next_hop,
                    self.unknown,
                )
            )
            object.__setattr__(self, "_hash", h)
        return h

    def replace(self, **changes: Any) -> PathAttributes:
        """A copy with some fields changed (the encoding cache is not copied)."""
        return replace(self, **changes)

    def nexthop(self, family: Family) -> Address | None:
        """The next hop of routes of ``family`` carried with these attributes.

        IPv6 routes use the MP_REACH_NLRI next hop. IPv4 routes use NEXT_HOP, or
        the MP_REACH_NLRI next hop when NEXT_HOP is absent (IPv4 in MP_REACH,
        possibly with an IPv6 next hop per RFC 8950). Of a (global, link-local)
        pair the global one, unless it is ``::``.
        """
        if family is Family.IPV4_UNICAST and self.next_hop is not None:
            return self.next_hop
        hops = self.mp_next_hop
        if len(hops) == 2 and hops[0].is_unspecified:
            # RFC 2545 §3 leaves a speaker with no global address on the link only
            # its link-local one; some send it as (::, link-local): forward to that.
            return hops[1]
        return hops[0] if hops else None

    def with_next_hop(self, family: Family, *hops: Address) -> PathAttributes:
        """A copy whose next hop for ``family`` is ``hops`` (global[, link-local])."""
        return replace(self, **next_hop_changes(family, hops))

    def prepend_as(self, asn: int, count: int = 1) -> PathAttributes:
        """A copy with ``asn`` prepended ``count`` times (RFC 4271 §5.1.2)."""
        return replace(self, as_path=prepend(self.as_path or (), asn, count))

    @property
    def as_path_length(self) -> int:
        """Path length for best-path selection (RFC 4271 §9.1.2.2 a, RFC 5065 §5.3)."""
        return as_path_length(self.as_path or ())

    def encode(self, ctx: CodecContext) -> bytes:
        """The attribute bytes (without MP_REACH/MP_UNREACH), cached per AS width."""
        name = "_enc4" if ctx.as4 else "_enc2"
        out: bytes | None = getattr(self, name)
        if out is None:
            out = _encode_all(self, ctx.as4)
            object.__setattr__(self, name, out)
        return out


# --------------------------------------------------------------------- AS_PATH


def next_hop_changes(family: Family, hops: tuple[Address, ...]) -> dict[str, Any]:
    """The ``replace`` arguments that make ``hops`` (global[, link-local]) the next hop
    of ``family``'s routes: NEXT_HOP for a single IPv4 address on IPv4, else MP_REACH."""
    if family is Family.IPV4_UNICAST and len(hops) == 1 and isinstance(hops[0], IPv4Address):
        return {"next_hop": hops[0], "mp_next_hop": ()}
    return {"next_hop": None, "mp_next_hop": tuple(hops)}


def prepend(path: AsPath, asn: int, count: int = 1) -> AsPath:
    """``path`` with ``asn`` prepended ``count`` times (RFC 4271 §5.1.2)."""
    add = (asn,) * count
    if path and path[0][0] == SegmentType.AS_SEQUENCE and len(path[0][1]) + count <= 255:
        return ((int(SegmentType.AS_SEQUENCE), add + path[0][1]), *path[1:])
    segs: list[Segment] = []
    while add:
        segs.append((int(SegmentType.AS_SEQUENCE), add[:255]))
        add = add[255:]
    return (*segs, *path)


def as_path_length(path: AsPath) -> int:
    """AS_SET counts 1, confederation segments 0, AS_SEQUENCE its size."""
    n = 0
    for stype, asns in path:
        if stype == SegmentType.AS_SEQUENCE:
            n += len(asns)
        elif stype == SegmentType.AS_SET:
            n += 1
    return n


def as_path_str(path: AsPath | None) -> str:
    """``"65001 65002 {3 4} (65010)"``: sets in braces, confed segments in brackets."""
    parts: list[str] = []
    for stype, asns in path or ():
        text = " ".join(str(a) for a in asns)
        if stype == SegmentType.AS_SET:
            text = "{" + text + "}"
        elif stype == SegmentType.AS_CONFED_SEQUENCE:
            text = "(" + text + ")"
        elif stype == SegmentType.AS_CONFED_SET:
            text = "[" + text + "]"
        parts.append(text)
    return " ".join(parts)


class _Malformed(Exception):
    """Raised by an attribute decoder: the attribute is malformed."""

    def __init__(self, reason: str, subcode: int = UpdateSubcode.ATTRIBUTE_LENGTH_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.subcode = subcode


def _parse_as_path(value: bytes, width: int, allow_confed: bool) -> AsPath:
    """Segments of an AS_PATH/AS4_PATH (RFC 4271 §4.3, RFC 7606 §7.2)."""
    segs: list[Segment] = []
    i, n = 0, len(value)
    fmt = "!%dH" if width == 2 else "!%dI"
    while i < n:
        if i + 2 > n:
            raise _Malformed("truncated segment header", UpdateSubcode.MALFORMED_AS_PATH)
        stype, count = value[i], value[i + 1]
        if stype not in (1, 2, 3, 4):
            raise _Malformed(f"unknown segment type {stype}", UpdateSubcode.MALFORMED_AS_PATH)
        if stype >= 3 and not allow_confed:
            raise _Malformed("confederation segment not allowed", UpdateSubcode.MALFORMED_AS_PATH)
        if count == 0:
            raise _Malformed("zero-length segment", UpdateSubcode.MALFORMED_AS_PATH)
        end = i + 2 + count * width
        if end > n:
            raise _Malformed("segment overruns attribute", UpdateSubcode.MALFORMED_AS_PATH)
        asns = struct.unpack(fmt % count, value[i + 2 : end])
        if 0 in asns:
            raise _Malformed("AS 0 in path (RFC 7607)", UpdateSubcode.MALFORMED_AS_PATH)
        segs.append((stype, asns))
        i = end
    return tuple(segs)


def _count(path: AsPath) -> int:
    """ASNs counted for AS4_PATH reconciliation (RFC 6793 §4.2.3)."""
    return as_path_length(path)


def reconcile_as4_path(as_path: AsPath, as4_path: AsPath) -> AsPath:
    """Merge AS_PATH (2-octet, AS_TRANS placeholders) with AS4_PATH (RFC 6793 §4.2.3)."""
    keep = _count(as_path) - _count(as4_path)
    if keep < 0:
        return as_path
    lead: list[Segment] = []
    for stype, asns in as_path:
        if keep == 0 and stype <= SegmentType.AS_SEQUENCE:
            break  # leading confederation segments are kept even when keep is 0
        if stype == SegmentType.AS_SEQUENCE:
            take = asns[:keep]
            lead.append((stype, take))
            keep -= len(take)
        elif stype == SegmentType.AS_SET:
            lead.append((stype, asns))
            keep -= 1
        else:
            lead.append((stype, asns))
    merged = list(lead)
    rest = list(as4_path)
    if merged and rest:
        last, first = merged[-1], rest[0]
        if (
            last[0] == SegmentType.AS_SEQUENCE
            and first[0] == SegmentType.AS_SEQUENCE
            and len(last[1]) + len(first[1]) <= 255
        ):
            # Join the kept head and AS4_PATH where they meet into one sequence.
            merged[-1] = (last[0], last[1] + first[1])
            rest.pop(0)
    merged.extend(rest)
    return tuple(merged)


# --------------------------------------------------------------- attribute decoders

_MARTIAN_V4 = (
    (0x00000000, 0xFF000000),  # 0.0.0.0/8 "this network"
    (0x7F000000, 0xFF000000),  # 127.0.0.0/8 loopback
    (0xE0000000, 0xF0000000),  # 224.0.0.0/4 multicast
    (0xF0000000, 0xF0000000),  # 240.0.0.0/4 reserved, incl. broadcast
)


def is_martian_v4(addr: int) -> bool:
    """True if ``addr`` cannot be a next hop (RFC 4271 §6.3 "valid IP host address")."""
    return any(addr & mask == net for net, mask in _MARTIAN_V4)


def is_martian_v6(addr: IPv6Address) -> bool:
    """True if ``addr`` cannot be a global next hop: unspecified, loopback, multicast."""
    return addr.is_unspecified or addr.is_loopback or addr.is_multicast


def _d_origin(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if len(v) != 1:
        raise _Malformed("ORIGIN length is not 1")
    if v[0] > Origin.INCOMPLETE:
        raise _Malformed(f"undefined ORIGIN {v[0]}", UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE)
    out["origin"] = v[0]


def _d_as_path(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    # RFC 5065 §5: AS_CONFED_* segments from a neighbour outside our confederation make
    # the AS_PATH malformed. podbgp is in no confederation, so that is every neighbour
    # (iBGP ones too) unless the context says the peer is a confederation member.
    path = _parse_as_path(v, 4 if ctx.as4 else 2, allow_confed=ctx.confed_peer)
    if ctx.enforce_first_as and ctx.ebgp and ctx.peer_as and not ctx.confed_peer:
        # RFC 4271 §6.3: leftmost AS of an external peer's path must be its AS
        # (a MAY; a route server's paths start with its clients' ASes, RFC 7947).
        first = path[0] if path else None
        bad = first is None or first[0] != SegmentType.AS_SEQUENCE or first[1][0] != ctx.peer_as
        # On a 2-octet session a 4-octet peer's AS shows as AS_TRANS (RFC 6793 §4.2.2).
        trans = not ctx.as4 and first is not None and first[1][0] == AS_TRANS
        if bad and not trans:
            raise _Malformed("first AS is not the peer's", UpdateSubcode.MALFORMED_AS_PATH)
    out["as_path"] = path


def _d_next_hop(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if len(v) != 4:
        raise _Malformed("NEXT_HOP length is not 4")
    raw = int.from_bytes(v, "big")
    if is_martian_v4(raw):
        raise _Malformed(
            f"martian NEXT_HOP {IPv4Address(raw)}", UpdateSubcode.INVALID_NEXT_HOP_ATTRIBUTE
        )
    out["next_hop"] = IPv4Address(raw)


def _d_med(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if len(v) != 4:
        raise _Malformed("MULTI_EXIT_DISC length is not 4")
    out["med"] = int.from_bytes(v, "big")


def _d_local_pref(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    # From an external peer the generic loop has discarded it already (§7.5).
    if len(v) != 4:
        raise _Malformed("LOCAL_PREF length is not 4")
    out["local_pref"] = int.from_bytes(v, "big")


def _d_atomic(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if v:
        raise _Malformed("ATOMIC_AGGREGATE length is not 0")
    out["atomic_aggregate"] = True


def _d_aggregator(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    width = 4 if ctx.as4 else 2
    if len(v) != width + 4:
        raise _Malformed(f"AGGREGATOR length is not {width + 4}")
    asn = int.from_bytes(v[:width], "big")
    if asn == 0:
        raise _Malformed("AGGREGATOR AS 0 (RFC 7607)", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)
    out["aggregator"] = (asn, IPv4Address(v[width:]))


def _d_communities(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if not v or len(v) % 4:
        raise _Malformed("COMMUNITIES length is not a non-zero multiple of 4")
    out["communities"] = struct.unpack(f"!{len(v) // 4}I", v)


def _d_originator(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if len(v) != 4:
        raise _Malformed("ORIGINATOR_ID length is not 4")
    out["originator_id"] = IPv4Address(v)


def _d_cluster_list(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if not v or len(v) % 4:
        raise _Malformed("CLUSTER_LIST length is not a non-zero multiple of 4")
    out["cluster_list"] = tuple(IPv4Address(v[i : i + 4]) for i in range(0, len(v), 4))


def _d_ext_communities(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if not v or len(v) % 8:
        raise _Malformed("EXTENDED_COMMUNITIES length is not a non-zero multiple of 8")
    out["ext_communities"] = struct.unpack(f"!{len(v) // 8}Q", v)


def _d_large_communities(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if not v or len(v) % 12:
        raise _Malformed("LARGE_COMMUNITY length is not a non-zero multiple of 12")
    vals = struct.unpack(f"!{len(v) // 4}I", v)
    # RFC 8092 §3: redundant values are removed silently (first one kept).
    out["large_communities"] = tuple(
        dict.fromkeys((vals[i], vals[i + 1], vals[i + 2]) for i in range(0, len(vals), 3))
    )


def _d_as4_path(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if ctx.as4:
        raise _Discard("AS4_PATH on a 4-octet AS session (RFC 6793 §3)")
    path = _parse_as_path(v, 4, allow_confed=True)
    # RFC 6793 §6: confederation segments must not be in AS4_PATH; received ones are
    # dropped and the rest is used (not the whole attribute, as for other errors).
    plain = tuple(s for s in path if s[0] <= SegmentType.AS_SEQUENCE)
    if len(plain) != len(path):
        out["_as4_confed_dropped"] = True
    out["_as4_path"] = plain


def _d_as4_aggregator(v: bytes, ctx: CodecContext, out: dict[str, Any]) -> None:
    if ctx.as4:
        raise _Discard("AS4_AGGREGATOR on a 4-octet AS session (RFC 6793 §3)")
    if len(v) != 8:
        raise _Malformed("AS4_AGGREGATOR length is not 8")
    asn = int.from_bytes(v[:4], "big")
    if asn == 0:
        raise _Malformed("AS4_AGGREGATOR AS 0 (RFC 7607)", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)
    out["_as4_aggregator"] = (asn, IPv4Address(v[4:]))


class _Discard(Exception):
    """Raised by an attribute decoder: drop the attribute, it is not an error of form."""


Decoder = Callable[[bytes, CodecContext, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class AttrSpec:
    """How one known attribute is checked and decoded (RFC 7606 §7).

    ``bad_flags`` is the action for Optional/Transitive bits that differ from
    ``flags``: treat-as-withdraw (RFC 7606 §3(c)) unless the attribute's own
    specification says otherwise; the per-attribute rules of §7.6 and §7.7
    (attribute discard) are about the length only, so they do not apply here.
    ``external`` names the RFC 7606 clause that discards the attribute from an
    external peer whatever its form, or is empty.
    """

    code: AttrCode
    flags: int  # expected Optional|Transitive bits
    decode: Decoder | None  # None: MP_REACH/MP_UNREACH, handled per message
    malformed: Action  # action when the value (or a forbidden Partial bit) is malformed
    bad_flags: Action = Action.TREAT_AS_WITHDRAW
    external: str = ""


def _spec(
    code: AttrCode,
    flags: int,
    dec: Decoder | None,
    act: Action,
    bad_flags: Action = Action.TREAT_AS_WITHDRAW,
    external: str = "",
) -> tuple[int, AttrSpec]:
    return int(code), AttrSpec(code, flags, dec, act, bad_flags, external)


_TAW = Action.TREAT_AS_WITHDRAW
_AD = Action.ATTRIBUTE_DISCARD
ATTRS: dict[int, AttrSpec] = dict(
    [
        _spec(AttrCode.ORIGIN, _T, _d_origin, _TAW),
        _spec(AttrCode.AS_PATH, _T, _d_as_path, _TAW),
        _spec(AttrCode.NEXT_HOP, _T, _d_next_hop, _TAW),
        _spec(AttrCode.MULTI_EXIT_DISC, _O, _d_med, _TAW),
        _spec(AttrCode.LOCAL_PREF, _T, _d_local_pref, _TAW, external="§7.5"),
        _spec(AttrCode.ATOMIC_AGGREGATE, _T, _d_atomic, _AD),
        _spec(AttrCode.AGGREGATOR, _OT, _d_aggregator, _AD),
        _spec(AttrCode.COMMUNITIES, _OT, _d_communities, _TAW),
        _spec(AttrCode.ORIGINATOR_ID, _O, _d_originator, _TAW, external="§7.9"),
        _spec(AttrCode.CLUSTER_LIST, _O, _d_cluster_list, _TAW, external="§7.10"),
        _spec(AttrCode.MP_REACH_NLRI, _O, None, Action.AFI_SAFI_DISABLE),
        _spec(AttrCode.MP_UNREACH_NLRI, _O, None, Action.AFI_SAFI_DISABLE),
        _spec(AttrCode.EXTENDED_COMMUNITIES, _OT, _d_ext_communities, _TAW),
        # RFC 6793 §6 discards a malformed AS4_* attribute. It names no flag rule; wrong
        # flags count as one more malformation here, so an OLD speaker's error costs
        # only the 4-octet detail, never the route.
        _spec(AttrCode.AS4_PATH, _OT, _d_as4_path, _AD, bad_flags=_AD),
        _spec(AttrCode.AS4_AGGREGATOR, _OT, _d_as4_aggregator, _AD, bad_flags=_AD),
        _spec(AttrCode.LARGE_COMMUNITY, _OT, _d_large_communities, _TAW),
    ]
)


# --------------------------------------------------------------- generic loop


@dataclass(frozen=True, slots=True)
class DecodedAttributes:
    """What the generic attribute loop makes of one attribute blob.

    ``mp_reach``/``mp_unreach`` are the raw values (or None) for the UPDATE
    decoder; ``next_hop_error`` applies only if the UPDATE has IPv4 NLRI in
    its NLRI field (RFC 4760 §3: otherwise NEXT_HOP is ignored).
    """

    attrs: PathAttributes
    errors: tuple[AttrError, ...]
    action: Action
    mp_reach: bytes | None
    mp_unreach: bytes | None
    next_hop_error: AttrError | None
    has_origin_and_path: bool
    non_mp: bool


_FLAG_BITS = _OT | _P


def _flags_action(flags: int, spec: AttrSpec) -> Action:
    """The action for ``flags`` that do not fit the attribute, or NONE if they do.

    Optional/Transitive differing from the attribute's: ``spec.bad_flags``
    (RFC 7606 §3(c)). The Partial bit on a well-known or optional
    non-transitive attribute, where RFC 4271 §4.3 requires it to be 0
    (Attribute Flags Error, §6.3): the attribute is malformed.
    """
    if (flags & _OT) != spec.flags:
        return spec.bad_flags
    if flags & _P and spec.flags != _OT:
        return spec.malformed
    return Action.NONE


def _attr_bytes(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | _E, code, len(value)) + value
    return struct.pack("!BBB", flags & ~_E & 0xFF, code, len(value)) + value


class _Walk:
    """The state of one pass over a Path Attributes field (``decode_attributes``)."""

    __slots__ = ("errors", "mp", "nh_error", "non_mp", "out", "seen", "unknown")

    def __init__(self) -> None:
        self.out: dict[str, Any] = {}
        self.errors: list[AttrError] = []
        self.unknown: list[UnknownAttribute] = []
        self.seen: set[int] = set()
        self.mp: dict[int, bytes] = {}
        self.nh_error: AttrError | None = None
        self.non_mp = False

    def result(self) -> DecodedAttributes:
        out, errors = self.out, self.errors
        _reconcile_as4(out, errors)
        return DecodedAttributes(
            PathAttributes(**out, unknown=tuple(self.unknown)),
            tuple(errors),
            max((e.action for e in errors), default=Action.NONE),
            self.mp.get(AttrCode.MP_REACH_NLRI),
            self.mp.get(AttrCode.MP_UNREACH_NLRI),
            self.nh_error,
            "origin" in out and "as_path" in out,
            self.non_mp,
        )


def decode_attributes(blob: bytes, ctx: CodecContext) -> DecodedAttributes:
    """Decode a Path Attributes field, applying RFC 7606 §3, §4 and §7.

    Each attribute is framed (``_frame``), then taken as an MP attribute
    (``_take_mp``) or through the ``ATTRS`` table (``_take``). Raises
    ``UpdateMessageError`` only where a session reset is still required
    (duplicate MP_REACH/MP_UNREACH §3(g), a truncated one §3(j), an
    unrecognised well-known attribute).
    """
    walk = _Walk()
    i, n = 0, len(blob)
    while i < n:
        end = _frame(blob, i, walk.errors)
        if end is None:
            break
        flags, code = blob[i], blob[i + 1]
        hdr = 4 if flags & _E else 3
        value, raw = blob[i + hdr : end], blob[i:end]
        i = end
        if code == AttrCode.MP_REACH_NLRI or code == AttrCode.MP_UNREACH_NLRI:
            _take_mp(walk, flags, code, value, raw)
        else:
            _take(walk, flags, code, value, raw, ctx)
    return walk.result()


def _frame(blob: bytes, i: int, errors: list[AttrError]) -> int | None:
    """The end of the attribute at ``i``, or None (error recorded) when its header or
    value overruns the list: treat-as-withdraw (RFC 7606 §4), except for an MP attribute."""
    n = len(blob)
    hdr = 4 if blob[i] & _E else 3
    if i + hdr > n:
        reason = "attribute header overruns the attribute list (RFC 7606 §4)"
        errors.append(AttrError(_TAW, 0, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", reason))
        return None
    code = blob[i + 1]
    end = i + hdr + ((blob[i + 2] << 8 | blob[i + 3]) if hdr == 4 else blob[i + 2])
    if end <= n:
        return end
    if code == AttrCode.MP_REACH_NLRI or code == AttrCode.MP_UNREACH_NLRI:
        # RFC 7606 §3(j): a truncated MP attribute cannot be parsed, so
        # its NLRI cannot be withdrawn: RFC 4760 §7 session reset.
        raise UpdateMessageError(
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            blob[i:n],
            f"attribute {code} overruns the attribute list (RFC 7606 §3(j))",
        )
    reason = "attribute overruns the attribute list (RFC 7606 §4)"
    errors.append(AttrError(_TAW, code, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, blob[i:n], reason))
    return None


def _take_mp(walk: _Walk, flags: int, code: int, value: bytes, raw: bytes) -> None:
    """MP_REACH_NLRI / MP_UNREACH_NLRI: kept raw for the UPDATE decoder (RFC 4760)."""
    if code in walk.mp:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            reason=f"attribute {code} appears twice (RFC 7606 §3(g))",
        )
    walk.mp[code] = value
    if (flags & _FLAG_BITS) != _O:
        reason = "MP attribute flags conflict (RFC 7606 §3(c))"
        walk.errors.append(AttrError(_TAW, code, UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, raw, reason))


def _take(walk: _Walk, flags: int, code: int, value: bytes, raw: bytes, ctx: CodecContext) -> None:
    """Any other attribute: repeated (§3(g)), unknown, from an external peer (§7.5, §7.9,
    §7.10), wrong flags (§3(c)), or decoded by its ``ATTRS`` entry."""
    walk.non_mp = True
    if code in walk.seen:
        reason = "repeated attribute discarded (RFC 7606 §3(g))"
        walk.errors.append(
            AttrError(_AD, code, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, raw, reason)
        )
        return
    walk.seen.add(code)
    spec = ATTRS.get(code)
    if spec is None:
        if not flags & _O:
            raise UpdateMessageError(
                UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                raw,
                f"unrecognised well-known attribute {code}",
            )
        if flags & _T:
            walk.unknown.append(UnknownAttribute((flags | _P) & ~_E & 0xFF, code, value))
        return
    err = _spec_error(spec, flags, value, raw, ctx, walk.out)
    if err is None:
        return
    if code == AttrCode.NEXT_HOP:
        walk.nh_error = err
    else:
        walk.errors.append(err)


def _spec_error(
    spec: AttrSpec, flags: int, value: bytes, raw: bytes, ctx: CodecContext, out: dict[str, Any]
) -> AttrError | None:
    """Decode a known attribute into ``out``; the error it makes instead, if any."""
    code = spec.code
    if spec.external and ctx.ebgp and not ctx.confed_peer:
        # RFC 7606 §7.5, §7.9, §7.10: from an external peer these are
        # discarded whatever their flags or length.
        reason = f"{code.name} from an external peer (RFC 7606 {spec.external})"
        return AttrError(_AD, code, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, raw, reason)
    flags_action = _flags_action(flags, spec)
    if flags_action is not Action.NONE:
        reason = f"{code.name} flags conflict (RFC 7606 §3(c))"
        return AttrError(flags_action, code, UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, raw, reason)
    assert spec.decode is not None
    try:
        spec.decode(value, ctx, out)
    except _Malformed as exc:
        return AttrError(spec.malformed, code, exc.subcode, raw, f"{code.name}: {exc.reason}")
    except _Discard as exc:
        return AttrError(_AD, code, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, raw, str(exc))
    return None


def _reconcile_as4(out: dict[str, Any], errors: list[AttrError]) -> None:
    """RFC 6793 §4.2.3: fold AS4_AGGREGATOR and AS4_PATH into the 2-octet attributes."""
    if out.pop("_as4_confed_dropped", False):
        errors.append(
            AttrError(
                _AD,
                AttrCode.AS4_PATH,
                UpdateSubcode.MALFORMED_AS_PATH,
                b"",
                "AS4_PATH confederation segments discarded, the rest used (RFC 6793 §6)",
            )
        )
    as4_path = out.pop("_as4_path", None)
    as4_agg = out.pop("_as4_aggregator", None)
    agg = out.get("aggregator")
    if as4_agg is not None and agg is not None:
        if agg[0] != AS_TRANS:
            # The AGGREGATOR was set by an OLD speaker after the AS4 one: both
            # AS4_AGGREGATOR and AS4_PATH are stale and ignored.
            return
        out["aggregator"] = as4_agg
    if as4_path is not None and "as_path" in out:
        out["as_path"] = reconcile_as4_path(out["as_path"], as4_path)


# --------------------------------------------------------------------- encoder


def encode_attribute(flags: int, code: int, value: bytes) -> bytes:
    """One attribute TLV, with the Extended Length bit set only when needed."""
    return _attr_bytes(flags, code, value)


def _enc_path(path: AsPath, width: int) -> bytes:
    fmt = "!%dH" if width == 2 else "!%dI"
    return b"".join(struct.pack("!BB", t, len(a)) + struct.pack(fmt % len(a), *a) for t, a in path)


def _needs_as4(path: AsPath) -> bool:
    return any(a > 0xFFFF for _, asns in path for a in asns)


def _encode_all(a: PathAttributes, as4: bool) -> bytes:
    """Attributes in type-code order (RFC 4271 §5 recommends ascending order)."""
    parts: list[bytes] = []
    add = parts.append
    if a.origin is not None:
        add(_attr_bytes(_T, AttrCode.ORIGIN, bytes((a.origin,))))
    as4_path: bytes | None = None
    if a.as_path is not None:
        if as4:
            add(_attr_bytes(_T, AttrCode.AS_PATH, _enc_path(a.as_path, 4)))
        else:
            two = tuple(
                (t, tuple(x if x <= 0xFFFF else AS_TRANS for x in asns)) for t, asns in a.as_path
            )
            add(_attr_bytes(_T, AttrCode.AS_PATH, _enc_path(two, 2)))
            if _needs_as4(a.as_path):
                # RFC 6793 §4.2.2: confederation segments are not carried in AS4_PATH.
                plain = tuple(s for s in a.as_path if s[0] <= SegmentType.AS_SEQUENCE)
                as4_path = _enc_path(plain, 4)
    if a.next_hop is not None:
        add(_attr_bytes(_T, AttrCode.NEXT_HOP, a.next_hop.packed))
    if a.med is not None:
        add(_attr_bytes(_O, AttrCode.MULTI_EXIT_DISC, a.med.to_bytes(4, "big")))
    if a.local_pref is not None:
        add(_attr_bytes(_T, AttrCode.LOCAL_PREF, a.local_pref.to_bytes(4, "big")))
    if a.atomic_aggregate:
        add(_attr_bytes(_T, AttrCode.ATOMIC_AGGREGATE, b""))
    as4_agg: bytes | None = None
    if a.aggregator is not None:
        asn, addr = a.aggregator
        if as4:
            add(_attr_bytes(_OT, AttrCode.AGGREGATOR, asn.to_bytes(4, "big") + addr.packed))
        else:
            two_as = asn if asn <= 0xFFFF else AS_TRANS
            add(_attr_bytes(_OT, AttrCode.AGGREGATOR, two_as.to_bytes(2, "big") + addr.packed))
            if asn > 0xFFFF:
                as4_agg = asn.to_bytes(4, "big") + addr.packed
    if a.communities:
        v = struct.pack(f"!{len(a.communities)}I", *a.communities)
        add(_attr_bytes(_OT, AttrCode.COMMUNITIES, v))
    if a.originator_id is not None:
        add(_attr_bytes(_O, AttrCode.ORIGINATOR_ID, a.originator_id.packed))
    if a.cluster_list:
        add(_attr_bytes(_O, AttrCode.CLUSTER_LIST, b"".join(c.packed for c in a.cluster_list)))
    if a.ext_communities:
        v = struct.pack(f"!{len(a.ext_communities)}Q", *a.ext_communities)
        add(_attr_bytes(_OT, AttrCode.EXTENDED_COMMUNITIES, v))
    if as4_path is not None:
        add(_attr_bytes(_OT, AttrCode.AS4_PATH, as4_path))
    if as4_agg is not None:
        add(_attr_bytes(_OT, AttrCode.AS4_AGGREGATOR, as4_agg))
    if a.large_communities:
        # RFC 8092 §3: duplicate values are never transmitted.
        v = b"".join(struct.pack("!III", *c) for c in dict.fromkeys(a.large_communities))
        add(_attr_bytes(_OT, AttrCode.LARGE_COMMUNITY, v))
    for u in a.unknown:
        add(_attr_bytes(u.flags, u.code, u.value))
    return b"".join(parts)
