"""podbgp.lab.shell.run: the lab's one command runner, and the device probe built on it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from podbgp.lab.devices import KINDS, ProbeFailed, probe_devices
from podbgp.lab.netns import IP
from podbgp.lab.shell import CommandFailed, run


def test_run_returns_stdout() -> None:
    assert run([sys.executable, "-c", "print('hi')"]) == "hi\n"


def test_a_failing_command_names_itself_its_status_and_stderr() -> None:
    code = "import sys; sys.stderr.write('bad thing\\n'); sys.exit(3)"
    with pytest.raises(CommandFailed) as exc:
        run([sys.executable, "-c", code])
    assert (exc.value.returncode, exc.value.stderr) == (3, "bad thing")
    assert str(exc.value).endswith("failed (3): bad thing")
    assert run([sys.executable, "-c", code], check=False) == ""


def test_run_is_bounded_by_its_timeout() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


@pytest.mark.skipif(os.geteuid() != 0, reason="the device probe needs a private namespace (root)")
def test_the_device_probe_agrees_with_the_kernel_and_leaves_nothing() -> None:
    before = run([IP, "-o", "link"])
    found = probe_devices()
    assert set(found) == set(KINDS)
    for kind, error in found.items():
        # Ground truth from the same kernel, in a namespace of unshare(1)'s own.
        probe = ["unshare", "--net", IP, "link", "add", "t0", *KINDS[kind]]
        ok = subprocess.run(probe, capture_output=True, check=False).returncode == 0
        assert (error is None) is ok, (kind, error)
    assert run([IP, "-o", "link"]) == before


def test_an_unknown_answer_is_a_probe_failure_not_a_guess() -> None:
    with pytest.raises(ProbeFailed):
        probe_devices(("no-such-kind",))
