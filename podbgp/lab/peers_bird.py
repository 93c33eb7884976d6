"""BIRD 2.0 as a reference peer.

BIRD has no JSON output, so `routes()` parses `show route all` and `neighbor_state()` parses
`show protocols`.  Runtime announce/withdraw rewrite the static protocol and `configure` (BIRD
keeps the old config if the new one is rejected, so a failed reload raises).  Pitfalls from
RECIPES.md §3: iBGP on a LAN needs `direct;` (BIRD treats iBGP as multihop and would mark every
route unreachable), and `connect delay time 1` avoids the default 5 s before the first connect.
"""

from __future__ import annotations

import re
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

BIRD = "/usr/sbin/bird"
BIRDC = "/usr/sbin/birdc"


def protocol_name(address: str) -> str:
    """BIRD protocol name for the session with `address` (letters, digits, underscores)."""
    return "n_" + re.sub(r"[^0-9A-Za-z]", "_", address)


def _pair(value: str) -> str:
    return "(" + ", ".join(value.split(":")) + ")"


def _static_route(route: Route) -> str:
    stmts = []  # MED is set in the export filter, see render_export_filter
    if route.local_pref is not None:
        stmts.append(f"bgp_local_pref = {route.local_pref};")
    stmts += [f"bgp_community.add({_pair(c)});" for c in route.communities]
    stmts += [f"bgp_large_community.add({_pair(c)});" for c in route.large_communities]
    body = " { " + " ".join(stmts) + " }" if stmts else ""
    return f"  route {route.prefix} blackhole{body};"


def render_export_filter(cfg: BgpConfig) -> list[str]:
    """BIRD sends MED to an eBGP peer only if the export filter set it ("fresh" attribute),
    so MED of originated routes is set here rather than on the static route."""
    lines = ["filter podbgp_export {"]
    for r in cfg.routes:
        if r.med is not None:
            lines.append(f"  if net = {r.prefix} && source = RTS_STATIC then bgp_med = {r.med};")
    return [*lines, "  accept;", "}"]


def _channel(fam: str, n: Neighbor | None) -> str:
    opts = ["import all;", "export filter podbgp_export;"]
    if n is not None and n.interface and fam == "ipv4":
        opts.append("extended next hop on;")  # RFC 8950: IPv4 over the link-local session
    if n is not None and n.next_hop_self:
        opts.append("next hop self;")
    if n is not None and n.add_path:
        opts.append(
            {"receive": "add paths rx;", "send": "add paths tx;", "both": "add paths on;"}[
                n.add_path
            ]
        )
    return f"  {fam} {{ {' '.join(opts)} }};"


def _session(cfg: BgpConfig, n: Neighbor) -> list[str]:
    local = f" {n.local_address}" if n.local_address else ""
    where = f"{n.address} % '{n.interface}'" if n.interface else n.address
    body = [f"  local{local} as {cfg.asn};", f"  neighbor {where} as {n.asn};"]
    if n.description:
        body.append(f'  description "{n.description}";')
    body += [f"  hold time {cfg.hold_time};", f"  keepalive time {cfg.keepalive};"]
    body += [
        f"  connect delay time {cfg.connect_retry};",
        f"  connect retry time {cfg.connect_retry};",
    ]
    # After a NOTIFICATION BIRD waits 60 s by default before it accepts the peer again.
    body.append(f"  error wait time {cfg.connect_retry}, {max(10, cfg.connect_retry)};")
    if n.is_ibgp(cfg.asn) and not n.multihop:
        body.append("  direct;")  # iBGP on a shared LAN: next hops resolve directly
    if n.multihop:
        body.append(f"  multihop {n.multihop};")
    if n.passive:
        body.append("  passive on;")
    if n.password:
        body.append(f'  password "{n.password}";')
    if n.ttl_security:
        body.append("  ttl security on;")
    if n.rr_client:
        body.append("  rr client;")
        if cfg.cluster_id:
            body.append(f"  rr cluster id {cfg.cluster_id};")
    if n.graceful_restart:
        body += ["  graceful restart on;", f"  graceful restart time {n.restart_time};"]
    if cfg.port != 179:
        body.append(f"  port {cfg.port};")
    if n.bfd:
        body.append("  bfd on;")
    body += [_channel(f, n) for f in n.families]
    return [f"protocol bgp {protocol_name(n.address)} {{", *body, "}"]


def _range_session(cfg: BgpConfig, i: int, lr: ListenRange) -> list[str]:
    asn = f" as {lr.asn}" if lr.asn else " external"
    body = [f"  local as {cfg.asn};", f"  neighbor range {lr.prefix}{asn};"]
    body += [f"  hold time {cfg.hold_time};", f"  keepalive time {cfg.keepalive};"]
    if lr.asn == cfg.asn:
        body.append("  direct;")
    if lr.password:
        body.append(f'  password "{lr.password}";')
    body += [_channel(f, None) for f in lr.families]
    return [f"protocol bgp range{i} {{", *body, "}"]


def render_bird(cfg: BgpConfig, log: str, debug: bool = False) -> str:
    """bird.conf for `cfg` (BIRD 2.0 syntax)."""
    lines = [f"router id {cfg.router_id};", f'log "{log}" all;', "protocol device { }"]
    if debug:
        lines.insert(2, "debug protocols all;")
    if cfg.install_routes:
        lines += [
            "protocol kernel k4 { ipv4 { import none; export all; }; }",
            "protocol kernel k6 { ipv6 { import none; export all; }; }",
        ]
    lines += render_export_filter(cfg)
    for fam in ("ipv4", "ipv6"):
        lines += [f"protocol static static_{fam} {{", f"  {fam};"]
        lines += [_static_route(r) for r in cfg.routes if r.family == fam]
        lines.append("}")
    if any(n.bfd for n in cfg.neighbors):
        lines += [
            "protocol bfd {",
            f'  interface "*" {{ interval {cfg.bfd_interval_ms} ms; '
            f"multiplier {cfg.bfd_multiplier}; }};",
            "}",
        ]
    for n in cfg.neighbors:
        lines += _session(cfg, n)
    for i, lr in enumerate(cfg.listen_ranges):
        lines += _range_session(cfg, i, lr)
    return "\n".join(lines) + "\n"


_ROUTE_HEAD = re.compile(
    r"^(\S+)?\s+(unicast|blackhole|unreachable|prohibited)\s+\[(\S+)[^\]]*\]\s*(\*)?"
)
_PAIR = re.compile(r"\(([^)]*)\)")


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def parse_show_route_all(text: str) -> dict[str, list[dict[str, Any]]]:
    """Parse `birdc show route all` into normalised paths (one block per path)."""
    routes: dict[str, list[dict[str, Any]]] = {}
    prefix = None
    path: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _ROUTE_HEAD.match(line)
        if m:
            if m.group(1):
                prefix = normalise_prefix(m.group(1))
            path = empty_path()
            path["protocol"] = m.group(3)
            path["best"] = m.group(4) == "*"
            assert prefix is not None
            routes.setdefault(prefix, []).append(path)
            continue
        if path is None or ":" not in line:
            continue
        key, _, value = line.strip().partition(": ")
        _apply_attr(path, key, value.strip())
    return routes


def _apply_attr(path: dict[str, Any], key: str, value: str) -> None:
    if key == "BGP.as_path":
        path["as_path"] = _ints(value)
    elif key == "BGP.med":
        path["med"] = int(value)
    elif key == "BGP.local_pref":
        path["local_pref"] = int(value)
    elif key == "BGP.next_hop":
        path["next_hop"] = value.split()[0]
    elif key == "BGP.community":
        path["communities"] = [
            ":".join(p.replace(" ", "").split(",")) for p in _PAIR.findall(value)
        ]
    elif key == "BGP.large_community":
        path["large_communities"] = [
            ":".join(p.replace(" ", "").split(",")) for p in _PAIR.findall(value)
        ]
    elif key == "BGP.originator_id":
        path["originator_id"] = value
    elif key == "BGP.cluster_list":
        path["cluster_list"] = value.split()


_STATE_WORDS = {"Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"}


class Bird(Daemon):
    """bird -f in a namespace, driven through birdc on a private control socket."""

    name = "bird"
    binaries = (BIRD, BIRDC)
    debug = False  # True: `debug protocols all` (per-route trace lines; not for benchmarks)

    @property
    def ctl(self) -> str:
        return str(self.dir / "bird.ctl")

    def birdc(self, *args: str, timeout: float = 10) -> str:
        return run_cmd([BIRDC, "-s", self.ctl, *args], timeout=timeout)

    def _write_config(self) -> None:
        text = render_bird(self.config, str(self.dir / "bird.log"), debug=self.debug)
        (self.dir / "bird.conf").write_text(text)

    def _spawn(self) -> list[subprocess.Popen[bytes]]:
        args = [BIRD, "-f", "-c", str(self.dir / "bird.conf"), "-s", self.ctl]
        args += ["-P", str(self.dir / "bird.pid")]
        return [self._popen(args, "bird.out")]

    def bfd_state(self, address: str) -> str:
        """The state `birdc show bfd sessions` gives the session with `address` ("" if none)."""
        for line in self.birdc("show", "bfd", "sessions").splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == address:
                return fields[2]
        return ""

    def _ready(self) -> bool:
        try:
            return "BIRD" in self.birdc("show status", timeout=3)
        except DaemonError:
            return False

    def reconfigure(self) -> None:
        """Rewrite bird.conf from `config` and reload it (raises if BIRD rejects it)."""
        self._write_config()
        out = self.birdc("configure")
        if not any(ok in out for ok in ("Reconfigured", "Reconfiguration in progress")):
            raise DaemonError(f"bird configure failed: {out.strip()}")

    # -- queries ----------------------------------------------------------------------------
    def neighbor_info(self, address: str) -> dict[str, Any]:
        text = self.birdc("show", "protocols", "all", protocol_name(address))
        info: dict[str, Any] = {"raw": text}
        for line in text.splitlines():
            key, sep, value = line.strip().partition(":")
            if sep and key and not key[0].isdigit():
                info.setdefault(key.strip(), value.strip())
        return info

    def neighbor_state(self, address: str) -> str:
        text = self.birdc("show", "protocols", protocol_name(address))
        for line in text.splitlines():
            if line.startswith(protocol_name(address)):
                words = line.split()
                found = [w for w in words[4:] if w in _STATE_WORDS]
                if found:
                    return found[0]
                return "Idle"
        raise KeyError(f"bird has no protocol for {address}")

    def routes(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        table = "master4" if family == "ipv4" else "master6"
        text = self.birdc("show", "route", "all", "table", table)
        return {
            p: [x for x in paths if not str(x.get("protocol", "")).startswith("static_")]
            for p, paths in parse_show_route_all(text).items()
            if any(not str(x.get("protocol", "")).startswith("static_") for x in paths)
        }

    def originated(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """Routes from the static protocol (what BIRD originates)."""
        table = "master4" if family == "ipv4" else "master6"
        text = self.birdc("show", "route", "all", "table", table, "protocol", f"static_{family}")
        return parse_show_route_all(text)

    def announce(self, prefix: str, **attrs: Any) -> None:
        self._remember(self._route_from_kwargs(prefix, attrs))
        self.reconfigure()

    def withdraw(self, prefix: str) -> None:
        self._forget(prefix)
        self.reconfigure()

    def shutdown_neighbor(self, address: str, message: str | None = None) -> None:
        """`disable` the session; BIRD sends Cease/Administrative Shutdown with the message."""
        args = ["disable", protocol_name(address)]
        if message:
            args.append(f'"{message}"')
        self.birdc(*args)

    def enable_neighbor(self, address: str) -> None:
        self.birdc("enable", protocol_name(address))
