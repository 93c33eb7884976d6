"""`podbgp run` refuses to start on a bad config or an unusable datastore: exit 1, a
message naming the key path or the datastore, and no long wait."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE = """
[node]
name = "x"
asn = 64512
address = "127.0.0.1/8"

[bgp]
listen = ["127.0.0.1"]
port = 17979
{bgp}

[datastore]
{datastore}

[[ipam.pool]]
cidr = "10.244.0.0/16"

[fib]
enabled = false

[api]
socket = "{socket}"
metrics = ""
"""


def run(tmp_path: Path, bgp: str = "", datastore: str = 'kind = "sqlite"\npath = "{db}"',
        timeout: float = 60) -> tuple[int, str, float]:  # fmt: skip
    text = BASE.format(bgp=bgp, datastore=datastore, socket=tmp_path / "s.sock")
    path = tmp_path / "node.toml"
    path.write_text(text.replace("{db}", str(tmp_path / "podbgp.db")))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "podbgp", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    return proc.returncode, proc.stderr, time.monotonic() - t0


@pytest.mark.parametrize(
    ("bgp", "path", "why"),
    [
        ("hold_time = 2", "bgp.hold_time", "is not a hold time"),
        ("holdtime = 90", "bgp.holdtime", "unknown"),
        (
            '[[bgp.peer]]\naddress = "10.0.0.9"\nasn = 4294967296',
            "bgp.peer[0].asn",
            "is not an AS number",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, bgp: str, path: str, why: str) -> None:
    rc, err, _ = run(tmp_path, bgp=bgp)
    assert rc == 1, err
    assert path in err and why in err, err
    assert "invalid config" in err


def test_unreachable_etcd_is_a_datastore_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err, took = run(
        tmp_path, datastore=f'kind = "etcd"\nendpoints = ["http://127.0.0.1:{port}"]'
    )
    assert rc == 1, err
    assert "cannot start: datastore" in err and f"127.0.0.1:{port}" in err, err
    assert took < 25, f"took {took:.1f} s to give up"


def test_unusable_sqlite_path_is_a_datastore_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    rc, err, took = run(tmp_path, datastore=f'kind = "sqlite"\npath = "{blocker}/podbgp.db"')
    assert rc == 1, err
    assert "cannot start: datastore" in err, err
    assert took < 25
