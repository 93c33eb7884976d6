"""Adj-RIB-Out per update group: dirty prefixes in, encoded UPDATEs out when pulled.

Peers whose outbound attributes are computed the same way (same family,
export policy, peer kind, next-hop handling, AS width, ADD-PATH mode, message
size) form one update group (DESIGN.md performance rule 4). The RIB only
hands each group, at the end of each batch, what changed (``rib.batch``).
Nothing is encoded until a member's session asks for bytes (``Member.pull``,
called when its socket is below the high-water mark): then up to ``CHUNK``
dirty prefixes are compared with what was last sent, grouped by outbound
attribute set, and encoded into one ``bytes`` blob appended to the group's
queue. Every member reads the same blob objects from the queue at its own
pace, so a change is encoded once however many peers receive it, several
changes to one prefix before a pull coalesce into one, and a slow socket
simply pulls later (back-pressure) — the same scheme BIRD uses.

The invariant every mode relies on: every Loc-RIB change reaches the groups
(``Rib.flush``) before anyone pulls.

Modules:

- ``group``: what every group does — dirty prefixes, the queue, members
  joining and leaving, trimming; ``Told``, a view of what members were told;
- ``plain``: the common group — no ADD-PATH, an export policy that does not
  look at prefixes — with no table of its own (what it sent is the Loc-RIB as
  of its last build), split horizon by per-source variants, and the fast
  paths for batches kept as they came;
- ``tabled``: ADD-PATH (RFC 7911) and prefix-dependent export, which keep
  what they sent in ``adj_out`` and compare prefix by prefix;
- ``member``: a peer's read position, its catch-up on joining or on a
  ROUTE-REFRESH (RFC 2918, RFC 7313), End-of-RIB (RFC 4724 §2), and the move
  to another group when its export policy changes;
- ``encode``: UPDATE bytes, each attribute set's head encoded once.

``new_group`` picks the mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bgp.wire import Family
from rib.adjout.group import CHUNK, Told, UpdateGroup
from rib.adjout.member import Member
from rib.adjout.plain import PlainGroup
from rib.adjout.tabled import AddPathGroup, PerPrefixGroup
from rib.batch import Entry
from rib.export import Exporter

__all__ = [
    "CHUNK",
    "AddPathGroup",
    "Member",
    "PerPrefixGroup",
    "PlainGroup",
    "Told",
    "UpdateGroup",
    "new_group",
]


def new_group(
    key: tuple[Any, ...],
    family: Family,
    exporter: Exporter,
    *,
    as4: bool,
    max_len: int,
    add_path: int,
    blocked: Callable[[], bool],
    loc: dict[bytes, Entry],
) -> UpdateGroup:
    """The update group for these settings: ADD-PATH (``add_path`` != 0), else one
    with prefix-dependent export, else a plain one."""
    cls: type[UpdateGroup] = PlainGroup
    if add_path:
        cls = AddPathGroup
    elif exporter.per_prefix:
        cls = PerPrefixGroup
    return cls(
        key,
        family,
        exporter,
        as4=as4,
        max_len=max_len,
        add_path=add_path,
        blocked=blocked,
        loc=loc,
    )
