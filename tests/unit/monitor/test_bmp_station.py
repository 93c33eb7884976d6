"""podbgp.bmp_station against real TCP listeners on loopback: the opening first and the
live messages held meanwhile after it, in order; a station that does not read is dropped
(never waited for) and resynchronised on the next connection; a station that goes away
is reconnected; stop sends the farewell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from bmplisten import Listener, until

from podbgp.bmp_station import BmpStation


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    lst = Listener()
    await lst.start()
    yield lst
    await lst.close()


async def test_opening_then_held_live_messages_in_order(listener: Listener) -> None:
    release = asyncio.Event()
    station: BmpStation

    async def hello() -> list[bytes]:
        station.send(b"live1;")  # arrives while the opening is being built: held
        await release.wait()
        station.send(b"live2;")
        return [b"init;", b"table;"]

    station = BmpStation("127.0.0.1", listener.port, hello, 1000, 1)
    station.start()
    await until(lambda: station.open)
    release.set()
    await until(lambda: b"live2;" in bytes(listener.conns[0]))
    station.send(b"live3;")  # the opening is done: straight to the queue
    await until(lambda: bytes(listener.conns[0]).endswith(b"live3;"))
    assert bytes(listener.conns[0]) == b"init;table;live1;live2;live3;"
    await station.stop(b"bye;")
    await until(lambda: bytes(listener.conns[0]).endswith(b"bye;"))


async def test_nothing_is_queued_while_disconnected() -> None:
    async def hello() -> list[bytes]:
        return []

    station = BmpStation("127.0.0.1", 9, hello, 1000, 1)  # nobody listens on port 9
    station.send(b"x")
    assert not station.open and station.stats.messages == 0
    await station.stop()


async def test_a_station_that_does_not_read_is_dropped_and_resynced() -> None:
    slow = Listener(read=False)
    await slow.start()
    openings = 0

    async def hello() -> list[bytes]:
        nonlocal openings
        openings += 1
        return [b"init"]

    station = BmpStation("127.0.0.1", slow.port, hello, 100, 1)
    station.start()
    try:
        await until(lambda: station.open and openings == 1)
        big = b"m" * 4096
        sent = 0
        # send() never waits: the loop below never yields, yet it ends, because past
        # queue_limit the connection is given up instead of the queue growing.
        while station.open:
            station.send(big)
            sent += 1
            assert sent < 100_000
        assert station.stats.overflows == 1
        # The next connection starts over from a fresh opening.
        slow.read = True
        await until(lambda: openings == 2 and station.open)
        assert len(slow.conns) == 2
    finally:
        await station.stop()
        await slow.close()


async def test_reconnects_when_the_station_goes_away(listener: Listener) -> None:
    openings = 0

    async def hello() -> list[bytes]:
        nonlocal openings
        openings += 1
        return [b"init%d;" % openings]

    station = BmpStation("127.0.0.1", listener.port, hello, 1000, 1)
    station.start()
    try:
        await until(lambda: bytes(listener.conns[0] if listener.conns else b"") == b"init1;")
        listener.writers[0].transport.abort()  # the station closes the connection
        await until(lambda: len(listener.conns) == 2 and bytes(listener.conns[1]) == b"init2;")
        assert station.stats.connects == 2
        assert "closed" in station.stats.last_error
    finally:
        await station.stop()
