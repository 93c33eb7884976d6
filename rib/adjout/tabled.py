"""Update groups with an Adj-RIB-Out table of their own: ADD-PATH and
prefix-dependent export.

When what is sent for a prefix is not a function of its best path alone — an
export policy that looks at prefixes (attributes computed per prefix), or
ADD-PATH (RFC 7911 §3: several paths per prefix, each with the path
identifier ``Slot.tx_id``) — the group keeps what it sent in ``adj_out`` and
compares each dirty prefix with it. These groups send a member its own routes
too (no split horizon): the peer's loop checks drop them (RFC 4271 §9.1.2,
RFC 4456 §8). Both are the readable, per-prefix way; the table-less fast
paths are in ``rib.adjout.plain``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bgp.wire import PathAttributes
from rib.adjout.group import Told, Unsure, UpdateGroup
from rib.batch import Entry, best_of
from rib.path import Path, Source

__all__ = ["AddPathGroup", "PerPrefixGroup", "Sent"]

# What an ADD-PATH group sent for one prefix: (path id, attributes) per path.
Sent = tuple[tuple[int, PathAttributes], ...]


class TableTold(Told):
    """What a group with a table told (``adj``: the table itself, or a copy)."""

    __slots__ = ("add_path", "adj")

    def __init__(self, adj: dict[bytes, Any], add_path: bool) -> None:
        self.adj = adj
        self.add_path = add_path

    def get(self, key: bytes, source: Source | None) -> Any:
        return self.adj.get(key)

    def keys(self) -> Iterable[bytes]:
        return self.adj.keys()


class _TableGroup(UpdateGroup):
    """What both kinds share: ``adj_out`` (prefix -> what was sent) and the views of it."""

    adj_out: dict[bytes, Any]

    def _start(self) -> None:
        self.adj_out = {}

    def told(self) -> Told:
        return TableTold(self.adj_out, bool(self.add_path))

    def snapshot(self) -> Told:
        return TableTold(dict(self.adj_out), bool(self.add_path))

    def advertised_to(self, source: Source | None) -> int:
        """Prefixes a member is told of: every entry (no split horizon here)."""
        return len(self.adj_out)

    def catch_keys(self) -> list[bytes]:
        return list(self.adj_out)


class PerPrefixGroup(_TableGroup):
    """An export policy that matches prefixes: ``adj_out`` holds the attributes sent."""

    def _encode_chunk(self, keys: list[bytes], entries: list[Entry | None]) -> bytes:
        return self._encode_changes(keys, entries)

    def encode_catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        adj = self.adj_out
        for key in keys:
            out = adj.get(key)
            if out is None:
                continue
            lst = groups.get(id(out))
            if lst is None:
                groups[id(out)] = [key]
                attrs_of[id(out)] = out
            else:
                lst.append(key)
        return self._encode([], groups, attrs_of)

    def _encode_changes(self, keys: list[bytes], entries: list[Entry | None]) -> bytes:
        """Prefix-dependent export: compare with ``adj_out`` (attributes) per prefix."""
        adj = self.adj_out
        withdrawn: list[bytes] = []
        by_path: dict[Path, list[bytes]] = {}
        for key, e in zip(keys, entries, strict=True):
            best = best_of(e)
            if best is None:
                if adj.pop(key, None) is not None:
                    withdrawn.append(key)
                continue
            lst = by_path.get(best)
            if lst is None:
                by_path[best] = [key]
            else:
                lst.append(key)
        return self._encode_best_paths(withdrawn, by_path)

    def _encode_best_paths(self, withdrawn: list[bytes], by_path: dict[Path, list[bytes]]) -> bytes:
        """Slow path for export policies that match prefixes: attributes per prefix.

        ``adj_out`` then holds the outbound attributes themselves.
        """
        adj = self.adj_out
        out_of = self.exporter.out
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for path, ks in by_path.items():
            for k in ks:
                out = out_of(path, k)
                old = adj.get(k)
                if out is old:
                    continue
                if out is None:
                    del adj[k]
                    withdrawn.append(k)
                    continue
                adj[k] = out
                groups.setdefault(id(out), []).append(k)
                attrs_of[id(out)] = out
        return self._encode(withdrawn, groups, attrs_of)


class AddPathGroup(_TableGroup):
    """ADD-PATH (RFC 7911 §3): ``adj_out`` holds a ``Sent`` tuple per prefix — the
    best N paths that export allows, or all (``add_path`` -1)."""

    def _encode_chunk(self, keys: list[bytes], entries: list[Entry | None]) -> bytes:
        return self._encode_changes(keys, entries)

    def encode_catch_up(self, keys: list[bytes], source: Source | None = None) -> bytes:
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        adj = self.adj_out
        for key in keys:
            for t, a in adj.get(key, ()):
                groups.setdefault(id(a), []).append(t.to_bytes(4, "big") + key)
                attrs_of[id(a)] = a
        return self._encode([], groups, attrs_of)

    def encode_switch(
        self,
        keys: list[bytes],
        before: Told,
        source: Source | None,
        unknown: set[bytes],
        full: bool,
    ) -> bytes:
        """``UpdateGroup.encode_switch`` path by path: withdraw the path ids the member
        has that this group does not send, announce what is new or changed."""
        now = self.told()
        full = full or not before.add_path  # ADD-PATH is settled in OPEN; be safe
        withdrawn: list[bytes] = []
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for key in keys:
            want = now.get(key, source)
            have = before.get(key, source)
            fresh = full or key in unknown or isinstance(have, Unsure)
            self._switch_prefix(key, want, have, fresh, withdrawn, groups, attrs_of)
        return self._encode(withdrawn, groups, attrs_of)

    @staticmethod
    def _switch_prefix(
        key: bytes,
        want: Sent | None,
        have: Any,
        fresh: bool,
        withdrawn: list[bytes],
        groups: dict[int, list[bytes]],
        attrs_of: dict[int, PathAttributes],
    ) -> None:
        had = _paths_had(have)
        wants = dict(want or ())
        withdrawn += [t.to_bytes(4, "big") + key for t in had if t not in wants]
        for t, a in wants.items():
            if fresh or had.get(t) != a:
                groups.setdefault(id(a), []).append(t.to_bytes(4, "big") + key)
                attrs_of[id(a)] = a

    def _paths_to_send(self, key: bytes, e: Entry | None) -> Sent:
        """``(tx_id, attrs)`` of the paths to send for one prefix (ADD-PATH)."""
        if e is None:
            return ()
        paths = (e,) if isinstance(e, Path) else e.paths
        limit = self.add_path if self.add_path > 0 else len(paths)
        out: list[tuple[int, PathAttributes]] = []
        per_prefix = self.exporter.per_prefix
        for p in paths:
            if len(out) >= limit or not p.eligible:
                break
            a = self.exporter.out(p, key) if per_prefix else self.exporter.out(p)
            if a is not None:
                out.append((p.slot.tx_id, a))
        return tuple(out)

    def _encode_changes(self, keys: list[bytes], entries: list[Entry | None]) -> bytes:
        """``PerPrefixGroup._encode_changes`` with several paths per prefix (RFC 7911 §3)."""
        adj = self.adj_out
        withdrawn: list[bytes] = []
        groups: dict[int, list[bytes]] = {}
        attrs_of: dict[int, PathAttributes] = {}
        for key, e in zip(keys, entries, strict=True):
            want = self._paths_to_send(key, e)
            old: Sent = adj.get(key, ())
            if want == old:
                continue
            new_ids = {t for t, _ in want}
            withdrawn += [t.to_bytes(4, "big") + key for t, _ in old if t not in new_ids]
            before = dict(old)
            for t, a in want:
                if before.get(t) is not a:
                    groups.setdefault(id(a), []).append(t.to_bytes(4, "big") + key)
                    attrs_of[id(a)] = a
            if want:
                adj[key] = want
            else:
                del adj[key]
        return self._encode(withdrawn, groups, attrs_of)


def _paths_had(have: Any) -> dict[int, PathAttributes]:
    """Path id -> attributes of what a member has for a prefix (``Told.get``): a
    ``Sent`` tuple, nothing, or, when ``Unsure``, every path id any value holds."""
    if isinstance(have, Unsure):
        had: dict[int, PathAttributes] = {}
        for v in have.values:
            had.update(_paths_had(v))
        return had
    return dict(have) if isinstance(have, tuple) else {}
