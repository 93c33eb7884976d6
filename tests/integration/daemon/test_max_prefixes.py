"""A peer over its `max_prefixes` limit, end to end through `podbgp run`.

Two daemons in two namespaces on one veth: the receiver `r` peers with the sender
`s` with `max_prefixes = 3`, and `s` originates four prefixes. The receiver closes
the session with Cease / Maximum Number of Prefixes Reached (RFC 4486 §4, code 6
subcode 1) — the sender's own `show peers` reports the NOTIFICATION it decoded —
and then, per `bgp.max_prefixes_restart` (docs/configuration.md):

- `2`: the receiver re-enables the peer by itself, no sooner than 2 s after the
  Cease, and the session comes back;
- `0`: the peer stays administratively down (the sender keeps dialling in and is
  refused) until `podbgp peer enable`, and then comes back.

Before the session comes back the sender is reloaded (SIGHUP) to originate two
prefixes only, so the new session stays Established and can be observed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import wait

from podbgp.api import APIError, ControlClient
from podbgp.lab.netns import Netns, NetnsGroup

pytestmark = [pytest.mark.root]

R_ADDR, S_ADDR = "10.98.0.1", "10.98.0.2"
R_AS, S_AS = 64601, 64602
LIMIT = 3
CEASE, MAX_PREFIXES, HARD_RESET = 6, 1, 9

CONFIG = """
[node]
name = "{name}"
asn = {asn}
address = "{address}/24"

[bgp]
listen = ["{address}"]
mesh = false
connect_retry = 1
max_prefixes_restart = {restart}

[[bgp.peer]]
address = "{peer}"
asn = {peer_asn}
families = ["ipv4"]
import = "all"
export = "{export}"
max_prefixes = {limit}
{originate}
[datastore]
kind = "sqlite"
path = "{dir}/podbgp.db"
create = true

[fib]
enabled = false

[api]
socket = "{dir}/podbgp.sock"
metrics = ""
"""


class Daemon:
    """One `podbgp run` in a namespace, with its config file and control socket."""

    def __init__(
        self, ns: Netns, root: Path, name: str, prefixes: list[str] | None = None, **params: Any
    ) -> None:
        self.ns, self.name, self.params = ns, name, params
        self.dir = root / name
        self.dir.mkdir()
        self.config = self.dir / "node.toml"
        self.sock = self.dir / "podbgp.sock"
        self.write(prefixes or [])
        self.log = self.dir / "podbgp.log"
        with open(self.log, "wb") as log:
            self.proc = ns.popen(
                [sys.executable, "-m", "podbgp", "run", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait(self._answers, 30, f"podbgp on {name} answers on its socket")

    def write(self, prefixes: list[str]) -> None:
        """The config file, with one `[[bgp.originate]]` per prefix."""
        originate = "".join(f'\n[[bgp.originate]]\nprefix = "{p}"\n' for p in prefixes)
        text = CONFIG.format(name=self.name, dir=self.dir, originate=originate, **self.params)
        self.config.write_text(text)

    def reload(self, prefixes: list[str]) -> None:
        self.write(prefixes)
        os.kill(self.proc.pid, signal.SIGHUP)

    def _answers(self) -> bool:
        assert self.proc.poll() is None, f"podbgp on {self.name} exited:\n{self.tail()}"
        try:
            self.client().request("show.node")
        except (APIError, OSError):
            return False
        return True

    def client(self) -> ControlClient:
        return ControlClient(str(self.sock))

    def peer(self, address: str) -> dict[str, Any]:
        rows = {p["address"]: p for p in self.client().request("show.peers")}
        return dict(rows[address])

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def _prefixes(n: int) -> list[str]:
    return [f"10.201.{i}.0/24" for i in range(n)]


def _lab(netns: NetnsGroup, tmp_path: Path, restart: int) -> tuple[Daemon, Daemon]:
    r, s = netns.add("r"), netns.add("s")
    netns.veth(r, "eth0", s, "eth0")
    r.ip("addr", "add", f"{R_ADDR}/24", "dev", "eth0")
    s.ip("addr", "add", f"{S_ADDR}/24", "dev", "eth0")
    sender = Daemon(s, tmp_path, "s", asn=S_AS, address=S_ADDR, peer=R_ADDR, peer_asn=R_AS,
                    export="all", limit=0, restart=60, prefixes=_prefixes(LIMIT + 1))  # fmt: skip
    receiver = Daemon(r, tmp_path, "r", asn=R_AS, address=R_ADDR, peer=S_ADDR, peer_asn=S_AS,
                      export="none", limit=LIMIT, restart=restart)  # fmt: skip
    return receiver, sender


def _ceased(receiver: Daemon, sender: Daemon) -> dict[str, Any]:
    """Wait for the Cease as sent by the receiver and as decoded by the sender: a Hard
    Reset carrying 6/1 (RFC 8538 §5.1: max-prefix MUST be a Hard Reset, so the sender
    does not keep the receiver's routes as stale); returns the receiver's view."""

    def sent() -> dict[str, Any]:
        p = receiver.peer(S_ADDR)
        err = p["last_error"] or {}
        ok = (err.get("code"), err.get("subcode"), err.get("direction")) == (
            CEASE,
            HARD_RESET,
            "sent",
        ) and (err.get("inner_code"), err.get("inner_subcode")) == (CEASE, MAX_PREFIXES)
        return p if ok else {}  # fmt: skip

    def received() -> dict[str, Any]:
        err = sender.peer(R_ADDR)["last_error"] or {}
        ok = (err.get("code"), err.get("subcode"), err.get("direction")) == (
            CEASE,
            HARD_RESET,
            "received",
        ) and (err.get("inner_code"), err.get("inner_subcode")) == (CEASE, MAX_PREFIXES)
        return err if ok else {}  # fmt: skip

    view = wait(sent, 30, f"r sends Cease {CEASE}/{MAX_PREFIXES}\n{receiver.tail()}")
    wait(received, 10, f"s receives Cease {CEASE}/{MAX_PREFIXES}\n{sender.tail()}")
    assert view["flaps"] >= 1, view  # it was Established before
    # One text on both ends: the names of the Hard Reset and the error inside it.
    assert view["last_error"]["reason"].endswith("(Cease/Maximum Prefixes Reached)"), view
    return view


def _back(receiver: Daemon) -> dict[str, Any]:
    """Wait until the session is Established again with the sender's two prefixes."""

    def up() -> dict[str, Any]:
        p = receiver.peer(S_ADDR)
        return p if p["state"] == "Established" and p["prefixes_received"] == 2 else {}

    return wait(up, 30, f"the session back with 2 prefixes\n{receiver.tail()}")


def test_max_prefixes_restart_after_delay(netns: NetnsGroup, tmp_path: Path) -> None:
    restart = 2
    receiver, sender = _lab(netns, tmp_path, restart)
    _ceased(receiver, sender)
    sender.reload(_prefixes(2))
    peer = _back(receiver)
    assert peer["admin"] == "up"
    # The session came back by itself, and not before the configured delay after
    # the Cease that took it down (the last one: the session has stayed up since).
    assert peer["established_at"] - peer["last_error"]["time"] >= restart - 0.1, peer
    assert peer["last_error"]["code"] == CEASE
    # `show peers --json`: prefixes_in/out carry the RIB's figures (docs/control-api.md).
    assert (peer["prefixes_in"], peer["prefixes_out"]) == (2, 0), peer
    back = sender.peer(R_ADDR)
    assert back["state"] == "Established"
    assert (back["prefixes_out"], back["prefixes_advertised"]) == (2, 2), back
    # ... and the human table shows them with the negotiated capabilities.
    table = subprocess.run(
        [sys.executable, "-m", "podbgp", "show", "peers", "--socket", str(receiver.sock)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    row = next(line.split() for line in table if line.startswith(S_ADDR))
    assert row[2] == "Established" and row[5] == "2/0", table
    assert {"mp4", "as4"} <= set(row[6:]), table
    error = next(line for line in table if line.startswith("    last error: "))
    assert error.split()[2:5] == ["sent", "6/9", "(6/1)"], table
    assert error.endswith("Cease/Hard Reset (Cease/Maximum Prefixes Reached)"), table


def test_max_prefixes_restart_0_stays_down_until_enable(netns: NetnsGroup, tmp_path: Path) -> None:
    receiver, sender = _lab(netns, tmp_path, 0)
    first = _ceased(receiver, sender)
    sender.reload(_prefixes(2))
    # Down for good: the sender dials in every second (connect_retry = 1, backing
    # off) and is refused; nothing re-enables the peer.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        p = receiver.peer(S_ADDR)
        assert p["admin"] == "down", p
        assert p["state"] != "Established", p
        assert p["flaps"] == first["flaps"], p
        time.sleep(0.3)
    out = subprocess.run(
        [sys.executable, "-m", "podbgp", "peer", "enable", S_ADDR,
         "--socket", str(receiver.sock)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert S_ADDR in out
    peer = _back(receiver)
    assert peer["admin"] == "up"
    assert peer["flaps"] == first["flaps"]


def test_operator_shutdown_cancels_the_pending_restart(netns: NetnsGroup, tmp_path: Path) -> None:
    """`podbgp peer shutdown` during the delay wins: the peer is not re-enabled."""
    restart = 2
    receiver, sender = _lab(netns, tmp_path, restart)
    first = _ceased(receiver, sender)
    receiver.client().request("peer.shutdown", address=S_ADDR, message="maintenance")
    deadline = time.monotonic() + restart + 3
    while time.monotonic() < deadline:
        p = receiver.peer(S_ADDR)
        assert (p["admin"], p["flaps"]) == ("down", first["flaps"]), p
        time.sleep(0.3)
