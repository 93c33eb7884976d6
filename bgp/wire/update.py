"""UPDATE messages: decode with RFC 7606 error handling, encode, and pack in bulk.

Decoding (RFC 4271 §4.3, RFC 4760, RFC 7606, RFC 7911)
    1. The Withdrawn Routes and NLRI fields are split into compact NLRI
       (``bgp.wire.prefix``); a field that cannot be parsed resets the session
       with Invalid Network Field (RFC 7606 §5.3), as do lengths that overrun
       the message (Malformed Attribute List, RFC 4271 §6.3).
    2. The Path Attributes field is looked up in the context's cache, keyed by
       its bytes with MP_REACH_NLRI/MP_UNREACH_NLRI cut out (they hold
       per-message NLRI). Only on a miss does ``decode_attributes`` run. The
       cache is bounded (``ATTR_CACHE_SIZE``, oldest entry evicted first).
    3. MP_REACH_NLRI/MP_UNREACH_NLRI are parsed per message. An unknown
       AFI/SAFI is ignored; a structure or NLRI that cannot be parsed makes
       ``action`` AFI_SAFI_DISABLE with ``disabled`` naming the family
       (RFC 4760 §7, RFC 7606 §5.3); fewer than 3 octets (no AFI/SAFI) resets
       the session. A next hop of unexpected length is AFI/SAFI disable too
       (RFC 7606 §7.11); a martian next hop is treat-as-withdraw (RFC 4271
       §6.3 with RFC 7606 §3(e)).
    4. Missing ORIGIN or AS_PATH (or NEXT_HOP for the IPv4 NLRI field) when
       routes are announced is treat-as-withdraw (RFC 7606 §3(d)). An UPDATE
       with path attributes other than MP_UNREACH_NLRI that announces nothing
       and has any error stronger than attribute discard (MP AFI/SAFI disable
       aside) resets the session (RFC 7606 §5.2).
    5. On treat-as-withdraw every announced NLRI moves to ``unreach``, so a
       consumer can always apply ``reach`` and ``unreach`` as they are.

Encoding
    ``encode_update`` writes one ``Update`` (and refuses one that does not fit).
    ``encode_announce`` / ``encode_withdraw`` pack any number of compact NLRI
    into as few UPDATEs as the maximum message size allows, reusing the
    attribute bytes cached on the ``PathAttributes`` object. MP_REACH_NLRI and
    MP_UNREACH_NLRI are written first, as RFC 7606 §5.1 asks.

Size (over ~600 lines, one concern): one message type, decoded, encoded and
packed in bulk. The fast paths (``plain_withdrawal``, ``announce_head``) are
checked against the general decoder and encoder beside them, so they stay in
one module with it.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from itertools import accumulate
from typing import Any

from bgp.errors import UpdateMessageError, UpdateSubcode
from bgp.wire.attributes import (
    AttrError,
    DecodedAttributes,
    PathAttributes,
    decode_attributes,
    is_martian_v4,
    is_martian_v6,
)
from bgp.wire.constants import MARKER, Action, AttrCode, Family, MessageType
from bgp.wire.context import CodecContext
from bgp.wire.prefix import NlriError, Prefix, parse_nlri, parse_v4_fields

__all__ = [
    "ATTR_CACHE_SIZE",
    "Update",
    "decode_update",
    "encode_announce",
    "encode_end_of_rib",
    "encode_update",
    "encode_withdraw",
    "plain_withdrawal",
    "plain_withdrawals",
    "withdraws_only",
]

ATTR_CACHE_SIZE = 100_000

_V4 = Family.IPV4_UNICAST
_V6 = Family.IPV6_UNICAST
_TAW = Action.TREAT_AS_WITHDRAW
_NO_ADD_PATH: frozenset[Family] = frozenset()
_ADD_PATH_SETS = {
    (False, False): _NO_ADD_PATH,
    (True, False): frozenset({_V4}),
    (False, True): frozenset({_V6}),
    (True, True): frozenset({_V4, _V6}),
}


@dataclass(slots=True)
class Update:
    """A decoded (or to-be-encoded) UPDATE message. Treat it as immutable.

    - ``attrs``: the path attributes, or None when the message has none
      (withdrawals, End-of-RIB).
    - ``reach`` / ``unreach``: compact NLRI per family (``bgp.wire.prefix``),
      IPv4 from both the NLRI/Withdrawn fields and MP attributes. With
      ADD-PATH for a family (``add_path``) each NLRI starts with its 4-octet
      path identifier. An IPv6 End-of-RIB is ``unreach == {IPV6_UNICAST: []}``.
    - ``action``: the strongest RFC 7606 action applied (never SESSION_RESET;
      that raises). On TREAT_AS_WITHDRAW the announced NLRI are already in
      ``unreach``. On AFI_SAFI_DISABLE, ``disabled`` names the family whose
      routes from this peer must be flushed and further ones ignored.
    - ``errors``: every RFC 7606 finding, for logs.
    """

    attrs: PathAttributes | None = None
    reach: dict[Family, list[bytes]] = field(default_factory=dict)
    unreach: dict[Family, list[bytes]] = field(default_factory=dict)
    action: Action = Action.NONE
    errors: tuple[AttrError, ...] = ()
    disabled: Family | None = None
    add_path: frozenset[Family] = _NO_ADD_PATH

    @property
    def announced(self) -> list[Prefix]:
        """Announced prefixes as printable objects (slow path: builds one per NLRI)."""
        return self._prefixes(self.reach)

    @property
    def withdrawn(self) -> list[Prefix]:
        """Withdrawn prefixes, including treat-as-withdraw ones (slow path)."""
        return self._prefixes(self.unreach)

    def _prefixes(self, table: dict[Family, list[bytes]]) -> list[Prefix]:
        return [
            Prefix.from_nlri(fam, nlri, fam in self.add_path)
            for fam, items in table.items()
            for nlri in items
        ]

    @property
    def end_of_rib(self) -> Family | None:
        """The family this End-of-RIB marker closes (RFC 4724 §2), else None."""
        if self.attrs is not None or self.reach or self.action:
            return None
        if not self.unreach:
            return _V4
        if len(self.unreach) == 1:
            fam, items = next(iter(self.unreach.items()))
            if not items and fam is not _V4:
                return fam
        return None


# ------------------------------------------------------------------ decoding


def _network_error(reason: str) -> UpdateMessageError:
    return UpdateMessageError(UpdateSubcode.INVALID_NETWORK_FIELD, reason=reason)


def decode_update(data: bytes, ctx: CodecContext) -> Update:
    """Decode a whole UPDATE message (header included, already length-checked)."""
    n = len(data)
    wlen = data[19] << 8 | data[20]
    a0 = 21 + wlen
    if a0 + 2 > n:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, reason="Withdrawn Routes Length too large"
        )
    a1 = a0 + 2 + (data[a0] << 8 | data[a0 + 1])
    if a1 > n:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, reason="Total Path Attribute Length too large"
        )
    ap4 = ctx.add_path_ipv4
    unreach: dict[Family, list[bytes]] = {}
    reach: dict[Family, list[bytes]] = {}
    try:
        if wlen:
            unreach[_V4] = parse_nlri(data, 21, a0, _V4, ap4)
        if a1 < n:
            reach[_V4] = parse_nlri(data, a1, n, _V4, ap4)
    except NlriError as exc:
        raise _network_error(str(exc)) from None
    add_path = _ADD_PATH_SETS[ap4, ctx.add_path_ipv6]
    if a1 == a0 + 2:
        if reach:
            err = AttrError(
                _TAW, 0, UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, b"", "no attributes"
            )
            unreach.setdefault(_V4, []).extend(reach.pop(_V4))
            return Update(None, reach, unreach, _TAW, (err,), None, add_path)
        return Update(None, reach, unreach, Action.NONE, (), None, add_path)
    blob = data[a0 + 2 : a1]
    cache = ctx._attr_cache
    entry: DecodedAttributes | None = cache.get(blob)
    if (
        entry is not None
        and entry.action == 0
        and entry.next_hop_error is None
        and (not reach or (entry.has_origin_and_path and entry.attrs.next_hop is not None))
    ):
        # Hot path: a known, clean IPv4 attribute set.
        return Update(entry.attrs, reach, unreach, Action.NONE, (), None, add_path)
    return _decode_slow(blob, entry, reach, unreach, add_path, ctx)


def plain_withdrawal(data: bytes, ctx: CodecContext) -> list[bytes] | None:
    """The IPv4 keys of an UPDATE that only withdraws routes, else None (fast path).

    "Only withdraws": a non-empty Withdrawn Routes field, no path attributes
    and no NLRI (RFC 4271 §4.3), without ADD-PATH for IPv4. The keys and the
    error for a malformed field (RFC 7606 §5.3) are those of ``decode_update``;
    None means "not that kind of UPDATE: call ``decode_update``". A full table
    is withdrawn in some 140,000 such messages, and this skips building an
    ``Update`` for each of them.
    """
    if ctx.add_path_ipv4 or not withdraws_only(data):
        return None
    try:
        return parse_nlri(data, 21, len(data) - 2, _V4, False)
    except NlriError as exc:
        raise _network_error(str(exc)) from None


def withdraws_only(data: bytes) -> bool:
    """The framing test of ``plain_withdrawal``: a whole UPDATE frame (header
    included) whose Withdrawn Routes field is not empty and whose Total Path
    Attribute Length and NLRI are (RFC 4271 §4.3). Only the lengths are looked
    at; the field itself is parsed by ``plain_withdrawal(s)``."""
    n = len(data)
    return n > 23 and not data[n - 1] and not data[n - 2] and (data[19] << 8 | data[20]) == n - 23


def plain_withdrawals(
    frames: list[bytes], ctx: CodecContext
) -> tuple[list[bytes], int, UpdateMessageError | None]:
    """``plain_withdrawal`` for a run of frames that each are one (the caller checked
    the framing with ``withdraws_only``, and that IPv4 has no ADD-PATH): all
    their keys, in order.

    The Withdrawn Routes fields are joined and parsed in one pass, each within
    its own bounds (``parse_v4_fields``). If one does not parse, each frame is
    parsed on its own, so the malformed one is found exactly: the keys of the
    frames before it, how many those are, and its error (RFC 7606 §5.3) come
    back; the caller handles them first.
    """
    parts = [f[21 : len(f) - 2] for f in frames]
    fast = parse_v4_fields(b"".join(parts), accumulate(map(len, parts)))
    if fast is not None:
        return fast, len(frames), None
    keys: list[bytes] = []
    for i, f in enumerate(frames):
        try:
            got = plain_withdrawal(f, ctx)
        except UpdateMessageError as exc:
            return keys, i, exc
        assert got is not None
        keys += got
    return keys, len(frames), None


def _cache_put(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= ATTR_CACHE_SIZE:
        del cache[next(iter(cache))]
    cache[key] = value


def _split_mp(blob: bytes) -> tuple[bytes, bytes | None, bytes | None] | None:
    """Cut MP_REACH/MP_UNREACH out of an attribute blob; None if the framing is broken."""
    i, n = 0, len(blob)
    rest: list[bytes] = []
    mp: dict[int, bytes] = {}
    found = False
    while i < n:
        flags = blob[i]
        hdr = 4 if flags & 0x10 else 3
        if i + hdr > n:
            return None
        code = blob[i + 1]
        ln = (blob[i + 2] << 8 | blob[i + 3]) if hdr == 4 else blob[i + 2]
        end = i + hdr + ln
        if end > n:
            return None
        if code == AttrCode.MP_REACH_NLRI or code == AttrCode.MP_UNREACH_NLRI:
            if code in mp or (flags & 0xE0) != 0x80:
                return None  # duplicate or bad flags (O/T/P): let the full decoder judge
            mp[code] = blob[i + hdr : end]
            found = True
        else:
            rest.append(blob[i:end])
        i = end
    if not found:
        return blob, None, None
    return b"".join(rest), mp.get(AttrCode.MP_REACH_NLRI), mp.get(AttrCode.MP_UNREACH_NLRI)


def _lookup(
    blob: bytes, entry: DecodedAttributes | None, ctx: CodecContext
) -> tuple[DecodedAttributes, bytes | None, bytes | None]:
    if entry is not None:
        return entry, None, None
    cache = ctx._attr_cache
    split = _split_mp(blob)
    if split is None:
        # Broken framing, a duplicate or ill-flagged MP attribute: decode
        # without caching; decode_attributes applies RFC 7606 §3/§4.
        full = decode_attributes(blob, ctx)
        return full, full.mp_reach, full.mp_unreach
    rest, mp_reach, mp_unreach = split
    entry = cache.get(rest)
    if entry is None:
        entry = decode_attributes(rest, ctx)
        _cache_put(cache, rest, entry)
    return entry, mp_reach, mp_unreach


@dataclass(slots=True)
class _Result:
    """Mutable scratch state of one slow-path decode."""

    errors: list[AttrError]
    disabled: Family | None = None
    mp_family: Family | None = None
    mp_nh: tuple[IPv4Address | IPv6Address, ...] = ()
    mp_nh_raw: bytes = b""


def _decode_slow(
    blob: bytes,
    cached: DecodedAttributes | None,
    reach: dict[Family, list[bytes]],
    unreach: dict[Family, list[bytes]],
    add_path: frozenset[Family],
    ctx: CodecContext,
) -> Update:
    entry, mp_reach, mp_unreach = _lookup(blob, cached, ctx)
    res = _Result(list(entry.errors))
    if mp_unreach is not None:
        _mp_unreach(mp_unreach, ctx, unreach, res)
    if mp_reach is not None:
        _mp_reach(mp_reach, ctx, reach, res)
    has_v4_field = _V4 in reach and res.mp_family is not _V4
    if reach.get(_V4) and entry.next_hop_error is not None and has_v4_field:
        res.errors.append(entry.next_hop_error)
    announces = any(reach.values())
    attrs = _derive_attrs(entry, res, has_v4_field, ctx) if entry.non_mp or res.mp_nh else None
    if announces:
        _check_mandatory(entry, reach, has_v4_field, res)
    elif entry.non_mp or mp_reach is not None:
        _no_nlri_rule(res.errors)
    action = max((e.action for e in res.errors), default=Action.NONE)
    if action >= _TAW:
        for fam, items in reach.items():
            unreach.setdefault(fam, []).extend(items)
        reach = {}
    if res.disabled is not None:
        action = Action.AFI_SAFI_DISABLE
    return Update(attrs, reach, unreach, action, tuple(res.errors), res.disabled, add_path)


def _no_nlri_rule(errors: list[AttrError]) -> None:
    """RFC 7606 §5.2: path attributes other than MP_UNREACH_NLRI (MP_REACH_NLRI
    counts) but no reachable NLRI, and any error whose approach is not
    attribute discard: session reset.

    An MP_REACH_NLRI/MP_UNREACH_NLRI that cannot be parsed keeps its own
    AFI/SAFI disable: RFC 7606 §3(j), §5.3 and §7.11 allow it for exactly
    that case, and §5.2 is about attribute errors once the NLRI are known.
    A treat-as-withdraw finding on MP_REACH_NLRI (flags, martian next hop)
    is not exempt.
    """
    worst = max(
        (
            e
            for e in errors
            if e.action > Action.ATTRIBUTE_DISCARD and e.action != Action.AFI_SAFI_DISABLE
        ),
        key=lambda e: e.action,
        default=None,
    )
    if worst is not None:
        raise UpdateMessageError(worst.subcode, worst.data, f"no NLRI and {worst.reason}")


def _check_mandatory(
    entry: DecodedAttributes,
    reach: dict[Family, list[bytes]],
    has_v4_field: bool,
    res: _Result,
) -> None:
    """RFC 7606 §3(d): a missing well-known mandatory attribute is treat-as-withdraw."""
    missing: list[str] = []
    if not entry.has_origin_and_path:
        missing.append("ORIGIN/AS_PATH")
    nh_missing = entry.attrs.next_hop is None and entry.next_hop_error is None
    if has_v4_field and reach.get(_V4) and nh_missing:
        missing.append("NEXT_HOP")
    if missing:
        code = AttrCode.ORIGIN if entry.attrs.origin is None else AttrCode.AS_PATH
        data = bytes((code if not entry.has_origin_and_path else AttrCode.NEXT_HOP,))
        res.errors.append(
            AttrError(
                _TAW,
                data[0],
                UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE,
                data,
                "missing " + ", ".join(missing),
            )
        )


def _derive_attrs(
    entry: DecodedAttributes, res: _Result, has_v4_field: bool, ctx: CodecContext
) -> PathAttributes:
    """The attributes with the MP next hop folded in, interned in the context cache.

    RFC 4760 §3: without IPv4 routes in the NLRI field, NEXT_HOP is ignored.
    """
    attrs = entry.attrs
    if not res.mp_nh:
        return attrs
    drop_nh = attrs.next_hop is not None and not has_v4_field
    key = (attrs, res.mp_nh_raw, drop_nh)
    cache = ctx._attr_cache
    derived: PathAttributes | None = cache.get(key)
    if derived is None:
        derived = attrs.replace(mp_next_hop=res.mp_nh, **({"next_hop": None} if drop_nh else {}))
        _cache_put(cache, key, derived)
    return derived


def _mp_family(value: bytes, code: int) -> Family | None:
    """The family of an MP attribute; reset when AFI/SAFI cannot even be read."""
    if len(value) < 3:
        raise UpdateMessageError(
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            bytes((0x80, code, len(value))) + value,
            "MP attribute too short for AFI/SAFI (RFC 7606 §5.3)",
        )
    return Family.of(value[0] << 8 | value[1], value[2])


def _disable(res: _Result, fam: Family, code: int, value: bytes, reason: str) -> None:
    res.disabled = fam
    res.errors.append(
        AttrError(
            Action.AFI_SAFI_DISABLE,
            code,
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            value,
            reason,
        )
    )


def _mp_unreach(
    value: bytes, ctx: CodecContext, unreach: dict[Family, list[bytes]], res: _Result
) -> None:
    """MP_UNREACH_NLRI: AFI, SAFI, withdrawn routes (RFC 4760 §4)."""
    code = AttrCode.MP_UNREACH_NLRI
    fam = _mp_family(value, code)
    if fam is None:
        res.errors.append(
            AttrError(Action.ATTRIBUTE_DISCARD, code, 0, b"", "MP_UNREACH_NLRI family not carried")
        )
        return
    try:
        items = parse_nlri(value, 3, len(value), fam, ctx.add_path_rx(fam))
    except NlriError as exc:
        _disable(res, fam, code, value, f"MP_UNREACH_NLRI: {exc}")
        return
    unreach.setdefault(fam, []).extend(items)


def _mp_reach(
    value: bytes, ctx: CodecContext, reach: dict[Family, list[bytes]], res: _Result
) -> None:
    """MP_REACH_NLRI: AFI, SAFI, next hop, reserved, NLRI (RFC 4760 §3)."""
    code = AttrCode.MP_REACH_NLRI
    fam = _mp_family(value, code)
    if fam is None:
        res.errors.append(
            AttrError(Action.ATTRIBUTE_DISCARD, code, 0, b"", "MP_REACH_NLRI family not carried")
        )
        return
    n = len(value)
    if n < 5 or 5 + value[3] > n:
        _disable(res, fam, code, value, "MP_REACH_NLRI next hop overruns the attribute")
        return
    nh_end = 4 + value[3]
    if not _nh_len_ok(fam, value[3], ctx):
        # RFC 7606 §7.11: the NLRI cannot be located reliably after a next
        # hop of unexpected length: AFI/SAFI disable, not treat-as-withdraw.
        _disable(res, fam, code, value, f"MP_REACH_NLRI next hop length {value[3]} unexpected")
        return
    try:
        items = parse_nlri(value, nh_end + 1, n, fam, ctx.add_path_rx(fam))
    except NlriError as exc:
        _disable(res, fam, code, value, f"MP_REACH_NLRI: {exc}")
        return
    res.mp_family = fam
    reach.setdefault(fam, []).extend(items)
    raw = value[4:nh_end]
    hops, why = _next_hops(fam, raw, ctx)
    if why:
        res.errors.append(AttrError(_TAW, code, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, value, why))
        return
    res.mp_nh = hops
    res.mp_nh_raw = raw


def _nh_len_ok(fam: Family, ln: int, ctx: CodecContext) -> bool:
    """The MP next-hop lengths expected: 4 for IPv4, 16 or 32 for IPv6 (RFC 2545 §3),
    and 16 or 32 for IPv4 routes too once extended next hop is negotiated (RFC 8950 §3)."""
    if ln == 4:
        return fam is _V4
    return ln in (16, 32) and (fam is _V6 or ctx.extended_nexthop_ipv4)


def _next_hops(
    fam: Family, raw: bytes, ctx: CodecContext
) -> tuple[tuple[IPv4Address | IPv6Address, ...], str]:
    """Validate an MP next hop of an expected length (``_nh_len_ok``): a martian
    next hop is a reason to treat the routes as withdrawn (RFC 4271 §6.3, RFC 7606 §3(e))."""
    ln = len(raw)
    if ln == 4 and fam is _V4:
        addr = int.from_bytes(raw, "big")
        if is_martian_v4(addr):
            return (), f"martian next hop {IPv4Address(addr)}"
        return (IPv4Address(addr),), ""
    if ln in (16, 32) and (fam is _V6 or ctx.extended_nexthop_ipv4):
        glob = IPv6Address(raw[:16])
        hops: tuple[IPv4Address | IPv6Address, ...] = (glob,)
        if ln == 32:
            hops = (glob, IPv6Address(raw[16:]))
        if is_martian_v6(glob) and not (ln == 32 and glob.is_unspecified):
            return (), f"martian next hop {glob}"
        return hops, ""
    return (), f"next hop length {ln} invalid for {fam.name}"


# ------------------------------------------------------------------ encoding

_HDR = struct.Struct("!16sHB")
_U16 = struct.Struct("!H")


def _message(body: bytes) -> bytes:
    return _HDR.pack(MARKER, 19 + len(body), MessageType.UPDATE) + body


def _mp_reach_attr(fam: Family, nh: bytes, nlri: bytes) -> bytes:
    value = struct.pack("!HBB", fam.afi, fam.safi, len(nh)) + nh + b"\x00" + nlri
    return struct.pack("!BBH", 0x90, AttrCode.MP_REACH_NLRI, len(value)) + value


def _mp_unreach_attr(fam: Family, nlri: bytes) -> bytes:
    value = struct.pack("!HB", fam.afi, fam.safi) + nlri
    return struct.pack("!BBH", 0x90, AttrCode.MP_UNREACH_NLRI, len(value)) + value


def _nh_bytes(hops: tuple[IPv4Address | IPv6Address, ...]) -> bytes:
    return b"".join(h.packed for h in hops)


def encode_update(msg: Update, ctx: CodecContext) -> bytes:
    """One UPDATE carrying exactly ``msg``; ValueError if it does not fit or
    needs two MP_REACH_NLRI attributes."""
    attrs = msg.attrs
    withdrawn = b"".join(msg.unreach.get(_V4, ()))
    nlri_field = b""
    mp: list[bytes] = []
    for fam, items in msg.unreach.items():
        if fam is not _V4:
            mp.append(_mp_unreach_attr(fam, b"".join(items)))
    reach_mp: list[tuple[Family, list[bytes]]] = []
    for fam, items in msg.reach.items():
        if fam is _V4 and attrs is not None and attrs.next_hop is not None:
            nlri_field = b"".join(items)
        else:
            reach_mp.append((fam, items))
    if len(reach_mp) > 1:
        raise ValueError("one UPDATE carries one MP_REACH_NLRI")
    if reach_mp:
        fam, items = reach_mp[0]
        if attrs is None or not attrs.mp_next_hop:
            raise ValueError(f"{fam.name} routes need attrs with an MP next hop")
        mp.insert(0, _mp_reach_attr(fam, _nh_bytes(attrs.mp_next_hop), b"".join(items)))
    ab = b"".join(mp) + (attrs.encode(ctx) if attrs is not None else b"")
    body = _U16.pack(len(withdrawn)) + withdrawn + _U16.pack(len(ab)) + ab + nlri_field
    if 19 + len(body) > ctx.max_message_len:
        raise ValueError(f"UPDATE of {19 + len(body)} octets exceeds {ctx.max_message_len}")
    return _message(body)


def _chunks(nlri: Sequence[bytes], room: int) -> list[bytes]:
    """Join NLRI into as few pieces of at most ``room`` octets as possible."""
    if room <= 0:
        raise ValueError("path attributes leave no room for NLRI")
    blob = b"".join(nlri)
    if len(blob) <= room:  # the common case: one message
        return [blob] if blob else []
    cum = list(accumulate(map(len, nlri)))
    out: list[bytes] = []
    i, base, n = 0, 0, len(cum)
    while i < n:
        j = bisect_right(cum, base + room, i)
        if j == i:
            raise ValueError("an NLRI does not fit in one message")
        end = cum[j - 1]
        out.append(blob[base:end])
        base = end
        i = j
    return out


def encode_announce(
    attrs: PathAttributes, family: Family, nlri: Sequence[bytes], ctx: CodecContext
) -> list[bytes]:
    """UPDATEs announcing ``nlri`` (compact, in the send ADD-PATH form) with ``attrs``.

    IPv4 routes go in the NLRI field when ``attrs.next_hop`` is set, otherwise
    (RFC 8950) in MP_REACH_NLRI with ``attrs.mp_next_hop``; IPv6 routes always
    go in MP_REACH_NLRI.
    """
    ab = attrs.encode(ctx)
    limit = ctx.max_message_len
    if family is _V4 and attrs.next_hop is not None:
        head = _U16.pack(0) + _U16.pack(len(ab)) + ab
        return [_message(head + chunk) for chunk in _chunks(nlri, limit - 19 - len(head))]
    if not attrs.mp_next_hop:
        raise ValueError(f"{family.name} routes need an MP next hop")
    nh = _nh_bytes(attrs.mp_next_hop)
    room = limit - 19 - 4 - len(ab) - 4 - 5 - len(nh)
    out = []
    for chunk in _chunks(nlri, room):
        mp = _mp_reach_attr(family, nh, chunk)
        out.append(_message(b"\x00\x00" + _U16.pack(len(mp) + len(ab)) + mp + ab))
    return out


def announce_head(
    attrs: PathAttributes, family: Family, ctx: CodecContext
) -> tuple[bytes, int] | None:
    """For IPv4 routes carried in the NLRI field: the body of an UPDATE announcing
    them with ``attrs`` up to the NLRI, and the room left for NLRI in one message.

    A sender announcing the same attributes many times keeps this and frames
    each message with ``update_header``: ``header + head + nlri`` is what
    ``encode_announce`` returns when the NLRI fit. None when the routes go in
    MP_REACH_NLRI (IPv6, or an IPv4 route without NEXT_HOP).
    """
    if family is not _V4 or attrs.next_hop is None:
        return None
    ab = attrs.encode(ctx)
    head = _U16.pack(0) + _U16.pack(len(ab)) + ab
    return head, ctx.max_message_len - 19 - len(head)


def update_header(body_len: int) -> bytes:
    """The 19-octet header of an UPDATE whose body is ``body_len`` octets."""
    return _HDR.pack(MARKER, 19 + body_len, MessageType.UPDATE)


def encode_withdraw(family: Family, nlri: Sequence[bytes], ctx: CodecContext) -> list[bytes]:
    """UPDATEs withdrawing ``nlri`` (Withdrawn Routes for IPv4, MP_UNREACH_NLRI otherwise)."""
    limit = ctx.max_message_len
    if family is _V4:
        return [
            _message(_U16.pack(len(c)) + c + b"\x00\x00") for c in _chunks(nlri, limit - 19 - 4)
        ]
    out = []
    for chunk in _chunks(nlri, limit - 19 - 4 - 4 - 3):
        mp = _mp_unreach_attr(family, chunk)
        out.append(_message(b"\x00\x00" + _U16.pack(len(mp)) + mp))
    return out


def encode_end_of_rib(family: Family) -> bytes:
    """The End-of-RIB marker of ``family`` (RFC 4724 §2)."""
    if family is _V4:
        return _message(b"\x00\x00\x00\x00")
    mp = _mp_unreach_attr(family, b"")
    return _message(b"\x00\x00" + _U16.pack(len(mp)) + mp)
