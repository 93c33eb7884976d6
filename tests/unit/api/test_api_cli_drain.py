"""`podbgp drain` / `podbgp undrain` against a control socket: what they ask, what they print."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from podbgp.api import APIError, ControlServer
from podbgp.cli import main

REPORT = {"state": "drained", "timeout": 5.0, "waited_seconds": 1.2, "peers_moved": True,
          "moved": {"10.0.0.254": True}, "pending": {}, "sessions_stopped": ["10.0.0.254"]}  # fmt: skip


async def test_drain_and_undrain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def drain(args: dict[str, Any]) -> Any:
        calls.append(("node.drain", args))
        return REPORT

    async def undrain(args: dict[str, Any]) -> Any:
        calls.append(("node.undrain", args))
        if len(calls) > 2:
            raise APIError("the node is not drained")
        return {"state": "running", "enabled": ["10.0.0.254"]}

    sock = str(tmp_path / "s.sock")
    server = ControlServer(sock, {"node.drain": drain, "node.undrain": undrain})
    await server.start()
    try:
        argv = ["drain", "--timeout", "5", "--stop", "--socket", sock, "--json"]
        rc_drain = await asyncio.to_thread(main, argv)
        drained = json.loads(capsys.readouterr().out)
        rc_undrain = await asyncio.to_thread(main, ["undrain", "--socket", sock])
        text = capsys.readouterr().out
        rc_again = await asyncio.to_thread(main, ["undrain", "--socket", sock])
        err = capsys.readouterr().err
    finally:
        await server.stop()
    assert (rc_drain, rc_undrain, rc_again) == (0, 0, 1)
    assert calls[0] == ("node.drain", {"timeout": 5.0, "stop": True})
    assert drained == REPORT
    assert "state: running" in text
    assert err.strip() == "podbgp: the node is not drained"


def test_drain_timeout_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["drain", "--timeout", "-1", "--socket", str(tmp_path / "none.sock")])
    assert rc == 2
    assert "--timeout -1 is out of range 0..3600" in capsys.readouterr().err
