"""A node's effective config: its own TOML over the cluster's resources.

The cluster's resources amount to a TOML document (`resources.cluster_document`);
the node file is laid over it, key by key, and the result is read by the one
loader (`load_config_dict`) into the usual typed `Config`. So a node file can be
its identity alone -- name, address, labels, datastore, API -- and every other
key comes from the cluster; a key the node file sets wins:

* ``[bgp]`` keys: the node's value replaces the bgp resource's;
* ``node.asn``: the bgp resource's ``asn`` is the default AS of every node;
* peers, pools, reservations and policies are lists: the cluster's items are
  added after the node's own, except one the node file also has -- the same
  peer address, pool CIDR, or reservation or policy name -- which the node's
  item replaces whole. A cluster peer at this node's own address is left out
  (a list of in-cluster peers names every node, this one too).

`Effective` records where each value came from (``origins``) and what the
node file overrode (``overrides``), for ``podbgp check``. Errors in the merged
document name cluster items by resource (``peer "tor1" (cluster).asn``).

`read_node_file` is the first step of every command that needs the store:
only ``[datastore]`` and ``[api]`` (where the store is, where this node's
cluster ID record is) are read, so a node file that relies on the cluster for
``node.asn`` can still name its store.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podbgp.config.reader import _Errors, _Table
from podbgp.config.resources import (
    ClusterDocument,
    Resource,
    cluster_document,
)
from podbgp.config.schema import APIConfig, Config, ConfigError, DatastoreConfig
from podbgp.config.sections import _read_api, _read_datastore

NODE_FILE = "node file"

# The lists merged by an identifying key: (section, array, key that identifies an item).
_LISTS = (("bgp", "peer", "address"), ("ipam", "pool", "cidr"),
          ("ipam", "reservation", "name"), ("", "policy", "name"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeFile:
    """A node file parsed, with the two sections that say where its store is read."""

    path: str
    raw: dict[str, Any]
    datastore: DatastoreConfig
    api: APIConfig

    @property
    def names_datastore(self) -> bool:
        """A node file with a ``[datastore]`` table takes the cluster's resources from it."""
        return isinstance(self.raw.get("datastore"), dict)


def read_node_file(path: str | Path) -> NodeFile:
    """Parse a node file and read its ``[datastore]`` and ``[api]``; ConfigError if they fail."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from e
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from e
    errors = _Errors()
    root = _Table(raw, "", errors)
    datastore = _read_datastore(root.sub("datastore"))
    api = _read_api(root.sub("api"))
    if errors.messages or datastore is None or api is None:
        raise ConfigError(errors.messages)
    return NodeFile(str(path), raw, datastore, api)


@dataclass(frozen=True, slots=True)
class Override:
    """A key both the node file and a cluster resource set; the node file's value is used."""

    path: str
    node_value: Any
    cluster_value: Any
    resource: str  # "kind/name"


@dataclass(frozen=True, slots=True)
class Effective:
    """The config a node runs with, and where its values came from."""

    config: Config
    origins: Mapping[str, str] = field(default_factory=dict, hash=False)
    overrides: tuple[Override, ...] = ()
    resources: tuple[Resource, ...] = ()
    skipped: tuple[str, ...] = ()  # cluster peers left out: this node's own address


@dataclass
class _Merge:
    doc: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    overrides: list[Override] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def merge_documents(node: Mapping[str, Any], cluster: ClusterDocument) -> _Merge:
    """The node document laid over the cluster's (module docstring)."""
    m = _Merge(copy.deepcopy(dict(node)))
    _node_origins(m, m.doc, "")
    bgp_res = cluster.sources.get("bgp")
    if bgp_res is not None:
        _merge_bgp(m, cluster.doc.get("bgp", {}), bgp_res)
        if cluster.asn is not None:
            _merge_key(m, "node", "asn", cluster.asn, bgp_res)
    for section, key, ident in _LISTS:
        parent = cluster.doc.get(section, {}) if section else cluster.doc
        items = parent.get(key, [])
        for i, item in enumerate(items):
            path = f"{section}.{key}[{i}]" if section else f"{key}[{i}]"
            _merge_item(m, section, key, ident, item, cluster.sources[path])
    return m


def _node_origins(m: _Merge, table: Mapping[str, Any], prefix: str) -> None:
    for k, v in table.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            _node_origins(m, v, path + ".")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i in range(len(v)):
                m.origins[f"{path}[{i}]"] = NODE_FILE
        else:
            m.origins[path] = NODE_FILE


def _source(r: Resource) -> str:
    return f"cluster {r.ref} (revision {r.revision})" if r.revision else f"cluster {r.ref}"


def _merge_bgp(m: _Merge, values: Mapping[str, Any], r: Resource) -> None:
    lists = {key for section, key, _ in _LISTS if section == "bgp"}
    for key, value in values.items():
        if key not in lists:  # the peers are merged item by item
            _merge_key(m, "bgp", key, value, r)


def _merge_key(m: _Merge, section: str, key: str, value: Any, r: Resource) -> None:
    table = m.doc.setdefault(section, {})
    if not isinstance(table, dict):
        return  # the node file's own error ("expected a table") is reported by the reader
    path = f"{section}.{key}"
    if key in table:
        m.overrides.append(Override(path, table[key], value, r.ref))
        return
    table[key] = copy.deepcopy(value)
    m.origins[path] = _source(r)


def _merge_item(m: _Merge, section: str, key: str, ident: str, item: Any, r: Resource) -> None:
    parent = m.doc.setdefault(section, {}) if section else m.doc
    if not isinstance(parent, dict):
        return
    items = parent.setdefault(key, [])
    if not isinstance(items, list):
        return
    mine = _identity(item.get(ident) if ident != "name" else r.name)
    if key == "peer" and mine in _own_addresses(m.doc):
        m.skipped.append(r.ref)  # a cluster-wide peer list names every node, this one too
        return
    for i, own in enumerate(items):
        if isinstance(own, dict) and mine is not None and _identity(own.get(ident)) == mine:
            where = f"{section}.{key}[{i}]" if section else f"{key}[{i}]"
            m.overrides.append(Override(where, own, item, r.ref))
            return
    path = f"{section}.{key}[{len(items)}]" if section else f"{key}[{len(items)}]"
    items.append(copy.deepcopy(item))
    m.origins[path] = _source(r)
    m.labels[path] = f'{r.kind} "{r.name}" (cluster)'


def _own_addresses(doc: Mapping[str, Any]) -> set[Any]:
    node = doc.get("node")
    out: set[Any] = set()
    if isinstance(node, dict):
        for key in ("address", "address6"):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                out.add(ipaddress.ip_interface(node[key]).ip)
    return out


def _identity(value: Any) -> Any:
    """Addresses and prefixes compared as such ("10.0.0.1" == "10.0.0.01" is not a concern)."""
    if not isinstance(value, str):
        return value
    try:
        return (
            ipaddress.ip_network(value, strict=False)
            if "/" in value
            else ipaddress.ip_address(value)
        )
    except ValueError:
        return value


_ITEM = re.compile(r"\b(?:bgp\.peer|ipam\.pool|ipam\.reservation|policy)\[\d+\]")


def effective_config(
    node: NodeFile | Mapping[str, Any], resources: Iterable[Resource]
) -> Effective:
    """Validate the node file over the resources; ConfigError names every problem's source."""
    from podbgp.config import load_config_dict

    raw = node.raw if isinstance(node, NodeFile) else node
    resources = tuple(resources)
    m = merge_documents(raw, cluster_document(resources))
    try:
        config = load_config_dict(m.doc)
    except ConfigError as e:
        raise ConfigError([_rename(msg, m) for msg in e.errors]) from None
    return Effective(config, m.origins, tuple(m.overrides), resources, tuple(m.skipped))


def _rename(message: str, m: _Merge) -> str:
    origin = m.origins.get(message.split(":", 1)[0], NODE_FILE)
    if origin != NODE_FILE:
        message += f" (from {origin})"
    message = _ITEM.sub(lambda x: m.labels.get(x.group(0), x.group(0)), message)
    if message.startswith("node.asn: is required") and "asn" not in m.doc.get("node", {}):
        message += " (or give the cluster a default: asn in the bgp resource)"
    return message
