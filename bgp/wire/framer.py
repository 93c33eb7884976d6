"""Cut a TCP byte stream into whole BGP messages (RFC 4271 §4.1).

Sans-IO: the session feeds whatever ``recv`` returned, then pulls frames::

    framer.feed(data)
    while (frame := framer.next_frame()) is not None:
        msg = decode_message(frame, ctx)

Partial headers and bodies wait for more bytes. A bad header raises
``MessageHeaderError`` from ``next_frame`` only after every good frame before
it has been returned, so the session can act on those first. Raise
``max_message_len`` to 65535 once extended messages are negotiated (RFC 8654).
"""

from __future__ import annotations

from bgp.wire.constants import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, MessageType
from bgp.wire.messages import check_header

__all__ = ["Framer"]

_COMPACT_AT = 1 << 16
_UPDATE = MessageType.UPDATE.value
_MIN_UPDATE_LEN = 23  # RFC 4271 §4.3: header + two length fields


class Framer:
    """Reassembles BGP messages from a byte stream."""

    __slots__ = ("_buf", "_pos", "max_message_len")

    def __init__(self, max_message_len: int = MAX_MESSAGE_LEN) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_message_len = max_message_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        if self._pos >= _COMPACT_AT:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def pending(self) -> int:
        """Octets buffered but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def next_frame(self) -> bytes | None:
        """The next whole message (header included), or None if more bytes are needed.

        Raises ``MessageHeaderError`` (1/1, 1/2 or 1/3) on a bad header; the
        stream is then unusable and the session must send the NOTIFICATION.
        """
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_LEN:
            return None
        length, _ = check_header(buf, pos, self.max_message_len)
        end = pos + length
        if end > len(buf):
            return None
        self._pos = end
        return bytes(buf[pos:end])

    def update_frames(self) -> list[bytes]:
        """The run of whole UPDATE messages at the front of the buffer (fast path).

        Stops before the first frame that is incomplete, of another type, or
        whose header is not plainly valid; ``next_frame`` then takes that one
        (and raises for a bad header), so the checks of RFC 4271 §6.1 are the
        same on both paths. One pass, no per-frame function calls: a full
        table arrives as hundreds of thousands of small UPDATEs.
        """
        buf, pos = self._buf, self._pos
        n = len(buf)
        limit = self.max_message_len
        out: list[bytes] = []
        app = out.append
        with memoryview(buf) as view:  # one copy per frame (a bytearray slice is one more)
            while n - pos >= HEADER_LEN and buf[pos + 18] == _UPDATE:
                length = buf[pos + 16] << 8 | buf[pos + 17]
                end = pos + length
                if (
                    end > n
                    or length < _MIN_UPDATE_LEN
                    or length > limit
                    or not buf.startswith(MARKER, pos)
                ):
                    break
                app(bytes(view[pos:end]))
                pos = end
        self._pos = pos
        return out

    def frames(self) -> list[bytes]:
        """All whole messages available now.

        Raises like ``next_frame``; frames before a bad header are then lost,
        so a session that must act on them uses ``next_frame`` in a loop.
        """
        out: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out
