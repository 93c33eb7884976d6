"""Reading TOML tables: `_Table` (typed access, every error collected with its key
path, unknown keys with a did-you-mean), `_Errors`, and the value converters."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from bgp.wire.constants import AS_TRANS, WELL_KNOWN_COMMUNITIES, Family
from podbgp.config.schema import (
    FAMILY_NAMES,
    Community,
    IPAddress,
    IPNetwork,
    LargeCommunity,
    NextHop,
)

AS_MAX = 2**32 - 1
TCP_MD5SIG_MAXKEYLEN = 80  # linux/tcp.h: longest TCP MD5 key (RFC 2385)
SHUTDOWN_MESSAGE_MAX = 255  # RFC 9003 §2: the length field is one octet
RESTART_TIME_MAX = 4095  # RFC 4724 §3: Restart Time is a 12-bit field
LLGR_TIME_MAX = 0xFFFFFF  # RFC 9494 §3: Long-lived Stale Time is a 24-bit field
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
AS_PATH_PREPEND_MAX = 32  # more only inflates UPDATEs; no network needs it

# rtm_protocol values podbgp refuses for its own routes. It deletes every route
# carrying its protocol number that it does not want, so sharing a number with
# the kernel (0..4) or with another routing daemon would delete that daemon's
# routes. Names from linux/rtnetlink.h, iproute2's rt_protos and FRR's zebra.
RESERVED_PROTOCOLS: dict[int, str] = {
    0: "unspec (kernel)",
    1: "redirect (kernel)",
    2: "kernel",
    3: "boot (kernel)",
    4: "static (kernel)",
    8: "gated",
    9: "ra (router advertisements)",
    10: "mrt",
    11: "zebra (FRR)",
    12: "bird",
    13: "dnrouted",
    14: "xorp",
    15: "ntk",
    16: "dhcp",
    17: "mrouted",
    18: "keepalived",
    42: "babel",
    99: "openr",
    186: "bgp (FRR)",
    187: "isis (FRR)",
    188: "ospf (FRR)",
    189: "rip (FRR)",
    191: "nhrp (FRR)",
    192: "eigrp (FRR)",
    193: "ldp (FRR)",
    194: "sharp (FRR)",
    195: "pbr (FRR)",
    196: "static (FRR)",
    197: "openfabric (FRR)",
    198: "srte (FRR)",
}


class _Invalid(Exception):
    """A value is wrong; the message follows the key's path."""


class _Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}")


T = TypeVar("T")
E = TypeVar("E")
_REQUIRED: Any = object()
_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def show(value: Any) -> str:
    """A value as it would be written in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _type_name(value: Any) -> str:
    for typ, name in _TYPE_NAMES.items():
        if isinstance(value, typ):
            return name
    return f"a {type(value).__name__}"


def _has_type(value: Any, typ: type) -> bool:
    # TOML booleans are Python ints; never let `true` pass as a number.
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


class _Table:
    """One TOML table being read: typed access by key, then unknown-key reporting."""

    def __init__(self, data: dict[str, Any], path: str, errors: _Errors) -> None:
        self.data = data
        self.path = path
        self.errors = errors
        self.seen: set[str] = set()
        self.failed = False
        # A table that was not a table: its own error is reported, not its missing keys.
        self.quiet = False
        # Nested tables read from this one, by key, and which keys are arrays of tables:
        # `accepted_keys` walks them to list every key the reader knows.
        self.tables: dict[str, list[_Table]] = {}
        self.arrays: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.failed = True
        if not self.quiet:
            self.errors.add(self.key_path(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(
        self, key: str, typ: type, default: Any, conv: Callable[[Any], Any] | None = None
    ) -> Any:
        """The value of `key` checked as `typ` and converted; `default` if absent; None if bad."""
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.error(key, "is required")
                return None
            return default
        value = self.data[key]
        if not _has_type(value, typ):
            self.error(key, f"{show(value)} is {_type_name(value)}, expected {_TYPE_NAMES[typ]}")
            return None
        if conv is None:
            return value
        try:
            return conv(value)
        except _Invalid as e:
            self.error(key, str(e))
            return None

    def get_list(self, key: str, default: Any, conv: Callable[[Any], Any]) -> Any:
        """An array whose items are converted one by one; errors name `key[i]`."""
        items = self.get(key, list, _REQUIRED if default is _REQUIRED else None)
        if items is None:
            return None if key in self.data or default is _REQUIRED else default
        out: list[Any] = []
        ok = True
        for i, item in enumerate(items):
            try:
                out.append(conv(item))
            except _Invalid as e:
                self.error(f"{key}[{i}]", str(e))
                ok = False
        return tuple(out) if ok else None

    def sub(self, key: str) -> _Table:
        """A nested table (`[bgp]` in the root); an empty one if absent."""
        value = self.get(key, dict, {})
        table = _Table(value if value is not None else {}, self.key_path(key), self.errors)
        if value is None:
            table.failed = table.quiet = True
        self.tables[key] = [table]
        return table

    def subs(self, key: str) -> list[_Table]:
        """An array of tables (`[[bgp.peer]]`)."""
        self.seen.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(key, f"expected an array of tables ([[{self.key_path(key)}]])")
            return []
        tables = [_Table(v, f"{self.key_path(key)}[{i}]", self.errors) for i, v in enumerate(value)]
        self.tables[key] = tables
        self.arrays.add(key)
        return tables

    def finish(self) -> None:
        """Report keys nobody asked for, suggesting the closest known one."""
        for key in self.data:
            if key in self.seen:
                continue
            near = difflib.get_close_matches(key, sorted(self.seen), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            self.error(key, f"unknown key{hint}")


# ---------------------------------------------------------------- value converters


def _int_range(lo: int, hi: int, what: str = "") -> Callable[[int], int]:
    def conv(v: int) -> int:
        if not lo <= v <= hi:
            raise _Invalid(f"{v} is out of range {lo}..{hi}{what}")
        return v

    return conv


def _asn(v: int) -> int:
    """An AS number: 1..2^32-1 (RFC 6793), not 0 (RFC 7607), not AS_TRANS."""
    if v == 0:
        raise _Invalid("0 is not an AS number (RFC 7607 reserves AS 0)")
    if not 1 <= v <= AS_MAX:
        raise _Invalid(f"{v} is not an AS number (1..{AS_MAX})")
    if v == AS_TRANS:
        raise _Invalid(f"{v} is AS_TRANS (RFC 6793), not a real AS number")
    return v


def _port(v: int) -> int:
    if not 1 <= v <= 65535:
        raise _Invalid(f"{v} is not a port (1..65535)")
    return v


def _address(v: str) -> IPAddress:
    try:
        return ipaddress.ip_address(v)
    except ValueError:
        raise _Invalid(f"{show(v)} is not an IP address") from None


def _ipv4(v: str) -> ipaddress.IPv4Address:
    addr = _address(v)
    if not isinstance(addr, ipaddress.IPv4Address):
        raise _Invalid(f"{show(v)} is not an IPv4 address")
    return addr


def _router_id(v: str) -> ipaddress.IPv4Address:
    rid = _ipv4(v)
    if int(rid) == 0:
        raise _Invalid(f"{show(v)} is not a BGP identifier (must be non-zero, RFC 6286 §2.1)")
    return rid


def _prefix(v: str) -> IPNetwork:
    """A prefix; host bits set is an error because it usually hides a typo."""
    try:
        return ipaddress.ip_network(v)
    except ValueError:
        pass
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise _Invalid(f"{show(v)} is not an IP prefix") from None
    raise _Invalid(f"{show(v)} has host bits set (did you mean {net}?)")


def _interface(version: int) -> Callable[[str], Any]:
    def conv(v: str) -> Any:
        if "/" not in v:
            raise _Invalid(f"{show(v)} needs a prefix length: the node's subnet, e.g. {v}/24")
        try:
            iface = ipaddress.ip_interface(v)
        except ValueError:
            raise _Invalid(f"{show(v)} is not an address with a prefix length") from None
        if iface.version != version:
            raise _Invalid(f"{show(v)} is not an IPv{version} address")
        if iface.ip.is_unspecified or iface.ip.is_multicast:
            raise _Invalid(f"{show(v)} is not a unicast address")
        return iface

    return conv


def _enum(enum: type[StrEnum]) -> Callable[[str], Any]:
    def conv(v: str) -> Any:
        try:
            return enum(v)
        except ValueError:
            choices = " | ".join(m.value for m in enum)
            raise _Invalid(f"{show(v)} is not one of {choices}") from None

    return conv


def _named(names: Mapping[str, E]) -> Callable[[str], E]:
    """A lower layer's enum by its TOML name (`schema.TOML_NAMES`)."""

    def conv(v: str) -> E:
        if v in names:
            return names[v]
        raise _Invalid(f"{show(v)} is not one of {' | '.join(names)}")

    return conv


def _family(v: Any) -> Family:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    return _named(FAMILY_NAMES)(v)


def _u16(text: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFF:
        raise ValueError(text)
    return int(text)


def _u32(text: str) -> int:
    if not text.isdigit() or int(text) > AS_MAX:
        raise ValueError(text)
    return int(text)


def _community(v: Any) -> Community:
    """`A:B` with 16-bit halves (RFC 1997), or a well-known name."""
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    if v.lower() in WELL_KNOWN_COMMUNITIES:
        packed = WELL_KNOWN_COMMUNITIES[v.lower()]
        return Community(packed >> 16, packed & 0xFFFF)
    try:
        high, low = v.split(":")
        return Community(_u16(high), _u16(low))
    except ValueError:
        raise _Invalid(f"{show(v)} is not a community (A:B, each 0..65535)") from None


def _large_community(v: Any) -> LargeCommunity:
    """`A:B:C` with 32-bit parts (RFC 8092)."""
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    try:
        a, b, c = v.split(":")
        return LargeCommunity(_u32(a), _u32(b), _u32(c))
    except ValueError:
        raise _Invalid(f"{show(v)} is not a large community (A:B:C, each 0..4294967295)") from None


def _next_hop(allowed: tuple[Literal["self", "keep"], ...]) -> Callable[[str], NextHop]:
    def conv(v: str) -> NextHop:
        for word in allowed:
            if v == word:
                return word
        try:
            return ipaddress.ip_address(v)
        except ValueError:
            raise _Invalid(f"{show(v)} is not {' | '.join(allowed)} or an IP address") from None

    return conv


def _cluster_id(v: str) -> ipaddress.IPv4Address | None:
    """RFC 4456 §7: a 4-octet CLUSTER_ID, as a dotted quad or a 32-bit integer."""
    if v == "":
        return None
    try:
        cid = ipaddress.IPv4Address(int(v) if v.isdigit() else v)
    except ValueError:
        raise _Invalid(f"{show(v)} is not a cluster ID (a dotted quad or 1..{AS_MAX})") from None
    if int(cid) == 0:
        raise _Invalid(f"{show(v)} is not a usable cluster ID (0)")
    return cid


_NODE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")


def _node_name(v: str) -> str:
    # The name is part of datastore keys, so no slashes or spaces (RFC 1123 style).
    if not _NODE_NAME.fullmatch(v):
        raise _Invalid(f"{show(v)} is not a node name (letters, digits, '-', '.', '_'; ≤ 253)")
    return v


_LABEL_KEY = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9.-]{0,252}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")


def _labels(v: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    # Kubernetes label syntax, which node_selector expressions are written against.
    for key, value in v.items():
        if not _LABEL_KEY.fullmatch(key):
            raise _Invalid(f"{show(key)} is not a label key")
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            raise _Invalid(f"{show(value)} (label {key}) is not a label value")
    return tuple(sorted(v.items()))


def _non_empty(what: str) -> Callable[[str], str]:
    def conv(v: str) -> str:
        if not v:
            raise _Invalid(f"must not be empty ({what})")
        return v

    return conv


def _password(v: str) -> str:
    # Never echo the secret itself.
    n = len(v.encode())
    if n > TCP_MD5SIG_MAXKEYLEN:
        raise _Invalid(f"{n} bytes is longer than {TCP_MD5SIG_MAXKEYLEN} (TCP_MD5SIG_MAXKEYLEN)")
    return v


def _shutdown_message(v: str) -> str:
    n = len(v.encode())
    if n > SHUTDOWN_MESSAGE_MAX:
        raise _Invalid(f"{n} bytes is longer than {SHUTDOWN_MESSAGE_MAX} (RFC 9003)")
    return v


def _regex(v: str) -> re.Pattern[str]:
    try:
        return re.compile(v)
    except re.error as e:
        raise _Invalid(f"{show(v)} is not a regular expression: {e}") from None


def _endpoint(v: Any) -> str:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    try:
        url = urlsplit(v)
        port = url.port
    except ValueError:
        raise _Invalid(f"{show(v)} is not an etcd endpoint URL") from None
    if url.scheme not in ("http", "https") or not url.hostname or port is None:
        raise _Invalid(f"{show(v)} is not an etcd endpoint (http://host:port or https://host:port)")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise _Invalid(f"{show(v)}: an etcd endpoint is scheme://host:port, nothing after it")
    return v


def _metrics(v: str) -> tuple[str, int] | None:
    """`host:port` (IPv6 hosts in brackets); port 0 picks a free one (tests)."""
    if v == "":
        return None
    host, sep, port = v.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise _Invalid(f'{show(v)} is not host:port (or "" to turn metrics off)')
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid(f"{show(v)} is not host:port ([v6]:port for IPv6)") from None
    return host, int(port)


def _socket_path(v: str) -> str:
    if not v:
        raise _Invalid("must not be empty")
    if len(v.encode()) > UNIX_PATH_MAX:
        raise _Invalid(f"{show(v)} is longer than {UNIX_PATH_MAX} bytes (unix socket limit)")
    return v


def _fib_protocol(v: int) -> int:
    if not 1 <= v <= 255:
        raise _Invalid(f"{v} is not an rtm_protocol (5..255)")
    if v in RESERVED_PROTOCOLS:
        raise _Invalid(
            f"{v} is used by {RESERVED_PROTOCOLS[v]} routes, which podbgp would then "
            "delete as its own; pick an unused number such as 80"
        )
    return v


def default_of(cls: type[Any], name: str) -> Any:
    """The dataclass default of `cls.name`: each default is stated once, in `schema`."""
    value = {f.name: f.default for f in dataclasses.fields(cls)}[name]
    assert value is not dataclasses.MISSING, f"{cls.__name__}.{name} has no default"
    return value


def _done(t: _Table, build: Callable[[], T]) -> T | None:
    """Finish a table; build its dataclass only if nothing in it failed."""
    t.finish()
    return None if t.failed else build()


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)
