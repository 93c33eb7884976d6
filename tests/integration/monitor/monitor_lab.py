"""Three real `podbgp run` daemons in one namespace for the monitoring tests.

A (10.78.0.1, AS 65001) is the node under test: it peers with B (10.78.0.2,
AS 65002; ADD-PATH, A receives path identifiers) and C (10.78.0.3, AS 65003;
no ADD-PATH). B and C both originate 10.210.0.0/24, so A holds two paths for it;
B adds 10.211.0.0/24 with a community, C 10.212.0.0/24, and A originates
10.200.0.0/24 itself. ``extra_a`` is more TOML for A (a BMP station, [mrt]).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podbgp.api import APIError, ControlClient
from podbgp.lab.netns import Netns

IPS = {"a": "10.78.0.1", "b": "10.78.0.2", "c": "10.78.0.3"}
ASNS = {"a": 65001, "b": 65002, "c": 65003}
PORTS = {"a": 17911, "b": 17912, "c": 17913}
PEERS = {"a": ("b", "c"), "b": ("a",), "c": ("a",)}
ADD_PATH = {("a", "b"): "receive", ("b", "a"): "send"}
ORIGINATE = {
    "a": [("10.200.0.0/24", "")],
    "b": [("10.210.0.0/24", ""), ("10.211.0.0/24", 'communities = ["65002:11"]')],
    "c": [("10.210.0.0/24", ""), ("10.212.0.0/24", "")],
}

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
{peers}
{originate}
[fib]
enabled = false

[api]
socket = "{sock}"
metrics = ""
{extra}
"""

PEER = """
[[bgp.peer]]
address = "{ip}"
asn = {asn}
port = {port}
local_address = "{me}"
add_path = "{add_path}"
{more}
"""


def config(name: str, sock: str, extra: str = "", peer_extra: dict[str, str] | None = None) -> str:
    """A node's config; ``peer_extra`` adds lines to its peer sections, by peer name."""
    more = peer_extra or {}
    peers = "".join(
        PEER.format(ip=IPS[o], asn=ASNS[o], port=PORTS[o], me=IPS[name],
                    add_path=ADD_PATH.get((name, o), "off"), more=more.get(o, ""))
        for o in PEERS[name]
    )  # fmt: skip
    originate = "".join(
        f'\n[[bgp.originate]]\nprefix = "{p}"\n{more}\n' for p, more in ORIGINATE[name]
    )
    return NODE.format(name=name, asn=ASNS[name], ip=IPS[name], port=PORTS[name], peers=peers,
                       originate=originate, sock=sock, extra=extra)  # fmt: skip


@dataclass
class Trio:
    ns: Netns
    tmp: Path
    socks: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, extra: str = "", peer_extra: dict[str, str] | None = None) -> None:
        sock = self.socks.setdefault(name, str(self.tmp / f"{name}.sock"))
        path = self.tmp / f"{name}.toml"
        path.write_text(config(name, sock, extra, peer_extra))
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        with log:
            proc = self.ns.popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                                 stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.procs[name] = proc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ControlClient(sock, timeout=2).request("show.node")
                return
            except APIError:
                time.sleep(0.1)
        proc.kill()
        pytest.fail(f"podbgp {name} did not start:\n{self.log(name)}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def ask(self, name: str, cmd: str, **args: Any) -> Any:
        return ControlClient(self.socks[name]).request(cmd, **args)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def make(ns: Netns, tmp: Path) -> Trio:
    ns.ip("link", "set", "lo", "up")
    for ip in IPS.values():
        ns.ip("addr", "add", f"{ip}/32", "dev", "lo")
    return Trio(ns, tmp)


def wait(check: Callable[[], Any], what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout}s (last: {value!r})")
        time.sleep(0.2)


def converged(trio: Trio) -> bool:
    """A holds both paths of 10.210.0.0/24 and one of every other prefix."""
    rows = trio.ask("a", "show.routes")
    by = {}
    for r in rows:
        by.setdefault(r["prefix"], []).append(r["peer"])
    want = {"10.200.0.0/24": 1, "10.210.0.0/24": 2, "10.211.0.0/24": 1, "10.212.0.0/24": 1}
    return {p: len(v) for p, v in by.items()} == want
