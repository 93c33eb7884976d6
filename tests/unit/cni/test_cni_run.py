"""One plugin invocation end to end where no kernel is needed: VERSION and every early error.

The executable is run exactly as a runtime runs it (environment + stdin,
JSON on stdout, exit status), besides calling `podbgp.cni.run` directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podbgp.cni import run

PLUGIN = str(Path(sys.executable).parent / "podbgp-cni")
CONF = {
    "cniVersion": "1.0.0",
    "name": "k8s-pod-network",
    "type": "podbgp-cni",
    "node_name": "node-a",
    "pools": ["10.244.0.0/16"],
}


def invoke(env: dict[str, str], stdin: bytes) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [PLUGIN], input=stdin, env=env, capture_output=True, timeout=30, check=False
    )
    return proc.returncode, json.loads(proc.stdout)


def add_env(**changes: str) -> dict[str, str]:
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/var/run/netns/does-not-exist-podbgp",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
    }
    env.update(changes)
    return env


def test_version_command_through_the_executable() -> None:
    status, out = invoke({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"0.4.0"}')
    assert status == 0
    assert out == {"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def test_version_with_empty_stdin() -> None:
    status, out, _ = run({"CNI_COMMAND": "VERSION"}, b"")
    assert status == 0 and out is not None
    assert out["cniVersion"] == "1.0.0"


def test_bad_environment_through_the_executable_is_code_4() -> None:
    status, out = invoke(add_env(CNI_COMMAND="ATTACH"), json.dumps(CONF).encode())
    assert status != 0
    assert out["code"] == 4
    assert "CNI_COMMAND" in out["msg"]
    assert out["cniVersion"] == "1.0.0"


def test_bad_config_through_the_executable_is_code_7(tmp_path: Path) -> None:
    conf = {**CONF, "datastore": f"sqlite:{tmp_path}/db", "pools": ["10.244.0.0/99"]}
    status, out = invoke(add_env(), json.dumps(conf).encode())
    assert status != 0
    assert out["code"] == 7
    assert "ipam.pool[0].cidr" in out["msg"]


def test_unsupported_version_through_the_executable_is_code_1() -> None:
    status, out = invoke(add_env(), json.dumps({**CONF, "cniVersion": "0.2.0"}).encode())
    assert status != 0
    assert out["code"] == 1
    assert out["cniVersion"] == "1.0.0"  # an error in a version the runtime can read


@pytest.mark.parametrize(("stdin", "code"), [(b"{", 6), (b"\xff\xfe", 6), (b"[1]", 6)])
def test_undecodable_config(stdin: bytes, code: int) -> None:
    status, out, _ = run(add_env(), stdin)
    assert status == 1 and out is not None
    assert out["code"] == code


def test_error_speaks_the_configs_version() -> None:
    conf = {**CONF, "cniVersion": "0.4.0", "name": ""}
    status, out, version = run(add_env(), json.dumps(conf).encode())
    assert status == 1 and out is not None
    assert (out["cniVersion"], out["code"], version) == ("0.4.0", 7, "0.4.0")


def test_add_into_a_missing_namespace_is_code_3_and_allocates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "ipam.db"
    conf = {**CONF, "datastore": f"sqlite:{db}"}
    status, out = invoke(add_env(), json.dumps(conf).encode())
    assert status != 0
    assert out["code"] == 3
    assert not db.exists()  # the store was never opened


def test_check_before_0_4_0_is_code_1(tmp_path: Path) -> None:
    conf = {**CONF, "cniVersion": "0.3.1", "datastore": f"sqlite:{tmp_path}/db"}
    status, out, _ = run(add_env(CNI_COMMAND="CHECK"), json.dumps(conf).encode())
    assert status == 1 and out is not None
    assert out["code"] == 1
    assert "CHECK" in out["msg"]


def test_log_file_records_failures(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    conf = {**CONF, "datastore": f"sqlite:{tmp_path}/db", "log_file": str(log)}
    status, out = invoke(add_env(), json.dumps(conf).encode())
    assert status != 0 and out["code"] == 3
    assert "no such namespace" in log.read_text()
