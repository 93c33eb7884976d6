"""How a session ends: graceful or hard, damped or not (RFC 4724, RFC 8538, RFC 4486) — pure rules.

The state machine (``bgp.fsm``) asks these functions three questions when a
connection ends, and the speaker one when it stops:

1. *What goes on the wire?* (``outgoing``) With the Graceful Notification
   ("N") bit exchanged both ways (RFC 8538 §2), a NOTIFICATION that must end
   the session for real is sent as Cease / Hard Reset (subcode 9) carrying
   the original code, subcode and data (§3). §5.1 makes that a MUST for
   Maximum Number of Prefixes Reached, Administrative Shutdown, Peer
   De-configured and Hard Reset itself (``HARD_SUBCODES``). Administrative
   Reset is a SHOULD there; podbgp sends it soft unless asked for a hard one
   (``podbgp peer reset --hard``), because its resets and its restart stop
   are there to bring the same session back, and a soft one lets both ends
   keep forwarding meanwhile. Any caller may force a Hard Reset (a
   configuration change that must flush).
2. *Are the peer's routes kept as stale?* (``graceful_end``) After a TCP
   loss, when the peer announced graceful restart (RFC 4724 §4.2). After a
   NOTIFICATION — received or sent — only with N both ways and when it is
   not a Hard Reset (RFC 8538 §4: the sender follows the receiver's rules
   too); without N, a NOTIFICATION ends graceful restart (RFC 4724 §4.2).
3. *Is the reconnect damped?* (``damped``) Damping (RFC 4271 §8.1.1
   DampPeerOscillations) is for real flaps. An operator's action is none; a
   graceful end is a restart of the peer (or ours), which should be back at
   once; and RFC 4486 §4 asks for damping only after Administrative
   Shutdown, Peer De-configured, Connection Rejected and Out of Resources,
   so a received Administrative Reset is not damped either.

The restart stop (``StopKind``) is the speaker's: SIGTERM means "back in a
moment", so peers must keep our routes — Cease / Administrative Reset (soft)
to peers with N, the TCP connection closed without any NOTIFICATION to a
graceful-restart peer without N (RFC 4724 §4.2 keeps routes on a TCP loss),
and the ordinary Cease to a peer without graceful restart, which drops our
routes whatever we do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bgp.errors import CeaseSubcode, ErrorCode, subcode_enum
from bgp.wire.messages import Notification

__all__ = [
    "HARD_SUBCODES",
    "RestartStop",
    "StopKind",
    "damped",
    "graceful_end",
    "hard_reset",
    "inner_of",
    "notification_name",
    "outgoing",
    "restart_stop",
]

# RFC 8538 §5.1: Cease subcodes that MUST be sent as a Hard Reset once N is exchanged.
HARD_SUBCODES = frozenset(
    {
        CeaseSubcode.MAXIMUM_PREFIXES_REACHED,
        CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        CeaseSubcode.PEER_DECONFIGURED,
        CeaseSubcode.HARD_RESET,
    }
)

# RFC 4486 §4: subcodes after which a speaker SHOULD damp its automatic restarts; and
# Maximum Number of Prefixes Reached, whose sender would only refuse us again.
_DAMP_SUBCODES = frozenset(
    {
        CeaseSubcode.MAXIMUM_PREFIXES_REACHED,
        CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        CeaseSubcode.PEER_DECONFIGURED,
        CeaseSubcode.CONNECTION_REJECTED,
        CeaseSubcode.OUT_OF_RESOURCES,
    }
)


def _is_hard(code: int, subcode: int) -> bool:
    return code == ErrorCode.CEASE and subcode == CeaseSubcode.HARD_RESET


def hard_reset(note: Notification) -> Notification:
    """Cease / Hard Reset wrapping ``note`` (RFC 8538 §3: data = code, subcode, data)."""
    if _is_hard(note.code, note.subcode):
        return note
    inner = bytes((note.code, note.subcode)) + note.data
    return Notification(ErrorCode.CEASE, CeaseSubcode.HARD_RESET, inner)


def inner_of(note: Notification) -> Notification | None:
    """The NOTIFICATION a Hard Reset carries, or None (not one, or its data is short)."""
    if not _is_hard(note.code, note.subcode) or len(note.data) < 2:
        return None
    return Notification(note.data[0], note.data[1], note.data[2:])


def outgoing(note: Notification, n_bit: bool, hard: bool | None = None) -> Notification:
    """What to send for ``note``: itself, or a Hard Reset around it (module docstring, 1).

    ``hard`` None applies RFC 8538 §5.1; True or False is the caller's decision. Without
    N exchanged there is no Hard Reset: the plain NOTIFICATION already ends everything.
    """
    if not n_bit:
        return note
    if hard is None:
        hard = note.code == ErrorCode.CEASE and note.subcode in HARD_SUBCODES
    return hard_reset(note) if hard else note


def graceful_end(gr: bool, n_bit: bool, code: int, subcode: int) -> bool:
    """True if the peer's routes stay as stale (module docstring, 2).

    ``code`` 0 is a connection lost without a NOTIFICATION; ``gr`` is the peer's
    graceful-restart capability in this session, ``n_bit`` N set by both sides.
    """
    if not gr:
        return False
    if code == 0:
        return True  # RFC 4724 §4.2
    return n_bit and not _is_hard(code, subcode)  # RFC 8538 §4


def damped(
    code: int,
    subcode: int,
    graceful: bool,
    operator: bool,
    sent: bool | None,
    inner: tuple[int, int] | None = None,
) -> bool:
    """True if the automatic restart after this end is damped (module docstring, 3).

    A received Hard Reset is judged by the NOTIFICATION it carries (``inner``).
    """
    if operator or graceful:
        return False
    if _is_hard(code, subcode) and inner is not None:
        code, subcode = inner
    if code == ErrorCode.CEASE and sent is False:
        return subcode in _DAMP_SUBCODES or _is_hard(code, subcode)
    return True


def notification_name(code: int, subcode: int) -> str:
    """ "Cease/Administrative Shutdown": the RFC names, the same on both ends of a session."""
    try:
        cname = _title(ErrorCode(code).name)
    except ValueError:
        return f"code {code}/subcode {subcode}"
    enum = subcode_enum(code)
    try:
        sname = _title(enum(subcode).name) if enum is not None else str(subcode)
    except ValueError:
        sname = f"subcode {subcode}"
    return f"{cname}/{sname}"


_WORDS = {"BFD": "BFD", "FSM": "FSM", "AS": "AS", "BGP": "BGP", "OPENSENT": "OpenSent",
          "OPENCONFIRM": "OpenConfirm", "UPDATE": "UPDATE", "OPEN": "OPEN"}  # fmt: skip


def _title(name: str) -> str:
    return " ".join(_WORDS.get(w, w.capitalize()) for w in name.split("_"))


class StopKind(Enum):
    """Why the speaker stops: decides what each peer is told (module docstring)."""

    RESTART = "restart"  # SIGTERM: we are back in a moment, keep our routes
    SHUTDOWN = "shutdown"  # for good: peers drop our routes now


@dataclass(frozen=True, slots=True)
class RestartStop:
    """How one session ends on a restart stop: a soft Cease, a silent close, or a Cease."""

    notify: bool  # send a NOTIFICATION at all
    subcode: CeaseSubcode
    hard: bool | None


def restart_stop(established: bool, gr: bool, n_bit: bool) -> RestartStop:
    """The restart stop for one session (module docstring, last paragraph)."""
    if established and n_bit:
        return RestartStop(True, CeaseSubcode.ADMINISTRATIVE_RESET, False)
    if established and gr:
        return RestartStop(False, CeaseSubcode.ADMINISTRATIVE_RESET, None)
    return RestartStop(True, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, None)
