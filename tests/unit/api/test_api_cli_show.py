"""`podbgp show` / `podbgp peer` against a control socket, as tables and as JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from podbgp.api import ControlServer
from podbgp.cli import main

PEERS = [
    {
        "address": "10.0.0.2",
        "asn": 65001,
        "state": "Established",
        "admin": "up",
        "uptime": "0:01:02",
        "messages_in": {"open": 1, "update": 4, "keepalive": 2},
        "messages_out": {"open": 1, "update": 1, "keepalive": 2},
        "negotiated": {"families": ["ipv4_unicast"], "four_octet_as": True},
        "prefixes_received": 3,
        "prefixes_advertised": 1,
        "prefixes_in": 3,
        "prefixes_out": 1,
        "last_error": None,
        "bfd": {"state": "up", "flaps": 2},
    }
]


async def test_show_and_peer_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def peers(args: dict[str, Any]) -> Any:
        calls.append(("show.peers", args))
        return PEERS

    async def shutdown(args: dict[str, Any]) -> Any:
        calls.append(("peer.shutdown", args))
        return {"address": args["address"], "state": "Idle (admin shutdown)"}

    sock = str(tmp_path / "s.sock")
    server = ControlServer(sock, {"show.peers": peers, "peer.shutdown": shutdown})
    await server.start()
    try:
        rc = await asyncio.to_thread(main, ["show", "peers", "--socket", sock])
        table = capsys.readouterr().out.splitlines()
        rc_json = await asyncio.to_thread(main, ["show", "peers", "--socket", sock, "--json"])
        as_json = json.loads(capsys.readouterr().out)
        argv = ["peer", "shutdown", "10.0.0.2", "--message", "maint", "--socket", sock]
        rc_peer = await asyncio.to_thread(main, argv)
        shut_out = capsys.readouterr().out
    finally:
        await server.stop()
    assert (rc, rc_json, rc_peer) == (0, 0, 0)
    assert table[0].split()[:3] == ["PEER", "AS", "STATE"]
    assert table[1].split() == ["10.0.0.2", "65001", "Established", "0:01:02", "7/4", "3/1",
                                "mp4", "as4", "up", "(2", "flaps)"]  # fmt: skip
    assert as_json == PEERS
    assert calls[-1] == ("peer.shutdown", {"address": "10.0.0.2", "message": "maint"})
    assert "Idle (admin shutdown)" in shut_out


def test_no_daemon_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["show", "peers", "--socket", str(tmp_path / "none.sock")])
    assert rc == 1
    assert "cannot reach the podbgp daemon" in capsys.readouterr().err
