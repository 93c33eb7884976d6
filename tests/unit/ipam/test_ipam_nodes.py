"""The node registry and its watch, on both stores."""

from __future__ import annotations

import asyncio

from ipam import Node, NodeRegistry
from ipam.store.base import Store


async def test_register_get_list_remove(store: Store) -> None:
    reg = NodeRegistry(store)
    a = Node(
        name="node-a",
        asn=64512,
        address="10.0.0.1/24",
        address6="fd00::1/64",
        vtep_mac="66:00:00:00:00:01",
        vtep_address="10.244.0.0",
        route_reflector_cluster_id="1.1.1.1",
        labels={"rack": "r1"},
    )
    await reg.register(a)
    await reg.register(a)  # idempotent
    assert await reg.get("node-a") == a
    assert await reg.get("nope") is None
    b = Node(name="node/b with slash", asn=64513, address="10.0.0.2/24")
    await reg.register(b)
    assert await reg.list() == {"node-a": a, "node/b with slash": b}
    moved = Node(name="node-a", asn=64512, address="10.0.1.1/24")
    await reg.register(moved)
    assert (await reg.list())["node-a"] == moved
    assert await reg.remove("node-a")
    assert not await reg.remove("node-a")
    assert list(await reg.list()) == ["node/b with slash"]


async def test_watch_yields_snapshots_on_change(store: Store) -> None:
    reg = NodeRegistry(store)
    await reg.register(Node(name="a", asn=1))
    it = reg.watch().__aiter__()

    async def nxt() -> dict[str, Node]:
        return await asyncio.wait_for(it.__anext__(), 10)

    assert set(await nxt()) == {"a"}
    await reg.register(Node(name="b", asn=2))
    assert set(await nxt()) == {"a", "b"}
    await reg.register(Node(name="a", asn=3))
    assert (await nxt())["a"].asn == 3
    await reg.remove("b")
    assert set(await nxt()) == {"a"}
    await it.aclose()  # type: ignore[attr-defined]
