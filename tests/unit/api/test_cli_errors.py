"""The CLI's answer to mistakes and odd sockets: one line and an exit status, never a
traceback (issue 12). Also `--version`, the RFC state names, and the lab's session table."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from bgp.fsm import State
from podbgp import metrics
from podbgp.api import APIError, ControlClient, ControlServer, InvalidArgument, NotPodbgp
from podbgp.bgpnode import state_name
from podbgp.cli import EXIT_PIPE_CLOSED, main
from podbgp.cmd_show import peers_table
from podbgp.lab import lab

ROOT = Path(__file__).resolve().parents[3]


# -- a unix socket that is not a podbgp daemon -----------------------------------------------
def _serve(path: str, answer: Callable[[socket.socket], None]) -> Iterator[None]:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            answer(conn)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(5)
        for c in conns:
            c.close()
        srv.close()


def _http(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    conn.close()


def _garbage(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"\x00\x01\x02 hello\n")
    conn.close()


def _silent(conn: socket.socket) -> None:
    conn.recv(4096)  # and never answer


@pytest.mark.parametrize("answer", [_http, _garbage], ids=["http", "garbage"])
def test_foreign_socket_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], answer: Callable[[socket.socket], None]
) -> None:
    path = str(tmp_path / "other.sock")
    for _ in _serve(path, answer):
        with pytest.raises(NotPodbgp):
            ControlClient(path).request("show.peers")
        rc = main(["show", "peers", "--socket", path])
    err = capsys.readouterr().err
    assert rc == 1
    assert err == f"podbgp: not a podbgp control socket: {path}\n"


def test_socket_that_never_answers_times_out_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "silent.sock")
    for _ in _serve(path, _silent):
        rc = main(["show", "routes", "--socket", path, "--timeout", "0.3"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"podbgp: no answer from {path} within 0.3 s"), err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["show", "routes", "--prefix", "garbage"], "'garbage' is not an IP prefix or address"),
        (["peer", "reset", "notanip"], "'notanip' is not an IP address"),
        (["show", "routes", "--peer", "x.y"], "'x.y' is not an IP address"),
        (["show", "peer"], "show peer needs the peer's ADDRESS"),
        (["show", "routes", "--advertised"], "need show routes --peer ADDRESS"),
        (["show", "routes", "--timeout", "0"], "is not a number of seconds"),
    ],
)
def test_bad_input_exits_2_before_asking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], why: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--socket", str(tmp_path / "none.sock")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and why in err, err  # one line, no usage block
    assert err.endswith(f"(see podbgp {argv[0]} --help)\n"), err


async def test_daemon_side_input_error_is_typed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An `InvalidArgument` from a handler reaches the client typed, and the CLI exits 2;
    another refusal exits 1."""

    async def routes(args: dict[str, Any]) -> Any:
        raise InvalidArgument("prefix: 'x' is not an IP prefix or address")

    async def peers(args: dict[str, Any]) -> Any:
        raise APIError("BGP is disabled on this node")

    sock = str(tmp_path / "s.sock")
    server = ControlServer(sock, {"show.routes": routes, "show.peers": peers})
    await server.start()
    try:
        with pytest.raises(InvalidArgument):
            await asyncio.to_thread(ControlClient(sock).request, "show.routes", prefix="x")
        rc_routes = await asyncio.to_thread(main, ["show", "routes", "--socket", sock])
        err_routes = capsys.readouterr().err
        rc_peers = await asyncio.to_thread(main, ["show", "peers", "--socket", sock])
        err_peers = capsys.readouterr().err
        unknown = await asyncio.to_thread(_raw, sock, b'{"cmd": "show.nothing"}\n')
    finally:
        await server.stop()
    assert (rc_routes, err_routes) == (2, "podbgp: prefix: 'x' is not an IP prefix or address\n")
    assert (rc_peers, err_peers) == (1, "podbgp: BGP is disabled on this node\n")
    assert unknown == {"ok": False, "error": "unknown command 'show.nothing'",
                       "kind": "invalid_argument"}  # fmt: skip


def _raw(path: str, line: bytes) -> Any:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(line)
        return json.loads(s.makefile("rb").readline())


def test_version_from_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"podbgp {version('podbgp')}\n"


# -- a reader that closes the pipe early -------------------------------------------------------
def _answer_peers(conn: socket.socket) -> None:
    conn.recv(65536)
    rows = [{"address": f"10.0.{i // 250}.{i % 250}", "asn": 65000, "state": "Established"}
            for i in range(3000)]  # fmt: skip
    conn.sendall(json.dumps({"ok": True, "result": rows}).encode() + b"\n")
    conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "peers", "--socket", "{sock}"],
        ["show", "peers", "--json", "--socket", "{sock}"],
        ["lab", "status", "--state-dir", "{tmp}/nolab"],
        ["check", "--config", str(ROOT / "examples" / "mesh-node.toml")],
        ["ipam", "blocks", "--datastore", "sqlite:{tmp}/ds.db", "--pool", "10.244.0.0/16"],
        ["datastore", "show", "--datastore", "sqlite:{tmp}/ds.db"],
    ],
    ids=["show-peers", "show-peers-json", "lab-status", "check", "ipam-blocks", "datastore"],
)
def test_closed_pipe_ends_quietly(tmp_path: Path, argv: list[str]) -> None:
    """`podbgp … | head -1`, made certain: the read end is closed before the child writes."""
    sock = str(tmp_path / "s.sock")
    argv = [a.format(sock=sock, tmp=tmp_path) for a in argv]
    if argv[0] in ("ipam", "datastore"):  # a store to read (stores are never created implicitly)
        init = [sys.executable, "-m", "podbgp", "datastore", "init", "--datastore",
                f"sqlite:{tmp_path}/ds.db"]  # fmt: skip
        subprocess.run(init, check=True, capture_output=True, timeout=60)
    for _ in _serve(sock, _answer_peers):
        proc = subprocess.Popen([sys.executable, "-m", "podbgp", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        rc = proc.wait(60)
    assert "Traceback" not in err and "Errno 32" not in err and "Broken pipe" not in err, err
    assert err == ""
    assert rc == EXIT_PIPE_CLOSED


# -- state names ---------------------------------------------------------------------------
def test_state_names_are_the_documented_ones() -> None:
    """docs/control-api.md promises `Idle Connect Active OpenSent OpenConfirm Established`:
    every FSM state has exactly one of them, used by `show peers` and the metric."""
    doc = (ROOT / "docs" / "control-api.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `state` |"))
    documented = re.findall(r"`(\w+)`", row.split("|")[3])
    assert documented == [s.rfc_name for s in State]
    assert tuple(documented) == metrics.SESSION_STATES
    # The speaker reports `State.name.lower()` (`open_sent`): every one maps.
    assert [state_name(s.name.lower()) for s in State] == documented


# -- the lab's session table is `show peers`' table ---------------------------------------------
PEERS = [
    {"address": "10.99.1.2", "asn": 64512, "state": "Established", "admin": "up",
     "uptime": "0:00:07", "messages_in": {"open": 1, "update": 2, "keepalive": 2},
     "messages_out": {"open": 1, "update": 3, "keepalive": 2},
     "negotiated": {"families": ["ipv4_unicast"], "route_refresh": True,
                    "graceful_restart": True, "four_octet_as": True},
     "prefixes_received": 1, "prefixes_advertised": 2, "last_error": None},
    {"address": "10.99.1.3", "asn": 64512, "state": "Active", "admin": "up", "uptime": None,
     "messages_in": {}, "messages_out": {}, "negotiated": None, "prefixes_received": 0,
     "prefixes_advertised": 0,
     "last_error": {"code": 6, "subcode": 2, "reason": "maintenance", "direction": "received"}},
]  # fmt: skip


def test_lab_sessions_report_is_the_show_peers_table(tmp_path: Path) -> None:
    sock = str(tmp_path / "n1.sock")

    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(json.dumps({"ok": True, "result": PEERS}).encode() + b"\n")
        conn.close()

    state = lab.LabState(prefix="x-", state_dir=str(tmp_path))
    state.nodes.append({"name": "n1", "address": "10.99.1.1", "asn": 64512, "socket": sock})
    for _ in _serve(sock, answer):
        report = lab.sessions_report(state)
    lines = report.splitlines()
    assert lines[0] == "n1 10.99.1.1 AS64512"
    assert [line[2:] for line in lines[1:]] == peers_table(PEERS).splitlines()
    # The columns the demo used to show as `-`: messages, prefixes, capabilities.
    assert lines[2].split()[4:10] == ["5/6", "1/2", "mp4", "rr", "gr", "as4"]


# -- the socket from --config ----------------------------------------------------------------
@pytest.mark.parametrize("argv", [["show", "peers"], ["peer", "reset", "10.0.0.1"], ["drain"]])
def test_socket_from_a_bad_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """`--config` is read by the daemon's loader; a missing or invalid file is one line,
    for every client command (drain included)."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\nname = "x"\nasn = 64512\n[bgp]\nhold_tme = 3\n')
    for path, why in ((tmp_path / "none.toml", "cannot read"), (bad, "invalid config")):
        rc = main([*argv, "--config", str(path)])
        err = capsys.readouterr().err
        assert rc == 1
        assert err.count("\n") == 1 and why in err and "Traceback" not in err, err
        assert err.startswith(f"podbgp: {path}") or f"{path}: cannot read" in err, err


def test_peer_action_says_when_the_session_is_expected_back() -> None:
    from podbgp.cmd_show import _text

    base = {"address": "10.0.0.2", "state": "Idle", "admin": "up", "waits_for_peer": False}
    assert _text("peer", {**base, "expected_back_seconds": 0.0}) == "10.0.0.2: Idle, dialling now"
    assert _text("peer", {**base, "expected_back_seconds": 4.5}).endswith("dials again in 4.5 s")
    passive = {**base, "expected_back_seconds": None, "waits_for_peer": True}
    assert _text("peer", passive).endswith("waits for the peer to connect (passive)")
    down = {**base, "admin": "down", "expected_back_seconds": None}
    assert _text("peer", down).endswith("stays down until `podbgp peer enable`")
