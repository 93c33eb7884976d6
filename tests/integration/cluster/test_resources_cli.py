"""`podbgp apply|get|delete` on a real SQLite datastore: output, exit status, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podbgp.cli import main

FILE = """
[bgp]
asn = 64512
mesh_password_placeholder_removed = 0

[[pool]]
name = "default"
cidr = "10.244.0.0/16"

[[peer]]
name = "tor1"
address = "10.0.0.1"
asn = 65000
password = "s3cret"
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:{tmp_path / 'podbgp.db'}"
    assert main(["datastore", "init", "--datastore", url]) == 0
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "res.toml"
    p.write_text(text)
    return str(p)


def test_apply_get_delete(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, FILE.replace("mesh_password_placeholder_removed = 0\n", ""))
    code, out, err = run(capsys, "apply", "-f", f, "--datastore", db)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "bgp/default created (revision 2)",
        "pool/default created (revision 2)",
        "peer/tor1 created (revision 2)",
    ]
    code, out, _ = run(capsys, "apply", "-f", f, "--datastore", db)
    assert code == 0 and all(line.endswith(" unchanged") for line in out.splitlines())
    code, out, _ = run(capsys, "get", "peer", "tor1", "--datastore", db)
    assert code == 0
    assert out.splitlines() == ["# peer/tor1 revision 2", "[[peer]]", 'name = "tor1"',
                                'address = "10.0.0.1"', "asn = 65000", 'password = "<redacted>"']  # fmt: skip
    code, out, _ = run(capsys, "get", "pools", "--json", "--datastore", db)
    assert json.loads(out) == [{"kind": "pool", "name": "default", "revision": 2,
                                "spec": {"cidr": "10.244.0.0/16"}}]  # fmt: skip
    code, out, _ = run(capsys, "get", "bgp", "--json", "--datastore", db)
    assert json.loads(out)["spec"] == {"asn": 64512}
    # What `get NAME` prints is a file `apply` takes back.
    code, out, _ = run(capsys, "get", "peer", "tor1", "--show-secrets", "--datastore", db)
    again = write(tmp_path, out)
    code, out, _ = run(capsys, "apply", "-f", again, "--datastore", db)
    assert (code, out) == (0, "peer/tor1 unchanged\n")
    code, out, _ = run(capsys, "delete", "peer", "tor1", "--datastore", db)
    assert (code, out) == (0, "peer/tor1 deleted\n")
    code, out, _ = run(capsys, "get", "peer", "--datastore", db)
    assert (code, out) == (0, "no peer resources\n")


def test_invalid_file_lists_every_error_and_writes_nothing(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path, FILE + '[[pool]]\nname = "x"\ncidr = "10.244.1.0/24"\n')
    code, out, err = run(capsys, "apply", "-f", f, "--datastore", db)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"podbgp apply: {f}: 2 errors",
        "  bgp.mesh_password_placeholder_removed: unknown key",
        '  pool[1].cidr: "10.244.1.0/24" overlaps pool[0] ("10.244.0.0/16")',
    ]
    code, out, _ = run(capsys, "get", "pool", "--datastore", db)
    assert (code, out) == (0, "no pool resources\n")


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["get", "poool"], 2, "podbgp get: unknown kind 'poool'; kinds: bgp, pool, peer, policy, reservation"),
        (["delete", "pool", "nope"], 1, "podbgp delete: no pool named 'nope'"),
        (["get", "pool", "nope"], 1, "podbgp get: no pool named 'nope'"),
        (["apply", "-f", "/nonexistent/res.toml"], 2,
         "podbgp apply: /nonexistent/res.toml: cannot read: No such file or directory"),
    ],
)  # fmt: skip
def test_usage_and_lookup_errors_are_one_line(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, out, err = run(capsys, *argv, "--datastore", db)
    assert (got, out, err) == (code, "", message + "\n")


def test_a_missing_store_is_an_error_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path, '[[pool]]\nname = "a"\ncidr = "10.1.0.0/16"\n')
    url = f"sqlite:{tmp_path / 'misspelt.db'}"
    code, out, err = run(capsys, "apply", "-f", f, "--datastore", url)
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert "does not exist" in err and not (tmp_path / "misspelt.db").exists()


def test_the_store_is_found_through_a_node_file_without_an_asn(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A five-line node file names its store; [datastore] and [api] are all apply reads."""
    node = tmp_path / "node.toml"
    node.write_text(f'[node]\nname = "n1"\naddress = "10.0.0.11/24"\n'
                    f'[datastore]\npath = "{db.removeprefix("sqlite:")}"\n'
                    f'[api]\nsocket = "{tmp_path / "api.sock"}"\n')  # fmt: skip
    f = write(tmp_path, '[[pool]]\nname = "a"\ncidr = "10.1.0.0/16"\n')
    code, out, err = run(capsys, "apply", "-f", f, "--config", str(node))
    assert (code, err) == (0, "") and out == "pool/a created (revision 2)\n"


def test_check_shows_the_effective_config_its_sources_and_overrides(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    from podbgp.config import load_config_text

    f = write(tmp_path, FILE.replace("mesh_password_placeholder_removed = 0\n", "hold_time = 30\n")
              + '[[peer]]\nname = "self"\naddress = "10.0.0.11"\nasn = 64512\n')  # fmt: skip
    assert run(capsys, "apply", "-f", f, "--datastore", db)[0] == 0
    node = tmp_path / "node.toml"
    node.write_text(f'[node]\nname = "n1"\naddress = "10.0.0.11/24"\nlabels = {{ rack = "r1" }}\n'
                    f'[datastore]\npath = "{db.removeprefix("sqlite:")}"\n'
                    f'[api]\nsocket = "{tmp_path / "api.sock"}"\n'
                    '[bgp]\nhold_time = 9\n')  # fmt: skip
    code, out, err = run(capsys, "check", "--config", str(node))
    assert (code, err) == (0, "")
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert comments == [
        f"# effective configuration of {node}",
        "# cluster resources: 4",
        "# values from the cluster:",
        "#   bgp.peer[0]: cluster peer/tor1 (revision 2)",
        "#   ipam.pool[0]: cluster pool/default (revision 2)",
        "#   node.asn: cluster bgp/default (revision 2)",
        "# the node file overrides:",
        "#   bgp.hold_time: 9 (cluster bgp/default: 30)",
        "# cluster peers at this node's own address, left out: peer/self",
        "# every other value is the node file's or a default",
    ]
    cfg = load_config_text(out)  # what check prints loads back
    assert cfg.node.asn == 64512 and cfg.bgp.hold_time == 9
    assert [str(p.address) for p in cfg.bgp.peers] == ["10.0.0.1"]
    assert tomllib.loads(out)["bgp"]["peer"][0]["password"] == "<redacted>"
