"""ExaBGP 4.2 as a reference peer.

ExaBGP has no query CLI here (Debian's CLI needs named pipes we switch off), so the runner gives
it an API process (`api.py`, written into the scratch dir) that appends everything ExaBGP
reports (JSON: state changes and parsed UPDATEs) to ``received.jsonl`` and relays lines written
to the FIFO ``cmd.fifo`` to ExaBGP as commands (`announce route ...`, `withdraw route ...`).
`routes()` and `neighbor_state()` replay ``received.jsonl``.  Debian's exabgp.env drops
privileges to `exabgp` and enables the CLI; both are overridden with dotted environment
variables (RECIPES.md §5a).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from podbgp.lab.peers_base import (
    BgpConfig,
    Daemon,
    DaemonError,
    Neighbor,
    Route,
    empty_path,
    normalise_prefix,
)

EXABGP = shutil.which("exabgp") or "/usr/sbin/exabgp"
# ExaBGP runs on Debian's python3; the API helper only needs the standard library.
API_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

API_SCRIPT = """\
import os, sys, threading
D = sys.argv[1]
def rx():
    with open(os.path.join(D, "received.jsonl"), "a") as f:
        for line in sys.stdin:
            f.write(line)
            f.flush()
    os._exit(0)
threading.Thread(target=rx, daemon=True).start()
open(os.path.join(D, "api.ready"), "w").close()
while True:
    with open(os.path.join(D, "cmd.fifo")) as p:
        for line in p:
            sys.stdout.write(line)
            sys.stdout.flush()
"""


def route_command(route: Route, verb: str = "announce") -> str:
    """An ExaBGP API command announcing (or withdrawing) `route` with next-hop self."""
    words = [verb, "route", route.prefix, "next-hop", route.next_hop or "self"]
    if verb == "announce":
        if route.communities:
            words += ["community", "[" + " ".join(route.communities) + "]"]
        if route.large_communities:
            words += ["large-community", "[" + " ".join(route.large_communities) + "]"]
        if route.med is not None:
            words += ["med", str(route.med)]
        if route.local_pref is not None:
            words += ["local-preference", str(route.local_pref)]
        if route.as_path:
            words += ["as-path", "[" + " ".join(str(a) for a in route.as_path) + "]"]
    return " ".join(words)


def _neighbor(cfg: BgpConfig, n: Neighbor, local: str) -> list[str]:
    out = [f"neighbor {n.address} {{", f"    router-id {cfg.router_id};"]
    out += [f"    local-address {local};", f"    local-as {cfg.asn};", f"    peer-as {n.asn};"]
    out.append(f"    hold-time {cfg.hold_time};")
    if n.description:
        out.append(f'    description "{n.description}";')
    if n.passive:
        out.append("    passive true;")
    if n.password:
        out.append(f"    md5-password {n.password};")
    if n.ttl_security:
        out += ["    outgoing-ttl 255;", f"    incoming-ttl {256 - n.ttl_security};"]
    if n.multihop:
        out.append(f"    outgoing-ttl {n.multihop};")
    out.append("    family { " + " ".join(f"{f} unicast;" for f in n.families) + " }")
    caps = []
    if n.graceful_restart:
        caps.append(f"graceful-restart {n.restart_time};")
    if n.add_path:
        caps.append(f"add-path {n.add_path if n.add_path != 'both' else 'send/receive'};")
    if caps:
        out.append("    capability { " + " ".join(caps) + " }")
    out.append("    api { processes [ relay ]; neighbor-changes; receive { parsed; update; } }")
    routes = [r for r in cfg.routes if r.family in n.families]
    if routes:
        out.append("    static {")
        out += [f"        {route_command(r).removeprefix('announce ')};" for r in routes]
        out.append("    }")
    return [*out, "}"]


def render_exabgp(cfg: BgpConfig, api: str, workdir: str, locals_: dict[str, str]) -> str:
    """exabgp.conf for `cfg`; `locals_` maps each neighbour to the local address to use."""
    out = [f"process relay {{ run {API_PYTHON} {api} {workdir}; encoder json; }}"]
    for n in cfg.neighbors:
        out += _neighbor(cfg, n, locals_[n.address])
    return "\n".join(out) + "\n"


def _pairs(values: list[list[int]]) -> list[str]:
    return [":".join(str(x) for x in v) for v in values]


def _path_from_attrs(attrs: dict[str, Any], next_hop: str) -> dict[str, Any]:
    out = empty_path()
    out["as_path"] = [int(a) for a in attrs.get("as-path", [])]
    out["med"] = attrs.get("med")
    out["local_pref"] = attrs.get("local-preference")
    out["communities"] = _pairs(attrs.get("community", []))
    out["large_communities"] = _pairs(attrs.get("large-community", []))
    out["next_hop"] = next_hop
    out["originator_id"] = attrs.get("originator-id")
    out["cluster_list"] = list(attrs.get("cluster-list", []))
    out["best"] = True  # ExaBGP keeps no RIB: each peer's latest path is reported as is
    return out


class Exabgp(Daemon):
    """ExaBGP in a namespace; state and routes are replayed from its API process's log."""

    name = "exabgp"
    binaries = (EXABGP,)

    @property
    def fifo(self) -> str:
        return str(self.dir / "cmd.fifo")

    @property
    def received_log(self) -> str:
        return str(self.dir / "received.jsonl")

    def _local_address(self, n: Neighbor) -> str:
        if n.local_address:
            return n.local_address
        out = self.ns.ip("route", "get", n.address)
        words = out.split()
        if "src" not in words:
            raise DaemonError(f"exabgp: no source address towards {n.address}: {out}")
        return words[words.index("src") + 1]

    def _write_config(self) -> None:
        api = self.dir / "api.py"
        api.write_text(API_SCRIPT)
        for f in ("api.ready", "received.jsonl"):
            (self.dir / f).unlink(missing_ok=True)
        if not os.path.exists(self.fifo):
            os.mkfifo(self.fifo)
        locals_ = {n.address: self._local_address(n) for n in self.config.neighbors}
        text = render_exabgp(self.config, str(api), str(self.dir), locals_)
        (self.dir / "exabgp.conf").write_text(text)

    def _spawn(self) -> list[subprocess.Popen[bytes]]:
        env = [
            "exabgp.daemon.user=root",
            "exabgp.daemon.drop=false",
            "exabgp.api.cli=false",
            "exabgp.api.ack=false",
            f"exabgp.log.destination={self.dir / 'exabgp.log'}",
        ]
        # ExaBGP listens only when told where: on the local address of each passive
        # neighbour, plus `listen_addresses` (so an active neighbour can also be dialled in).
        binds = {self._local_address(n) for n in self.config.neighbors if n.passive}
        binds.update(self.config.listen_addresses)
        if binds:
            env.append(f"exabgp.tcp.bind={' '.join(sorted(binds))}")
        if self.config.port != 179:
            env.append(f"exabgp.tcp.port={self.config.port}")
        args = ["env", *env, EXABGP, str(self.dir / "exabgp.conf")]
        return [self._popen(args, "exabgp.out")]

    def _ready(self) -> bool:
        return (self.dir / "api.ready").exists()

    def command(self, line: str, timeout: float = 5.0) -> None:
        """Send one API command through the FIFO (waits for the API process to open it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise DaemonError(f"exabgp API FIFO not open: {exc}") from exc
                time.sleep(0.05)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
        finally:
            os.close(fd)

    # -- queries ----------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """Every JSON object ExaBGP gave its API process, oldest first."""
        try:
            with open(self.received_log) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line still being written
        return out

    def neighbor_info(self, address: str) -> dict[str, Any]:
        """The latest `state` event for `address` (empty before the first one)."""
        info: dict[str, Any] = {}
        for ev in self.events():
            if ev.get("type") == "state" and self._peer(ev) == address:
                info = ev
        return info

    @staticmethod
    def _peer(ev: dict[str, Any]) -> str | None:
        peer = ev.get("neighbor", {}).get("address", {}).get("peer")
        return str(peer) if peer is not None else None

    def neighbor_state(self, address: str) -> str:
        state = self.neighbor_info(address).get("neighbor", {}).get("state")
        return {"up": "Established", "connected": "OpenSent"}.get(str(state), "Active")

    def routes(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """Replay UPDATEs per peer; a session going down flushes that peer's routes."""
        per_peer: dict[str, dict[str, dict[str, Any]]] = {}
        key = f"{family} unicast"
        for ev in self.events():
            peer = self._peer(ev) or ""
            if ev.get("type") == "state" and ev.get("neighbor", {}).get("state") == "down":
                per_peer.pop(peer, None)
            if ev.get("type") != "update":
                continue
            update = ev.get("neighbor", {}).get("message", {}).get("update", {})
            table = per_peer.setdefault(peer, {})
            for w in update.get("withdraw", {}).get(key, []):
                table.pop(normalise_prefix(w["nlri"]), None)
            for nh, nlris in update.get("announce", {}).get(key, {}).items():
                for n in nlris:
                    path = _path_from_attrs(update.get("attribute", {}), nh)
                    table[normalise_prefix(n["nlri"])] = path
        out: dict[str, list[dict[str, Any]]] = {}
        for table in per_peer.values():
            for prefix, path in table.items():
                out.setdefault(prefix, []).append(path)
        return out

    def announce(self, prefix: str, **attrs: Any) -> None:
        route = self._route_from_kwargs(prefix, attrs)
        self.command(route_command(route))
        self._remember(route)

    def withdraw(self, prefix: str) -> None:
        prefix = normalise_prefix(prefix)
        self.command(route_command(Route(prefix), "withdraw"))
        self._forget(prefix)

    def shutdown_neighbor(self, address: str, message: str | None = None) -> None:
        """`neighbor X teardown 2`: Cease / Administrative Shutdown (no text in 4.2)."""
        self.command(f"neighbor {address} teardown 2")
