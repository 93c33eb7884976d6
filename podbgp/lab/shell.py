"""The one way the lab and the test namespaces run a command (`run`), and the lab's errors.

A command that exits non-zero raises `CommandFailed`, whose message names the command, its
exit status and what it wrote to stderr (one line for `podbgp lab` to print), unless the
caller asks with ``check=False`` to read its output whatever the status. Every call is
bounded by a timeout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

__all__ = ["CommandFailed", "LabError", "Unsupported", "run"]


class LabError(RuntimeError):
    """The lab cannot be built or used; the message says why and what to do."""


class Unsupported(LabError):
    """The option needs something this machine lacks (a kernel feature, FRR)."""


class CommandFailed(LabError):
    """A command exited non-zero: the message says which, with what status and stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.command = " ".join(args)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{self.command} failed ({returncode}): {self.stderr}")


def run(args: Sequence[str], check: bool = True, timeout: float = 30, **kw: Any) -> str:
    """Run ``args`` (no shell), return its stdout; `CommandFailed` if it fails and ``check``.

    ``kw`` goes to `subprocess.run` (``input``, ``env``, ``cwd``)."""
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if check and proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, proc.stderr)
    return str(proc.stdout)
