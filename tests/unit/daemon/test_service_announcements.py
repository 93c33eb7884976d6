"""Service announcements as tables, run-time announcements with real health checks, and the
merge of both into the RIB's local routes (`podbgp.services`, `podbgp.anycast`,
`podbgp.origins`)."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
from ribkit import make_rib

from ipam.store import OpenMode
from ipam.store.sqlite import SqliteStore
from podbgp.anycast import Anycast, HealthCheck
from podbgp.origins import ExtraOrigins
from podbgp.services import (
    ServiceFeed,
    ServiceRange,
    ServiceRecord,
    TrafficPolicy,
    announcements,
    parse_community,
    put_record,
)

RANGE = ServiceRange(ip_network("10.96.0.0/12"), (parse_community("64512:300"),))
POD_A, POD_B = ip_address("10.244.1.5"), ip_address("10.244.2.7")


def rec(name: str, address: str, policy: TrafficPolicy, *endpoints: str) -> ServiceRecord:
    return ServiceRecord(name, (ip_address(address),), policy, tuple(map(ip_address, endpoints)))


def test_ranges_from_every_node() -> None:
    assert announcements([RANGE], [], frozenset()) == {RANGE.cidr: RANGE.communities}


def test_local_policy_only_with_a_local_endpoint() -> None:
    lb = rec("web", "192.0.2.10", TrafficPolicy.LOCAL, "10.244.1.5", "10.244.2.7")
    here = announcements([RANGE], [lb], frozenset({POD_A}))
    assert here[ip_network("192.0.2.10/32")] == ()
    elsewhere = announcements([RANGE], [lb], frozenset({ip_address("10.244.3.3")}))
    assert ip_network("192.0.2.10/32") not in elsewhere


def test_local_policy_inside_a_range_is_still_a_host_route() -> None:
    svc = rec("dns", "10.96.0.10", TrafficPolicy.LOCAL, "10.244.1.5")
    assert ip_network("10.96.0.10/32") in announcements([RANGE], [svc], frozenset({POD_A}))


def test_cluster_policy_everywhere_unless_a_range_covers_it() -> None:
    inside = rec("dns", "10.96.0.10", TrafficPolicy.CLUSTER, "10.244.2.7")
    outside = rec("ext", "192.0.2.20", TrafficPolicy.CLUSTER, "10.244.2.7")
    got = announcements([RANGE], [inside, outside], frozenset())
    assert ip_network("10.96.0.10/32") not in got
    assert ip_network("192.0.2.20/32") in got


def test_ipv6_service() -> None:
    svc = ServiceRecord("v6", (ip_address("fd00:96::10"),), TrafficPolicy.LOCAL,
                        (ip_address("fd00:244::5"),), (parse_community("65000:1"),))  # fmt: skip
    got = announcements([], [svc], frozenset({ip_address("fd00:244::5")}))
    assert got == {ip_network("fd00:96::10/128"): (65000 << 16 | 1,)}


def test_record_round_trip_and_errors() -> None:
    r = ServiceRecord("web", (ip_address("192.0.2.10"),), TrafficPolicy.LOCAL, (POD_A,),
                      (parse_community("64512:7"),))  # fmt: skip
    assert ServiceRecord.from_json(r.to_json()) == r
    with pytest.raises(ValueError, match="addresses"):
        ServiceRecord.from_json({"name": "x"})
    with pytest.raises(ValueError, match="not a community"):
        parse_community("70000:1")


def test_health_check_parse_errors() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        HealthCheck.parse({"exec": "true", "tcp": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="ADDRESS:PORT"):
        HealthCheck.parse({"tcp": "localhost"})
    with pytest.raises(ValueError, match="interval"):
        HealthCheck.parse({"exec": "true", "interval": 0})


async def _serve() -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _until(cond: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_tcp_check_withdraws_while_failing_and_returns() -> None:
    told: list[dict[object, object]] = []
    any_ = Anycast(lambda a: told.append(dict(a)))
    server, port = await _serve()
    net = ip_network("198.51.100.1/32")
    check = HealthCheck.parse({"tcp": f"127.0.0.1:{port}", "interval": 0.1, "timeout": 0.5})
    row = any_.announce(net, (), check)
    assert row["announced"] is False  # not before the first check passes
    await _until(lambda: net in any_.announced())
    server.close()
    await server.wait_closed()
    await _until(lambda: net not in any_.announced())  # refused: withdrawn
    server2 = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    await _until(lambda: net in any_.announced())
    server2.close()
    any_.stop()
    assert told[-1] == {net: ()}


async def test_exec_check() -> None:
    any_ = Anycast(lambda a: None)
    good, bad = ip_network("198.51.100.2/32"), ip_network("198.51.100.3/32")
    any_.announce(good, (), HealthCheck.parse({"exec": "true", "interval": 0.1}))
    any_.announce(bad, (), HealthCheck.parse({"exec": "sh -c 'exit 3'", "interval": 0.1}))
    await _until(lambda: good in any_.announced())
    await asyncio.sleep(0.3)
    assert bad not in any_.announced()
    assert any_.rows()[1]["last_check"] == "exit status 3"
    assert any_.withdraw(good) and not any_.withdraw(good)
    any_.stop()


def test_extra_origins_merge_and_respect_ipam() -> None:
    rib = make_rib()
    owned: set[str] = {"10.244.1.0/26"}
    extras = ExtraOrigins(rib, lambda: owned)
    rib.originate("10.244.1.0/26")
    svc = ip_network("10.96.0.0/12")
    extras.set("services", {svc: (1,), ip_network("10.244.1.0/26"): (9,)})
    extras.set("anycast", {svc: (2,)})
    best = rib.best(*_key("10.96.0.0/12"))
    assert best is not None and sorted(best.attrs.communities) == [1, 2]
    own = rib.best(*_key("10.244.1.0/26"))
    assert own is not None and own.attrs.communities == ()  # IPAM's origination kept
    extras.set("services", {})
    best = rib.best(*_key("10.96.0.0/12"))
    assert best is not None and best.attrs.communities == (2,)
    extras.set("anycast", {})
    assert rib.best(*_key("10.96.0.0/12")) is None
    assert rib.best(*_key("10.244.1.0/26")) is not None  # never withdrawn from here


def _key(prefix: str) -> tuple[object, bytes]:
    from bgp.wire.prefix import key_from_network

    return key_from_network(prefix)


class _WriteBetweenReads(SqliteStore):
    """A store where another writer adds a service record just before the feed's read of
    the blocks (after its read of the records), once."""

    pending: ServiceRecord | None = None

    async def list_prefix(self, prefix: str, keys_only: bool = False):  # type: ignore[no-untyped-def]
        if self.pending is not None and prefix.endswith("blocks/"):
            rec, self.pending = self.pending, None
            await put_record(self, rec)
        return await super().list_prefix(prefix, keys_only)


async def test_a_record_written_between_the_feeds_two_reads_is_not_missed(tmp_path: Path) -> None:
    store = _WriteBetweenReads(tmp_path / "s.db", poll_interval=0.02, mode=OpenMode.CREATE)
    seen: list[dict[object, tuple[int, ...]]] = []
    lb = rec("web", "192.0.2.10", TrafficPolicy.CLUSTER)
    store.pending = lb
    feed = ServiceFeed(store, "n1", [], lambda a: seen.append(dict(a)))
    task = asyncio.ensure_future(feed.run())
    try:
        await _until(lambda: seen and ip_network("192.0.2.10/32") in seen[-1])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
