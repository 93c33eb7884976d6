"""Reservations under hypothesis, on a real SQLite store: random allocations by several
nodes in a small pool never return a reserved address, and exhaust exactly the
unreserved ones (a reservation costs its own addresses, never a whole block unless it
covers one)."""

from __future__ import annotations

import asyncio
import ipaddress
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipam import Exhausted, Ipam, IpamConfig, Pool, Reservation, Reserved
from ipam.store.base import OpenMode
from ipam.store.sqlite import SqliteStore

POOL = ipaddress.ip_network("10.1.0.0/26")  # 4 blocks of 16 (block_size 28)


@st.composite
def reservations(draw: st.DrawFn) -> tuple[Reservation, ...]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        length = draw(st.sampled_from([32, 32, 31, 30, 28, 25]))
        base = draw(st.integers(0, 2**32 - 1)) >> (32 - length) << (32 - length)
        # Mostly inside the pool, sometimes across or outside it.
        inside = draw(st.booleans()) or length <= 26
        if inside:
            base = int(POOL.network_address) + (base % POOL.num_addresses)
            base = base >> (32 - length) << (32 - length)
        out.append(Reservation(ipaddress.ip_network((base, length)), f"r{len(out)}"))
    return tuple(out)


async def _fill(config: IpamConfig, nodes: list[str], path: Path) -> list[ipaddress.IPv4Address]:
    store = SqliteStore(path, mode=OpenMode.CREATE)
    try:
        ipam = Ipam(store, config)
        got: list[ipaddress.IPv4Address] = []
        live = list(nodes)  # nodes that have not yet been told the pool is exhausted
        n = 0
        while live:
            node = live[n % len(live)]
            try:
                a = await ipam.allocate(node, f"h{n}")
            except Exhausted:
                live.remove(node)  # with strict affinity, others may still have room
                continue
            got.append(a.address)  # type: ignore[arg-type]
            n += 1
            assert n <= POOL.num_addresses, "more addresses than the pool has"
        assert not await ipam.check()
        return got
    finally:
        await store.close()


@pytest.mark.timeout(300)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reservations(), st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3,
                                unique=True), st.booleans())  # fmt: skip
def test_allocation_never_returns_a_reserved_address(
    reserved: tuple[Reservation, ...], nodes: list[str], strict: bool
) -> None:
    config = IpamConfig(
        pools=(Pool(POOL, 28),),
        reservations=reserved,
        strict_affinity=strict,
        max_blocks_per_node=4,
    )
    with tempfile.TemporaryDirectory() as d:
        got = asyncio.run(_fill(config, nodes, Path(d) / "ipam.db"))
    unreserved = {a for a in POOL if config.reservation_of(a) is None}
    assert len(got) == len(set(got))
    assert not [a for a in got if config.reservation_of(a) is not None]
    # Every unreserved address was handed out before the pool said it was exhausted
    # (max_blocks_per_node covers the whole pool, so strict affinity loses nothing).
    assert set(got) == unreserved


def test_an_explicit_request_for_a_reserved_address_names_the_reservation(tmp_path: Path) -> None:
    config = IpamConfig(
        pools=(Pool(POOL, 28),),
        reservations=(Reservation(ipaddress.ip_network("10.1.0.1/32"), "gateway"),),
    )

    async def go() -> None:
        store = SqliteStore(tmp_path / "ipam.db", mode=OpenMode.CREATE)
        try:
            with pytest.raises(Reserved, match=r"10\.1\.0\.1 is reserved: 10\.1\.0\.1/32 "
                               r"\(reservation gateway\)"):  # fmt: skip
                await Ipam(store, config).assign(ipaddress.ip_address("10.1.0.1"), "a", "h")
            assert await Ipam(store, config).blocks() == []  # nothing was claimed for it
        finally:
            await store.close()

    asyncio.run(go())
