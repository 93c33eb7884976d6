"""Cluster resources in the datastore: read, apply, delete and watch them.

Layout: one key per resource, ``/podbgp/v1/resources/<kind>/<name>``, its
value the resource's TOML keys as JSON, its revision the key's mod_revision.
Beside them, `SERIAL_KEY` counts resource writes.

Every write is one compare-and-swap transaction (`ipam.store`): it compares
`SERIAL_KEY` and every key it writes against the revisions it read, and puts
them all together with the serial. So

* a file is applied whole or not at all -- one transaction, however many
  resources it holds; an etcd member dying mid-apply leaves the old set or the
  new one, never half;
* the set it validated is the set it replaces: a concurrent apply or delete
  (even of other resources, which could overlap or be referenced) moves the
  serial, the compare fails, and the apply re-reads, re-validates against the
  new set and tries again, a bounded number of times (`ATTEMPTS`), then says
  to retry. Applying what is already stored writes nothing.

Deleting takes the revision the caller saw (``get``), if it gave one: a
resource changed since is not deleted.

`watch_resources` yields the whole set whenever it changes: list, then watch
from the next revision; a compacted watch re-lists (`WatchCompacted`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ipam.identity import GuardedStore, join
from ipam.model import ROOT, dumps, loads
from ipam.store import (
    Compare,
    Delete,
    KeyValue,
    OpenMode,
    Put,
    Store,
    StoreError,
    StoreMissing,
    WatchCompacted,
    open_store,
)
from podbgp import wiring
from podbgp.config import ConfigError
from podbgp.config.merge import Effective, NodeFile, effective_config
from podbgp.config.resources import Resource, ResourceKind, check_resource_set

log = logging.getLogger("podbgp.daemon")  # the daemon follows the resources

RESOURCES = ROOT + "resources/"
SERIAL_KEY = ROOT + "resource-serial"
ATTEMPTS = 8


class ResourceError(StoreError):
    """A resource command cannot be done (unknown name, changed meanwhile, ...)."""


class ResourceConflict(ResourceError):
    """Others kept changing the resources while this write tried; nothing was written."""


def resource_key(kind: ResourceKind, name: str) -> str:
    return f"{RESOURCES}{kind}/{name}"


@dataclass(frozen=True, slots=True)
class ResourceSet:
    """Every stored resource, read at one store revision."""

    resources: tuple[Resource, ...]
    revision: int  # the store revision the list was read at
    serial_revision: int = 0  # SERIAL_KEY's mod_revision (0: nothing written yet)

    def find(self, kind: ResourceKind, name: str) -> Resource | None:
        for r in self.resources:
            if r.kind is kind and r.name == name:
                return r
        return None

    def of_kind(self, kind: ResourceKind) -> list[Resource]:
        return [r for r in self.resources if r.kind is kind]


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply did: the resources written (with their new revision) and those unchanged."""

    written: tuple[Resource, ...]
    unchanged: tuple[Resource, ...]
    revision: int
    created: frozenset[str] = frozenset()  # refs of the written ones that did not exist


def _decode(kv: KeyValue) -> Resource | None:
    rest = kv.key[len(RESOURCES) :]
    kind_text, _, name = rest.partition("/")
    try:
        kind = ResourceKind(kind_text)
        spec = loads(kv.value)
    except ValueError:
        log.warning("datastore key %s is not a resource; ignored", kv.key)
        return None
    if not isinstance(spec, dict) or not name:
        log.warning("datastore key %s is not a resource; ignored", kv.key)
        return None
    return Resource(kind, name, spec, kv.mod_revision)


async def read_resources(store: Store) -> ResourceSet:
    """The stored resources and the serial's revision (the compare of the next write)."""
    (serial,) = await store.get_many([SERIAL_KEY])
    kvs, revision = await store.list_prefix(RESOURCES)
    items = tuple(r for kv in kvs if (r := _decode(kv)) is not None)
    return ResourceSet(items, revision, serial.mod_revision if serial else 0)


def _same(a: Resource, b: Resource | None) -> bool:
    return b is not None and dumps(dict(a.spec)) == dumps(dict(b.spec))


async def apply_resources(
    store: Store, resources: Sequence[Resource], label: Mapping[Resource, str] | None = None
) -> Applied:
    """Store `resources` in one CAS transaction, after validating the set it leaves.

    ConfigError (nothing written) if the resulting set is invalid; ResourceConflict
    after `ATTEMPTS` lost races.
    """
    for _ in range(ATTEMPTS):
        current = await read_resources(store)
        after = _replace(current.resources, resources)
        problems = check_resource_set(after, label)
        if problems:
            raise ConfigError(problems)
        changed = [r for r in resources if not _same(r, current.find(r.kind, r.name))]
        if not changed:
            return Applied((), tuple(resources), current.revision)
        compares = [Compare(SERIAL_KEY, current.serial_revision)]
        compares += [Compare(resource_key(r.kind, r.name), _revision(current, r)) for r in changed]
        ops: list[Put | Delete] = [
            Put(resource_key(r.kind, r.name), dumps(dict(r.spec))) for r in changed
        ]
        ops.append(Put(SERIAL_KEY, dumps({"changed": [r.ref for r in changed]})))
        result = await store.txn(compares, ops)
        if result.succeeded:
            written = tuple(Resource(r.kind, r.name, r.spec, result.revision) for r in changed)
            unchanged = tuple(r for r in resources if r not in changed)
            created = frozenset(r.ref for r in changed if current.find(r.kind, r.name) is None)
            return Applied(written, unchanged, result.revision, created)
    raise ResourceConflict(
        f"the resources kept changing while applying ({ATTEMPTS} attempts); nothing was written, "
        "run the apply again"
    )


def _revision(current: ResourceSet, r: Resource) -> int:
    old = current.find(r.kind, r.name)
    return 0 if old is None else old.revision


def _replace(stored: Iterable[Resource], new: Sequence[Resource]) -> list[Resource]:
    names = {(r.kind, r.name) for r in new}
    return [r for r in stored if (r.kind, r.name) not in names] + list(new)


async def delete_resource(
    store: Store, kind: ResourceKind, name: str, revision: int | None = None
) -> int:
    """Delete one resource (only at `revision`, if given); returns the store revision after.

    ResourceError if there is no such resource or it changed since `revision`;
    ConfigError if the set left behind is invalid (a peer still names the policy).
    """
    for _ in range(ATTEMPTS):
        current = await read_resources(store)
        old = current.find(kind, name)
        if old is None:
            raise ResourceError(f"no {kind} named {name!r}")
        if revision is not None and old.revision != revision:
            raise ResourceError(
                f"{kind}/{name} is at revision {old.revision}, not {revision}: it changed "
                "since; nothing was deleted"
            )
        problems = check_resource_set(r for r in current.resources if r is not old)
        if problems:
            raise ConfigError([f"without {kind}/{name}: {p}" for p in problems])
        key = resource_key(kind, name)
        result = await store.txn(
            [Compare(SERIAL_KEY, current.serial_revision), Compare(key, old.revision)],
            [Delete(key), Put(SERIAL_KEY, dumps({"deleted": [old.ref]}))],
        )
        if result.succeeded:
            return result.revision
    raise ResourceConflict(
        f"the resources kept changing while deleting ({ATTEMPTS} attempts); nothing was "
        "deleted, run it again"
    )


async def watch_resources(store: Store) -> AsyncIterator[ResourceSet]:
    """The resource set now, then again after every change (event-driven, no polling).

    A watch whose history was compacted re-lists and watches on from there.
    """
    while True:
        current = await read_resources(store)
        yield current
        try:
            async for _events in store.watch(RESOURCES, current.revision + 1):
                current = await read_resources(store)
                yield current
            return
        except WatchCompacted as exc:
            log.info("resources watch: %s; listing again", exc)


# ---------------------------------------------------------------- where the store is


@dataclass(frozen=True, slots=True)
class StoreRef:
    """A store's URL and, for a node, the file holding the cluster ID it joined."""

    url: str
    cluster_id_file: str | None = None

    @classmethod
    def of_node(cls, node: NodeFile) -> StoreRef:
        return cls(wiring.datastore_url_of(node.datastore),
                   wiring.cluster_id_file_of(node.datastore, node.api))  # fmt: skip


async def open_joined(ref: StoreRef, mode: OpenMode) -> GuardedStore:
    """Open and join a store that must exist and be this node's (`ipam.identity`); never creates."""
    store = open_store(ref.url, mode)
    try:
        return await join(store, ref.cluster_id_file, record=False)
    except BaseException:
        await store.close()
        raise


async def load_effective(node: NodeFile, store: Store | None = None) -> Effective:
    """The node's effective config: its file over the resources of the store it names.

    A node file without ``[datastore]`` stands alone. With ``datastore.create``
    a store that does not exist yet has no resources (the daemon creates it).
    """
    if not node.names_datastore:
        return effective_config(node, ())
    if store is not None:
        return effective_config(node, (await read_resources(store)).resources)
    try:
        joined = await open_joined(StoreRef.of_node(node), OpenMode.READ_ONLY)
    except StoreMissing:
        if node.datastore.create:
            return effective_config(node, ())
        raise
    try:
        return effective_config(node, (await read_resources(joined)).resources)
    finally:
        await joined.close()
