"""GoBGP 3.10 as a reference peer.

gobgpd takes its peers from a TOML file; originated routes are added through the `gobgp` CLI
after start-up (gobgpd has no static-route config).  The gRPC API listens on a unix socket in
the scratch dir, never on TCP :50051, and pprof is disabled.  A gobgpd killed with -9 leaves
`api.sock` behind and the next one fails to bind, so it is removed before every start.
"""

from __future__ import annotations

import json
import subprocess
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
)

GOBGPD = "/usr/bin/gobgpd"
GOBGP = "/usr/bin/gobgp"
_SAFI = {"ipv4": "ipv4-unicast", "ipv6": "ipv6-unicast"}
_STATES = {
    0: "Idle",
    1: "Idle",
    2: "Connect",
    3: "Active",
    4: "OpenSent",
    5: "OpenConfirm",
    6: "Established",
}


def _q(value: object) -> str:
    return json.dumps(value)


def _afi_safis(families: tuple[str, ...], add_path: str | None, gr: bool) -> list[str]:
    out: list[str] = []
    for fam in families:
        out += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]"]
        out.append(f"      afi-safi-name = {_q(_SAFI[fam])}")
        if gr:
            out += ["    [neighbors.afi-safis.mp-graceful-restart.config]", "      enabled = true"]
        if add_path:
            out.append("    [neighbors.afi-safis.add-paths.config]")
            if add_path in ("receive", "both"):
                out.append("      receive = true")
            if add_path in ("send", "both"):
                out.append("      send-max = 8")
    return out


def _neighbor(cfg: BgpConfig, n: Neighbor) -> list[str]:
    out = ["[[neighbors]]", "  [neighbors.config]"]
    out += [f"    neighbor-address = {_q(n.address)}", f"    peer-as = {n.asn}"]
    if n.password:
        out.append(f"    auth-password = {_q(n.password)}")
    if n.description:
        out.append(f"    description = {_q(n.description)}")
    out += ["  [neighbors.timers.config]", f"    hold-time = {cfg.hold_time}"]
    out += [f"    keepalive-interval = {cfg.keepalive}", f"    connect-retry = {cfg.connect_retry}"]
    out += ["  [neighbors.transport.config]", f"    passive-mode = {str(n.passive).lower()}"]
    if n.local_address:
        out.append(f"    local-address = {_q(n.local_address)}")
    if cfg.port != 179:
        out.append(f"    remote-port = {cfg.port}")
    if n.ttl_security:
        out += ["  [neighbors.ttl-security.config]", "    enabled = true"]
        out.append(f"    ttl-min = {256 - n.ttl_security}")
    if n.multihop:
        out += ["  [neighbors.ebgp-multihop.config]", "    enabled = true"]
        out.append(f"    multihop-ttl = {n.multihop}")
    if n.rr_client:
        out += ["  [neighbors.route-reflector.config]", "    route-reflector-client = true"]
        out.append(f"    route-reflector-cluster-id = {_q(cfg.cluster_id or cfg.router_id)}")
    if n.graceful_restart:
        out += ["  [neighbors.graceful-restart.config]", "    enabled = true"]
        out.append(f"    restart-time = {n.restart_time}")
    return out + _afi_safis(n.families, n.add_path, n.graceful_restart)


def render_gobgpd(cfg: BgpConfig) -> str:
    """gobgpd.toml for `cfg` (GoBGP 3 syntax)."""
    out = ["[global.config]", f"  as = {cfg.asn}", f"  router-id = {_q(cfg.router_id)}"]
    out.append(f"  port = {cfg.port}")
    if cfg.listen_addresses:
        out.append(f"  local-address-list = {_q(list(cfg.listen_addresses))}")
    for n in cfg.neighbors:
        out += _neighbor(cfg, n)
    for i, lr in enumerate(cfg.listen_ranges):
        if lr.asn is None:
            raise DaemonError("gobgp listen ranges need a fixed peer AS")
        out += ["[[peer-groups]]", "  [peer-groups.config]"]
        out += [f'    peer-group-name = "range{i}"', f"    peer-as = {lr.asn}"]
        if lr.password:
            out.append(f"    auth-password = {_q(lr.password)}")
        out += ["  [peer-groups.timers.config]", f"    hold-time = {cfg.hold_time}"]
        out.append(f"    keepalive-interval = {cfg.keepalive}")
        for fam in lr.families:
            out += ["  [[peer-groups.afi-safis]]", "    [peer-groups.afi-safis.config]"]
            out.append(f"      afi-safi-name = {_q(_SAFI[fam])}")
        out += ["[[dynamic-neighbors]]", "  [dynamic-neighbors.config]"]
        out += [f"    prefix = {_q(lr.prefix)}", f'    peer-group = "range{i}"']
    return "\n".join(out) + "\n"


def rib_add_args(route: Route, default_next_hop: str | None) -> list[str]:
    """Arguments after `gobgp global rib add -a FAMILY` for `route`."""
    args = [route.prefix]
    if route.as_path:
        args += ["aspath", ",".join(str(a) for a in route.as_path)]
    nh = route.next_hop or default_next_hop
    if nh:
        args += ["nexthop", nh]
    if route.communities:
        args += ["community", ",".join(route.communities)]
    if route.large_communities:
        args += ["large-community", ",".join(route.large_communities)]
    if route.med is not None:
        args += ["med", str(route.med)]
    if route.local_pref is not None:
        args += ["local-pref", str(route.local_pref)]
    return args


def _community(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


def _normalise_gobgp_path(p: dict[str, Any]) -> dict[str, Any]:
    out = empty_path()
    for a in p.get("attrs", []):
        t = a.get("type")
        if t == 2:
            out["as_path"] = [int(x) for s in a.get("as_paths", []) for x in s.get("asns", [])]
        elif t == 3:
            out["next_hop"] = a.get("nexthop")
        elif t == 4:
            out["med"] = a.get("metric")
        elif t == 5:
            out["local_pref"] = a.get("value")
        elif t == 8:
            out["communities"] = [_community(int(c)) for c in a.get("communities", [])]
        elif t == 9:
            out["originator_id"] = a.get("value")
        elif t == 10:
            out["cluster_list"] = list(a.get("value", []))
        elif t == 14:
            hops = a.get("nexthop") or []
            out["next_hop"] = hops[0] if isinstance(hops, list) and hops else hops or None
        elif t == 32:
            out["large_communities"] = [
                f"{v['ASN']}:{v['LocalData1']}:{v['LocalData2']}" for v in a.get("value", [])
            ]
    out["best"] = bool(p.get("best", False))
    out["stale"] = bool(p.get("stale", False))
    return out


class Gobgp(Daemon):
    """gobgpd in a namespace, driven through `gobgp --target unix://DIR/api.sock`."""

    name = "gobgp"
    binaries = (GOBGPD, GOBGP)
    # gobgpd's -l: "debug" logs each FSM transition with its reason (e.g. the code and
    # subcode of a NOTIFICATION received before Established, which its API does not keep).
    log_level: str | None = None

    @property
    def target(self) -> str:
        return f"unix://{self.dir / 'api.sock'}"

    def gobgp(self, *args: str, timeout: float = 10) -> str:
        return run_cmd([GOBGP, "--target", self.target, *args], timeout=timeout)

    def gobgp_json(self, *args: str) -> Any:
        out = self.gobgp(*args, "-j")
        return json.loads(out) if out.strip() else None

    def _write_config(self) -> None:
        (self.dir / "gobgpd.toml").write_text(render_gobgpd(self.config))
        (self.dir / "api.sock").unlink(missing_ok=True)

    def _spawn(self) -> list[subprocess.Popen[bytes]]:
        args = [GOBGPD, "-f", str(self.dir / "gobgpd.toml"), "-t", "toml"]
        args += ["--api-hosts", self.target, "--pprof-disable", "-p"]
        if self.log_level:
            args += ["-l", self.log_level]
        if any(n.graceful_restart for n in self.config.neighbors) and getattr(
            self, "_restarting", False
        ):
            args.append("-r")  # RFC 4724 restart state: peers keep our routes as stale
        return [self._popen(args, "gobgpd.log")]

    def _ready(self) -> bool:
        try:
            self.gobgp("global", timeout=3)
        except DaemonError:
            return False
        for r in self.config.routes:
            self._rib_add(r)
        return True

    def restart(self, graceful: bool = False) -> None:
        """Stop and start again; `graceful` starts gobgpd with -r (restarting speaker)."""
        self.stop()
        self._restarting = graceful
        try:
            self.start()
        finally:
            self._restarting = False

    def _default_next_hop(self, family: str) -> str | None:
        for n in self.config.neighbors:
            if n.local_address and family_of(n.local_address) == family:
                return n.local_address
        return None

    def _rib_add(self, route: Route) -> None:
        args = rib_add_args(route, self._default_next_hop(route.family))
        if route.family == "ipv6" and not route.next_hop and "nexthop" not in args:
            raise DaemonError(f"gobgp needs a next hop for {route.prefix}")
        self.gobgp("global", "rib", "add", "-a", route.family, *args)

    # -- queries ----------------------------------------------------------------------------
    def neighbor_info(self, address: str) -> dict[str, Any]:
        data = self.gobgp_json("neighbor", address)
        if isinstance(data, list):
            data = data[0] if data else None
        if not data:
            raise KeyError(f"gobgp has no neighbor {address}")
        info: dict[str, Any] = data
        return info

    def neighbor_state(self, address: str) -> str:
        state = self.neighbor_info(address).get("state", {}).get("session_state", 0)
        return _STATES.get(int(state), "Idle")

    def routes(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        data = self.gobgp_json("global", "rib", "-a", family) or {}
        return {
            normalise_prefix(prefix): [_normalise_gobgp_path(p) for p in paths]
            for prefix, paths in data.items()
        }

    def announce(self, prefix: str, **attrs: Any) -> None:
        route = self._route_from_kwargs(prefix, attrs)
        self._rib_add(route)
        self._remember(route)

    def withdraw(self, prefix: str) -> None:
        prefix = normalise_prefix(prefix)
        self.gobgp("global", "rib", "del", "-a", family_of(prefix), prefix)
        self._forget(prefix)

    def shutdown_neighbor(self, address: str, message: str | None = None) -> None:
        """`gobgp neighbor X shutdown`: Cease/Administrative Shutdown (RFC 9003 text)."""
        args = ["neighbor", address, "shutdown"]
        if message:
            args += ["--reason", message]
        self.gobgp(*args)

    def enable_neighbor(self, address: str) -> None:
        self.gobgp("neighbor", address, "enable")
