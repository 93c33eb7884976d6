"""NLRI prefixes: a compact wire form for the hot path, a printable form for people.

The compact form of a prefix ("key") is its NLRI encoding (RFC 4271 §4.3):
one length octet followed by the significant address octets, with the bits
after the prefix length cleared. ``10.0.0.0/24`` is ``b"\\x18\\x0a\\x00\\x00"``.
Keys are plain ``bytes``: hashable, tiny, and copied straight into UPDATEs.
Keys of different families may be equal, so tables are kept per ``Family``.

With ADD-PATH (RFC 7911 §3) an NLRI on the wire is a 4-octet path identifier
followed by the key; lists of received NLRI then hold exactly that
(``join_path_id`` / ``split_path_id`` convert).

``Prefix`` is the printable object view (``str(p) == "10.0.0.0/24"``), built
only on demand: never create one per route on the hot path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from bgp.wire.constants import Family

__all__ = [
    "NlriError",
    "Prefix",
    "join_path_id",
    "key_from_network",
    "key_to_network",
    "key_to_str",
    "parse_nlri",
    "parse_v4_fields",
    "split_path_id",
]

_HUGE = 1 << 30
# For each length octet: bytes the NLRI occupies (1 + octets) or _HUGE when the
# length is impossible for the family, so the parse loop needs one lookup only.
_STEP4 = tuple(1 + ((n + 7) >> 3) if n <= 32 else _HUGE for n in range(256))
_STEP6 = tuple(1 + ((n + 7) >> 3) if n <= 128 else _HUGE for n in range(256))
# Mask of the bits after the prefix length in the last octet (0 on a byte boundary).
_TAIL = tuple((0xFF >> (n & 7)) if n & 7 else 0 for n in range(256))
# _STEP4/_STEP6 negated for lengths off a byte boundary (their last octet needs a
# look): the parse loop does one table lookup for most prefixes.
_SIGNED4 = tuple(-s if _TAIL[n] and s != _HUGE else s for n, s in enumerate(_STEP4))
_SIGNED6 = tuple(-s if _TAIL[n] and s != _HUGE else s for n, s in enumerate(_STEP6))


_V4 = Family.IPV4_UNICAST


class NlriError(ValueError):
    """An NLRI field that cannot be parsed (RFC 7606 §5.3); the caller picks the action."""


def _canonical(data: bytes, i: int, j: int, ln: int) -> bytes:
    """The key with the bits after the prefix length cleared (RFC 4271 §4.3: irrelevant)."""
    return data[i : j - 1] + bytes((data[j - 1] & ~_TAIL[ln] & 0xFF,))


def parse_nlri(data: bytes, start: int, end: int, family: Family, add_path: bool) -> list[bytes]:
    """Split ``data[start:end]`` into NLRI (keys, or path id + key with ADD-PATH).

    Raises ``NlriError`` when a length exceeds the family's maximum or a prefix
    overruns the field (RFC 7606 §5.3).
    """
    if not add_path:
        out, i, _ = _split(data, start, (end,), _SIGNED4 if family is _V4 else _SIGNED6)
    else:
        step = _STEP4 if family is _V4 else _STEP6
        tail = _TAIL
        out = []
        app = out.append
        i = start
        while i < end:
            if i + 5 > end:
                raise NlriError("truncated ADD-PATH NLRI")
            ln = data[i + 4]
            j = i + 4 + step[ln]
            if tail[ln] and j <= end and data[j - 1] & tail[ln]:
                app(data[i : i + 4] + _canonical(data, i + 4, j, ln))
            else:
                app(data[i:j])
            i = j
    if i != end:
        raise NlriError(f"NLRI length octet invalid or prefix overruns the field at {i - start}")
    return out


def parse_v4_fields(data: bytes, ends: Iterable[int]) -> list[bytes] | None:
    """``parse_nlri`` for IPv4 keys (no ADD-PATH) over fields laid end to end in
    ``data``, each ending at the next offset of ``ends``: all their keys, or None
    if a field does not parse on its own (an impossible length, or a prefix
    running past its field's end). The caller then parses field by field to
    report the error of the right one.
    """
    out, i, end = _split(data, 0, ends, _SIGNED4)
    return out if i == end else None


def _split(
    data: bytes, i: int, ends: Iterable[int], signed: tuple[int, ...]
) -> tuple[list[bytes], int, int]:
    """Keys (no ADD-PATH) of fields laid end to end from ``i``, each ending at the
    next of ``ends``. Stops after the first field that does not end exactly at its
    end: returns the keys, the position reached and that field's end (equal when
    every field parsed). ``signed``: ``_SIGNED4`` or ``_SIGNED6``."""
    tail = _TAIL
    out: list[bytes] = []
    app = out.append
    end = i
    for end in ends:
        while i < end:
            j = signed[data[i]]
            if j > 0:  # on a byte boundary (or impossible: _HUGE overruns the field)
                j += i
                app(data[i:j])
            else:
                ln = data[i]
                j = i - j
                if j <= end and data[j - 1] & tail[ln]:
                    app(_canonical(data, i, j, ln))
                else:
                    app(data[i:j])
            i = j
        if i != end:
            break
    return out, i, end


def split_path_id(nlri: bytes) -> tuple[int, bytes]:
    """``(path_id, key)`` of an ADD-PATH NLRI (RFC 7911 §3)."""
    return int.from_bytes(nlri[:4], "big"), nlri[4:]


def join_path_id(path_id: int, key: bytes) -> bytes:
    """The ADD-PATH NLRI for ``key`` with ``path_id``."""
    return path_id.to_bytes(4, "big") + key


def key_to_str(family: Family, key: bytes) -> str:
    """``"10.0.0.0/24"`` for an IPv4 key, ``"2001:db8::/32"`` for an IPv6 one."""
    ln = key[0]
    if family is Family.IPV4_UNICAST:
        a = key[1:] + b"\x00\x00\x00\x00"
        return f"{a[0]}.{a[1]}.{a[2]}.{a[3]}/{ln}"
    addr = ipaddress.IPv6Address(bytes(key[1:]).ljust(16, b"\x00"))
    return f"{addr}/{ln}"


def key_to_network(family: Family, key: bytes) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The ``ipaddress`` network of a key (slow path only)."""
    width = 4 if family is Family.IPV4_UNICAST else 16
    raw = bytes(key[1:]).ljust(width, b"\x00")
    if family is Family.IPV4_UNICAST:
        return ipaddress.IPv4Network((raw, key[0]))
    return ipaddress.IPv6Network((raw, key[0]))


def key_from_network(
    network: str | ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> tuple[Family, bytes]:
    """``(family, key)`` of a network such as ``"10.0.0.0/24"`` (host bits must be zero)."""
    net = ipaddress.ip_network(network) if isinstance(network, str) else network
    family = Family.IPV4_UNICAST if net.version == 4 else Family.IPV6_UNICAST
    ln = net.prefixlen
    return family, bytes((ln,)) + net.network_address.packed[: (ln + 7) >> 3]


@dataclass(frozen=True, slots=True)
class Prefix:
    """One prefix of a family, optionally with an ADD-PATH path identifier.

    ``key`` is the compact form described in the module docstring (without the
    path identifier). ``str()`` gives ``10.0.0.0/24``; ``repr()`` adds the path id.
    """

    family: Family
    key: bytes
    path_id: int | None = None

    @classmethod
    def from_str(cls, text: str, path_id: int | None = None) -> Prefix:
        """Parse ``"10.0.0.0/24"`` or ``"2001:db8::/32"``; host bits must be zero."""
        family, key = key_from_network(text)
        return cls(family, key, path_id)

    @classmethod
    def from_nlri(cls, family: Family, nlri: bytes, add_path: bool = False) -> Prefix:
        """The prefix of one compact NLRI as found in ``Update.reach``/``Update.unreach``."""
        if add_path:
            pid, key = split_path_id(nlri)
            return cls(family, key, pid)
        return cls(family, nlri)

    @property
    def length(self) -> int:
        """Prefix length in bits."""
        return self.key[0]

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The ``ipaddress`` network (slow path)."""
        return key_to_network(self.family, self.key)

    def nlri(self, add_path: bool = False) -> bytes:
        """The compact NLRI: the key, preceded by the path id when ``add_path``."""
        if add_path:
            return join_path_id(self.path_id or 0, self.key)
        return self.key

    def __str__(self) -> str:
        return key_to_str(self.family, self.key)

    def __repr__(self) -> str:
        pid = "" if self.path_id is None else f", path_id={self.path_id}"
        return f"Prefix({str(self)!r}{pid})"
