"""`show routes --peer X --advertised/--received [--pre-policy]` and `show peer X` between
two real `podbgp run` daemons on loopback addresses: what one end says it advertised is
what the other end says it received, and one end's capabilities sent are the other's
capabilities received.

Both run in one namespace of their own, on addresses of its loopback device (not 127/8:
a 127.0.0.0/8 next hop is not a usable one). A (10.77.0.1, AS 65001) imports with a policy that drops 10.202.1.0/24 and keeps pre-policy
routes (soft reconfiguration); B (10.77.0.2, AS 65002) originates 10.202.0.0/24 and
10.202.1.0/24 and keeps nothing before policy."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podbgp.api import APIError, ControlClient
from podbgp.cli import main
from podbgp.lab.netns import Netns, NetnsGroup

NODE = """
[node]
name = "{name}"
asn = {asn}
router_id = "{ip}"
address = "{ip}/32"

[bgp]
listen = ["{ip}"]
port = {port}
hold_time = 30
mesh = false

[[bgp.peer]]
address = "{peer_ip}"
asn = {peer_asn}
port = {peer_port}
local_address = "{ip}"
soft_reconfiguration = {soft}
import = "{import_policy}"

{originate}

[[policy]]
name = "drop-one"
default_action = "accept"
[[policy.rule]]
match = {{ prefix = "10.202.1.0/24" }}
action = "reject"

[fib]
enabled = false

[api]
socket = "{sock}"
metrics = ""
"""

ORIGINATE_A = """
[[bgp.originate]]
prefix = "10.201.0.0/24"
communities = ["65001:7"]
"""
ORIGINATE_B = """
[[bgp.originate]]
prefix = "10.202.0.0/24"
communities = ["65002:1"]
large_communities = ["65002:2:3"]

[[bgp.originate]]
prefix = "10.202.1.0/24"
"""


def _start(ns: Netns, path: Path, sock: str) -> subprocess.Popen[bytes]:
    proc = ns.popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            ControlClient(sock, timeout=2).request("show.node")
            return proc
        except APIError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("podbgp did not start:\n" + proc.communicate(timeout=10)[0].decode())


@pytest.fixture
def pair(tmp_path: Path, netns: NetnsGroup) -> Iterator[dict[str, str]]:
    ns = netns.add("v")
    ns.ip("link", "set", "lo", "up")
    ports = {"a": 17901, "b": 17902}
    ips = {"a": "10.77.0.1", "b": "10.77.0.2"}
    for ip in ips.values():
        ns.ip("addr", "add", f"{ip}/32", "dev", "lo")
    asns = {"a": 65001, "b": 65002}
    socks = {n: str(tmp_path / f"{n}.sock") for n in "ab"}
    procs = []
    try:
        for me, other in (("a", "b"), ("b", "a")):
            path = tmp_path / f"{me}.toml"
            path.write_text(NODE.format(
                name=me, asn=asns[me], ip=ips[me], port=ports[me], peer_ip=ips[other],
                peer_asn=asns[other], peer_port=ports[other], sock=socks[me],
                soft="true" if me == "a" else "false",
                import_policy="drop-one" if me == "a" else "all",
                originate=ORIGINATE_A if me == "a" else ORIGINATE_B,
            ))  # fmt: skip
            procs.append(_start(ns, path, socks[me]))
        yield socks
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate(timeout=10)


def ask(sock: str, cmd: str, **args: Any) -> Any:
    return ControlClient(sock).request(cmd, **args)


def wait(check: Any, what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout}s (last: {value!r})")
        time.sleep(0.2)


def _routes(sock: str, peer: str, **view: bool) -> list[dict[str, Any]]:
    return list(ask(sock, "show.routes", peer=peer, **view))


def _attrs(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {r["prefix"]: (r["next_hop"], r["as_path"], r["origin"], r["med"],
                          r["communities"], r["large_communities"]) for r in rows}  # fmt: skip


def test_advertised_on_one_end_is_received_on_the_other(pair: dict[str, str]) -> None:
    a, b = pair["a"], pair["b"]
    wait(lambda: len(_routes(a, "10.77.0.2", received=True, pre_policy=True)) == 2,
         "A holds both of B's routes before policy")  # fmt: skip
    wait(lambda: _routes(b, "10.77.0.1", received=True), "B received A's route")
    b_sent = _routes(b, "10.77.0.1", advertised=True)
    a_pre = _routes(a, "10.77.0.2", received=True, pre_policy=True)
    a_post = _routes(a, "10.77.0.2", received=True)
    # What B says it sent is, attribute for attribute, what A says it got before policy.
    assert _attrs(b_sent) == _attrs(a_pre)
    assert set(_attrs(b_sent)) == {"10.202.0.0/24", "10.202.1.0/24"}
    assert _attrs(b_sent)["10.202.0.0/24"] == ("10.77.0.2", "65002", "igp", None, ["65002:1"],
                                               ["65002:2:3"])  # fmt: skip
    # After A's import policy one is left, the best path, from B.
    assert [(r["prefix"], r["peer"], r["best"]) for r in a_post] == [
        ("10.202.0.0/24", "10.77.0.2", True)
    ]
    # And the other way round: A's Adj-RIB-Out to B is B's Adj-RIB-In (B accepts all).
    a_sent = _routes(a, "10.77.0.2", advertised=True)
    b_post = _routes(b, "10.77.0.1", received=True)
    assert _attrs(a_sent) == _attrs(b_post)
    assert set(_attrs(a_sent)) == {"10.201.0.0/24"}  # B's own route is not sent back to B
    # Filters: a prefix, an address inside one, a family.
    assert [r["prefix"] for r in ask(a, "show.routes", peer="10.77.0.2", advertised=True,
                                     prefix="10.201.0.9")] == ["10.201.0.0/24"]  # fmt: skip
    assert ask(a, "show.routes", peer="10.77.0.2", advertised=True, family="ipv6") == []
    # B keeps nothing before policy, and says so.
    with pytest.raises(APIError, match="before import policy are not kept: set "
                       "soft_reconfiguration = true"):  # fmt: skip
        ask(b, "show.routes", peer="10.77.0.1", received=True, pre_policy=True)


def test_peer_detail_matches_the_other_end(
    pair: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pair["a"], pair["b"]
    wait(lambda: _routes(b, "10.77.0.1", received=True) and _routes(a, "10.77.0.2", received=True),
         "routes both ways")  # fmt: skip
    at_a = ask(a, "show.peer", address="10.77.0.2")
    at_b = ask(b, "show.peer", address="10.77.0.1")
    assert at_a["state"] == at_b["state"] == "Established"
    # One end's OPEN is the other's: capabilities sent here are received there.
    assert at_a["capabilities"]["received"] == at_b["capabilities"]["sent"]
    assert at_b["capabilities"]["received"] == at_a["capabilities"]["sent"]
    assert "multiprotocol: ipv4-unicast" in at_a["capabilities"]["sent"]
    assert "4-octet-as: 65001" in at_a["capabilities"]["sent"]
    assert at_a["timers"]["configured"]["hold_time"] == 30
    assert at_a["timers"]["negotiated"] == at_b["timers"]["negotiated"] == {
        "hold_time": 30, "keepalive": 10}  # fmt: skip
    # Route counts agree with the lists, and with the other end.
    assert at_a["routes"]["received"]["ipv4"] == 1
    assert at_a["routes"]["received_pre_policy"] == {"ipv4": 2}
    assert at_b["routes"]["received_pre_policy"] is None
    assert at_b["routes"]["advertised"]["ipv4"] == 2
    assert at_a["routes"]["advertised"]["ipv4"] == at_b["routes"]["received"]["ipv4"] == 1
    assert at_a["messages_in"]["open"] >= 1 and at_a["messages_in"]["update"] >= 1
    # The human view prints every section.
    assert main(["show", "peer", "10.77.0.2", "--socket", a]) == 0
    text = capsys.readouterr().out
    for needle in ("state Established", "negotiated hold 30 s, keepalive 10 s",
                   "capabilities received:", "  4-octet-as: 65002", "MESSAGES",
                   "prefixes received: ipv4 1 (after import policy); before policy: ipv4 2",
                   "graceful restart:", "last error: none"):  # fmt: skip
        assert needle in text, text
    assert main(["show", "routes", "--peer", "10.77.0.2", "--advertised", "--socket", a]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["PREFIX", "NEXT", "HOP", "AS", "PATH", "ORIGIN", "LOCAL_PREF",
                                "MED", "COMMUNITIES"]  # fmt: skip
    assert table[1].split()[:4] == ["10.201.0.0/24", "10.77.0.1", "65001", "igp"]
    assert main(["show", "routes", "--socket", a]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "LOCAL_PREF" in rows[0] and "COMMUNITIES" in rows[0] and "AGE" in rows[0]
    assert any("65002:1 65002:2:3" in r for r in rows), rows
    # Every path has an age (H:MM:SS): the session came up moments ago, so under an hour.
    ages = [w for r in rows[1:] for w in r.split() if w.count(":") == 2 and w.startswith("0:")]
    assert len(ages) == len(rows) - 1, rows
    routes = ControlClient(a).request("show.routes")
    assert all(r["age"] is not None and 0 <= r["age"] < 3600 for r in routes), routes
