"""podbgp's configuration file: TOML in, frozen typed dataclasses out.

Every key, its default and its meaning are in `docs/configuration.md`, which
`accepted_keys()` keeps honest (a unit test compares the two). Loading runs in
three steps:

1. `tomllib` parses the text; a syntax error is one `ConfigError`.
2. Each section is read by a `_Table`, which checks every key's type and value
   and remembers the keys it consumed, so anything left over is an unknown key
   (reported with the closest known name).
3. Cross-section rules run on what parsed cleanly: policy names referenced by
   peers, duplicate peers, overlapping pools or listen ranges, what a mesh or an
   encapsulation needs from `[node]`, and so on.

Errors never stop the reading: every problem is collected and raised together as
one `ConfigError` whose `errors` are messages of the form
`bgp.peer[2].asn: 4294967296 is not an AS number (1..4294967295)`. A value that
failed becomes `None` internally, and the checks that would need it are skipped
so one mistake is reported once.

The dataclasses hold what the daemon uses: `ipaddress` objects, `StrEnum` modes
(equal to their TOML strings), tuples, and effective values with defaults and
inheritance (a peer's hold time from `[bgp]`) already filled in. `Config.to_dict()`
gives the TOML-shaped form back (what `podbgp check` prints), and `diff_configs()`
says what a SIGHUP reload must do.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from bgp.wire.constants import WELL_KNOWN_COMMUNITIES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NextHop = Literal["self", "keep"] | ipaddress.IPv4Address | ipaddress.IPv6Address

AS_MAX = 2**32 - 1
AS_TRANS = 23456  # RFC 6793 §9: a placeholder on 2-byte sessions, never a real AS
TCP_MD5SIG_MAXKEYLEN = 80  # linux/tcp.h: longest TCP MD5 key (RFC 2385)
SHUTDOWN_MESSAGE_MAX = 255  # RFC 9003 §2: the length field is one octet
RESTART_TIME_MAX = 4095  # RFC 4724 §3: Restart Time is a 12-bit field
LLGR_TIME_MAX = 0xFFFFFF  # RFC 9494 §3: Long-lived Stale Time is a 24-bit field
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
AS_PATH_PREPEND_MAX = 32  # more only inflates UPDATEs; no network needs it
DEFAULT_BLOCK_SIZE = {4: 26, 6: 122}

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


RESERVED_POLICY_NAMES = frozenset({"all", "none", "local"})


class ConfigError(Exception):
    """The configuration is invalid; `errors` lists every problem, each naming its key."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__("\n".join(self.errors))


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class AddPath(StrEnum):
    """ADD-PATH mode per RFC 7911 §4 (Send/Receive field)."""

    OFF = "off"
    RECEIVE = "receive"
    SEND = "send"
    BOTH = "both"


class EncapMode(StrEnum):
    NEVER = "Never"
    ALWAYS = "Always"
    CROSS_SUBNET = "CrossSubnet"


class DatastoreKind(StrEnum):
    SQLITE = "sqlite"
    ETCD = "etcd"


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


class Origin(StrEnum):
    """ORIGIN attribute values, RFC 4271 §5.1.1."""

    IGP = "igp"
    EGP = "egp"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True, order=True)
class Community:
    """An RFC 1997 community, written `A:B` (or a well-known name)."""

    asn: int
    value: int

    @property
    def packed(self) -> int:
        """The 32-bit wire value."""
        return (self.asn << 16) | self.value

    def __str__(self) -> str:
        return f"{self.asn}:{self.value}"


@dataclass(frozen=True, slots=True, order=True)
class LargeCommunity:
    """An RFC 8092 large community, written `A:B:C`."""

    global_admin: int
    local1: int
    local2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    asn: int
    router_id: ipaddress.IPv4Address
    address: ipaddress.IPv4Interface | None = None
    address6: ipaddress.IPv6Interface | None = None
    # Labels the pools' `node_selector` matches (Calico's node labels), sorted pairs.
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOptions:
    """Keys shared by `[[bgp.peer]]` and `[[bgp.listen_range]]`."""

    asn: int
    local_address: IPAddress | None = None
    port: int = 179
    passive: bool = False
    password: str = ""
    ttl_security: int = 0
    multihop: int = 1
    route_reflector_client: bool = False
    keep_original_next_hop: bool = False
    families: tuple[Family, ...] = (Family.IPV4, Family.IPV6)
    import_policy: str = "all"
    export_policy: str = "local"
    max_prefixes: int = 0
    shutdown_message: str = ""
    # Defaults come from [bgp] (docs/configuration.md).
    hold_time: int = 90
    keepalive: int = 30
    connect_retry_max: int = 120
    graceful_restart: bool = True
    long_lived_stale_time: int = 0
    add_path: AddPath = AddPath.OFF
    add_path_send_max: int = 0
    soft_reconfiguration: bool = False
    # RFC 4271 §6.3 (a MAY): an eBGP route whose AS_PATH does not start with the peer's
    # AS is withdrawn; off for route servers, which do not prepend (RFC 7947 §2.2).
    enforce_first_as: bool = True
    # BFD (RFC 5880/5881 single hop) for the session; defaults come from [bgp].
    bfd: bool = False
    bfd_interval_ms: int = 300
    bfd_multiplier: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer(PeerOptions):
    """A static neighbour (`[[bgp.peer]]`)."""

    address: IPAddress

    @property
    def session_settings(self) -> Peer:
        """This peer with its policies and BFD blanked: what a session reset depends on.

        BFD runs beside the session (podbgp.bfdnode), so a reload changes it without
        a reset."""
        return dataclasses.replace(
            self, import_policy="", export_policy="", bfd=False, bfd_interval_ms=0,
            bfd_multiplier=0,
        )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenRange(PeerOptions):
    """Dynamic neighbours accepted from `prefix` (`[[bgp.listen_range]]`); always passive."""

    prefix: IPNetwork
    passive: bool = True


@dataclass(frozen=True, slots=True)
class Originate:
    prefix: IPNetwork
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    next_hop: NextHop = "self"


@dataclass(frozen=True, slots=True)
class Match:
    """What a policy rule matches; every given condition must hold, none given matches all.

    `prefix` matches routes inside it whose length is within `ge..le`; without
    either the length must equal the prefix's, with only `ge` it runs up to the
    family's maximum, with only `le` it starts at the prefix's length.

    `as_path` is searched (`re.search`) in the AS path written as ASNs separated by
    single spaces, e.g. "64512 65000"; an empty path is "".
    """

    prefix: IPNetwork | None = None
    ge: int | None = None
    le: int | None = None
    community: Community | None = None
    large_community: LargeCommunity | None = None
    as_path: re.Pattern[str] | None = None
    family: Family | None = None
    neighbor: IPNetwork | None = None
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class SetActions:
    local_pref: int | None = None
    med: int | None = None
    community_add: tuple[Community, ...] = ()
    community_remove: tuple[Community, ...] = ()
    large_community_add: tuple[LargeCommunity, ...] = ()
    large_community_remove: tuple[LargeCommunity, ...] = ()
    as_path_prepend: int = 0
    next_hop: NextHop | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    match: Match = Match()
    action: Action = Action.ACCEPT
    set: SetActions = SetActions()


@dataclass(frozen=True, slots=True)
class Policy:
    """Ordered rules, first match wins; `default_action` when none matches."""

    name: str
    rules: tuple[Rule, ...] = ()
    default_action: Action = Action.REJECT


@dataclass(frozen=True, slots=True)
class BGPConfig:
    enabled: bool = True
    listen: tuple[IPAddress, ...] = (
        ipaddress.IPv4Address("0.0.0.0"),
        ipaddress.IPv6Address("::"),
    )
    port: int = 179
    hold_time: int = 90
    keepalive: int = 30
    connect_retry: int = 5
    connect_retry_max: int = 120
    mesh: bool = True
    route_reflector_cluster_id: ipaddress.IPv4Address | None = None
    graceful_restart: bool = True
    restart_time: int = 120
    long_lived_stale_time: int = 0
    add_path: AddPath = AddPath.OFF
    max_paths: int = 8
    always_compare_med: bool = False
    honor_graceful_shutdown: bool = True
    max_prefixes_restart: int = 60
    deferral_time: int = 360
    bfd: bool = False
    bfd_interval_ms: int = 300
    bfd_multiplier: int = 3
    peers: tuple[Peer, ...] = ()
    originate: tuple[Originate, ...] = ()
    listen_ranges: tuple[ListenRange, ...] = ()

    @property
    def is_route_reflector(self) -> bool:
        return self.route_reflector_cluster_id is not None


@dataclass(frozen=True, slots=True)
class DatastoreConfig:
    kind: DatastoreKind = DatastoreKind.SQLITE
    path: str = "/var/lib/podbgp/podbgp.db"
    endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    create: bool = False  # `podbgp run` creates a missing store (labs); else only `datastore init`
    cluster_id_file: str = ""  # the cluster this node joined; "" = cluster-id beside api.socket


@dataclass(frozen=True, slots=True)
class Pool:
    cidr: IPNetwork
    block_size: int
    ipip_mode: EncapMode = EncapMode.NEVER
    vxlan_mode: EncapMode = EncapMode.NEVER
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool = False
    node_selector: str = "all()"


@dataclass(frozen=True, slots=True)
class IPAMConfig:
    strict_affinity: bool = False
    max_blocks_per_node: int = 20
    pools: tuple[Pool, ...] = ()


@dataclass(frozen=True, slots=True)
class FIBConfig:
    enabled: bool = True
    table: int = 254
    protocol: int = 80
    resync_interval: int = 90
    nexthops: bool = True  # kernel nexthop objects for shared/ECMP hops; False = inline hops


@dataclass(frozen=True, slots=True)
class APIConfig:
    socket: str = "/run/podbgp/podbgp.sock"
    metrics: tuple[str, int] | None = ("127.0.0.1", 9469)  # (host, port); None = off


@dataclass(frozen=True, slots=True)
class Config:
    node: NodeConfig
    bgp: BGPConfig = BGPConfig()
    policies: tuple[Policy, ...] = ()
    datastore: DatastoreConfig = DatastoreConfig()
    ipam: IPAMConfig = IPAMConfig()
    fib: FIBConfig = FIBConfig()
    api: APIConfig = APIConfig()

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        return load_config(path)

    @classmethod
    def from_text(cls, text: str, source: str = "<config>") -> Config:
        return load_config_text(text, source)

    def policy(self, name: str) -> Policy:
        """The `[[policy]]` called `name` (KeyError if there is none)."""
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def diff(self, new: Config) -> ConfigDiff:
        """What a reload from this config to `new` must do (see `diff_configs`)."""
        return diff_configs(self, new)

    def to_dict(self, *, reveal_secrets: bool = True) -> dict[str, Any]:
        """The effective config in CONFIG.md's shape (TOML keys, plain values)."""
        return _dump_config(self, reveal_secrets)

    def to_json(self, *, reveal_secrets: bool = True) -> str:
        return json.dumps(self.to_dict(reveal_secrets=reveal_secrets), indent=2)


# ---------------------------------------------------------------- loading


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError (also for an unreadable file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from e
    return load_config_text(text, str(path))


def load_config_text(text: str, source: str = "<config>") -> Config:
    """Validate TOML text; raises ConfigError listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source}: not valid TOML: {e}"]) from e
    return load_config_dict(raw)


def load_config_dict(raw: dict[str, Any]) -> Config:
    """Validate an already parsed TOML document."""
    errors = _Errors()
    cfg = _read_config(_Table(raw, "", errors), errors)
    if errors.messages or cfg is None:
        raise ConfigError(sorted(errors.messages, key=_section_rank))
    return cfg


def accepted_keys() -> frozenset[str]:
    """Every key the reader accepts, as dotted paths: `bgp.peer[].hold_time`.

    These are the keys `_Table.finish` does not call unknown. The reader runs on a
    document that grows until every array of tables it asks for has one (empty)
    item, so keys inside `[[bgp.peer]]` or `[[policy.rule]]` are found too; tables
    themselves are not keys. docs/configuration.md is tested against this set.
    """
    doc: dict[str, Any] = {}
    while True:
        root = _Table(doc, "", _Errors())
        _read_config(root, root.errors)
        if not _add_missing_tables(root):
            return frozenset(_leaf_keys(root, ""))


def _add_missing_tables(t: _Table) -> bool:
    """Give `t` every nested table it asked for (arrays one empty item); True if any was new."""
    grown = False
    for key, tables in t.tables.items():
        if key not in t.data:
            t.data[key] = [{}] if key in t.arrays else tables[0].data
            grown = True
        for child in tables:
            grown |= _add_missing_tables(child)
    return grown


def _leaf_keys(t: _Table, prefix: str) -> Iterator[str]:
    for key in t.seen - t.tables.keys():
        yield prefix + key
    for key, tables in t.tables.items():
        array = "[]" if key in t.arrays else ""
        for child in tables[:1]:
            yield from _leaf_keys(child, f"{prefix}{key}{array}.")


_SECTION_ORDER = ("node", "bgp", "policy", "datastore", "ipam", "fib", "api")


def _section_rank(message: str) -> int:
    """Errors in CONFIG.md's section order (sorting is stable within a section)."""
    head = re.split(r"[.\[:]", message, maxsplit=1)[0]
    return _SECTION_ORDER.index(head) if head in _SECTION_ORDER else len(_SECTION_ORDER)


class _Invalid(Exception):
    """A value is wrong; the message follows the key's path."""


class _Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}")


T = TypeVar("T")
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


def _family(v: Any) -> Family:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    return _enum(Family)(v)  # type: ignore[no-any-return]


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


def _next_hop(allowed: tuple[str, ...]) -> Callable[[str], NextHop]:
    def conv(v: str) -> NextHop:
        if v in allowed:
            return v  # type: ignore[return-value]
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
        raise _Invalid(f"{show(v)} is not an etcd endpoint (http[s]://host:port)")
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


# ---------------------------------------------------------------- sections


def _read_config(root: _Table, errors: _Errors) -> Config | None:
    node = _read_node(root.sub("node"))
    policy_tables = root.subs("policy")
    policies = _read_policies(policy_tables)
    # Names as written, so a policy with a mistake inside is still a valid reference.
    names = {n for t in policy_tables if isinstance(n := t.data.get("name"), str)}
    bgp = _read_bgp(root.sub("bgp"), names)
    datastore = _read_datastore(root.sub("datastore"))
    ipam = _read_ipam(root.sub("ipam"))
    fib = _read_fib(root.sub("fib"))
    api = _read_api(root.sub("api"))
    root.finish()
    _cross_checks(node, bgp, ipam, errors)
    if (
        node is None
        or bgp is None
        or datastore is None
        or ipam is None
        or fib is None
        or api is None
        or None in policies
    ):
        return None
    return Config(node, bgp, tuple(p for p in policies if p), datastore, ipam, fib, api)


def _done(t: _Table, build: Callable[[], T]) -> T | None:
    """Finish a table; build its dataclass only if nothing in it failed."""
    t.finish()
    return None if t.failed else build()


def _read_node(t: _Table) -> NodeConfig | None:
    name = t.get("name", str, _REQUIRED, _node_name)
    asn = t.get("asn", int, _REQUIRED, _asn)
    address = t.get("address", str, None, _interface(4))
    address6 = t.get("address6", str, None, _interface(6))
    router_id = t.get("router_id", str, None, _router_id)
    if router_id is None and not t.has("router_id"):
        if address is not None:
            router_id = address.ip
        elif not t.has("address"):
            t.error(
                "router_id", "is required when node.address is absent (it defaults to its IPv4)"
            )
    labels = t.get("labels", dict, {}, _labels)
    return _done(t, lambda: NodeConfig(name, asn, router_id, address, address6, labels))


def _read_bgp(t: _Table, policies: set[str]) -> BGPConfig | None:
    d = BGPConfig()
    enabled = t.get("enabled", bool, d.enabled)
    listen = t.get_list("listen", d.listen, _list_address)
    port = t.get("port", int, d.port, _port)
    hold = t.get("hold_time", int, d.hold_time, _hold_time)
    keepalive = t.get("keepalive", int, None, _int_range(0, 65535))
    keepalive = _check_keepalive(t, hold, keepalive, "hold_time")
    values: dict[str, Any] = {
        "enabled": enabled,
        "listen": listen,
        "port": port,
        "hold_time": hold,
        "keepalive": keepalive,
        "connect_retry": t.get("connect_retry", int, d.connect_retry, _int_range(1, 65535)),
        "connect_retry_max": t.get(
            "connect_retry_max", int, d.connect_retry_max, _int_range(1, 65535)
        ),
        "mesh": t.get("mesh", bool, d.mesh) and enabled is not False,
        "route_reflector_cluster_id": t.get("route_reflector_cluster_id", str, None, _cluster_id),
        "graceful_restart": t.get("graceful_restart", bool, d.graceful_restart),
        "restart_time": t.get("restart_time", int, d.restart_time, _int_range(0, RESTART_TIME_MAX)),
        "long_lived_stale_time": t.get(
            "long_lived_stale_time", int, d.long_lived_stale_time, _int_range(0, LLGR_TIME_MAX)
        ),
        "add_path": t.get("add_path", str, d.add_path, _enum(AddPath)),
        "max_paths": t.get("max_paths", int, d.max_paths, _int_range(1, 1024)),
        "always_compare_med": t.get("always_compare_med", bool, d.always_compare_med),
        "honor_graceful_shutdown": t.get(
            "honor_graceful_shutdown", bool, d.honor_graceful_shutdown
        ),
        "max_prefixes_restart": t.get(
            "max_prefixes_restart", int, d.max_prefixes_restart, _int_range(0, 86400)
        ),
        "deferral_time": t.get("deferral_time", int, d.deferral_time, _int_range(1, 3600)),
        **_read_bfd(
            t,
            {
                "bfd": d.bfd,
                "bfd_interval_ms": d.bfd_interval_ms,
                "bfd_multiplier": d.bfd_multiplier,
            },
        ),
    }
    if listen is not None and len(set(listen)) != len(listen):
        t.error("listen", f"{show([str(a) for a in listen])} lists an address twice")
    first, cap = values["connect_retry"], values["connect_retry_max"]
    if first is not None and cap is not None and cap < first:
        t.error("connect_retry_max", f"{cap} is below connect_retry ({first}), where it starts")
    inherit = _Inherit(values, policies)
    peers = [_read_peer(p, inherit) for p in t.subs("peer")]
    ranges = [_read_listen_range(r, inherit) for r in t.subs("listen_range")]
    originate = [_read_originate(o) for o in t.subs("originate")]
    if any(x is None for x in (*peers, *ranges, *originate)):
        t.failed = True
    _check_bgp_lists(t, values, peers, ranges, originate)
    return _done(
        t,
        lambda: BGPConfig(
            **values,
            peers=tuple(p for p in peers if p),
            originate=tuple(o for o in originate if o),
            listen_ranges=tuple(r for r in ranges if r),
        ),
    )


def _list_address(v: Any) -> IPAddress:
    if not isinstance(v, str):
        raise _Invalid(f"{show(v)} is {_type_name(v)}, expected a string")
    return _address(v)


def _hold_time(v: int) -> int:
    """RFC 4271 §4.2: zero or at least three seconds (a 16-bit field)."""
    if v != 0 and not 3 <= v <= 65535:
        raise _Invalid(f"{v} is not a hold time (0, or 3..65535; RFC 4271 §4.2)")
    return v


def _check_keepalive(t: _Table, hold: int | None, keepalive: int | None, hold_key: str) -> Any:
    """Default a third of the hold time (RFC 4271 §10); must stay below it unless hold is 0."""
    if hold is None:
        return None
    if keepalive is None:
        return None if t.has("keepalive") else hold // 3
    if hold != 0 and not 1 <= keepalive < hold:
        t.error("keepalive", f"{keepalive} must be 1..{hold - 1} (below {hold_key} {hold})")
        return None
    return keepalive


@dataclass
class _Inherit:
    """What a peer inherits from `[bgp]`, and the policy names it may reference."""

    bgp: dict[str, Any]
    policies: set[str]


def _read_peer(t: _Table, inherit: _Inherit) -> Peer | None:
    address = t.get("address", str, _REQUIRED, _peer_address)
    options = _read_peer_options(t, inherit, passive_default=False)
    if address is not None and options is not None:
        _check_local_address(t, address, options.get("local_address"))
    return _done(t, lambda: Peer(address=address, **options))


def _read_listen_range(t: _Table, inherit: _Inherit) -> ListenRange | None:
    prefix = t.get("prefix", str, _REQUIRED, _prefix)
    if t.has("address"):
        t.seen.add("address")
        t.error("address", "is for [[bgp.peer]]; a listen range has a prefix")
    options = _read_peer_options(t, inherit, passive_default=True)
    if options.get("passive") is False:
        t.error("passive", "false is impossible: dynamic neighbours are only accepted")
    if prefix is not None:
        _check_local_address(t, prefix.network_address, options.get("local_address"))
    return _done(t, lambda: ListenRange(prefix=prefix, **options))


def _peer_address(v: str) -> IPAddress:
    addr = _address(v)
    if addr.is_unspecified or addr.is_multicast:
        raise _Invalid(f"{show(v)} is not a unicast address")
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local and not addr.scope_id:
        raise _Invalid(f"{show(v)} is link-local and needs a zone, e.g. {v}%eth0")
    return addr


def _check_local_address(t: _Table, peer: IPAddress, local: IPAddress | None) -> None:
    if local is not None and local.version != peer.version:
        t.error(
            "local_address", f'"{local}" is IPv{local.version} but the peer is IPv{peer.version}'
        )


def _read_peer_options(t: _Table, inherit: _Inherit, passive_default: bool) -> dict[str, Any]:
    """Every key a static peer and a listen range share, with [bgp] defaults inherited."""
    d, bgp = PeerOptions(asn=1), inherit.bgp
    hold = t.get("hold_time", int, bgp["hold_time"], _hold_time)
    ka_default = hold // 3 if t.has("hold_time") and hold is not None else bgp["keepalive"]
    keepalive = t.get("keepalive", int, ka_default, _int_range(0, 65535))
    if t.has("keepalive"):
        keepalive = _check_keepalive(t, hold, keepalive, "hold_time")
    out = {
        "asn": t.get("asn", int, _REQUIRED, _asn),
        "local_address": t.get("local_address", str, None, _optional_address),
        "port": t.get("port", int, d.port, _port),
        "passive": t.get("passive", bool, passive_default),
        "password": t.get("password", str, d.password, _password),
        "ttl_security": t.get("ttl_security", int, d.ttl_security, _int_range(0, 254)),
        "multihop": t.get("multihop", int, d.multihop, _int_range(1, 255)),
        "route_reflector_client": t.get("route_reflector_client", bool, False),
        "keep_original_next_hop": t.get("keep_original_next_hop", bool, False),
        "families": t.get_list("families", d.families, _family),
        "import_policy": t.get("import", str, d.import_policy, _policy_ref(inherit, False)),
        "export_policy": t.get("export", str, d.export_policy, _policy_ref(inherit, True)),
        "max_prefixes": t.get("max_prefixes", int, 0, _int_range(0, AS_MAX)),
        "shutdown_message": t.get("shutdown_message", str, "", _shutdown_message),
        "hold_time": hold,
        "keepalive": keepalive,
        "connect_retry_max": _connect_retry_max(t, bgp),
        "graceful_restart": t.get("graceful_restart", bool, bgp["graceful_restart"]),
        "long_lived_stale_time": t.get(
            "long_lived_stale_time",
            int,
            bgp["long_lived_stale_time"],
            _int_range(0, LLGR_TIME_MAX),
        ),
        "add_path": t.get("add_path", str, bgp["add_path"], _enum(AddPath)),
        "add_path_send_max": t.get("add_path_send_max", int, 0, _int_range(0, 65535)),
        "soft_reconfiguration": t.get("soft_reconfiguration", bool, False),
        "enforce_first_as": t.get("enforce_first_as", bool, True),
        **_read_bfd(t, bgp),
    }
    _check_peer_options(t, out)
    return out


def _optional_address(v: str) -> IPAddress | None:
    return None if v == "" else _address(v)


def _policy_ref(inherit: _Inherit, export: bool) -> Callable[[str], str]:
    builtins = ("all", "none", "local") if export else ("all", "none")

    def conv(v: str) -> str:
        if v in builtins or v in inherit.policies:
            return v
        if v == "local":
            raise _Invalid('"local" applies to export only')
        choices = " | ".join(f'"{b}"' for b in builtins)
        raise _Invalid(f"{show(v)} is neither {choices} nor the name of a [[policy]]")

    return conv


def _connect_retry_max(t: _Table, bgp: dict[str, Any]) -> int | None:
    """The cap of the retry back-off: at least `bgp.connect_retry`, where it starts."""
    value: int | None = t.get(
        "connect_retry_max", int, bgp["connect_retry_max"], _int_range(1, 65535)
    )
    first = bgp["connect_retry"]
    if t.has("connect_retry_max") and value is not None and first is not None and value < first:
        t.error("connect_retry_max", f"{value} is below bgp.connect_retry ({first})")
        return None
    return value


def _check_peer_options(t: _Table, out: dict[str, Any]) -> None:
    families = out["families"]
    if families is not None and (not families or len(set(families)) != len(families)):
        t.error(
            "families", f"{show([str(f) for f in families])} must list ipv4 and/or ipv6 once each"
        )
    if out["bfd"] and out["multihop"] not in (None, 1):
        t.error(
            "bfd",
            "needs a directly connected peer (multihop = 1): BFD here is single hop (RFC 5881)",
        )
    if out["ttl_security"] and out["multihop"] not in (None, 1):
        t.error(
            "ttl_security", "cannot be combined with multihop (GTSM sends with TTL 255, RFC 5082)"
        )


def _read_bfd(t: _Table, defaults: dict[str, Any]) -> dict[str, Any]:
    """`bfd`, `bfd_interval_ms`, `bfd_multiplier` (RFC 5880 §6.8.1: DesiredMinTxInterval and
    RequiredMinRxInterval, DetectMult), each defaulting to `defaults` ([bgp]'s values)."""
    return {
        "bfd": t.get("bfd", bool, defaults["bfd"]),
        "bfd_interval_ms": t.get(
            "bfd_interval_ms", int, defaults["bfd_interval_ms"], _int_range(10, 60000)
        ),
        "bfd_multiplier": t.get(
            "bfd_multiplier", int, defaults["bfd_multiplier"], _int_range(1, 255)
        ),
    }


def _read_originate(t: _Table) -> Originate | None:
    prefix = t.get("prefix", str, _REQUIRED, _prefix)
    communities = t.get_list("communities", (), _community)
    large = t.get_list("large_communities", (), _large_community)
    next_hop = t.get("next_hop", str, "self", _next_hop(("self",)))
    if (
        prefix is not None
        and not isinstance(next_hop, str | None)
        and next_hop.version != prefix.version
    ):
        t.error(
            "next_hop",
            f'"{next_hop}" is IPv{next_hop.version} but the prefix is IPv{prefix.version}',
        )
    return _done(t, lambda: Originate(prefix, communities, large, next_hop))


def _check_bgp_lists(
    t: _Table,
    values: dict[str, Any],
    peers: list[Peer | None],
    ranges: list[ListenRange | None],
    originate: list[Originate | None],
) -> None:
    """Duplicates and overlaps among peers and ranges; what a disabled BGP cannot have."""
    seen: dict[IPAddress, int] = {}
    for i, p in enumerate(peers):
        if p is None:
            continue
        if p.address in seen:
            t.error(f"peer[{i}].address", f'"{p.address}" is already bgp.peer[{seen[p.address]}]')
        seen.setdefault(p.address, i)
    for i, r in enumerate(ranges):
        for j in range(i):
            other = ranges[j]
            if r is not None and other is not None and _overlaps(r.prefix, other.prefix):
                t.error(f"listen_range[{i}].prefix", f'"{r.prefix}" overlaps bgp.listen_range[{j}]')
    if values["enabled"] is False:
        for key, items in (("peer", peers), ("listen_range", ranges), ("originate", originate)):
            if items:
                t.error(key, "is not allowed with bgp.enabled = false")
        if values["route_reflector_cluster_id"] is not None:
            t.error("route_reflector_cluster_id", "is not allowed with bgp.enabled = false")


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


# ---------------------------------------------------------------- policy


def _read_policies(tables: list[_Table]) -> list[Policy | None]:
    out: list[Policy | None] = []
    seen: dict[str, int] = {}
    for i, t in enumerate(tables):
        p = _read_policy(t)
        name = t.data.get("name")
        if isinstance(name, str) and name in seen:
            t.error("name", f"{show(name)} is already policy[{seen[name]}]")
            p = None
        if isinstance(name, str):
            seen.setdefault(name, i)
        out.append(p)
    return out


def _policy_name(v: str) -> str:
    if not v:
        raise _Invalid("must not be empty")
    if v in RESERVED_POLICY_NAMES:
        raise _Invalid(
            f"{show(v)} is reserved (all | none | local mean themselves in import/export)"
        )
    return v


def _read_policy(t: _Table) -> Policy | None:
    name = t.get("name", str, _REQUIRED, _policy_name)
    default = t.get("default_action", str, Action.REJECT, _enum(Action))
    rules = [_read_rule(r) for r in t.subs("rule")]
    if any(r is None for r in rules):
        t.failed = True
    return _done(t, lambda: Policy(name, tuple(r for r in rules if r), default))


def _read_rule(t: _Table) -> Rule | None:
    match = _read_match(t.sub("match"))
    action = t.get("action", str, Action.ACCEPT, _enum(Action))
    set_table = t.sub("set")
    actions = _read_set(set_table)
    if action == Action.REJECT and set_table.data:
        t.error("set", "has no effect on a rejected route")
    if match is None or actions is None:
        t.failed = True
    return _done(t, lambda: Rule(match, action, actions))  # type: ignore[arg-type]


def _read_match(t: _Table) -> Match | None:
    prefix = t.get("prefix", str, None, _prefix)
    ge = t.get("ge", int, None, _int_range(0, 128))
    le = t.get("le", int, None, _int_range(0, 128))
    values = {
        "community": t.get("community", str, None, _community),
        "large_community": t.get("large_community", str, None, _large_community),
        "as_path": t.get("as_path", str, None, _regex),
        "family": t.get("family", str, None, _enum(Family)),
        "neighbor": t.get("neighbor", str, None, _neighbor),
        "origin": t.get("origin", str, None, _enum(Origin)),
    }
    _check_prefix_lengths(t, prefix, ge, le)
    return _done(t, lambda: Match(prefix, ge, le, **values))


def _neighbor(v: str) -> IPNetwork:
    """A peer address or a prefix of peer addresses."""
    return _prefix(v)


def _check_prefix_lengths(
    t: _Table, prefix: IPNetwork | None, ge: int | None, le: int | None
) -> None:
    """prefix length ≤ ge ≤ le ≤ the family's maximum."""
    for key, value in (("ge", ge), ("le", le)):
        if value is not None and not t.has("prefix"):
            t.error(key, f"{value} needs match.prefix")
    if prefix is None:
        return
    top = prefix.max_prefixlen
    for key, value in (("ge", ge), ("le", le)):
        if value is not None and not prefix.prefixlen <= value <= top:
            t.error(
                key,
                f"{value} is not within {prefix.prefixlen}..{top} (the length of {prefix} up to /{top})",
            )
    if ge is not None and le is not None and ge > le:
        t.error("le", f"{le} is below ge {ge}")


def _read_set(t: _Table) -> SetActions | None:
    values = {
        "local_pref": t.get("local_pref", int, None, _int_range(0, AS_MAX)),
        "med": t.get("med", int, None, _int_range(0, AS_MAX)),
        "community_add": t.get_list("community_add", (), _community),
        "community_remove": t.get_list("community_remove", (), _community),
        "large_community_add": t.get_list("large_community_add", (), _large_community),
        "large_community_remove": t.get_list("large_community_remove", (), _large_community),
        "as_path_prepend": t.get("as_path_prepend", int, 0, _int_range(0, AS_PATH_PREPEND_MAX)),
        "next_hop": t.get("next_hop", str, None, _next_hop(("self", "keep"))),
    }
    return _done(t, lambda: SetActions(**values))


# ---------------------------------------------------------------- datastore, ipam, fib, api


def _read_datastore(t: _Table) -> DatastoreConfig | None:
    d = DatastoreConfig()
    kind = t.get("kind", str, d.kind, _enum(DatastoreKind))
    path = t.get("path", str, d.path, _non_empty("the SQLite file"))
    endpoints = t.get_list("endpoints", d.endpoints, _endpoint)
    if kind == DatastoreKind.ETCD and endpoints == ():
        t.error("endpoints", 'must list at least one endpoint with kind = "etcd"')
    create = t.get("create", bool, d.create)
    id_file = t.get("cluster_id_file", str, d.cluster_id_file)
    return _done(t, lambda: DatastoreConfig(kind, path, endpoints, create, id_file))


def load_ipam_dict(raw: dict[str, Any]) -> IPAMConfig:
    """Validate an ``[ipam]`` table alone (``podbgp ipam --pool``): the daemon's rules and text."""
    errors = _Errors()
    ipam = _read_ipam(_Table(raw, "ipam", errors))
    if errors.messages or ipam is None:
        raise ConfigError(errors.messages)
    return ipam


def _read_ipam(t: _Table) -> IPAMConfig | None:
    d = IPAMConfig()
    strict = t.get("strict_affinity", bool, d.strict_affinity)
    max_blocks = t.get("max_blocks_per_node", int, d.max_blocks_per_node, _int_range(0, AS_MAX))
    pools = [_read_pool(p) for p in t.subs("pool")]
    for i, p in enumerate(pools):
        for j in range(i):
            other = pools[j]
            if p is not None and other is not None and _overlaps(p.cidr, other.cidr):
                t.error(f"pool[{i}].cidr", f'"{p.cidr}" overlaps ipam.pool[{j}] ("{other.cidr}")')
    if any(p is None for p in pools):
        t.failed = True
    return _done(t, lambda: IPAMConfig(strict, max_blocks, tuple(p for p in pools if p)))


def _read_pool(t: _Table) -> Pool | None:
    cidr = t.get("cidr", str, _REQUIRED, _prefix)
    block = t.get("block_size", int, None, _int_range(0, 128))
    if cidr is not None and block is None and not t.has("block_size"):
        block = max(DEFAULT_BLOCK_SIZE[cidr.version], cidr.prefixlen)
    ipip = t.get("ipip_mode", str, EncapMode.NEVER, _enum(EncapMode))
    vxlan = t.get("vxlan_mode", str, EncapMode.NEVER, _enum(EncapMode))
    values = {
        "nat_outgoing": t.get("nat_outgoing", bool, False),
        "disabled": t.get("disabled", bool, False),
        "disable_bgp_export": t.get("disable_bgp_export", bool, False),
        "node_selector": t.get(
            "node_selector", str, "all()", _non_empty('"all()" selects every node')
        ),
    }
    if cidr is not None and block is not None and not cidr.prefixlen <= block <= cidr.max_prefixlen:
        t.error(
            "block_size",
            f"{block} is not within {cidr.prefixlen}..{cidr.max_prefixlen} (pool {cidr})",
        )
    if ipip not in (None, EncapMode.NEVER) and vxlan not in (None, EncapMode.NEVER):
        t.error(
            "vxlan_mode", f"{show(str(vxlan))} cannot be combined with ipip_mode {show(str(ipip))}"
        )
    if cidr is not None and cidr.version == 6 and ipip not in (None, EncapMode.NEVER):
        t.error("ipip_mode", f"{show(str(ipip))} is for IPv4 pools only ({cidr} is IPv6)")
    return _done(t, lambda: Pool(cidr, block, ipip, vxlan, **values))


def _read_fib(t: _Table) -> FIBConfig | None:
    d = FIBConfig()
    enabled = t.get("enabled", bool, d.enabled)
    table = t.get("table", int, d.table, _int_range(1, AS_MAX))
    protocol = t.get("protocol", int, d.protocol, _fib_protocol)
    resync = t.get("resync_interval", int, d.resync_interval, _int_range(0, 86400))
    nexthops = t.get("nexthops", bool, d.nexthops)
    return _done(t, lambda: FIBConfig(enabled, table, protocol, resync, nexthops))


def _read_api(t: _Table) -> APIConfig | None:
    d = APIConfig()
    sock = t.get("socket", str, d.socket, _socket_path)
    metrics = t.get("metrics", str, d.metrics, _metrics)
    return _done(t, lambda: APIConfig(sock, metrics))


# ---------------------------------------------------------------- cross-section rules


def _cross_checks(
    node: NodeConfig | None, bgp: BGPConfig | None, ipam: IPAMConfig | None, errors: _Errors
) -> None:
    """Rules spanning sections; each runs only when the sections it needs parsed cleanly."""
    if bgp is not None:
        _check_listening(bgp, errors)
        _check_reflector_clients(node, bgp, errors)
    if node is not None and bgp is not None:
        _check_node_for_bgp(node, bgp, errors)
    if node is not None and ipam is not None:
        _check_node_for_pools(node, bgp, ipam, errors)


def _check_listening(bgp: BGPConfig, errors: _Errors) -> None:
    """Sessions that can only come up inbound need a listening socket."""
    if bgp.listen:
        return
    if bgp.mesh or bgp.is_route_reflector:
        # Each mesh pair connects in one direction only, so half the sessions are inbound.
        errors.add("bgp.listen", "[] but the mesh and route reflection need inbound sessions")
    if bgp.listen_ranges:
        errors.add("bgp.listen_range", "dynamic neighbours need bgp.listen (it is [])")
    for i, p in enumerate(bgp.peers):
        if p.passive:
            errors.add(
                f"bgp.peer[{i}].passive", "true but bgp.listen is [], so it could never connect"
            )


def _check_reflector_clients(node: NodeConfig | None, bgp: BGPConfig, errors: _Errors) -> None:
    """RFC 4456: clients are iBGP peers.

    A client without `route_reflector_cluster_id` is allowed: the node then
    reflects for it with its router ID as cluster ID (RFC 4456 §7) and stays in
    the mesh; only the cluster ID makes it leave the mesh.
    """
    items: list[tuple[str, PeerOptions]] = [(f"bgp.peer[{i}]", p) for i, p in enumerate(bgp.peers)]
    items += [(f"bgp.listen_range[{i}]", r) for i, r in enumerate(bgp.listen_ranges)]
    for path, p in items:
        if p.route_reflector_client and node is not None and p.asn != node.asn:
            errors.add(
                f"{path}.route_reflector_client",
                f"AS {p.asn} is not this node's AS {node.asn}; clients are iBGP peers (RFC 4456)",
            )


def _check_node_for_bgp(node: NodeConfig, bgp: BGPConfig, errors: _Errors) -> None:
    if (bgp.mesh or bgp.is_route_reflector) and node.address is None and node.address6 is None:
        errors.add(
            "node.address", "is required for the mesh and route reflection (peers connect to it)"
        )
    own = {i.ip for i in (node.address, node.address6) if i is not None}
    for i, p in enumerate(bgp.peers):
        if p.address in own:
            errors.add(f"bgp.peer[{i}].address", f'"{p.address}" is this node\'s own address')


def _check_node_for_pools(
    node: NodeConfig, bgp: BGPConfig | None, ipam: IPAMConfig, errors: _Errors
) -> None:
    """Encapsulation needs an underlay address of the pool's family, and IP-in-IP needs BGP."""
    for i, pool in enumerate(ipam.pools):
        path = f"ipam.pool[{i}]"
        for key, mode in (("ipip_mode", pool.ipip_mode), ("vxlan_mode", pool.vxlan_mode)):
            if mode == EncapMode.NEVER:
                continue
            need, have = (
                ("address", node.address) if pool.cidr.version == 4 else ("address6", node.address6)
            )
            if have is None:
                errors.add(f"{path}.{key}", f'"{mode}" needs node.{need} (the tunnel underlay)')
        if pool.ipip_mode != EncapMode.NEVER and bgp is not None and not bgp.enabled:
            errors.add(
                f"{path}.ipip_mode",
                "IP-in-IP routes come from BGP; bgp.enabled is false (use vxlan_mode)",
            )


# ---------------------------------------------------------------- dumping


def _dump_config(cfg: Config, reveal: bool) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": cfg.node.name,
        "asn": cfg.node.asn,
        "router_id": str(cfg.node.router_id),
    }
    for key in ("address", "address6"):
        value = getattr(cfg.node, key)
        if value is not None:
            node[key] = str(value)
    if cfg.node.labels:
        node["labels"] = dict(cfg.node.labels)
    return {
        "node": node,
        "bgp": _dump_bgp(cfg.bgp, reveal),
        "policy": [_dump_policy(p) for p in cfg.policies],
        "datastore": {
            "kind": str(cfg.datastore.kind),
            "path": cfg.datastore.path,
            "endpoints": list(cfg.datastore.endpoints),
            "create": cfg.datastore.create,
            "cluster_id_file": cfg.datastore.cluster_id_file,
        },
        "ipam": _dump_ipam(cfg.ipam),
        "fib": dataclasses.asdict(cfg.fib),
        "api": {"socket": cfg.api.socket, "metrics": _show_hostport(cfg.api.metrics)},
    }


def _show_hostport(hp: tuple[str, int] | None) -> str:
    if hp is None:
        return ""
    host, port = hp
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _plain(value: Any) -> Any:
    """Dataclass field values as TOML values."""
    if isinstance(value, bool | int | str):
        return str(value) if isinstance(value, StrEnum) else value
    if value is None:
        return ""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, re.Pattern):
        return value.pattern
    return str(value)


_BGP_LISTS = ("peers", "originate", "listen_ranges")
# Applied live by a reload like the peers (BgpNode.reload re-applies BFD to every peer).
_BGP_LIVE = ("bfd", "bfd_interval_ms", "bfd_multiplier")
_PEER_RENAMES = {"import_policy": "import", "export_policy": "export"}


def _dump_bgp(bgp: BGPConfig, reveal: bool) -> dict[str, Any]:
    out = {
        f.name: _plain(getattr(bgp, f.name))
        for f in dataclasses.fields(bgp)
        if f.name not in _BGP_LISTS
    }
    out["peer"] = [_dump_peer(p, reveal) for p in bgp.peers]
    out["originate"] = [_dump_fields(o) for o in bgp.originate]
    out["listen_range"] = [_dump_peer(r, reveal) for r in bgp.listen_ranges]
    return out


def _dump_fields(obj: Any, skip_defaults: bool = False) -> dict[str, Any]:
    """Fields under their TOML names; optionally only those that differ from the default."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if skip_defaults and value == f.default:
            continue
        out[_PEER_RENAMES.get(f.name, f.name)] = _plain(value)
    return out


def _dump_peer(p: PeerOptions, reveal: bool) -> dict[str, Any]:
    out = _dump_fields(p)
    first = "address" if isinstance(p, Peer) else "prefix"
    out = {first: out.pop(first), **out}
    if out["password"] and not reveal:
        out["password"] = "<redacted>"
    return out


def _dump_policy(p: Policy) -> dict[str, Any]:
    rules = []
    for r in p.rules:
        match = _dump_fields(r.match, skip_defaults=True)
        actions = _dump_fields(r.set, skip_defaults=True)
        rules.append({"match": match, "action": str(r.action), "set": actions})
    return {"name": p.name, "default_action": str(p.default_action), "rule": rules}


def _dump_ipam(ipam: IPAMConfig) -> dict[str, Any]:
    return {
        "strict_affinity": ipam.strict_affinity,
        "max_blocks_per_node": ipam.max_blocks_per_node,
        "pool": [_dump_fields(p) for p in ipam.pools],
    }


# ---------------------------------------------------------------- reload


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """What changed between two configs, in the terms a SIGHUP reload acts on.

    `peers_reset` (the new versions) differ in anything but their policies, so
    their sessions must restart; `peers_import_changed` / `peers_export_changed`
    keep their sessions and need a route refresh (RFC 2918/7313) or a
    re-evaluation of Adj-RIB-In / Adj-RIB-Out, because the policy name or the
    named policy's rules changed. `changed_keys` lists every other changed key
    path (e.g. "bgp.hold_time", "ipam.pool", "node"), for the daemon to apply
    live or to refuse.
    """

    peers_added: tuple[Peer, ...] = ()
    peers_removed: tuple[Peer, ...] = ()
    peers_reset: tuple[Peer, ...] = ()
    peers_import_changed: tuple[Peer, ...] = ()
    peers_export_changed: tuple[Peer, ...] = ()
    listen_ranges_added: tuple[ListenRange, ...] = ()
    listen_ranges_removed: tuple[ListenRange, ...] = ()
    listen_ranges_changed: tuple[ListenRange, ...] = ()
    originate_changed: bool = False
    policies_changed: frozenset[str] = frozenset()
    changed_keys: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == ConfigDiff()


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare two valid configs; peers are matched by address, listen ranges by prefix."""
    policies = _changed_policies(old, new)
    old_peers = {p.address: p for p in old.bgp.peers}
    new_peers = {p.address: p for p in new.bgp.peers}
    kept = [(old_peers[a], p) for a, p in new_peers.items() if a in old_peers]
    old_ranges = {r.prefix: r for r in old.bgp.listen_ranges}
    new_ranges = {r.prefix: r for r in new.bgp.listen_ranges}
    return ConfigDiff(
        peers_added=tuple(p for a, p in new_peers.items() if a not in old_peers),
        peers_removed=tuple(p for a, p in old_peers.items() if a not in new_peers),
        peers_reset=tuple(n for o, n in kept if o.session_settings != n.session_settings),
        peers_import_changed=tuple(
            n for o, n in kept if _policy_changed(o.import_policy, n.import_policy, policies)
        ),
        peers_export_changed=tuple(
            n for o, n in kept if _policy_changed(o.export_policy, n.export_policy, policies)
        ),
        listen_ranges_added=tuple(r for k, r in new_ranges.items() if k not in old_ranges),
        listen_ranges_removed=tuple(r for k, r in old_ranges.items() if k not in new_ranges),
        listen_ranges_changed=tuple(
            r for k, r in new_ranges.items() if k in old_ranges and old_ranges[k] != r
        ),
        originate_changed=old.bgp.originate != new.bgp.originate,
        policies_changed=policies,
        changed_keys=tuple(_changed_keys(old, new)),
    )


def _changed_policies(old: Config, new: Config) -> frozenset[str]:
    a = {p.name: p for p in old.policies}
    b = {p.name: p for p in new.policies}
    return frozenset(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))


def _policy_changed(old: str, new: str, changed: frozenset[str]) -> bool:
    return old != new or new in changed


def _changed_keys(old: Config, new: Config) -> Iterator[str]:
    if old.node != new.node:
        yield "node"
    sections: list[tuple[str, Any, Any]] = [
        ("bgp", old.bgp, new.bgp),
        ("datastore", old.datastore, new.datastore),
        ("ipam", old.ipam, new.ipam),
        ("fib", old.fib, new.fib),
        ("api", old.api, new.api),
    ]
    for name, a, b in sections:
        for f in dataclasses.fields(a):
            if f.name in (*_BGP_LISTS, *_BGP_LIVE) and name == "bgp":
                continue
            if getattr(a, f.name) != getattr(b, f.name):
                yield f"{name}.{'pool' if f.name == 'pools' else f.name}"
