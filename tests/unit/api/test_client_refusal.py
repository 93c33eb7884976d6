"""A daemon that refuses a caller answers and closes before reading the request; the
client must show that answer, not the broken pipe its own write then runs into."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from podbgp.api import APIError, ControlClient


def test_an_answer_sent_before_the_request_was_read_is_what_the_client_reports(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "refusing.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def refuse() -> None:
        conn, _ = server.accept()
        conn.sendall(b'{"ok": false, "error": "permission denied"}\n')
        conn.close()  # without reading: the client's write fails with EPIPE

    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    try:
        with pytest.raises(APIError, match=r"^permission denied$"):
            # A request far larger than the socket buffer, so the write is still going
            # when the other end closes.
            ControlClient(path, timeout=5).request("echo", blob="x" * (8 << 20))
    finally:
        t.join(5)
        server.close()
