"""Neutral BGP configuration and the process life cycle shared by every reference daemon.

A test, the lab or a benchmark describes what a peer should do once, as a `BgpConfig`
(local AS, router ID, neighbours, routes to originate, timers, listen ranges); each runner in
`podbgp.lab.peers` renders that into its daemon's own configuration language, starts the daemon
inside a `Netns` with `Popen`, waits until its control socket answers, and stops it again (TERM,
then KILL). Query results are normalised so tests can compare daemons:

* `neighbor_state(addr)` returns RFC 4271 §8.2.2 state names ("Idle", "Connect", "Active",
  "OpenSent", "OpenConfirm", "Established").
* `routes(family)` returns ``{prefix: [path, ...]}``; a path is a dict with ``as_path`` (list of
  ints, AS_SEQUENCE order), ``med``, ``local_pref``, ``communities`` ("A:B", RFC 1997),
  ``large_communities`` ("A:B:C", RFC 8092), ``next_hop``, ``originator_id`` and ``cluster_list``
  (RFC 4456), ``best`` and ``stale``; a key is None or empty when the daemon does not show it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from podbgp.lab.netns import Netns

FAMILIES = ("ipv4", "ipv6")
STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")

T = TypeVar("T")


class DaemonError(RuntimeError):
    """A reference daemon failed to start, answer or do what it was asked."""


@dataclass(frozen=True)
class Route:
    """A prefix to originate, with the attributes to attach where the daemon can set them."""

    prefix: str
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    med: int | None = None
    local_pref: int | None = None
    next_hop: str | None = None
    # Extra ASNs after the local one (only GoBGP and ExaBGP can send an arbitrary path).
    as_path: tuple[int, ...] = ()

    @property
    def family(self) -> str:
        return family_of(self.prefix)


@dataclass(frozen=True)
class Neighbor:
    """One configured peer.  `families` lists the address families to activate."""

    address: str
    asn: int
    passive: bool = False
    password: str | None = None
    ttl_security: int | None = None  # GTSM (RFC 5082): allowed hop count, usually 1
    multihop: int | None = None  # eBGP multihop TTL
    rr_client: bool = False  # RFC 4456 route-reflector client of this daemon
    families: tuple[str, ...] = ("ipv4",)
    graceful_restart: bool = False  # RFC 4724
    restart_time: int = 120
    add_path: str | None = None  # RFC 7911: "receive", "send" or "both"
    local_address: str | None = None
    next_hop_self: bool = False
    description: str = ""
    bfd: bool = False  # RFC 5880/5881 single-hop BFD for this session (BgpConfig's timers)
    # Unnumbered: the session runs over this interface's IPv6 link-local addresses, IPv4
    # routes with IPv6 next hops (RFC 8950). FRR finds the neighbour itself (`address`
    # unused); BIRD needs the neighbour's link-local `address`.
    interface: str = ""

    def is_ibgp(self, local_as: int) -> bool:
        return self.asn == local_as


@dataclass(frozen=True)
class ListenRange:
    """Accept sessions from any address in `prefix` (dynamic neighbours)."""

    prefix: str
    asn: int | None = None  # None: any AS other than ours (eBGP)
    password: str | None = None
    families: tuple[str, ...] = ("ipv4",)


@dataclass
class BgpConfig:
    """What a reference daemon should do, independent of its configuration language."""

    asn: int
    router_id: str
    neighbors: list[Neighbor] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    listen_ranges: list[ListenRange] = field(default_factory=list)
    hold_time: int = 9
    keepalive: int = 3
    connect_retry: int = 1
    port: int = 179
    listen_addresses: tuple[str, ...] = ()  # empty: the daemon's default (all)
    cluster_id: str | None = None
    install_routes: bool = False  # program learned routes into the namespace's kernel table
    bfd_interval_ms: int = 300  # BFD transmit and receive interval of neighbours with `bfd`
    bfd_multiplier: int = 3
    hostname: str = "peer"

    def neighbor(self, address: str) -> Neighbor:
        for n in self.neighbors:
            if n.address == address:
                return n
        raise KeyError(address)


def family_of(prefix_or_addr: str) -> str:
    return "ipv6" if ":" in prefix_or_addr else "ipv4"


def normalise_prefix(prefix: str) -> str:
    return str(ipaddress.ip_network(prefix, strict=False))


def empty_path() -> dict[str, Any]:
    """A normalised path with every key present."""
    return {
        "as_path": [],
        "med": None,
        "local_pref": None,
        "communities": [],
        "large_communities": [],
        "next_hop": None,
        "originator_id": None,
        "cluster_list": [],
        "best": False,
        "stale": False,
    }


def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `probe` until it returns something other than None/False, or raise TimeoutError.

    An empty list counts as a result (`wait_route(present=False)` returns one)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except (DaemonError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def wait_ipv6_ready(ns: Netns, timeout: float = 5.0) -> None:
    """Wait until no IPv6 address in `ns` is tentative (DAD still running).

    FRR sends an FSM-error NOTIFICATION when it connects while its link-local address is still
    tentative (it cannot fill the 32-byte MP_REACH next hop), and BIRD then holds the session
    down for its error-wait time; waiting here avoids that start-up race.
    """

    def probe() -> bool:
        return not ns.ip("-6", "-o", "addr", "show", "tentative", check=False).strip()

    try:
        wait_for(probe, timeout, f"IPv6 DAD in {ns.name}", interval=0.05)
    except TimeoutError:
        pass  # a dadfailed address stays tentative forever; let the daemon report it


def _signal_group(p: subprocess.Popen[bytes], sig: int) -> None:
    """Signal `p`'s process group (it leads one: `Netns.popen` starts a new session)."""
    try:
        leads = os.getpgid(p.pid) == p.pid
    except ProcessLookupError:
        return
    if leads:
        os.killpg(p.pid, sig)
    else:
        os.kill(p.pid, sig)


def run_cmd(args: Sequence[str], timeout: float = 10, check: bool = True) -> str:
    """Run a control command (vtysh, birdc, gobgp, bgpctl) in the root namespace."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise DaemonError(
            f"{' '.join(args)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
        )
    return proc.stdout


class Daemon:
    """Base runner: owns the processes it starts in `ns` and stops them on exit.

    Subclasses implement `_write_config`, `_spawn` (start the processes, return them), `_ready`
    and the query methods.  Use as a context manager: ``with Frr(ns, dir, cfg) as frr: ...``.
    """

    name = "daemon"
    binaries: tuple[str, ...] = ()

    def __init__(self, ns: Netns, workdir: str | os.PathLike[str], config: BgpConfig) -> None:
        self.ns = ns
        self.dir = Path(workdir)
        self.config = config
        self.procs: list[subprocess.Popen[bytes]] = []
        self.start_timeout = 15.0

    # -- life cycle -------------------------------------------------------------------------
    @classmethod
    def missing(cls) -> str | None:
        """Why this daemon cannot run here, or None."""
        for b in cls.binaries:
            if not (os.path.exists(b) and os.access(b, os.X_OK)):
                return f"{cls.name}: {b} is not installed"
        return None

    def start(self) -> None:
        why = self.missing()
        if why:
            raise DaemonError(why)
        self.dir.mkdir(parents=True, exist_ok=True)
        wait_ipv6_ready(self.ns)
        self._write_config()
        self.procs = self._spawn()
        try:
            wait_for(self._ready_or_dead, self.start_timeout, f"{self.name} to answer")
        except BaseException:
            self.stop()
            raise

    def _ready_or_dead(self) -> bool:
        for p in self.procs:
            if p.poll() is not None:
                raise DaemonError(
                    f"{self.name} exited with {p.returncode} during start-up; "
                    f"see {self.dir}: {self.log_tail()}"
                )
        return self._ready()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every process (in reverse start order), SIGKILL what is left."""
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    _signal_group(p, signal.SIGCONT)  # a paused daemon cannot handle TERM
                    p.terminate()
        deadline = time.monotonic() + timeout
        for p in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        self.procs = []

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the daemon: its sessions stay open but it sends nothing (hold-timer tests).

        The whole process group is stopped: OpenBGPD's session engine and ExaBGP's API helper
        are children of the process we started, and OpenBGPD's children send the keepalives.
        """
        for p in self.procs:
            _signal_group(p, signal.SIGSTOP)

    def resume(self) -> None:
        for p in self.procs:
            _signal_group(p, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def __enter__(self: T) -> T:
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for log in sorted(self.dir.glob("**/*.log")):
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    # -- queries ----------------------------------------------------------------------------
    def wait_established(self, address: str, timeout: float = 20.0) -> None:
        def probe() -> bool:
            return self.neighbor_state(address) == "Established"

        try:
            wait_for(probe, timeout, f"{self.name} session with {address}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; state {self._safe_state(address)}") from None

    def _safe_state(self, address: str) -> str:
        try:
            return self.neighbor_state(address)
        except (DaemonError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            return f"unknown ({exc})"

    def wait_route(
        self,
        prefix: str,
        family: str | None = None,
        timeout: float = 15.0,
        present: bool = True,
    ) -> list[dict[str, Any]]:
        """Wait until `prefix` is (or, with present=False, is no longer) in `routes()`."""
        prefix = normalise_prefix(prefix)
        fam = family or family_of(prefix)

        def probe() -> list[dict[str, Any]] | None:
            paths = self.routes(fam).get(prefix)
            if present:
                return paths or None
            return [] if not paths else None

        what = f"{prefix} {'in' if present else 'gone from'} {self.name}"
        found = wait_for(probe, timeout, what)
        assert found is not None
        return found

    def neighbor_state(self, address: str) -> str:
        raise NotImplementedError

    def neighbor_info(self, address: str) -> dict[str, Any]:
        raise NotImplementedError

    def routes(self, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        raise NotImplementedError

    def announce(self, prefix: str, **attrs: Any) -> None:
        raise NotImplementedError

    def shutdown_neighbor(self, address: str, message: str | None = None) -> None:
        """Administratively stop the session: Cease/Administrative Shutdown (RFC 9003 text)."""
        raise NotImplementedError

    def withdraw(self, prefix: str) -> None:
        raise NotImplementedError

    # -- subclass hooks ---------------------------------------------------------------------
    def _write_config(self) -> None:
        raise NotImplementedError

    def _spawn(self) -> list[subprocess.Popen[bytes]]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _popen(self, args: Sequence[str], log: str) -> subprocess.Popen[bytes]:
        """Start `args` in the namespace with stdout+stderr appended to dir/log."""
        with open(self.dir / log, "ab") as out:
            return self.ns.popen(list(args), stdout=out, stderr=subprocess.STDOUT)

    def _route_from_kwargs(self, prefix: str, attrs: dict[str, Any]) -> Route:
        known = {"communities", "large_communities", "med", "local_pref", "next_hop", "as_path"}
        unknown = set(attrs) - known
        if unknown:
            raise TypeError(f"unknown route attributes {sorted(unknown)}")
        norm = dict(attrs)
        for key in ("communities", "large_communities", "as_path"):
            if key in norm:
                norm[key] = tuple(norm[key])
        return Route(normalise_prefix(prefix), **norm)

    def _remember(self, route: Route) -> None:
        """Keep config.routes current so a restart re-originates what was announced."""
        self.config.routes = [r for r in self.config.routes if r.prefix != route.prefix]
        self.config.routes.append(route)

    def _forget(self, prefix: str) -> None:
        prefix = normalise_prefix(prefix)
        self.config.routes = [r for r in self.config.routes if r.prefix != prefix]
