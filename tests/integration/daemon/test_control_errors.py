"""A real `podbgp run` answers bad control requests with a typed one-line error, logs no
traceback for them, and says "BGP is disabled" alike for `show peers` and `show routes`.

No namespace is needed: the daemons listen on 127.0.0.1 with a free port, no FIB, no
datastore."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podbgp.api import APIError, ControlClient, InvalidArgument
from podbgp.cli import main

CONFIG = """
[node]
name = "solo"
asn = 64512
router_id = "192.0.2.1"
address = "127.0.0.1/8"

[bgp]
enabled = {bgp}
listen = ["127.0.0.1"]
mesh = false
port = {port}
{peers}
[fib]
enabled = false

[api]
socket = "{sock}"
metrics = ""
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp: Path, bgp: bool = True) -> tuple[subprocess.Popen[str], str]:
    sock = str(tmp / "podbgp.sock")
    path = tmp / "node.toml"
    peers = '[[bgp.peer]]\naddress = "127.0.0.9"\nasn = 65009\npassive = true\n' if bgp else ""
    path.write_text(CONFIG.format(bgp=str(bgp).lower(), port=free_port(), sock=sock, peers=peers))
    proc = subprocess.Popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ControlClient(sock, timeout=2).request("show.node")
            return proc, sock
        except APIError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    out = proc.communicate(timeout=10)[0]
    pytest.fail(f"podbgp did not start:\n{out}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)[0]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, sock = start(tmp_path)
    try:
        yield proc, sock
    finally:
        if proc.poll() is None:
            stop(proc)


@pytest.mark.parametrize(
    ("cmd", "args", "why"),
    [
        ("show.routes", {"prefix": "garbage"}, "prefix: 'garbage' is not an IP prefix or address"),
        ("show.routes", {"family": "ipv5"}, "family: 'ipv5' is not one of ipv4, ipv6"),
        ("show.routes", {"peer": "nope"}, "peer: 'nope' is not an IP address"),
        ("show.routes", {"advertised": True}, "advertised routes need a peer"),
        (
            "show.routes",
            {"advertised": "yes", "peer": "127.0.0.9"},
            "advertised: 'yes' is not true or false",
        ),
        ("peer.reset", {"address": "notanip"}, "address: 'notanip' is not an IP address"),
        ("peer.shutdown", {}, "address: an IP address is required"),
        ("peer.shutdown", {"address": "127.0.0.9", "message": 5}, "message: 5 is not a string"),
        ("show.peer", {"address": "10.0.0.1/24"}, "address: '10.0.0.1/24' is not an IP address"),
    ],
)
def test_bad_arguments_are_typed_errors_without_traceback(
    daemon: tuple[subprocess.Popen[str], str], cmd: str, args: dict[str, object], why: str
) -> None:
    proc, sock = daemon
    with pytest.raises(InvalidArgument) as exc:
        ControlClient(sock).request(cmd, **args)
    assert str(exc.value) == why
    log = stop(proc)
    assert "Traceback" not in log and "internal error" not in log, log


def test_unknown_peer_is_a_refusal_not_a_bug(daemon: tuple[subprocess.Popen[str], str]) -> None:
    proc, sock = daemon
    for cmd in ("peer.reset", "show.peer"):
        with pytest.raises(APIError) as exc:
            ControlClient(sock).request(cmd, address="10.9.9.9")
        assert type(exc.value) is APIError and str(exc.value) == "no such peer 10.9.9.9"
    for view in ({}, {"received": True}, {"advertised": True}):
        with pytest.raises(APIError, match=r"no such peer 10\.9\.9\.9"):
            ControlClient(sock).request("show.routes", peer="10.9.9.9", **view)
    assert "Traceback" not in stop(proc)


def test_no_bgp_show_peers_says_so_like_show_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, sock = start(tmp_path, bgp=False)
    try:
        results = []
        for what in ("peers", "routes", "peer"):
            argv = ["show", what, *(["127.0.0.9"] if what == "peer" else []), "--socket", sock]
            results.append((main(argv), capsys.readouterr().err))
    finally:
        stop(proc)
    assert results == [(1, "podbgp: BGP is disabled on this node\n")] * 3
