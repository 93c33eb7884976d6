"""BFD in a helper process: the daemon's side (`BfdProcess`) and the child (`main`).

Why a process (measured, see docs/benchmarks.md and tests/interop/test_bfd_ingest.py):
the first runner was a thread in the daemon. During a 200k-prefix ingest the daemon's
main thread held the GIL for more than the 0.9 s detection time in single C-level
steps (the switch interval of 5 ms only preempts bytecode, not one long C call or a
garbage collection), so the thread neither sent nor read: FRR declared the session
down and so did we. A child process has its own interpreter and GIL; the kernel
schedules it as soon as its timer or a packet wakes it, whatever the daemon does.

The child runs `bfd.runner.BfdRunner` unchanged. The two talk over a socketpair, one
JSON object per line:

- daemon → child: ``{"op": "add", "spec": {...}}``, ``{"op": "remove", "key": K}``,
  ``{"op": "stop"}``;
- child → daemon: ``{"ev": "change", "key": K, ...StateChanged}`` at once on every
  state change, and ``{"ev": "stats", "stats": {...}}`` after each change and once a
  second (counters for ``show peers`` and metrics).

On the daemon's side a reader thread turns lines into ``notify(key, StateChanged)``
calls, the same contract as ``BfdRunner``'s. If the daemon dies the socketpair
closes; the child then sends AdminDown on every session (RFC 5880 §6.8.16) and exits,
so a crash of the control plane is not reported to peers as a failure of the
forwarding path (RFC 5882 §3.2), which keeps forwarding on the kernel routes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import asdict
from typing import Any

from bfd.packet import Diag, State
from bfd.runner import CONTROL_PORT, BfdRunner, Notify, SessionSpec
from bfd.session import BfdSettings, StateChanged

__all__ = ["BfdProcess", "main"]

log = logging.getLogger("bfd.process")

STATS_EVERY = 1.0


class BfdProcess:
    """The daemon's handle on the child; ``add``/``remove``/``stop``/``stats`` like a runner."""

    def __init__(self, notify: Notify, listen_port: int = CONTROL_PORT) -> None:
        self.notify = notify
        self.listen_port = listen_port
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stats: dict[str, dict[str, Any]] = {}
        self._send_lock = threading.Lock()

    def start(self) -> None:
        """Spawn the child; an error binding UDP 3784 surfaces here as ``OSError``."""
        ours, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", "bfd.process", str(theirs.fileno()), str(self.listen_port)]
        self._proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self._sock = ours
        first = _Lines(ours).next()
        if first is None or first.get("ev") != "ready":
            self._proc.wait(5)
            reason = first.get("error") if first else "exited"
            raise OSError(f"BFD helper did not start: {reason}")
        self._reader = threading.Thread(target=self._read, name="bfd-events", daemon=True)
        self._reader.start()

    def add(self, spec: SessionSpec) -> None:
        self._send({"op": "add", "spec": _spec_dict(spec)})

    def remove(self, key: str) -> None:
        self._send({"op": "remove", "key": key})

    def stats(self) -> dict[str, dict[str, Any]]:
        return dict(self._stats)

    def stop(self) -> None:
        """AdminDown to every peer, then wait for the child (bounded)."""
        if self._proc is None:
            return
        self._send({"op": "stop"})
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if self._sock is not None:
            self._sock.close()
        self._proc = None

    def _send(self, obj: dict[str, Any]) -> None:
        if self._sock is None:
            return
        with self._send_lock, contextlib.suppress(OSError):
            self._sock.sendall(json.dumps(obj).encode() + b"\n")

    def _read(self) -> None:
        assert self._sock is not None
        lines = _Lines(self._sock)
        while (msg := lines.next()) is not None:
            if msg.get("ev") == "stats":
                self._stats = msg["stats"]
            elif msg.get("ev") == "change":
                self.notify(msg["key"], _change(msg))


def _spec_dict(spec: SessionSpec) -> dict[str, Any]:
    return {**asdict(spec), "settings": asdict(spec.settings)}


def _spec(d: dict[str, Any]) -> SessionSpec:
    return SessionSpec(**{**d, "settings": BfdSettings(**d["settings"])})


def _change(msg: dict[str, Any]) -> StateChanged:
    return StateChanged(
        State(msg["old"]), State(msg["new"]), Diag(msg["diag"]), State(msg["remote"]), msg["at"]
    )


class _Lines:
    """JSON objects, one per line, from a stream socket; None at EOF or on garbage."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def next(self) -> dict[str, Any] | None:
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None


# ------------------------------------------------------------------------- the child


class _Child:
    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.runner = BfdRunner(self._changed, listen_port=port)
        self.done = threading.Event()
        self.dirty = threading.Event()

    def send(self, obj: dict[str, Any]) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def _changed(self, key: str, ev: StateChanged) -> None:  # in the runner's thread
        self.send({"ev": "change", "key": key, "old": ev.old, "new": ev.new, "diag": ev.diag,
                   "remote": ev.remote_state, "at": ev.at})  # fmt: skip
        self.dirty.set()  # not stats() here: the runner holds its lock while it notifies

    def _stats_loop(self) -> None:
        while not self.done.is_set():
            self.dirty.wait(STATS_EVERY)
            self.dirty.clear()
            self.send({"ev": "stats", "stats": self.runner.stats()})

    def run(self) -> int:
        try:
            self.runner.start()
        except OSError as exc:
            self.send({"ev": "error", "error": str(exc)})
            return 1
        self.send({"ev": "ready"})
        threading.Thread(target=self._stats_loop, daemon=True).start()
        lines = _Lines(self.sock)
        while (msg := lines.next()) is not None:
            op = msg.get("op")
            if op == "add":
                self.runner.add(_spec(msg["spec"]))
            elif op == "remove":
                self.runner.remove(str(msg["key"]))
            elif op == "stop":
                break
        # "stop", or the daemon is gone (EOF): AdminDown everywhere, then exit.
        self.done.set()
        self.dirty.set()
        self.runner.stop()
        return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bfd.process FD PORT``: serve the socketpair end ``FD``."""
    args = sys.argv[1:] if argv is None else argv
    fd, port = int(args[0]), int(args[1])
    with contextlib.suppress(OSError):
        os.nice(-10)  # only as root; timers matter more than throughput here
    sock = socket.socket(fileno=fd)
    return _Child(sock, port).run()


if __name__ == "__main__":
    sys.exit(main())
