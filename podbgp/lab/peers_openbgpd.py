"""OpenBGPD 7.7 (portable) as a reference peer.

bgpd runs as root and forks its session engine and RDE as `_openbgpd`, chrooted into
``/run/openbgpd`` (which is on tmpfs, so it is created here when missing).  The control socket
lives in the scratch dir; `bgpctl -j` gives JSON for neighbours and the RIB, and
`bgpctl network add|delete` injects routes at runtime.  `fib-update no` unless routes should be
installed in the namespace's kernel table.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from podbgp.lab.peers_base import (
    BgpConfig,
    Daemon,
    DaemonError,
    ListenRange,
    Neighbor,
    Route,
    empty_path,
    normalise_prefix,
    run_cmd,
)

BGPD = "/usr/sbin/bgpd"
BGPCTL = "/usr/sbin/bgpctl"
CHROOT = "/run/openbgpd"
_AFI = {"ipv4": "IPv4", "ipv6": "IPv6"}
_STATES = {
    "idle": "Idle",
    "connect": "Connect",
    "active": "Active",
    "opensent": "OpenSent",
    "openconfirm": "OpenConfirm",
    "established": "Established",
}


def set_clause(route: Route) -> list[str]:
    """The words after `set` for `network` / `bgpctl network add` (empty: no attributes)."""
    words: list[str] = []
    for c in route.communities:
        words += ["community", c]
    for c in route.large_communities:
        words += ["large-community", c]
    if route.med is not None:
        words += ["metric", str(route.med)]
    if route.local_pref is not None:
        words += ["localpref", str(route.local_pref)]
    if route.next_hop:
        words += ["nexthop", route.next_hop]
    return words


def _network(route: Route) -> str:
    words = set_clause(route)
    return f"network {route.prefix}" + (f" set {{ {' '.join(words)} }}" if words else "")


def _families(families: tuple[str, ...]) -> list[str]:
    return [
        f"    announce {_AFI[f]} {'unicast' if f in families else 'none'}" for f in ("ipv4", "ipv6")
    ]


def _neighbor(cfg: BgpConfig, n: Neighbor) -> list[str]:
    out = [f"neighbor {n.address} {{", f"    remote-as {n.asn}", f"    holdtime {cfg.hold_time}"]
    out.append(f'    descr "{n.description or n.address}"')
    if n.password:
        out.append(f'    tcp md5sig password "{n.password}"')
    if n.passive:
        out.append("    passive")
    if n.ttl_security:
        out.append("    ttl-security yes")
    if n.multihop:
        out.append(f"    multihop {n.multihop}")
    if n.local_address:
        out.append(f"    local-address {n.local_address}")
    if n.rr_client:
        out.append("    route-reflector" + (f" {cfg.cluster_id}" if cfg.cluster_id else ""))
    if n.graceful_restart:
        out.append("    announce restart yes")
    if n.add_path in ("receive", "both"):
        out.append("    announce add-path recv yes")
    if n.add_path in ("send", "both"):
        out.append("    announce add-path send all")
    if n.next_hop_self:
        out.append("    set nexthop self")
    return [*out, *_families(n.families), "}"]


def _template(cfg: BgpConfig, lr: ListenRange) -> list[str]:
    out = [f"neighbor {lr.prefix} {{", f"    holdtime {cfg.hold_time}"]
    if lr.asn:
        out.append(f"    remote-as {lr.asn}")
    if lr.password:
        out.append(f'    tcp md5sig password "{lr.password}"')
    return [*out, "    passive", *_families(lr.families), "}"]


def render_bgpd(cfg: BgpConfig, socket: str) -> str:
    """bgpd.conf for `cfg` (OpenBGPD 7.7 syntax)."""
    out = [f"AS {cfg.asn}", f"router-id {cfg.router_id}", f'socket "{socket}"']
    out.append(f"fib-update {'yes' if cfg.install_routes else 'no'}")
    out.append(f"holdtime {cfg.hold_time}")
    if cfg.port != 179:
        out.append(f"port {cfg.port}")  # untested
    out += [f"listen on {a}" for a in cfg.listen_addresses]
    out += [_network(r) for r in cfg.routes]
    for n in cfg.neighbors:
        out += _neighbor(cfg, n)
    for lr in cfg.listen_ranges:
        out += _template(cfg, lr)
    # Without filter rules OpenBGPD accepts and announces nothing.
    out += ["allow from any", "allow to any"]
    return "\n".join(out) + "\n"


def _normalise_rib_entry(e: dict[str, Any]) -> dict[str, Any]:
    out = empty_path()
    aspath = str(e.get("aspath", ""))
    out["as_path"] = [int(x) for x in aspath.split() if x.isdigit()]
    out["med"] = e.get("metric")
    out["local_pref"] = e.get("localpref")
    out["next_hop"] = e.get("exit_nexthop")
    comms = e.get("communities") or []
    out["communities"] = [str(c) for c in comms if str(c).count(":") == 1]
    out["large_communities"] = [str(c) for c in e.get("large_communities") or []]
    out["originator_id"] = e.get("originator_id")
    out["cluster_list"] = list(e.get("cluster_list") or [])
    out["best"] = bool(e.get("best", False))
    out["stale"] = bool(e.get("stale", False))
    out["valid"] = bool(e.get("valid", True))
    return out


class Openbgpd(Daemon):
    """OpenBGPD in a namespace, driven through bgpctl on a private control socket."""

    name = "openbgpd"
    binaries = (BGPD, BGPCTL)

    @property
    def sock(self) -> str:
        return str(self.dir / "bgpd.sock")

    def bgpctl(self, *args: str, timeout: float = 10) -> str:
        return run_cmd([BGPCTL, "-s", self.sock, *args], timeout=timeout)

    def bgpctl_json(self, *args: str) -> Any:
        out = run_cmd([BGPCTL, "-j", "-s", self.sock, *args])
        return json.loads(out) if out.strip() else {}

    def _write_config(self) -> None:
        os.makedirs(CHROOT, exist_ok=True)
        conf = self.dir / "bgpd.conf"
        conf.write_text(render_bgpd(self.config, self.sock))
        os.chmod(conf, 0o600)
        check = subprocess.run(
            [BGPD, "-n", "-f", str(conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise DaemonError(f"openbgpd rejects its config: {check.stderr.strip()}")

    def _spawn(self) -> list[subprocess.Popen[bytes]]:
        return [self._popen([BGPD, "-d", "-f", str(self.dir / "bgpd.conf")], "bgpd.log")]

    def _ready(self) -> bool:
        try:
            self.bgpctl("show", "summary", timeout=3)
            return True
        except DaemonError:
            return False

    # -- queries ----------------------------------------------------------------------------
    def neighbor_info(self, address: str) -> dict[str, Any]:
        data = self.bgpctl_json("show", "neighbor", address)
        for n in data.get("neighbors", []):
            if n.get("remote_addr") == address:
                info: dict[str, Any] = n
                return info
        raise KeyError(f"openbgpd has no neighbor {address}")

    def neighbor_state(self, address: str) -> str:
        state = str(self.neighbor_info(address).get("state", "Idle"))
        return _STATES.get(state.lower(), state)

    def routes(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        data = self.bgpctl_json("show", "rib", "detail", "inet" if family == "ipv4" else "inet6")
        out: dict[str, list[dict[str, Any]]] = {}
        for e in data.get("rib", []):
            out.setdefault(normalise_prefix(e["prefix"]), []).append(_normalise_rib_entry(e))
        return out

    def announce(self, prefix: str, **attrs: Any) -> None:
        route = self._route_from_kwargs(prefix, attrs)
        self.bgpctl("network", "add", route.prefix, *set_clause(route))
        self._remember(route)

    def withdraw(self, prefix: str) -> None:
        prefix = normalise_prefix(prefix)
        self.bgpctl("network", "delete", prefix)
        self._forget(prefix)

    def shutdown_neighbor(self, address: str, message: str | None = None) -> None:
        args = ["neighbor", address, "down"]
        if message:
            args.append(message)
        self.bgpctl(*args)

    def enable_neighbor(self, address: str) -> None:
        self.bgpctl("neighbor", address, "up")
