"""`ipam.consistency`: every kind of problem made for real in a store, found, and repaired
in CAS steps without releasing an address in use (SQLite file and etcd)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path

import pytest

from ipam import Ipam, IpamConfig, Node, NodeRegistry, Pool
from ipam.block import Block
from ipam.consistency import Kind, problems, repair, repair_orphans, scan
from ipam.lifecycle import Lifecycle
from ipam.model import affinity_key, block_key, dumps, handle_key
from ipam.store import open_store
from ipam.store.base import Store
from podbgp.cli import main

POOL = IpamConfig(pools=(Pool.parse({"cidr": "10.7.0.0/24", "block_size": 28}),))
net = ipaddress.ip_network


async def _held(ipam: Ipam) -> set[tuple[str, str, int]]:
    return {(str(a), al.handle, al.seq) for b in await ipam.blocks() for a, al in b.held()}


async def test_a_consistent_store_has_no_problem(store: Store) -> None:
    ipam = Ipam(store, POOL)
    for i in range(20):  # two blocks and a borrowed address would all be fine
        await ipam.allocate("n1", f"h{i}")
    assert await problems(ipam) == []
    assert await repair(ipam, []) == []


async def test_each_kind_is_found_and_repaired_without_releasing_what_is_in_use(
    store: Store,
) -> None:
    ipam = Ipam(store, POOL)
    a = await ipam.allocate("n1", "pod-a")
    b = await ipam.allocate("n1", "pod-b")
    in_use = await _held(ipam)
    # handle-unbacked + address-held-twice: a second handle lists pod-a's address.
    bogus = {"addrs": {str(a.address): {"block": str(a.block), "seq": a.seq}}}
    await store.create(handle_key("ghost"), dumps(bogus))
    # handle-no-address
    await store.create(handle_key("empty"), dumps({"addrs": {}}))
    # allocation-no-handle: pod-b's handle record lost.
    kv = await store.get(handle_key("pod-b"))
    assert kv is not None and await store.delete_cas(kv.key, kv.mod_revision)
    # affinity-no-block: a confirmed affinity to a block that does not exist.
    await store.create(affinity_key("n1", net("10.7.0.240/28")), dumps({"state": "confirmed"}))
    # block-no-owner: an empty block affine to nobody, and one whose affinity key is gone.
    await store.create(block_key(net("10.7.0.224/28")), dumps(Block.new(net("10.7.0.224/28"), None).to_json()))  # fmt: skip
    kv = await store.get(affinity_key("n1", a.block))
    assert kv is not None and await store.delete_cas(kv.key, kv.mod_revision)

    found = await problems(ipam)
    kinds = sorted({p.kind.value for p in found})
    assert kinds == sorted(k.value for k in Kind if k not in (
        Kind.BLOCK_INVALID, Kind.BLOCKS_OVERLAP, Kind.REMOVED_NODE))  # fmt: skip
    assert [p.subject for p in found if p.kind is Kind.ADDRESS_HELD_TWICE] == [str(a.address)]

    done = await repair(ipam, found)
    assert await problems(ipam) == [], done
    assert await _held(ipam) == in_use  # nothing in use was released
    handles = await ipam.handles()
    assert set(handles) == {"pod-a", "pod-b"}
    assert handles["pod-b"]["addrs"] == {str(b.address): {"block": str(b.block), "seq": b.seq}}
    assert (await ipam.affinities())[("n1", a.block)] == "confirmed"


async def test_a_removed_node_leftovers_are_reclaimed_by_the_orphan_repair(store: Store) -> None:
    ipam = Ipam(store, POOL)
    lc = Lifecycle(store)
    for n in ("n1", "gone"):
        await NodeRegistry(store).register(Node(n))
    await ipam.allocate("n1", "keep")
    await ipam.allocate("gone", "old-pod")
    assert await lc.remove("gone")  # tombstoned, but its remover died before releasing
    found = await problems(ipam, {"gone"})
    assert [(p.kind, p.subject) for p in found] == [(Kind.REMOVED_NODE, "gone")]
    assert "removed" in (await repair_orphans(ipam, {"gone"}))[0]
    assert await problems(ipam, {"gone"}) == []
    assert {h for _, h, _ in await _held(ipam)} == {"keep"}


def test_overlapping_and_broken_blocks_are_reported_not_repaired() -> None:
    b1 = Block.new(net("10.0.0.0/28"), "n1")
    b2 = Block.new(net("10.0.0.0/27"), "n2")
    b1.unallocated.append(b1.unallocated[0])  # an address free twice
    affs = {("n1", b1.cidr): "confirmed", ("n2", b2.cidr): "confirmed"}
    kinds = {p.kind for p in scan([b1, b2], {}, affs)}
    assert kinds == {Kind.BLOCK_INVALID, Kind.BLOCKS_OVERLAP}


def test_ipam_check_cli_reports_and_repairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:{tmp_path}/db.sqlite"
    assert main(["datastore", "init", "--datastore", url]) == 0
    ds = ["--datastore", url, "--pool", "10.50.0.0/24/28"]

    async def damage(handle: str, rec: dict[str, object]) -> None:
        s = open_store(url)
        try:
            await NodeRegistry(s).register(Node("n1"))
            await s.create(handle_key(handle), dumps(rec))
        finally:
            await s.close()

    asyncio.run(damage("c0", {"addrs": {}}))
    assert main(["ipam", "allocate", *ds, "--node", "n1", "--handle", "c1"]) == 0
    assert main(["ipam", "check", *ds, "--repair"]) == 0  # c0 repaired
    capsys.readouterr()
    assert main(["ipam", "check", *ds]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")

    asyncio.run(damage("empty", {"addrs": {}}))
    assert main(["ipam", "check", *ds]) == 1
    assert capsys.readouterr().out.strip() == "handle-no-address: handle empty holds no address"
    assert main(["ipam", "check", *ds, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["consistent"] is False and out["problems"][0]["kind"] == "handle-no-address"
    assert main(["ipam", "check", *ds, "--repair", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["repaired"] == ["repaired handle empty"] and out["remaining"] == []
    assert main(["ipam", "check", *ds]) == 0
    capsys.readouterr()
