"""`podbgp check --config FILE` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from podbgp.cli import main
from podbgp.config import load_config, load_config_text

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = Path(__file__).parent / "data" / "contract.toml"


def test_valid_config_prints_effective_toml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(CONTRACT)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"# effective configuration of {CONTRACT}\n")
    # Defaults the file leaves out are printed, and the output loads back to the same config.
    assert "max_prefixes_restart = 60" in out
    assert load_config_text(out) == load_config(CONTRACT)


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(CONTRACT), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == load_config(CONTRACT).to_dict()
    assert data["bgp"]["peer"][0]["export"] == "local"


def test_invalid_config_lists_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[node]\nname = "n"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 1\n'
        '[[bgp.peer]]\naddress = "10.0.0.3"\nasn = 1\n'
        '[[bgp.peer]]\naddress = "10.0.0.4"\nasn = 4294967296\n'
        "[fib]\nprotocol = 186\n"
    )
    assert main(["check", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"{path}: 2 errors"
    assert lines[1] == "  bgp.peer[2].asn: 4294967296 is not an AS number (1..4294967295)"
    assert lines[2].startswith("  fib.protocol: 186 is used by bgp (FRR) routes")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_passwords_redacted_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "md5.toml"
    path.write_text(
        '[node]\nname = "n"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        '[[bgp.peer]]\naddress = "10.0.0.2"\nasn = 1\npassword = "s3cret"\n'
    )
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and 'password = "<redacted>"' in out
    assert main(["check", "--config", str(path), "--show-secrets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bgp"]["peer"][0]["password"] == "s3cret"


def test_every_example_passes_check_as_a_process() -> None:
    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        proc = subprocess.run(
            [sys.executable, "-m", "podbgp", "check", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert tomllib.loads(proc.stdout)["node"]["name"]
