"""Network namespaces for tests and the lab.

Every namespace a `NetnsGroup` makes carries the group's prefix, so a cleanup
(also one run after a crash, by prefix) finds exactly what it made and nothing
that another test run on the same host owns. Processes inside a namespace are
killed before it is deleted: `ip netns del` on a busy namespace only removes
the name and leaves the namespace alive.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from podbgp.lab.shell import run

IP = shutil.which("ip") or "/usr/sbin/ip"


def have_netns() -> str | None:
    """Return why network namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not os.path.exists(IP):
        return "iproute2's ip command is missing"
    return None


@dataclass
class Netns:
    """One named network namespace."""

    name: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ip(self, *args: str, check: bool = True) -> str:
        """Run `ip -n NAME ARGS`."""
        return run([IP, "-n", self.name, *args], check=check)

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """Run a command inside the namespace and return its stdout."""
        return run([IP, "netns", "exec", self.name, *args], check=check, timeout=timeout)

    def sysctl(self, *settings: str) -> None:
        self.run("sysctl", "-qw", *settings)

    def popen(self, args: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the namespace (exec: its PID is the process's)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            [IP, "netns", "exec", self.name, *args], **kwargs
        )
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        out = run([IP, "netns", "pids", self.name], check=False)
        return [int(p) for p in out.split()]

    def addresses(self, dev: str) -> str:
        return self.ip("-o", "addr", "show", "dev", dev)


def kill_pids(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def delete_namespaces(names: Sequence[str], grace: float = 3.0) -> None:
    """Stop every process in the namespaces (TERM, then KILL), then delete them."""
    nss = [Netns(n) for n in names]
    for ns in nss:
        kill_pids(ns.pids(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(ns.pids() for ns in nss):
        time.sleep(0.05)
    for ns in nss:
        kill_pids(ns.pids(), signal.SIGKILL)
        run([IP, "netns", "del", ns.name], check=False)


def list_namespaces(prefix: str = "") -> list[str]:
    out = run([IP, "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def cleanup_prefix(prefix: str) -> None:
    """Remove every namespace whose name starts with `prefix` (after a crash, too)."""
    if not prefix:
        raise ValueError("refusing to clean up namespaces with an empty prefix")
    delete_namespaces(list_namespaces(prefix))


def new_netns(name: str) -> Netns:
    """Create namespace ``name`` with its loopback up (the caller removes it)."""
    run([IP, "netns", "add", name])
    ns = Netns(name)
    ns.ip("link", "set", "lo", "up")
    return ns


def veth(a: Netns, a_if: str, b: Netns, b_if: str) -> None:
    """A veth pair created directly in its two namespaces (no name in the root namespace)."""
    run([IP, "link", "add", a_if, "netns", a.name, "type", "veth",
          "peer", "name", b_if, "netns", b.name])  # fmt: skip
    a.ip("link", "set", a_if, "up")
    b.ip("link", "set", b_if, "up")


class NetnsGroup:
    """Namespaces sharing one prefix, removed together by `close()` (or `with`)."""

    def __init__(self, prefix: str) -> None:
        if not prefix:
            raise ValueError("a namespace group needs a non-empty prefix")
        self.prefix = prefix
        self.namespaces: dict[str, Netns] = {}

    def add(self, short: str) -> Netns:
        """Create `PREFIX+short` with loopback up."""
        name = self.prefix + short
        run([IP, "netns", "add", name])
        ns = Netns(name)
        self.namespaces[short] = ns
        ns.ip("link", "set", "lo", "up")
        return ns

    def __getitem__(self, short: str) -> Netns:
        return self.namespaces[short]

    def veth(self, a: Netns, a_if: str, b: Netns, b_if: str) -> None:
        """A veth pair with one end in each namespace (no name ever in the root namespace)."""
        run(
            [
                IP,
                "link",
                "add",
                a_if,
                "netns",
                a.name,
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                b.name,
            ]
        )
        a.ip("link", "set", a_if, "up")
        b.ip("link", "set", b_if, "up")

    def close(self) -> None:
        for ns in self.namespaces.values():
            for proc in ns.procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
        for ns in self.namespaces.values():
            for proc in ns.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=3)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=3)
        cleanup_prefix(self.prefix)
        self.namespaces.clear()

    def __enter__(self) -> NetnsGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def netns_group(prefix: str) -> Iterator[NetnsGroup]:
    group = NetnsGroup(prefix)
    try:
        yield group
    finally:
        group.close()
