"""One `podbgp run` per node, and start-up failures as one line (issue 12).

A second daemon with the same config exits with `already running (pid N)` before it
touches anything: the first daemon's kernel routes, its BGP session and its control socket
are untouched (two real daemons, one with a FIB, in namespaces). A lock file left by a
dead process is taken over. A listen address on no interface, a port in use and a port
that needs privileges are each one line with what to do, exit 1, no traceback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_control_errors import free_port

from podbgp.api import APIError, ControlClient
from podbgp.config import load_config
from podbgp.daemon import run_daemon
from podbgp.instance import lock_path
from podbgp.lab.netns import Netns, NetnsGroup

NODE = """
[node]
name = "{name}"
asn = {asn}
router_id = "{ip}"
address = "{ip}/24"

[bgp]
mesh = false
listen = ["{ip}"]
port = {port}
hold_time = 30

[[bgp.peer]]
address = "{peer_ip}"
asn = {peer_asn}
port = {peer_port}

{extra}

[fib]
enabled = {fib}

[api]
socket = "{sock}"
metrics = ""
"""

PORT_A, PORT_B = 17921, 17922
PREFIX = "10.203.0.0/24"


def _write(tmp: Path, name: str, **kw: Any) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(NODE.format(name=name, **kw))
    return path


def _wait(check: Any, what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout}s (last: {value!r})")
        time.sleep(0.2)


def _ask(sock: str, cmd: str) -> Any:
    try:
        return ControlClient(sock, timeout=3).request(cmd)
    except APIError:
        return None


def _kernel(ns: Netns) -> str:
    return ns.ip("route", "show", "proto", "80")


def test_second_daemon_for_a_node_refuses_before_touching_anything(
    tmp_path: Path, netns: NetnsGroup
) -> None:
    a, b = netns.add("a"), netns.add("b")
    netns.veth(a, "eth0", b, "eth0")
    a.ip("addr", "add", "10.78.0.1/24", "dev", "eth0")
    b.ip("addr", "add", "10.78.0.2/24", "dev", "eth0")
    sock_a, sock_b = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
    conf_a = _write(tmp_path, "a", asn=65001, ip="10.78.0.1", port=PORT_A, peer_ip="10.78.0.2",
                    peer_asn=65002, peer_port=PORT_B, extra="", fib="true", sock=sock_a)  # fmt: skip
    conf_b = _write(tmp_path, "b", asn=65002, ip="10.78.0.2", port=PORT_B, peer_ip="10.78.0.1",
                    peer_asn=65001, peer_port=PORT_A, fib="false", sock=sock_b,
                    extra=f'[[bgp.originate]]\nprefix = "{PREFIX}"')  # fmt: skip
    run = [sys.executable, "-m", "podbgp", "run", "--config"]
    first = a.popen([*run, str(conf_a)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b.popen([*run, str(conf_b)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: PREFIX in _kernel(a), "the first daemon installed B's route")
    peers = _wait(lambda: _ask(sock_a, "show.peers"), "the first daemon answers")
    assert peers[0]["state"] == "Established"
    before = (_kernel(a), peers[0]["established_at"], _ask(sock_a, "show.fib")["counters"])

    second = a.popen([*run, str(conf_a)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = second.communicate(timeout=60)[0].decode()
    assert second.returncode == 1, out
    assert f"cannot start: node a is already running (pid {first.pid};" in out, out
    assert out.count("\n") == 1, out  # one line, nothing adopted, announced or bound
    assert "Traceback" not in out and "adopted" not in out

    # The first daemon is as it was: its routes, its session (no flap), its FIB's counters
    # (nothing adopted or swept behind its back), and its control socket still answers.
    peers = _ask(sock_a, "show.peers")
    after = (_kernel(a), peers[0]["established_at"], _ask(sock_a, "show.fib")["counters"])
    assert after == before
    assert peers[0]["state"] == "Established" and peers[0]["flaps"] == 0
    assert first.poll() is None


def _minimal(tmp: Path, listen: str, port: int) -> Path:
    sock = tmp / "podbgp.sock"
    path = tmp / "node.toml"
    path.write_text(f"""
[node]
name = "solo"
asn = 64512
router_id = "192.0.2.1"

[bgp]
mesh = false
listen = ["{listen}"]
port = {port}

[fib]
enabled = false

[api]
socket = "{sock}"
metrics = ""
""")
    return path


def _run(path: Path, prefix: tuple[str, ...] = (), timeout: float = 60) -> tuple[int, str]:
    proc = subprocess.run([*prefix, sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    return proc.returncode, proc.stderr


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    path = _minimal(tmp_path, "127.0.0.1", free_port())
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = Path(lock_path(str(tmp_path / "podbgp.sock")))
    lock.write_text(f"{dead.pid}\n")
    proc = subprocess.Popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        _wait(lambda: _ask(str(tmp_path / "podbgp.sock"), "show.node") or proc.poll() is not None,
              "the daemon answers")  # fmt: skip
        assert proc.poll() is None, proc.communicate()[0]
        assert lock.read_text() == f"{proc.pid}\n"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "Traceback" not in out, out


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_listen_address_on_no_interface(tmp_path: Path) -> None:
    rc, err = _run(_minimal(tmp_path, "192.0.2.77", free_port()))
    line = _one_line(err)
    assert rc == 1
    assert "cannot start: [bgp] listen 192.0.2.77 port" in line, line
    assert "192.0.2.77 is not an address of any interface on this host" in line, line


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        rc, err = _run(_minimal(tmp_path, "127.0.0.1", port))
    line = _one_line(err)
    assert rc == 1
    assert f"[bgp] listen 127.0.0.1 port {port}: the port is in use by another process" in line


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_privileged_port_without_the_capability(tmp_path: Path) -> None:
    no_cap = ("setpriv", "--bounding-set", "-net_bind_service")
    rc, err = _run(_minimal(tmp_path, "127.0.0.1", 179), prefix=no_cap)
    line = _one_line(err)
    assert rc == 1
    assert "[bgp] listen 127.0.0.1 port 179: permission denied (ports below 1024" in line, line


def test_daemon_reports_a_failed_listen_the_same_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without `podbgp run`'s pre-flight (the daemon embedded, or a race), the speaker's
    bind error is the same one line, not a traceback."""
    config = load_config(str(_minimal(tmp_path, "192.0.2.77", free_port())))
    assert asyncio.run(run_daemon(config, None)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "is not an address of any interface" in errors[0], errors
    assert not any(r.exc_info for r in caplog.records)
