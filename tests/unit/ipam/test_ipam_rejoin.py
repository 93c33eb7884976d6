"""A node removed while away comes back: its running pods take their addresses back.

Over a real store (SQLite file and etcd). The pods' "namespaces" are plain files:
`ipam.leaks.netns_alive` compares the path's device and inode, which any file has.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest

from ipam import Ipam, IpamConfig, Node, NodeRegistry, NodeRemoved, Pool
from ipam.leaks import NETNS, NETNS_ID, netns_id
from ipam.lifecycle import Lifecycle, Timing, reap, release_node, released_key
from ipam.rejoin import restore_pods
from ipam.store.base import Store

POOL = IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/24", "block_size": 28}),))
T = Timing(gone_after=100.0, remove_after=1000.0)


async def _pod(ipam: Ipam, node: str, handle: str, ns: Path) -> str:
    ns.write_text(handle)
    attrs = {NETNS: str(ns), NETNS_ID: netns_id(str(ns)), "namespace": "default", "pod": handle}
    return str((await ipam.allocate(node, handle, attrs=attrs)).address)


async def _holders(ipam: Ipam) -> dict[str, str]:
    return {str(a): al.handle for b in await ipam.blocks() for a, al in b.held()}


async def test_a_returning_node_takes_back_its_running_pods_addresses(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lc, ipam = Lifecycle(store), Ipam(store, POOL)
    for name in ("n1", "n2"):
        await NodeRegistry(store).register(Node(name, asn=65000, address="192.0.2.1/24"))
    running = await _pod(ipam, "n1", "pod-running", tmp_path / "ns-running")
    ended = await _pod(ipam, "n1", "pod-ended", tmp_path / "ns-ended")
    stolen = await _pod(ipam, "n1", "pod-stolen", tmp_path / "ns-stolen")
    replaced = await _pod(ipam, "n1", "pod-replaced", tmp_path / "ns-replaced")
    manual = str((await ipam.allocate("n1", "by-hand")).address)  # no namespace recorded

    # n1 is away; an operator removes it: every address is released and recorded.
    assert await lc.remove("n1")
    freed = await release_node(lc, ipam, "n1")
    assert {str(r.address) for r in freed} == {running, ended, stolen, replaced, manual}
    assert await _holders(ipam) == {}
    records, revision = await lc.released("n1")
    assert revision and {r["address"] for r in records} == {str(r.address) for r in freed}

    # Meanwhile: one pod ended, another pod elsewhere got one address, and one pod's
    # namespace path now names another namespace (a new file at the same path).
    (tmp_path / "ns-ended").unlink()
    await ipam.assign(ipaddress.ip_address(stolen), "n2", "pod-elsewhere")
    (tmp_path / "ns-replaced").unlink()
    (tmp_path / "ns-replaced-new").write_text("x")
    (tmp_path / "ns-replaced-new").rename(tmp_path / "ns-replaced")

    await lc.hold("n1", 60)  # n1's daemon is back
    with caplog.at_level(logging.INFO, logger="ipam.rejoin"):
        restored = await restore_pods(lc, ipam, "n1")
    assert [str(r.address) for r in restored.taken_back] == [running]
    assert [str(r.address) for r, _ in restored.lost] == [stolen]
    assert "pod-elsewhere" in restored.lost[0][1]
    assert {str(r.address) for r in restored.gone} == {ended, replaced}
    assert [str(r.address) for r in restored.skipped] == [manual]
    assert await _holders(ipam) == {running: "pod-running", stolen: "pod-elsewhere"}
    # the handle is whole again: the CNI DEL for the pod releases it as usual
    assert [str(a) for a in await ipam.release_handle("pod-running")] == [running]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and stolen in errors[0] and "default/pod-stolen" in errors[0]
    assert (await lc.released("n1"))[1] == 0  # decided: the record is gone
    assert not await restore_pods(lc, ipam, "n1")  # and a second hold does nothing


async def test_the_reaper_keeps_what_it_released_and_forget_drops_it(
    store: Store, tmp_path: Path
) -> None:
    lc, ipam = Lifecycle(store), Ipam(store, POOL)
    for name in ("a", "z"):
        await NodeRegistry(store).register(Node(name, asn=65000, address="192.0.2.1/24"))
    await lc.hold("a", 60)
    addr = await _pod(ipam, "z", "pod-z", tmp_path / "ns-z")
    assert await lc.remove("z")  # the remover died before releasing: the reaper finishes
    assert await reap(lc, ipam, "a", await lc.members(), T) == ["z"]
    records, _ = await lc.released("z")
    assert [r["address"] for r in records] == [addr]
    assert records[0]["allocation"]["handle"] == "pod-z"
    await lc.forget("z")  # `podbgp node remove` of a removed node: it is not coming back
    assert (await lc.released("z"))[1] == 0


async def test_note_released_merges_a_finished_half_removal(store: Store) -> None:
    lc, ipam = Lifecycle(store), Ipam(store, POOL)
    first = await ipam.allocate("z", "h1")
    second = await ipam.allocate("z", "h2")
    part = await ipam.remove_node("z")
    await lc.note_released("z", part[:1])
    await lc.note_released("z", part)  # the rest, and the first again
    records, _ = await lc.released("z")
    assert sorted(r["address"] for r in records) == sorted(
        [str(first.address), str(second.address)]
    )


async def test_a_remover_with_an_old_view_leaves_a_returning_node_alone(store: Store) -> None:
    """The reaper finishes removals it believes half done from its view of the members; a
    node that came back meanwhile (registered again, then allocated) must keep its blocks."""
    lc, ipam = Lifecycle(store), Ipam(store, POOL)
    await NodeRegistry(store).register(Node("z", asn=65000, address="192.0.2.1/24"))
    await ipam.allocate("z", "h-before")
    assert await lc.remove("z")
    stale = await lc.members()  # the reaper's view: z removed, still owning a block
    await NodeRegistry(store).register(Node("z", asn=65000, address="192.0.2.1/24"))
    back = await ipam.allocate("z", "h-after")  # z is back: its daemon registered first
    assert await reap(lc, ipam, "a", stale, T) == []  # "a" reaps: stale has no live node
    assert await release_node(lc, ipam, "z") is None
    assert (await _holders(ipam)).get(str(back.address)) == "h-after"


async def test_a_removal_stops_where_the_node_came_back(store: Store) -> None:
    lc = Lifecycle(store)
    ipam = Ipam(store, IpamConfig(pools=(Pool.parse({"cidr": "10.9.0.0/24", "block_size": 29}),)))
    await NodeRegistry(store).register(Node("z", asn=65000, address="192.0.2.1/24"))
    got = [await ipam.allocate("z", f"h{i}") for i in range(12)]
    assert len({a.block for a in got}) >= 2
    assert await lc.remove("z")
    real_txn, writes = store.txn, []

    async def returning(compares, ops):  # type: ignore[no-untyped-def]
        result = await real_txn(compares, ops)
        writes.append(result.succeeded)
        if len(writes) == 1:  # after the first block: z registers again
            await NodeRegistry(store).register(Node("z", asn=65000, address="192.0.2.1/24"))
        return result

    store.txn = returning  # type: ignore[method-assign]
    try:
        freed = await release_node(lc, ipam, "z")
    finally:
        store.txn = real_txn  # type: ignore[method-assign]
    assert freed and len(freed) < len(got)  # the first block's, and no more
    records, _ = await lc.released("z")
    assert sorted(r["address"] for r in records) == sorted(str(r.address) for r in freed)
    left = await _holders(ipam)
    assert len(left) == len(got) - len(freed)


async def test_a_removed_node_gets_no_address_until_it_registers_again(store: Store) -> None:
    """Its daemon runs on after ``podbgp node remove --force`` (or its CNI plugin is called
    while it is away): whatever it took, the reaper's repair would release and hand out
    again. So nothing is given until it registers (its daemon starting)."""
    lc, ipam = Lifecycle(store), Ipam(store, POOL)
    await NodeRegistry(store).register(Node("z", asn=65000, address="192.0.2.1/24"))
    await lc.hold("z", 60)
    await ipam.allocate("z", "before")
    assert await lc.remove("z", force=True)
    await release_node(lc, ipam, "z")
    with pytest.raises(NodeRemoved, match="node z was removed from the cluster"):
        await ipam.allocate("z", "while-removed")
    with pytest.raises(NodeRemoved):
        await ipam.assign(ipaddress.ip_address("10.9.0.77"), "z", "while-removed")
    assert await ipam.handles() == {}
    await NodeRegistry(store).register(Node("z", asn=65000, address="192.0.2.1/24"))
    assert (await ipam.allocate("z", "after")).handle == "after"


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b'{"a": 1}', b'[1, {"address": "10.9.0.1"}, {"address": "x", "allocation": {}}]'],
)
async def test_a_garbled_record_is_skipped_with_a_warning_not_a_traceback(
    store: Store, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    lc, ipam = Lifecycle(store), Ipam(store, POOL)
    assert await store.create(released_key("z"), garbage)
    with caplog.at_level(logging.WARNING):
        restored = await restore_pods(lc, ipam, "z")
    assert not restored.taken_back and "released addresses" in caplog.text
    assert (await lc.released("z"))[1] == 0  # decided: dropped
    await lc.note_released("z", [])  # and a later removal can write it afresh
