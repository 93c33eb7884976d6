"""Cluster resources: the configuration every node shares, as named documents.

A resource is one table of a resources file (``podbgp apply -f FILE``)::

    [bgp]                       # the singleton "default": cluster-wide [bgp] keys + asn
    [[pool]]     name = ...     # every [[ipam.pool]] key
    [[peer]]     name = ...     # every [[bgp.peer]] key
    [[policy]]   name = ...     # a [[policy]], as in the node file
    [[reservation]] name = ...  # every [[ipam.reservation]] key: addresses never handed out

Nothing here has its own list of keys: each kind is read by the node file's
own section reader (`podbgp.config.sections`), so a key added to
``[[bgp.peer]]`` or ``[[ipam.pool]]`` is a valid resource key at once, with
the same checks and the same path-precise messages (``peer[1].asn: ...``).

`check_resource_set` validates a whole set -- what the store will hold after
an apply or a delete -- by building the TOML document the cluster amounts to
(`cluster_document`: pools under ``ipam.pool``, peers under ``bgp.peer``, the
bgp resource's keys in ``[bgp]``) and reading it with those readers; the
reader's paths are then named back (``ipam.pool[3]`` -> ``pool[0]`` of the
file, or ``pool "rack1"`` for one already stored). The node-dependent checks
(what a mesh needs from ``[node]``) run on each node, when the cluster's
document is merged under the node's file (`podbgp.config.merge`).

Pure: no store, no I/O (`podbgp.cluster` stores and watches these).
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podbgp.config.policy import _read_policies
from podbgp.config.reader import _asn, _Errors, _Invalid, _Table, _type_name, show
from podbgp.config.schema import ConfigError
from podbgp.config.sections import _read_bgp, _read_ipam


class ResourceKind(StrEnum):
    """What a resource configures; the value is its table name in a resources file."""

    BGP = "bgp"
    POOL = "pool"
    PEER = "peer"
    POLICY = "policy"
    RESERVATION = "reservation"


#: The bgp resource is a singleton with this name (Calico's BGPConfiguration "default").
BGP_NAME = "default"

# [bgp] keys that describe one node, not the cluster: set in the node's TOML only.
NODE_ONLY_BGP_KEYS = {
    "enabled": "whether this node speaks BGP",
    "listen": "this node's listen addresses",
    "route_reflector_cluster_id": "this node's reflector role",
    "peer": "peers are resources of their own: [[peer]]",
    "listen_range": "a listen range names this node's addresses",
    "originate": "what a node originates is per node",
}

# Where each listed kind sits in the node file's document.
_NODE_PATH = {
    ResourceKind.POOL: ("ipam", "pool"),
    ResourceKind.PEER: ("bgp", "peer"),
    ResourceKind.POLICY: ("", "policy"),
    ResourceKind.RESERVATION: ("ipam", "reservation"),
}

_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Resource:
    """One named resource: its TOML keys as written (without `name`) and its revision.

    `revision` is the datastore's mod_revision of the resource (0: not stored yet).
    """

    kind: ResourceKind
    name: str
    spec: Mapping[str, Any] = field(default_factory=dict, hash=False)
    revision: int = 0

    @property
    def ref(self) -> str:
        """``kind/name``, as the CLI and the messages name a resource."""
        return f"{self.kind}/{self.name}"

    def to_table(self) -> dict[str, Any]:
        """The resource as its table in a resources file (`name` first)."""
        return {"name": self.name, **copy.deepcopy(dict(self.spec))}


def resource_name(value: str) -> str:
    """A resource name: lower-case letters, digits, '-', '.', '_' (part of a datastore key)."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a resource name (lower-case letters, digits, '-', '.', '_')"
        )
    return value


# ---------------------------------------------------------------- a resources file


def read_resource_file(raw: Mapping[str, Any]) -> list[Resource]:
    """The resources of a parsed file, each checked alone; ConfigError lists every problem.

    Checks on the set (overlaps, references) need what is stored too:
    `check_resource_set`.
    """
    errors = _Errors()
    out: list[Resource] = []
    for key, value in raw.items():
        kind = _kind(key)
        if kind is None:
            near = difflib.get_close_matches(key, [k.value for k in ResourceKind], n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            errors.add(key, f"unknown kind{hint}; kinds: {', '.join(ResourceKind)}")
        elif kind is ResourceKind.BGP:
            out.extend(_read_bgp_file(value, errors))
        else:
            out.extend(_read_named_file(kind, value, errors))
    _check_duplicates(out, errors)
    if errors.messages:
        # Report what the set check finds in the rest too: every error at once.
        raise ConfigError(errors.messages + check_resource_set(out, file_labels(out)))
    return out


def file_labels(resources: Iterable[Resource]) -> dict[Resource, str]:
    """How each resource of a file is named in messages: its table's path (``pool[1]``)."""
    labels: dict[Resource, str] = {}
    index: dict[ResourceKind, int] = {}
    for r in resources:
        i = index[r.kind] = index.get(r.kind, -1) + 1
        labels[r] = "bgp" if r.kind is ResourceKind.BGP else f"{r.kind}[{i}]"
    return labels


def _kind(key: str) -> ResourceKind | None:
    try:
        return ResourceKind(key)
    except ValueError:
        return None


def _read_bgp_file(value: Any, errors: _Errors) -> list[Resource]:
    if not isinstance(value, dict):
        errors.add("bgp", "expected a table ([bgp]), the one bgp resource")
        return []
    name = value.get("name", BGP_NAME)
    if name != BGP_NAME:
        errors.add("bgp.name", f'{show(name)}: the bgp resource is one, named "{BGP_NAME}"')
    spec = {k: v for k, v in value.items() if k != "name"}
    return [Resource(ResourceKind.BGP, BGP_NAME, spec)]


def _read_named_file(kind: ResourceKind, value: Any, errors: _Errors) -> list[Resource]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        errors.add(kind, f"expected an array of tables ([[{kind}]])")
        return []
    out = []
    for i, table in enumerate(value):
        name = table.get("name")
        if name is None:
            errors.add(f"{kind}[{i}].name", "is required")
            continue
        if not isinstance(name, str):
            errors.add(f"{kind}[{i}].name", f"{show(name)} is not a string")
            continue
        try:
            resource_name(name)
        except ValueError as e:
            errors.add(f"{kind}[{i}].name", str(e))
            continue
        spec = {k: v for k, v in table.items() if k != "name"}
        out.append(Resource(kind, name, spec))
    return out


def _check_duplicates(resources: list[Resource], errors: _Errors) -> None:
    seen: dict[tuple[ResourceKind, str], int] = {}
    index: dict[ResourceKind, int] = {}
    for r in resources:
        i = index[r.kind] = index.get(r.kind, -1) + 1
        if (r.kind, r.name) in seen and r.kind is not ResourceKind.BGP:
            errors.add(
                f"{r.kind}[{i}].name", f"{show(r.name)} is already {r.kind}[{seen[r.kind, r.name]}]"
            )
        seen.setdefault((r.kind, r.name), i)
    if index.get(ResourceKind.BGP, 0) > 0:
        errors.add("bgp", "appears twice")


# ---------------------------------------------------------------- a set of resources


@dataclass(frozen=True, slots=True)
class ClusterDocument:
    """The cluster's resources as a node file's TOML document, and who wrote each part.

    `doc` has ``[bgp]`` (the bgp resource's keys), ``bgp.peer``, ``ipam.pool``,
    ``ipam.reservation`` and ``policy`` arrays; `asn` is the bgp resource's
    default AS. `labels[path]` names the resource an array item came from, by
    the item's path in `doc` (``ipam.pool[2]``).
    """

    doc: dict[str, Any]
    asn: Any = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    sources: Mapping[str, Resource] = field(default_factory=dict, hash=False)


def cluster_document(
    resources: Iterable[Resource], label: Mapping[Resource, str] | None = None
) -> ClusterDocument:
    """The document the resources amount to; `label` overrides how an item is named."""
    doc: dict[str, Any] = {}
    labels: dict[str, str] = {}
    sources: dict[str, Resource] = {}
    asn: Any = None
    named = label or {}
    # Stored resources first: a check between two items reports the later one, the new one.
    for r in sorted(resources, key=lambda r: (_KINDS.index(r.kind), r in named, r.name)):
        spec = copy.deepcopy(dict(r.spec))
        if r.kind is ResourceKind.BGP:
            asn = spec.pop("asn", None)
            # Keys that describe one node are refused (`check_resource_set`), not merged.
            doc.setdefault("bgp", {}).update(
                {k: v for k, v in spec.items() if k not in NODE_ONLY_BGP_KEYS}
            )
            sources["bgp"] = r
            continue
        section, key = _NODE_PATH[r.kind]
        if _accepts_name(r.kind):
            spec = {"name": r.name, **spec}
        parent = doc.setdefault(section, {}) if section else doc
        items = parent.setdefault(key, [])
        path = f"{section}.{key}[{len(items)}]" if section else f"{key}[{len(items)}]"
        items.append(spec)
        labels[path] = named.get(r, f'{r.kind} "{r.name}"')
        sources[path] = r
    return ClusterDocument(doc, asn, labels, sources)


_KINDS = list(ResourceKind)


@functools.cache
def _accepted() -> frozenset[str]:
    from podbgp.config import accepted_keys

    return accepted_keys()


def _accepts_name(kind: ResourceKind) -> bool:
    """Does the node file's own table for `kind` have a `name` key (a policy's does)?"""
    section, key = _NODE_PATH[kind]
    path = f"{section}.{key}[].name" if section else f"{key}[].name"
    return path in _accepted()


def check_resource_set(
    resources: Iterable[Resource], label: Mapping[Resource, str] | None = None
) -> list[str]:
    """Every problem with a set of resources, each message naming the resource and key.

    `label` names resources by their place in a file (``pool[0]``); the others
    are named ``pool "rack1"``.
    """
    resources = list(resources)
    errors = _Errors()
    cd = cluster_document(resources, label)
    bgp_label = next(
        ((label or {}).get(r, "bgp") for r in resources if r.kind is ResourceKind.BGP), "bgp"
    )
    root = _Table(cd.doc, "", errors)
    _check_bgp_resource(root, cd, bgp_label, errors)
    policy_tables = root.subs("policy")
    _read_policies(policy_tables)
    names = {n for t in policy_tables if isinstance(n := t.data.get("name"), str)}
    _read_bgp(root.sub("bgp"), names)
    _read_ipam(root.sub("ipam"))
    messages = [_rename(m, cd.labels, bgp_label) for m in errors.messages]
    return list(dict.fromkeys(messages))


def _check_bgp_resource(root: _Table, cd: ClusterDocument, label: str, errors: _Errors) -> None:
    """The bgp resource's own rules: a valid `asn`, and no key that describes one node."""
    source = cd.sources.get("bgp")
    if source is None:
        return
    if cd.asn is not None:
        try:
            if not isinstance(cd.asn, int) or isinstance(cd.asn, bool):
                raise _Invalid(f"{show(cd.asn)} is {_type_name(cd.asn)}, expected an integer")
            _asn(cd.asn)
        except _Invalid as e:
            errors.add(f"{label}.asn", str(e))
    for key, why in NODE_ONLY_BGP_KEYS.items():
        if key in source.spec:
            errors.add(f"{label}.{key}", f"is per node ({why}): set it in the node's TOML")


_ITEM = re.compile(r"\b(?:bgp\.peer|ipam\.pool|ipam\.reservation|policy)\[\d+\]")


def _rename(message: str, labels: Mapping[str, str], bgp_label: str) -> str:
    """A reader's message about the cluster document, in terms of the resources."""
    message = _ITEM.sub(lambda m: labels.get(m.group(0), m.group(0)), message)
    if bgp_label != "bgp" and message.startswith("bgp."):
        message = bgp_label + message[3:]
    return message
