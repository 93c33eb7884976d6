"""UPDATE bytes for one update group, with each attribute set's head encoded once.

An update group encodes a build step as withdrawals plus announcements grouped
by outbound attribute set (``id(attrs)`` -> NLRI). The part of an UPDATE
before its NLRI depends only on the attribute set, so it is encoded once per
set and kept (``heads``, with the attributes themselves so an id stays
unique); a group of NLRI that fits one message is then a header, that head
and the joined NLRI. Anything else goes through ``bgp.wire.encode_announce``.
"""

from __future__ import annotations

from bgp.wire import (
    CodecContext,
    Family,
    PathAttributes,
    announce_head,
    encode_announce,
    encode_withdraw,
    update_header,
)

__all__ = ["Encoder"]


class Encoder:
    """One group's encoder: its codec context, the heads cache, and ``mute``
    (``UpdateGroup.prime``: bring the sent state up to date, encode nothing)."""

    __slots__ = ("ctx", "family", "heads", "mute")

    def __init__(self, family: Family, ctx: CodecContext) -> None:
        self.family = family
        self.ctx = ctx
        self.mute = False
        # id(outbound attrs) -> (attrs, announce_head): the part of an UPDATE before the
        # NLRI, encoded once per attribute set (the attrs are kept, so ids stay unique).
        self.heads: dict[int, tuple[PathAttributes, tuple[bytes, int] | None]] = {}

    def encode(
        self,
        withdrawn: list[bytes],
        groups: dict[int, list[bytes]],
        attrs_of: dict[int, PathAttributes],
    ) -> bytes:
        """Withdrawals, then each group of NLRI announced with ``attrs_of[its id]``."""
        if self.mute:
            return b""
        fam, ctx = self.family, self.ctx
        msgs: list[bytes] = encode_withdraw(fam, withdrawn, ctx) if withdrawn else []
        heads = self.heads
        for ident, nlri in groups.items():
            attrs = attrs_of[ident]
            h = heads.get(ident)
            if h is None or h[0] is not attrs:
                h = heads[ident] = (attrs, announce_head(attrs, fam, ctx))
            head = h[1]
            if head is not None:
                blob = b"".join(nlri)
                if 0 < len(blob) <= head[1]:  # one message: header, shared head, NLRI
                    msgs += (update_header(len(head[0]) + len(blob)), head[0], blob)
                    continue
            msgs += encode_announce(attrs, fam, nlri, ctx)
        return b"".join(msgs)
