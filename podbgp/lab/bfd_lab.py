"""A BFD failure drill in namespaces: one `podbgp run` node, a peer, a link that goes dark.

Shared by the interop tests (tests/interop/test_bfd_daemons.py) and the benchmark
(`benchmarks/failover.py`):

- `PodbgpNode`: `podbgp run` in a namespace from a small config (one eBGP peer,
  originated prefixes, BFD on or off, the kernel FIB on), with its control socket.
- `drop_bgp_and_bfd(ns)`: an nftables table in `ns` that drops BGP (TCP 179) and BFD
  (UDP 3784/4784) both ways, the kernel having no netem; `restore(ns)` removes it.
- `kernel_hops(ns, prefix)`: the next hops of `prefix` in the namespace's main table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from podbgp.api import APIError, ControlClient
from podbgp.lab.netns import Netns

T = TypeVar("T")

RANGE = """
[[bgp.listen_range]]
prefix = "{prefix}"
asn = {asn}
families = ["ipv4"]
import = "all"
export = "all"
bfd = true
"""

PEER = """
[[bgp.peer]]
address = "{peer}"
asn = {peer_asn}
families = ["ipv4"]
import = "all"
export = "{export}"
bfd = {bfd}
bfd_interval_ms = {interval}
bfd_multiplier = {multiplier}
"""

NFT_TABLE = "podbgp_bfd_drill"

CONFIG = """
[node]
name = "{name}"
asn = {asn}
address = "{address}/24"

[bgp]
listen = ["{address}"]
mesh = false
connect_retry = 1
hold_time = {hold_time}
graceful_restart = {graceful_restart}

{peers}
{ranges}
{originate}
[fib]
enabled = true

[api]
socket = "{dir}/podbgp.sock"
metrics = ""
"""


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true after {timeout} s (last: {value!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class LabPeer:
    """One eBGP peer of a `PodbgpNode`: BFD on or off, and what podbgp exports to it."""

    address: str
    asn: int
    bfd: bool = True
    export: str = "all"


class PodbgpNode:
    """`podbgp run` in `ns` with eBGP `peers` and listen `ranges` ``(prefix, asn)`` (BFD on);
    a context manager that stops it (SIGTERM)."""

    def __init__(
        self,
        ns: Netns,
        workdir: Path,
        *,
        asn: int,
        address: str,
        peers: list[LabPeer],
        ranges: tuple[tuple[str, int], ...] = (),
        originate: tuple[str, ...] = (),
        interval_ms: int = 300,
        multiplier: int = 3,
        hold_time: int = 30,
        graceful_restart: bool = False,
    ) -> None:
        self.ns = ns
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.peer_address = peers[0].address if peers else ""
        blocks = "".join(
            PEER.format(peer=p.address, peer_asn=p.asn, bfd=str(p.bfd).lower(), export=p.export,
                        interval=interval_ms, multiplier=multiplier)
            for p in peers
        )  # fmt: skip
        text = CONFIG.format(
            name="podbgp", asn=asn, address=address, peers=blocks, hold_time=hold_time,
            graceful_restart=str(graceful_restart).lower(),
            ranges="".join(RANGE.format(prefix=p, asn=n) for p, n in ranges),
            dir=self.dir,
            originate="".join(f'\n[[bgp.originate]]\nprefix = "{p}"\n' for p in originate),
        )  # fmt: skip
        self.config = self.dir / "node.toml"
        self.config.write_text(text)
        self.log = self.dir / "podbgp.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PodbgpNode:
        with open(self.log, "wb") as out:
            self.proc = self.ns.popen(
                [sys.executable, "-m", "podbgp", "run", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._answers, 30, "podbgp answers on its control socket", 0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"podbgp exited:\n{self.tail()}")
        try:
            self.client().request("show.node")
        except (APIError, OSError):
            return False
        return True

    def client(self) -> ControlClient:
        return ControlClient(str(self.dir / "podbgp.sock"))

    def peer(self, address: str | None = None) -> dict[str, Any]:
        """The `show peers` row of `address` (default: the first peer)."""
        rows = {p["address"]: p for p in self.client().request("show.peers")}
        return dict(rows[address or self.peer_address])

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def drop_bgp_and_bfd(ns: Netns) -> None:
    """Drop BGP and BFD in and out of `ns` (the link stays up, as when a path goes dark)."""
    rules = f"""
table inet {NFT_TABLE} {{
  chain in {{ type filter hook input priority -10; policy accept;
    tcp dport 179 drop; tcp sport 179 drop; udp dport {{ 3784, 4784 }} drop; }}
  chain out {{ type filter hook output priority -10; policy accept;
    tcp dport 179 drop; tcp sport 179 drop; udp dport {{ 3784, 4784 }} drop; }}
}}
"""
    subprocess.run(
        ["ip", "netns", "exec", ns.name, "nft", "-f", "-"],
        input=rules.encode(), check=True, capture_output=True, timeout=10,
    )  # fmt: skip


def restore(ns: Netns) -> None:
    ns.run("nft", "delete", "table", "inet", NFT_TABLE, check=False)


def kernel_hops(ns: Netns, prefix: str) -> list[str]:
    """Next hops of `prefix` in `ns`'s main table (one, several for ECMP, none if absent)."""
    out = ns.run("ip", "-j", "route", "show", "exact", prefix)
    routes = json.loads(out) if out.strip() else []
    hops: list[str] = []
    for r in routes:
        if "gateway" in r:
            hops.append(r["gateway"])
        hops += [h["gateway"] for h in r.get("nexthops", []) if "gateway" in h]
    return sorted(hops)
