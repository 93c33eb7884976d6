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
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from podbgp.config.checks import _cross_checks
from podbgp.config.diff import ConfigDiff, diff_configs
from podbgp.config.monitor import _read_bmp, _read_mrt
from podbgp.config.policy import RESERVED_POLICY_NAMES, _read_policies
from podbgp.config.reader import (
    AS_MAX,
    AS_PATH_PREPEND_MAX,
    LLGR_TIME_MAX,
    RESERVED_PROTOCOLS,
    RESTART_TIME_MAX,
    SHUTDOWN_MESSAGE_MAX,
    TCP_MD5SIG_MAXKEYLEN,
    UNIX_PATH_MAX,
    _cluster_id,
    _Errors,
    _Invalid,
    _Table,
    show,
)
from podbgp.config.schema import (
    TOML_NAMES,
    APIConfig,
    BGPConfig,
    BMPConfig,
    BMPStation,
    Community,
    Config,
    ConfigError,
    DatastoreConfig,
    DatastoreKind,
    FIBConfig,
    IPAddress,
    IPAMConfig,
    IPNetwork,
    LargeCommunity,
    ListenRange,
    Match,
    MRTConfig,
    NextHop,
    NodeConfig,
    Originate,
    Peer,
    PeerOptions,
    Policy,
    PolicyAction,
    Pool,
    PrefixAdvertisement,
    Reservation,
    RouteMonitoring,
    Rule,
    SelectedPeer,
    Service,
    SetActions,
    toml_name,
)
from podbgp.config.sections import (
    _read_api,
    _read_bgp,
    _read_datastore,
    _read_fib,
    _read_ipam,
    _read_node,
)
from podbgp.config.services import _read_services

__all__ = [
    "AS_MAX",
    "AS_PATH_PREPEND_MAX",
    "LLGR_TIME_MAX",
    "RESERVED_POLICY_NAMES",
    "RESERVED_PROTOCOLS",
    "RESTART_TIME_MAX",
    "SHUTDOWN_MESSAGE_MAX",
    "TCP_MD5SIG_MAXKEYLEN",
    "TOML_NAMES",
    "UNIX_PATH_MAX",
    "APIConfig",
    "BGPConfig",
    "BMPConfig",
    "BMPStation",
    "Community",
    "Config",
    "ConfigDiff",
    "ConfigError",
    "DatastoreConfig",
    "DatastoreKind",
    "FIBConfig",
    "IPAMConfig",
    "IPAddress",
    "IPNetwork",
    "LargeCommunity",
    "ListenRange",
    "MRTConfig",
    "Match",
    "NextHop",
    "NodeConfig",
    "Originate",
    "Peer",
    "PeerOptions",
    "Policy",
    "PolicyAction",
    "Pool",
    "PrefixAdvertisement",
    "Reservation",
    "RouteMonitoring",
    "Rule",
    "SelectedPeer",
    "Service",
    "SetActions",
    "accepted_keys",
    "diff_configs",
    "load_config",
    "load_config_dict",
    "load_config_text",
    "load_ipam_dict",
    "show",
    "toml_name",
]

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


_SECTION_ORDER = (
    "node",
    "bgp",
    "policy",
    "datastore",
    "ipam",
    "fib",
    "api",
    "bmp",
    "mrt",
    "service",
)


def _section_rank(message: str) -> int:
    """Errors in CONFIG.md's section order (sorting is stable within a section)."""
    head = re.split(r"[.\[:]", message, maxsplit=1)[0]
    return _SECTION_ORDER.index(head) if head in _SECTION_ORDER else len(_SECTION_ORDER)


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
    bmp = _read_bmp(root.sub("bmp"))
    mrt = _read_mrt(root.sub("mrt"))
    pools = [p.cidr for p in ipam.pools] if ipam is not None else []
    services = _read_services(root.subs("service"), pools)
    root.finish()
    bgp = _cluster_id_from_label(node, bgp, errors)
    _cross_checks(node, bgp, ipam, errors)
    if (
        node is None
        or bgp is None
        or datastore is None
        or ipam is None
        or fib is None
        or api is None
        or bmp is None
        or mrt is None
        or services is None
        or None in policies
    ):
        return None
    return Config(
        node,
        bgp,
        tuple(p for p in policies if p),
        datastore,
        ipam,
        fib,
        api,
        bmp=bmp,
        mrt=mrt,
        services=services,
    )


def _cluster_id_from_label(
    node: NodeConfig | None, bgp: BGPConfig | None, errors: _Errors
) -> BGPConfig | None:
    """`bgp.route_reflector_cluster_id_label`: a node carrying that label is a reflector
    with the label's value as cluster ID, unless the file sets the ID itself."""
    if node is None or bgp is None or not bgp.route_reflector_cluster_id_label:
        return bgp
    key = bgp.route_reflector_cluster_id_label
    value = dict(node.labels).get(key)
    if value is None or bgp.route_reflector_cluster_id is not None or not bgp.enabled:
        return bgp
    try:
        cid = _cluster_id(value)
    except _Invalid as exc:
        errors.add(f"node.labels.{key}", f"{exc} (bgp.route_reflector_cluster_id_label names it)")
        return None
    return dataclasses.replace(bgp, route_reflector_cluster_id=cid)


def load_ipam_dict(raw: dict[str, Any]) -> IPAMConfig:
    """Validate an ``[ipam]`` table alone (``podbgp ipam --pool``): the daemon's rules and text."""
    errors = _Errors()
    ipam = _read_ipam(_Table(raw, "ipam", errors))
    if errors.messages or ipam is None:
        raise ConfigError(errors.messages)
    return ipam
