"""Every inconsistency between blocks, handles, affinities and nodes, and its repair.

`scan` is pure: a snapshot (blocks, handle records, affinities, removed nodes)
in, a list of `Problem` out, each with a `Kind`:

==========================  ==================================================  =================
kind                        what                                                repair
==========================  ==================================================  =================
``block-invalid``           an address free twice, free and allocated, lost     none (operator)
``blocks-overlap``          two blocks share addresses                          none (operator)
``address-held-twice``      two handle records list one address                 the handles'
``handle-unbacked``         a handle lists an address its block does not give   its handle
``handle-no-address``       a handle record lists nothing                       its handle
``allocation-no-handle``    a block gives an address to a handle whose record   its handle
                            does not list it
``block-no-owner``          an empty block affine to no node, or a block        delete it / write
                            affine to a node without the affinity key           the key
``affinity-no-block``       a confirmed affinity whose block is missing or      delete it
                            another node's
``removed-node``            a removed node still owns a block or an address     release them
==========================  ==================================================  =================

`repair` applies the repair of each problem it is given, each its own CAS
step re-read from the store, so a problem fixed meanwhile (or a write that
raced it) is left alone. What it writes never releases an address in use:
handle repairs only rewrite handle records from what the blocks say; the only
releases are of nodes the lifecycle has removed (their pods are gone with
them) and of empty blocks affine to nobody. A block affine to nobody that
still holds addresses (borrowed by live nodes after its node was removed) is
no problem: it stays until it empties or a node adopts it.
``podbgp ipam check [--repair]`` prints both; the reaper node runs
`repair_orphans` (the handle and removed-node repairs) on its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from ipam.block import Block, BlockError, IPNetwork
from ipam.lifecycle import Lifecycle, release_node

if TYPE_CHECKING:
    from ipam.allocator import Ipam


class Kind(Enum):
    BLOCK_INVALID = "block-invalid"
    BLOCKS_OVERLAP = "blocks-overlap"
    ADDRESS_HELD_TWICE = "address-held-twice"
    HANDLE_UNBACKED = "handle-unbacked"
    HANDLE_NO_ADDRESS = "handle-no-address"
    ALLOCATION_NO_HANDLE = "allocation-no-handle"
    BLOCK_NO_OWNER = "block-no-owner"
    AFFINITY_NO_BLOCK = "affinity-no-block"
    REMOVED_NODE = "removed-node"


@dataclass(frozen=True, slots=True)
class Problem:
    """One inconsistency: its kind, what it is about (a handle, a block, a node) and a sentence."""

    kind: Kind
    subject: str
    detail: str
    node: str = ""  # for affinity problems, the node the affinity names

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail}

    def __str__(self) -> str:
        return self.detail


# Kinds the reaper repairs on its own: nothing there can be a half-done claim in progress.
ORPHANS = frozenset({Kind.HANDLE_UNBACKED, Kind.HANDLE_NO_ADDRESS, Kind.REMOVED_NODE})


def scan(
    blocks: Iterable[Block],
    handles: Mapping[str, Mapping[str, Any]],
    affinities: Mapping[tuple[str, IPNetwork], str],
    removed: Iterable[str] = (),
) -> list[Problem]:
    """Every problem in the snapshot (module docstring)."""
    blocks = sorted(blocks, key=lambda b: (b.cidr.version, int(b.cidr.network_address)))
    gone = set(removed)
    out = _blocks(blocks, affinities, gone)
    out += _handles(blocks, handles)
    by_cidr = {b.cidr: b for b in blocks}
    for (node, cidr), state in sorted(affinities.items(), key=lambda x: (x[0][0], str(x[0][1]))):
        owner = by_cidr.get(cidr)
        if state == "confirmed" and (owner is None or owner.affinity != node):
            why = "missing" if owner is None else f"affine to {owner.affinity}"
            out.append(Problem(Kind.AFFINITY_NO_BLOCK, str(cidr),
                               f"affinity {node} -> {cidr}: its block is {why}", node))  # fmt: skip
    for node in sorted(gone):
        owns = [str(c) for (n, c) in affinities if n == node]
        held = [str(a) for b in blocks for a, al in b.held() if al.node == node]
        if owns or held:
            out.append(Problem(Kind.REMOVED_NODE, node, f"node {node} was removed but still "
                               f"owns {len(owns)} blocks and {len(held)} addresses", node))  # fmt: skip
    return out


def _blocks(
    blocks: list[Block], affinities: Mapping[tuple[str, IPNetwork], str], gone: set[str]
) -> list[Problem]:
    out: list[Problem] = []
    for i, b in enumerate(blocks):
        try:
            b.check()
        except BlockError as e:
            out.append(Problem(Kind.BLOCK_INVALID, str(b.cidr), str(e)))
        for other in blocks[:i]:
            if b.cidr.version == other.cidr.version and b.cidr.overlaps(other.cidr):
                out.append(Problem(Kind.BLOCKS_OVERLAP, str(b.cidr),
                                   f"blocks {b.cidr} and {other.cidr} overlap"))  # fmt: skip
        if b.affinity is None and not b.used:
            out.append(Problem(Kind.BLOCK_NO_OWNER, str(b.cidr), f"block {b.cidr} is empty "
                               "and affine to no node"))  # fmt: skip
        elif (
            b.affinity is not None
            and (b.affinity, b.cidr) not in affinities
            and b.affinity not in gone
        ):
            out.append(Problem(Kind.BLOCK_NO_OWNER, str(b.cidr), f"block {b.cidr} is affine to "
                               f"{b.affinity} with no affinity key", b.affinity))  # fmt: skip
    return out


def _order(address: str) -> tuple[int, int]:
    a = ipaddress.ip_address(address)
    return a.version, int(a)


def _handles(blocks: list[Block], handles: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    out: list[Problem] = []
    holder = {str(a): (al.handle, al.seq) for b in blocks for a, al in b.held()}
    listed: dict[str, list[str]] = {}
    for h, rec in sorted(handles.items()):
        addrs = rec.get("addrs", {})
        if not addrs:
            out.append(Problem(Kind.HANDLE_NO_ADDRESS, h, f"handle {h} holds no address"))
        for a, ref in sorted(addrs.items()):
            listed.setdefault(a, []).append(h)
            if holder.get(a) != (h, int(ref["seq"])):
                out.append(Problem(Kind.HANDLE_UNBACKED, h,
                                   f"handle {h} lists {a} which its block does not give it"))  # fmt: skip
    for a, hs in sorted(listed.items(), key=lambda x: _order(x[0])):
        if len(hs) > 1:
            out.append(Problem(Kind.ADDRESS_HELD_TWICE, a,
                               f"{a} is listed by handles {', '.join(hs)}"))  # fmt: skip
    for a, (h, seq) in sorted(holder.items(), key=lambda x: _order(x[0])):
        ref = handles.get(h, {}).get("addrs", {}).get(a)
        if ref is None or int(ref["seq"]) != seq:
            out.append(Problem(Kind.ALLOCATION_NO_HANDLE, h,
                               f"{a} held by {h} is missing from its handle"))  # fmt: skip
    return out


async def problems(ipam: Ipam, removed: Iterable[str] = ()) -> list[Problem]:
    """`scan` over the store as it is now."""
    return scan(await ipam.blocks(), await ipam.handles(), await ipam.affinities(), removed)


async def repair(ipam: Ipam, found: Iterable[Problem]) -> list[str]:
    """Apply each problem's repair (module docstring); returns what was done, one line each."""
    done: list[str] = []
    handles: set[str] = set()
    for p in found:
        if p.kind in (Kind.HANDLE_UNBACKED, Kind.HANDLE_NO_ADDRESS, Kind.ALLOCATION_NO_HANDLE):
            handles.add(p.subject)
        elif p.kind is Kind.ADDRESS_HELD_TWICE:
            continue  # each listing handle also has a handle-unbacked problem
        elif p.kind is Kind.AFFINITY_NO_BLOCK:
            if await ipam.drop_affinity(p.node, ipaddress.ip_network(p.subject)):
                done.append(f"dropped affinity {p.node} -> {p.subject}")
        elif p.kind is Kind.BLOCK_NO_OWNER:
            cidr = ipaddress.ip_network(p.subject)
            if p.node and await ipam.restore_affinity(p.node, cidr):
                done.append(f"restored affinity {p.node} -> {cidr}")
            elif not p.node and await ipam.release_orphan_block(cidr):
                done.append(f"released empty block {cidr}")
        elif p.kind is Kind.REMOVED_NODE:
            freed = await release_node(Lifecycle(ipam.store), ipam, p.subject)
            if freed is None:
                continue  # the node came back
            done.append(f"released removed node {p.subject}'s blocks and {len(freed)} addresses")
    for h in sorted(handles):
        if await ipam.repair_handle(h):
            done.append(f"repaired handle {h}")
    return done


async def repair_orphans(ipam: Ipam, removed: Iterable[str]) -> list[str]:
    """The reaper's cluster-wide reclaim: handles with no owner and removed nodes' leftovers."""
    return await repair(ipam, [p for p in await problems(ipam, removed) if p.kind in ORPHANS])
