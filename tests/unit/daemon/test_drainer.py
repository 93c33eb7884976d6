"""`podbgp drain` / `undrain` (podbgp.drain) against a real RIB with stand-in sessions:
what is waited for (each peer announcing our prefixes back), the timeout, the
withdrawal before the Cease, the drained state holding peers down, and undrain."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, ip_address
from typing import Any

import pytest

from bgp.errors import CeaseSubcode
from bgp.wire import Family, PathAttributes, Update
from bgp.wire.prefix import key_from_network
from podbgp import drain as drainmod
from podbgp.drain import Drainer, DrainError, DrainWatch, NodeState
from rib import PeerPolicy, Rib, RibSettings, SessionFacts, builtin
from rib.export import ExportMode

V4 = Family.IPV4_UNICAST
OWN = ["10.244.1.0/26", "10.244.1.64/26"]


def k(prefix: str) -> bytes:
    return key_from_network(prefix)[1]


class FakePeer:
    """What the drainer uses of a `bgp.speaker.Peer`: the session and admin actions."""

    def __init__(self, rib: Rib, key: str) -> None:
        self.rib, self.key = rib, key
        self.established: object | None = object()
        self.enabled = True
        self.calls: list[tuple[str, Any]] = []

    def shutdown(self, message: str = "", subcode: int = 0) -> None:
        self.calls.append(("shutdown", (message, subcode)))
        self.enabled = False
        self.established = None

    def enable(self) -> None:
        self.calls.append(("enable", None))
        self.enabled = True


def setup() -> tuple[Rib, dict[str, FakePeer], dict[str, list[bytes]]]:
    rib = Rib(RibSettings(local_as=64512, router_id=IPv4Address("10.0.0.1")))
    sent: dict[str, list[bytes]] = {}

    def wake(key: str) -> None:  # the session pulls whenever woken, as the speaker does
        while blobs := rib.pull(key):
            sent.setdefault(key, []).extend(blobs)

    rib.wake = wake
    for p in OWN:
        rib.originate(p)
    peers = {}
    for addr, asn in (("192.0.2.1", 65000), ("192.0.2.2", 65000)):
        pol = PeerPolicy(ip_address(addr), asn, export_policy=builtin("local"))
        rib.add_peer(pol)
        rib.peer_up(pol.key, SessionFacts(families=(V4,), bgp_id=IPv4Address(addr),
                                          local_address=IPv4Address("10.0.0.1")))  # fmt: skip
        wake(pol.key)
        peers[pol.key] = FakePeer(rib, pol.key)
    return rib, peers, sent


def back(prefixes: list[str], add_path: bool = False) -> Update:
    """An UPDATE from a peer announcing `prefixes` with its own (other) path."""
    a = PathAttributes(origin=0, as_path=((2, (65000, 64513)),), next_hop=IPv4Address("192.0.2.9"))
    keys = [(b"\0\0\0\1" if add_path else b"") + k(p) for p in prefixes]
    return Update(attrs=a, reach={V4: keys}, add_path=frozenset({V4}) if add_path else frozenset())


def test_watch_counts_announcements_per_peer_with_and_without_add_path() -> None:
    w = DrainWatch.of({"a": {V4: [k(p) for p in OWN]}, "b": {V4: [k(OWN[0])]}, "c": {}})
    assert w.moved == {"a": False, "b": False, "c": True} and not w.done
    w.received("a", [back([OWN[0]])])
    assert w.pending() == {"a": 1, "b": 1}
    w.received("a", [back([OWN[1]], add_path=True)])
    w.received("b", [Update(unreach={V4: [k(OWN[0])]})])  # a withdrawal is no move
    assert w.moved["a"] and not w.moved["b"]
    w.forget("b")  # its session ended
    assert w.done


async def test_drain_waits_for_the_peers_to_move_then_withdraws_and_ceases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drainmod, "SETTLE", 0.0)
    rib, peers, _sent = setup()
    d = Drainer(rib, lambda: peers)
    task = asyncio.ensure_future(d.drain(timeout=30.0))
    await asyncio.sleep(0.05)
    assert d.state is NodeState.DRAINING and rib.export_mode is ExportMode.GRACEFUL_SHUTDOWN
    assert all(p.calls == [] for p in peers.values())  # still announcing, tagged
    d.received("192.0.2.1", [back(OWN)])
    await asyncio.sleep(0.05)
    assert not task.done()  # 192.0.2.2 has not moved yet
    d.received("192.0.2.2", [back(OWN[:1])])
    d.received("192.0.2.2", [back(OWN[1:])])
    report = await asyncio.wait_for(task, 5.0)
    assert report["peers_moved"] is True and report["waited_seconds"] < 5.0
    assert report["sessions_stopped"] == ["192.0.2.1", "192.0.2.2"]
    assert d.state is NodeState.DRAINED and rib.export_mode is ExportMode.WITHDRAW_ALL
    for p in peers.values():
        assert p.calls == [("shutdown", (drainmod.MESSAGE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN))]
        assert rib.caught_up(p.key)  # the withdrawals went out before the Cease
    assert sum(rib.advertised(p.key).get(V4, 0) for p in peers.values()) == 0


async def test_drain_ends_at_the_timeout_when_a_peer_has_no_other_path() -> None:
    rib, peers, _ = setup()
    d = Drainer(rib, lambda: peers)
    d.received("192.0.2.1", [back(OWN)])  # before the drain: does not count
    report = await asyncio.wait_for(d.drain(timeout=0.3), 5.0)
    assert report["peers_moved"] is False
    assert report["pending"] == {"192.0.2.1": 2, "192.0.2.2": 2}
    assert report["waited_seconds"] >= 0.3
    assert d.state is NodeState.DRAINED


async def test_a_peer_whose_session_ends_is_not_waited_for() -> None:
    rib, peers, _ = setup()
    d = Drainer(rib, lambda: peers)
    task = asyncio.ensure_future(d.drain(timeout=30.0))
    await asyncio.sleep(0.05)
    d.received("192.0.2.1", [back(OWN)])
    peers["192.0.2.2"].established = None
    report = await asyncio.wait_for(task, 5.0)
    assert report["peers_moved"] is True and report["moved"] == {"192.0.2.1": True}


async def test_drained_holds_peers_down_until_undrain_and_stop_ends_the_daemon() -> None:
    rib, peers, _sent = setup()
    stopped: list[bool] = []
    d = Drainer(rib, lambda: peers, on_stop=lambda: stopped.append(True))
    assert not d.hold("192.0.2.7")  # running: a new peer starts at once
    await d.drain(timeout=0.0, stop=True)
    assert stopped == [True]
    with pytest.raises(DrainError, match="drained"):
        await d.drain(timeout=1.0)
    assert d.hold("192.0.2.7")  # added while drained: stays down
    peers["192.0.2.7"] = FakePeer(rib, "192.0.2.7")
    d.release("192.0.2.2")  # enabled by hand meanwhile: undrain leaves it alone
    out = await d.undrain()
    assert out == {"state": "running", "enabled": ["192.0.2.1", "192.0.2.7"]}
    assert peers["192.0.2.1"].calls[-1] == ("enable", None)
    assert rib.export_mode is ExportMode.NORMAL and d.state is NodeState.RUNNING
    with pytest.raises(DrainError, match="not drained"):
        await d.undrain()


async def test_undrain_during_the_wait_cancels_the_drain() -> None:
    rib, peers, _ = setup()
    d = Drainer(rib, lambda: peers)
    task = asyncio.ensure_future(d.drain(timeout=30.0))
    await asyncio.sleep(0.05)
    await d.undrain()
    assert rib.export_mode is ExportMode.NORMAL and d.state is NodeState.RUNNING
    with pytest.raises(DrainError, match="cancelled by `podbgp undrain`"):
        await task
    assert all(p.calls == [] for p in peers.values())  # no session was stopped
