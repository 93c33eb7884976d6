"""The control socket: JSON round trips, errors, and owner-only access."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from typing import Any

import pytest

from podbgp.api import APIError, ControlClient, ControlServer


async def _echo(args: dict[str, Any]) -> Any:
    return {"echo": args}


async def _boom(args: dict[str, Any]) -> Any:
    raise RuntimeError("handler bug")


@pytest.fixture
async def server():
    # Not under pytest's tmp_path: its parents are 0700, and one test connects as nobody.
    base = tempfile.mkdtemp(prefix="podbgp-api-")
    os.chmod(base, 0o755)
    srv = ControlServer(os.path.join(base, "run", "podbgp.sock"), {"echo": _echo, "boom": _boom})
    await srv.start()
    yield srv
    await srv.stop()
    shutil.rmtree(base)


async def test_round_trip_and_errors(server: ControlServer) -> None:
    client = ControlClient(server.path)
    result = await asyncio.to_thread(client.request, "echo", x=1)
    assert result == {"echo": {"x": 1}}
    with pytest.raises(APIError, match="unknown command 'nope'"):
        await asyncio.to_thread(client.request, "nope")
    with pytest.raises(APIError, match="internal error: handler bug"):
        await asyncio.to_thread(client.request, "boom")
    # the server survives a handler failure
    assert await asyncio.to_thread(client.request, "echo") == {"echo": {}}


async def test_socket_is_owner_only(server: ControlServer) -> None:
    mode = os.stat(server.path).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode) == 0o700


async def test_non_owner_is_refused(server: ControlServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    os.chmod(server.path, 0o666)  # defeat the file mode so SO_PEERCRED is what refuses
    os.chmod(os.path.dirname(server.path), 0o755)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, then ask (the interpreter is already loaded)
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                ControlClient(server.path, timeout=5).request("echo")
                msg = b"answered"
            except APIError as exc:
                msg = str(exc).encode()
            os.write(write_end, msg)
        finally:
            os._exit(0)
    os.close(write_end)
    await asyncio.to_thread(os.waitpid, pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"permission denied"
