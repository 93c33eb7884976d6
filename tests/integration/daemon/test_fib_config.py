"""`[fib] nexthops` reaches the running FIB: `podbgp run` in a namespace, then `show fib`.

`true` (the default) gives the reconciler kernel nexthop objects — on unless the
kernel refuses them, which `show fib` then says; `false` keeps every route's hops
inline, and `podbgp show fib` prints why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_lab import wait

from podbgp.api import APIError, ControlClient
from podbgp.lab.netns import NetnsGroup

pytestmark = [pytest.mark.root]

CONFIG = """
[node]
name = "n1"
asn = 64512
address = "10.97.0.1/24"

[bgp]
enabled = false

[datastore]
kind = "sqlite"
path = "{dir}/podbgp.db"
create = true

[fib]
{fib}

[api]
socket = "{dir}/podbgp.sock"
metrics = ""
"""


def _show_fib(netns: NetnsGroup, tmp_path: Path, fib: str) -> tuple[dict[str, Any], str]:
    """Start podbgp with `fib` as its `[fib]` body; `show.fib` as JSON and as text."""
    ns, other = netns.add("n"), netns.add("o")
    netns.veth(ns, "eth0", other, "eth0")  # no dummy links on every kernel
    ns.ip("addr", "add", "10.97.0.1/24", "dev", "eth0")
    path = tmp_path / "node.toml"
    path.write_text(CONFIG.format(dir=tmp_path, fib=fib))
    log = tmp_path / "podbgp.log"
    with open(log, "wb") as out:
        proc = ns.popen([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                        stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    client = ControlClient(str(tmp_path / "podbgp.sock"))

    def answer() -> dict[str, Any]:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return dict(client.request("show.fib"))
        except (APIError, OSError):
            return {}

    snap = wait(answer, 30, "podbgp answers show.fib")
    text = subprocess.run(
        [sys.executable, "-m", "podbgp", "show", "fib", "--socket", str(tmp_path / "podbgp.sock")],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return snap, text


def test_nexthops_false_keeps_hops_inline(netns: NetnsGroup, tmp_path: Path) -> None:
    snap, text = _show_fib(netns, tmp_path, "nexthops = false")
    assert snap["nexthops"]["enabled"] is False
    assert snap["nexthops"]["unsupported"] == ""  # off by config, not by the kernel
    assert "nexthops: inline hops ([fib] nexthops = false)" in text.splitlines()


def test_nexthops_default_uses_kernel_objects(netns: NetnsGroup, tmp_path: Path) -> None:
    snap, text = _show_fib(netns, tmp_path, "")
    nh = snap["nexthops"]
    if nh["unsupported"]:
        # The kernel refused objects: the reconciler fell back and says why.
        assert nh["enabled"] is False
        assert f"kernel refused objects: {nh['unsupported']}" in text
    else:
        assert nh["enabled"] is True
        assert "nexthops: objects, 0 desired, 0 installed, 0 refused" in text.splitlines()
