"""BGP errors shaped like NOTIFICATION messages.

Every NOTIFICATION error code and subcode is a named ``IntEnum`` here, so no
bare number ever stands for a protocol error (RFC 4271 §4.5 and §6, RFC 4486
Cease subcodes, RFC 6608 FSM subcodes, RFC 7313 ROUTE-REFRESH code, RFC 9003
shutdown communication, RFC 8538 Hard Reset, RFC 9234 role mismatch).

``BGPError`` is control flow, not data: the codec raises it when the RFCs say
the session must be reset, and the connection turns it into a ``Notification``
message at one boundary (``bgp.wire.Notification.from_error``). Each subclass
fixes ``code``; the subcode and data travel with the instance.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

__all__ = [
    "BGPError",
    "CeaseError",
    "CeaseSubcode",
    "ErrorCode",
    "FsmError",
    "FsmSubcode",
    "HoldTimerExpired",
    "HoldTimerSubcode",
    "MessageHeaderError",
    "MessageHeaderSubcode",
    "OpenMessageError",
    "OpenSubcode",
    "RouteRefreshError",
    "RouteRefreshSubcode",
    "UpdateMessageError",
    "UpdateSubcode",
    "error_for",
    "subcode_enum",
]


class ErrorCode(IntEnum):
    """NOTIFICATION error codes (RFC 4271 §4.5; 7 from RFC 7313)."""

    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7


class MessageHeaderSubcode(IntEnum):
    """Message Header Error subcodes (RFC 4271 §6.1)."""

    UNSPECIFIC = 0
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(IntEnum):
    """OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5, RFC 9234 §4.2)."""

    UNSPECIFIC = 0
    UNSUPPORTED_VERSION_NUMBER = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    AUTHENTICATION_FAILURE = 5  # deprecated by RFC 4271; kept for decoding
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7
    ROLE_MISMATCH = 11


class UpdateSubcode(IntEnum):
    """UPDATE Message Error subcodes (RFC 4271 §6.3; 7 deprecated there)."""

    UNSPECIFIC = 0
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    AS_ROUTING_LOOP = 7  # deprecated; kept for decoding
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class HoldTimerSubcode(IntEnum):
    """Hold Timer Expired has no subcodes (RFC 4271 §6.5)."""

    UNSPECIFIC = 0


class FsmSubcode(IntEnum):
    """Finite State Machine Error subcodes (RFC 6608 §3)."""

    UNSPECIFIED = 0
    UNEXPECTED_MESSAGE_IN_OPENSENT = 1
    UNEXPECTED_MESSAGE_IN_OPENCONFIRM = 2
    UNEXPECTED_MESSAGE_IN_ESTABLISHED = 3


class CeaseSubcode(IntEnum):
    """Cease subcodes (RFC 4486 §4, RFC 9003 names, RFC 8538, RFC 9384)."""

    UNSPECIFIC = 0
    MAXIMUM_PREFIXES_REACHED = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9
    BFD_DOWN = 10


class RouteRefreshSubcode(IntEnum):
    """ROUTE-REFRESH Message Error subcodes (RFC 7313 §5)."""

    RESERVED = 0
    INVALID_MESSAGE_LENGTH = 1


_SUBCODES: dict[ErrorCode, type[IntEnum]] = {
    ErrorCode.MESSAGE_HEADER: MessageHeaderSubcode,
    ErrorCode.OPEN_MESSAGE: OpenSubcode,
    ErrorCode.UPDATE_MESSAGE: UpdateSubcode,
    ErrorCode.HOLD_TIMER_EXPIRED: HoldTimerSubcode,
    ErrorCode.FSM: FsmSubcode,
    ErrorCode.CEASE: CeaseSubcode,
    ErrorCode.ROUTE_REFRESH: RouteRefreshSubcode,
}


def subcode_enum(code: int) -> type[IntEnum] | None:
    """The subcode enum of an error code, or None for a code we do not know."""
    try:
        return _SUBCODES[ErrorCode(code)]
    except ValueError:
        return None


def _name(code: int, subcode: int) -> str:
    try:
        cname = ErrorCode(code).name
    except ValueError:
        return f"code {code} subcode {subcode}"
    enum = _SUBCODES[ErrorCode(code)]
    try:
        sname = enum(subcode).name
    except ValueError:
        sname = str(subcode)
    return f"{cname}/{sname}"


class BGPError(Exception):
    """A protocol error that ends the session with a NOTIFICATION.

    ``code``, ``subcode`` and ``data`` are exactly the NOTIFICATION fields
    (RFC 4271 §4.5); ``reason`` is a human explanation for logs, never sent.
    """

    code: int

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = code
        self.subcode = subcode
        self.data = bytes(data)
        self.reason = reason
        msg = _name(code, subcode)
        super().__init__(f"{msg}: {reason}" if reason else msg)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BGPError):
            return NotImplemented
        return (self.code, self.subcode, self.data) == (other.code, other.subcode, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.subcode, self.data))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code}, subcode={self.subcode}, "
            f"data={self.data!r}, reason={self.reason!r})"
        )


class _CodedError(BGPError):
    """A BGPError whose code is fixed by the subclass."""

    CODE: ClassVar[ErrorCode]

    def __init__(self, subcode: int, data: bytes = b"", reason: str = "") -> None:
        super().__init__(self.CODE, subcode, data, reason)


class MessageHeaderError(_CodedError):
    """Code 1: bad marker, length or type (RFC 4271 §6.1)."""

    CODE = ErrorCode.MESSAGE_HEADER


class OpenMessageError(_CodedError):
    """Code 2: OPEN message errors (RFC 4271 §6.2)."""

    CODE = ErrorCode.OPEN_MESSAGE


class UpdateMessageError(_CodedError):
    """Code 3: UPDATE errors that RFC 7606 still resolves by session reset."""

    CODE = ErrorCode.UPDATE_MESSAGE


class HoldTimerExpired(_CodedError):
    """Code 4 (RFC 4271 §6.5)."""

    CODE = ErrorCode.HOLD_TIMER_EXPIRED

    def __init__(self, subcode: int = 0, data: bytes = b"", reason: str = "") -> None:
        super().__init__(subcode, data, reason)


class FsmError(_CodedError):
    """Code 5: a message not expected in the current state (RFC 6608)."""

    CODE = ErrorCode.FSM


class CeaseError(_CodedError):
    """Code 6: the session is closed on purpose (RFC 4486, RFC 9003)."""

    CODE = ErrorCode.CEASE


class RouteRefreshError(_CodedError):
    """Code 7: malformed ROUTE-REFRESH (RFC 7313 §5)."""

    CODE = ErrorCode.ROUTE_REFRESH


_CLASSES: dict[int, type[_CodedError]] = {
    ErrorCode.MESSAGE_HEADER: MessageHeaderError,
    ErrorCode.OPEN_MESSAGE: OpenMessageError,
    ErrorCode.UPDATE_MESSAGE: UpdateMessageError,
    ErrorCode.HOLD_TIMER_EXPIRED: HoldTimerExpired,
    ErrorCode.FSM: FsmError,
    ErrorCode.CEASE: CeaseError,
    ErrorCode.ROUTE_REFRESH: RouteRefreshError,
}


def error_for(code: int, subcode: int, data: bytes = b"", reason: str = "") -> BGPError:
    """The most specific BGPError for a (code, subcode), e.g. from a received NOTIFICATION."""
    cls = _CLASSES.get(code)
    if cls is None:
        return BGPError(code, subcode, data, reason)
    return cls(subcode, data, reason)
