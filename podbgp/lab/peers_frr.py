"""FRR 8.4 (zebra + bgpd) as a reference peer, one private instance per namespace.

Each instance keeps its vty sockets, zserv socket, pid files and logs in ``DIR/run`` (owned by
the `frr` user, which the daemons drop to; FRR refuses `-u root` because root is not in the
frrvty group).  bgpd is started only once zebra's vty answers: a bgpd that starts earlier cannot
register next hops and installs learned routes ~8 s late (RECIPES.md §2).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from podbgp.lab.peers_base import (
    BgpConfig,
    Daemon,
    DaemonError,
    Neighbor,
    Route,
    empty_path,
    family_of,
    normalise_prefix,
    run_cmd,
    wait_for,
)

FRR_LIB = "/usr/lib/frr"
VTYSH = shutil.which("vtysh") or "/usr/bin/vtysh"
_AFI = {"ipv4": "ipv4 unicast", "ipv6": "ipv6 unicast"}


def make_traversable(path: Path) -> None:
    """Let the `frr` user reach `path`: pytest's tmp dirs are mode 0700 (adds o+x only)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def route_map_name(route: Route) -> str:
    return "RM-" + route.prefix.replace("/", "-").replace(":", "_").replace(".", "_")


def _route_map(route: Route) -> list[str]:
    sets = []
    if route.communities:
        sets.append(" set community " + " ".join(route.communities))
    if route.large_communities:
        sets.append(" set large-community " + " ".join(route.large_communities))
    if route.med is not None:
        sets.append(f" set metric {route.med}")
    if route.local_pref is not None:
        sets.append(f" set local-preference {route.local_pref}")
    if not sets:
        return []
    return [f"route-map {route_map_name(route)} permit 10", *sets, "exit"]


def _network_line(route: Route) -> str:
    line = f"  network {route.prefix}"
    if _route_map(route):
        line += f" route-map {route_map_name(route)}"
    return line


def _neighbor_lines(n: Neighbor, keepalive: int, hold: int, connect: int) -> list[str]:
    a = n.interface or n.address
    # `neighbor IF interface`: found by IPv6 RAs, extended next hop on by itself.
    head = f" neighbor {a} interface remote-as {n.asn}" if n.interface else (
        f" neighbor {a} remote-as {n.asn}")  # fmt: skip
    out = [head, f" neighbor {a} timers {keepalive} {hold}"]
    out.append(f" neighbor {a} timers connect {connect}")
    if n.description:
        out.append(f" neighbor {a} description {n.description}")
    if n.passive:
        out.append(f" neighbor {a} passive")
    if n.password:
        out.append(f" neighbor {a} password {n.password}")
    if n.ttl_security:
        out.append(f" neighbor {a} ttl-security hops {n.ttl_security}")
    if n.multihop:
        out.append(f" neighbor {a} ebgp-multihop {n.multihop}")
    if n.local_address:
        out.append(f" neighbor {a} update-source {n.local_address}")
    if n.bfd:
        out.append(f" neighbor {a} bfd profile podbgp")
    # Graceful restart is switched on globally (`bgp graceful-restart`) when any neighbour asks
    # for it: FRR 8.4 rejects the per-neighbour form in a startup config ("% Invalid value").
    return out


def _af_neighbor_lines(n: Neighbor) -> list[str]:
    a = n.interface or n.address
    out = [f"  neighbor {a} activate"]
    if n.rr_client:
        out.append(f"  neighbor {a} route-reflector-client")
    if n.next_hop_self:
        out.append(f"  neighbor {a} next-hop-self")
    if n.add_path in ("send", "both"):
        out.append(f"  neighbor {a} addpath-tx-all-paths")
    if n.add_path == "send":
        out.append(f"  neighbor {a} disable-addpath-rx")
    return out


def render_bgpd(cfg: BgpConfig) -> str:
    """bgpd.conf for `cfg` (FRR 8.4 syntax)."""
    lines = ["frr defaults datacenter", f"hostname {cfg.hostname}", "!"]
    # Route maps first: a `network ... route-map` naming a map not yet defined stays filtered
    # until bgpd's route-map delay timer (5 s) runs.
    for r in cfg.routes:
        lines += _route_map(r)
    lines += [f"router bgp {cfg.asn}", f" bgp router-id {cfg.router_id}"]
    lines += [" no bgp ebgp-requires-policy", " no bgp network import-check"]
    # Families are activated per neighbour below, never implicitly.
    lines += [" no bgp default ipv4-unicast", f" timers bgp {cfg.keepalive} {cfg.hold_time}"]
    gr = [n for n in cfg.neighbors if n.graceful_restart]
    if gr:
        lines += [
            " bgp graceful-restart",
            f" bgp graceful-restart restart-time {gr[0].restart_time}",
        ]
    if cfg.cluster_id:
        lines.append(f" bgp cluster-id {cfg.cluster_id}")
    for n in cfg.neighbors:
        lines += _neighbor_lines(n, cfg.keepalive, cfg.hold_time, cfg.connect_retry)
    for i, lr in enumerate(cfg.listen_ranges):
        group = f"RANGE{i}"
        lines += [f" neighbor {group} peer-group"]
        lines += [f" neighbor {group} remote-as {lr.asn if lr.asn else 'external'}"]
        if lr.password:
            lines.append(f" neighbor {group} password {lr.password}")
        lines.append(f" bgp listen range {lr.prefix} peer-group {group}")
    for fam in ("ipv4", "ipv6"):
        lines.append(f" address-family {_AFI[fam]}")
        lines += [_network_line(r) for r in cfg.routes if r.family == fam]
        for n in cfg.neighbors:
            if fam in n.families:
                lines += _af_neighbor_lines(n)
        for i, lr in enumerate(cfg.listen_ranges):
            if fam in lr.families:
                lines.append(f"  neighbor RANGE{i} activate")
        lines.append(" exit-address-family")
    lines.append("exit")
    return "\n".join(lines) + "\n"


def render_bfdd(cfg: BgpConfig) -> str:
    """bfdd.conf: the profile `neighbor X bfd profile podbgp` refers to."""
    return "\n".join([
        f"hostname {cfg.hostname}",
        "bfd",
        " profile podbgp",
        f"  receive-interval {cfg.bfd_interval_ms}",
        f"  transmit-interval {cfg.bfd_interval_ms}",
        f"  detect-multiplier {cfg.bfd_multiplier}",
        " exit",
        "exit",
    ]) + "\n"  # fmt: skip


def _normalise_frr_path(p: dict[str, Any]) -> dict[str, Any]:
    out = empty_path()
    aspath = p.get("aspath") or {}
    segs = aspath.get("segments") or []
    out["as_path"] = [int(x) for s in segs for x in s.get("list", [])]
    if not segs and aspath.get("string") not in (None, "", "Local"):
        out["as_path"] = [int(x) for x in str(aspath["string"]).split() if x.isdigit()]
    out["med"] = p.get("metric")
    out["local_pref"] = p.get("locPrf", p.get("localpref"))
    out["communities"] = (p.get("community") or {}).get("string", "").split()
    out["large_communities"] = (p.get("largeCommunity") or {}).get("string", "").split()
    hops = p.get("nexthops") or []
    if hops:
        out["next_hop"] = hops[0].get("ip")
    out["originator_id"] = p.get("originatorId")
    out["cluster_list"] = list((p.get("clusterList") or {}).get("list", []))
    out["best"] = bool((p.get("bestpath") or {}).get("overall", False)) or p.get("bestpath") is True
    out["stale"] = bool(p.get("stale", False))
    return out


class Frr(Daemon):
    """zebra + bgpd in a namespace; queried and changed through vtysh."""

    name = "frr"
    binaries = (f"{FRR_LIB}/zebra", f"{FRR_LIB}/bgpd", VTYSH)

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    def vtysh(self, *commands: str, daemon: str | None = None, timeout: float = 10) -> str:
        args = [VTYSH, "--vty_socket", str(self.run_dir)]
        if daemon:
            args += ["-d", daemon]
        for c in commands:
            args += ["-c", c]
        return run_cmd(args, timeout=timeout)

    def vtysh_json(self, command: str) -> Any:
        out = self.vtysh(command)
        return json.loads(out) if out.strip() else {}

    def configure(self, *lines: str) -> None:
        """Apply config lines under `router bgp ASN` at runtime."""
        self.vtysh("configure terminal", f"router bgp {self.config.asn}", *lines)

    # -- life cycle -------------------------------------------------------------------------
    def _write_config(self) -> None:
        frr = pwd.getpwnam("frr")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chown(self.run_dir, frr.pw_uid, frr.pw_gid)
        make_traversable(self.dir)
        (self.dir / "zebra.conf").write_text(f"hostname {self.config.hostname}\n")
        (self.dir / "bgpd.conf").write_text(render_bgpd(self.config))
        (self.dir / "bfdd.conf").write_text(render_bfdd(self.config))
        for f in ("zebra.conf", "bgpd.conf", "bfdd.conf"):
            os.chmod(self.dir / f, 0o644)

    def _common(self, daemon: str) -> list[str]:
        r = self.run_dir
        return [
            f"{FRR_LIB}/{daemon}",
            "-f",
            str(self.dir / f"{daemon}.conf"),
            "-i",
            str(r / f"{daemon}.pid"),
            "-z",
            str(r / "zserv.api"),
            "--vty_socket",
            str(r),
            "-P",
            "0",
            "--log",
            f"file:{r}/{daemon}.log",
        ]

    def _spawn(self) -> list[subprocess.Popen[bytes]]:
        # zebra always programs the namespace's kernel table (bgpd needs it for next-hop
        # tracking), so `install_routes` has no effect on FRR.
        zebra = self._popen(self._common("zebra"), "zebra.out")
        procs = [zebra]
        self.procs = procs
        try:
            self._wait_vty("zebra")
        except BaseException:
            self.stop()
            raise
        if any(n.bfd for n in self.config.neighbors):
            # bgpd asks bfdd for sessions through zebra; bfdd's control socket is per
            # instance (the default path is shared by every FRR on the host).
            bfdd = [*self._common("bfdd"), "--bfdctl", str(self.run_dir / "bfdd.sock")]
            procs.append(self._popen(bfdd, "bfdd.out"))
            self._wait_vty("bfdd")
        procs.append(self._popen(self._common("bgpd"), "bgpd.out"))
        return procs

    def _wait_vty(self, daemon: str) -> None:
        def probe() -> bool:
            if any(p.poll() is not None for p in self.procs):
                raise DaemonError(f"frr {daemon} exited: {self.log_tail()}")
            try:
                self.vtysh("show version", daemon=daemon, timeout=3)
                return True
            except DaemonError:
                return False

        wait_for(probe, self.start_timeout, f"frr {daemon} vty", interval=0.05)

    def _ready(self) -> bool:
        try:
            self.vtysh("show bgp summary json", daemon="bgpd", timeout=3)
            return True
        except DaemonError:
            return False

    # -- queries ----------------------------------------------------------------------------
    def neighbor_info(self, address: str) -> dict[str, Any]:
        """`show bgp neighbors X json`: bgpState, lastNotificationReason, lastShutdownDescription..."""
        data = self.vtysh_json(f"show bgp neighbors {address} json")
        if address not in data:
            raise KeyError(f"frr has no neighbor {address}: {data}")
        info: dict[str, Any] = data[address]
        return info

    def neighbor_state(self, address: str) -> str:
        state = str(self.neighbor_info(address).get("bgpState", "Idle"))
        # FRR spells the RFC states with a capital first letter already; normalise "Idle (Admin)".
        return state.split()[0] if state else "Idle"

    def routes(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        table = self.vtysh_json(f"show bgp {_AFI[family]} json").get("routes", {})
        out: dict[str, list[dict[str, Any]]] = {}
        for prefix in table:
            detail = self.vtysh_json(f"show bgp {_AFI[family]} {prefix} json")
            out[normalise_prefix(prefix)] = [
                _normalise_frr_path(p) for p in detail.get("paths", [])
            ]
        return out

    def announce(self, prefix: str, **attrs: Any) -> None:
        route = self._route_from_kwargs(prefix, attrs)
        rm = _route_map(route)
        if rm:
            self.vtysh("configure terminal", *rm)
        self.configure(f"address-family {_AFI[route.family]}", _network_line(route).strip())
        self._remember(route)

    def withdraw(self, prefix: str) -> None:
        prefix = normalise_prefix(prefix)
        self.configure(f"address-family {_AFI[family_of(prefix)]}", f"no network {prefix}")
        self._forget(prefix)

    def shutdown_neighbor(self, address: str, message: str | None = None) -> None:
        """Admin shutdown: Cease/Administrative Shutdown with an RFC 9003 message."""
        line = f"neighbor {address} shutdown"
        if message:
            line += f" message {message}"
        self.configure(line)

    def bfd_peer(self, address: str) -> dict[str, Any]:
        """`show bfd peer X json` (status, diagnostic, remote-id, intervals), {} if none."""
        out = self.vtysh(f"show bfd peer {address} json", daemon="bfdd")
        return json.loads(out) if out.strip().startswith("{") else {}

    def enable_neighbor(self, address: str) -> None:
        self.configure(f"no neighbor {address} shutdown")
