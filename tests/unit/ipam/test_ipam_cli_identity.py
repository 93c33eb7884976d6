"""`podbgp datastore` and `podbgp ipam` against real SQLite files: explicit creation, identity,
the daemon's config loader, and the smaller operator-trial findings (issue 12, item 10)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_ipam_cli import prepare

from ipam.identity import Membership, record_membership
from podbgp.cli import main
from podbgp.cmd_ipam import pools_table
from podbgp.cmd_show import _ipam_text

COMMANDS = (
    ["pools"],
    ["blocks"],
    ["show", "10.50.0.1"],
    ["check"],
    ["allocate", "--node", "n1", "--handle", "h"],
    ["release", "--handle", "h"],
    ["gc", "--live", "x"],
)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def node_config(tmp: Path, db: Path, pool: str = 'cidr = "10.50.0.0/24"', extra: str = "") -> Path:
    path = tmp / "node.toml"
    path.write_text(
        '[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        f'[datastore]\nkind = "sqlite"\npath = "{db}"\n{extra}\n'
        f"[[ipam.pool]]\n{pool}\n"
        f'[api]\nsocket = "{tmp}/podbgp.sock"\n'
    )
    return path


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_every_ipam_command_refuses_a_missing_store_and_creates_nothing(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tpyo" / "podbgp.db"
    rc, out, err = cli(capsys, "ipam", *argv, "--datastore", f"sqlite:{db}",
                       "--pool", "10.50.0.0/24")  # fmt: skip
    assert rc == 1, out
    assert f"{db}: the datastore does not exist; run `podbgp datastore init`" in err, err
    assert not db.parent.exists()


def test_ipam_refuses_an_uninitialised_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    db.touch()  # what a misdirected tool might leave: an empty file
    rc, _, err = cli(capsys, "ipam", "pools", "--datastore", f"sqlite:{db}")
    assert rc == 1 and "holds no podbgp datastore" in err, err
    assert db.stat().st_size == 0


def test_ipam_refuses_a_store_of_another_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}", "n1")
    cfg = node_config(tmp_path, db)
    record_membership(tmp_path / "cluster-id", Membership("another-cluster", "sqlite:x", 0.0))
    rc, _, err = cli(capsys, "ipam", "pools", "--config", str(cfg))
    assert rc == 1 and "is not the cluster this node joined (another-cluster" in err, err


def test_datastore_init_show_and_a_second_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "new" / "podbgp.db"
    rc, out, _ = cli(capsys, "datastore", "show", "--datastore", f"sqlite:{db}")
    assert rc == 1 and not db.exists()
    rc, out, err = cli(capsys, "datastore", "init", "--datastore", f"sqlite:{db}", "--json")
    assert rc == 0, err
    made = json.loads(out)
    assert made["schema"] == 1 and made["datastore"] == f"sqlite:{db}"
    rc, _, err = cli(capsys, "datastore", "init", "--datastore", f"sqlite:{db}")
    assert rc == 1
    assert f"already initialised (cluster ID {made['cluster_id']}); nothing changed" in err
    cfg = node_config(tmp_path, db)
    rc, out, _ = cli(capsys, "datastore", "show", "--config", str(cfg))
    assert rc == 0 and made["cluster_id"] in out and "not joined yet" in out
    record_membership(tmp_path / "cluster-id", Membership(made["cluster_id"], "", 0.0))
    rc, out, _ = cli(capsys, "datastore", "show", "--config", str(cfg))
    assert rc == 0 and "joined this cluster" in out
    (tmp_path / "cluster-id").unlink()
    record_membership(tmp_path / "cluster-id", Membership("old-one", "", 0.0))
    rc, out, _ = cli(capsys, "datastore", "show", "--config", str(cfg))
    assert rc == 1 and "joined ANOTHER cluster, old-one" in out


def test_datastore_init_adopts_a_store_from_before_identities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ipam.store import OpenMode, open_store

    db = tmp_path / "podbgp.db"

    async def legacy() -> None:
        store = open_store(f"sqlite:{db}", OpenMode.CREATE)
        try:
            assert await store.create("/podbgp/v1/nodes/n1", b'{"name": "n1"}')
        finally:
            await store.close()

    import asyncio

    asyncio.run(legacy())
    rc, _, err = cli(capsys, "ipam", "pools", "--datastore", f"sqlite:{db}")
    assert rc == 1 and "not initialised (no cluster ID)" in err
    rc, _, err = cli(capsys, "datastore", "init", "--datastore", f"sqlite:{db}")
    assert rc == 0, err
    rc, _, err = cli(capsys, "ipam", "allocate", "--datastore", f"sqlite:{db}",
                     "--pool", "10.50.0.0/24", "--node", "n1", "--handle", "h")  # fmt: skip
    assert rc == 0, err  # the node record written before init is still there


# -- one loader ---------------------------------------------------------------------------
def test_config_with_a_slash_30_pool_works_as_for_check_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}", "n1")
    cfg = node_config(tmp_path, db, pool='cidr = "10.250.0.0/30"')
    assert cli(capsys, "check", "--config", str(cfg))[0] == 0
    rc, out, err = cli(capsys, "ipam", "pools", "--config", str(cfg), "--json")
    assert rc == 0, err
    assert json.loads(out)["pools"][0]["block_size"] == 30
    alloc = ["ipam", "allocate", "--config", str(cfg), "--node", "n1", "--json", "--handle"]
    got = [json.loads(cli(capsys, *alloc, f"h{i}")[1])["address"] for i in range(4)]
    assert sorted(got) == [f"10.250.0.{i}" for i in range(4)]
    rc, out, err = cli(capsys, "ipam", "pools", "--datastore", f"sqlite:{db}",
                       "--pool", "10.250.0.0/30")  # fmt: skip
    assert rc == 0, err


def test_invalid_config_gives_check_s_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}")
    cfg = node_config(tmp_path, db)
    cfg.write_text(cfg.read_text().replace('path = "', 'pth = "'))
    _, _, check_err = cli(capsys, "check", "--config", str(cfg))
    rc, _, err = cli(capsys, "ipam", "pools", "--config", str(cfg))
    assert rc == 1
    assert "datastore.pth: unknown key (did you mean path?)" in err
    assert err.strip().endswith(check_err.strip())
    rc, _, err = cli(capsys, "ipam", "pools", "--datastore", f"sqlite:{db}",
                     "--pool", "10.0.0.0/8/40")  # fmt: skip
    assert rc == 1 and "ipam.pool[0].block_size: 40 is not within 8..32 (pool 10.0.0.0/8)" in err, (
        err
    )


# -- item 10 ------------------------------------------------------------------------------
def test_show_of_an_address_in_no_pool_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}")
    ds = ["--datastore", f"sqlite:{db}", "--pool", "10.50.0.0/24"]
    rc, out, _ = cli(capsys, "ipam", "show", *ds, "10.250.0.1")
    assert rc == 1
    assert "in no pool (pools: 10.50.0.0/24)" in out and "free" not in out
    rc, out, _ = cli(capsys, "ipam", "show", *ds, "10.50.0.9")
    assert rc == 0 and "state     free" in out


def test_allocate_for_an_unregistered_node_is_refused_and_claims_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}", "n1", "n2")
    ds = ["--datastore", f"sqlite:{db}", "--pool", "10.50.0.0/24"]
    rc, _, err = cli(capsys, "ipam", "allocate", *ds, "--node", "nosuchnode", "--handle", "h")
    assert rc == 1
    assert "node 'nosuchnode' is not registered in the datastore (registered: n1, n2)" in err
    rc, out, _ = cli(capsys, "ipam", "blocks", *ds, "--json")
    assert json.loads(out)["blocks"] == []


def test_blocks_sort_by_address_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}", "n1")
    ds = ["--datastore", f"sqlite:{db}", "--pool", "10.244.0.0/16"]
    for i, a in enumerate(("10.244.159.70", "10.244.82.200", "10.244.9.1")):
        rc, _, err = cli(capsys, "ipam", "allocate", *ds, "--node", "n1", "--handle", f"h{i}",
                         "--address", a)  # fmt: skip
        assert rc == 0, err
    rc, out, _ = cli(capsys, "ipam", "blocks", *ds, "--json")
    cidrs = [b["cidr"] for b in json.loads(out)["blocks"]]
    assert cidrs == ["10.244.9.0/26", "10.244.82.192/26", "10.244.159.64/26"]


def test_reads_work_on_a_read_only_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed")
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}", "n1")
    ds = ["--datastore", f"sqlite:{db}", "--pool", "10.50.0.0/24"]
    assert cli(capsys, "ipam", "allocate", *ds, "--node", "n1", "--handle", "h")[0] == 0
    files = [p for p in tmp_path.glob("podbgp.db*")]
    if subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True).returncode:
        pytest.skip("this file system does not support the immutable attribute")
    try:
        before = db.read_bytes()
        for argv in (["blocks"], ["pools"], ["show", "10.50.0.1"], ["check"]):
            rc, _, err = cli(capsys, "ipam", *argv, *ds)
            assert rc in (0, 1) and not err, (argv, err)
        rc, _, err = cli(capsys, "ipam", "allocate", *ds, "--node", "n1", "--handle", "h2")
        assert rc == 1 and "readonly" in err, err  # a write still says why it cannot
        assert db.read_bytes() == before
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)


def test_ipam_pools_and_show_ipam_print_the_same_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "podbgp.db"
    prepare(f"sqlite:{db}", "n1")
    ds = ["--datastore", f"sqlite:{db}", "--pool", "10.50.0.0/24/28"]
    assert cli(capsys, "ipam", "allocate", *ds, "--node", "n1", "--handle", "h")[0] == 0
    _, out, _ = cli(capsys, "ipam", "pools", *ds, "--json")
    usage: list[dict[str, Any]] = json.loads(out)["pools"]
    _, text, _ = cli(capsys, "ipam", "pools", *ds)
    assert text.rstrip("\n") == pools_table(usage)
    shown = _ipam_text({"announced": None, "rows": usage})
    assert shown.endswith(pools_table(usage))
    assert "1/16" in text  # blocks claimed / blocks in the pool


@pytest.mark.etcd
def test_datastore_init_and_show_on_etcd(capsys: pytest.CaptureFixture[str]) -> None:
    from ipam.etcdlab import EtcdCluster, have_etcd

    if why := have_etcd():
        pytest.skip(why)
    with EtcdCluster.start(1) as etcd:
        rc, _, err = cli(capsys, "datastore", "show", "--datastore", etcd.url)
        assert rc == 1 and "not initialised (no cluster ID)" in err, err
        rc, _, err = cli(capsys, "ipam", "pools", "--datastore", etcd.url)
        assert rc == 1 and "podbgp datastore init" in err, err
        rc, out, err = cli(capsys, "datastore", "init", "--datastore", etcd.url, "--json")
        assert rc == 0, err
        cluster = json.loads(out)["cluster_id"]
        rc, _, err = cli(capsys, "datastore", "init", "--datastore", etcd.url)
        assert rc == 1 and f"already initialised (cluster ID {cluster})" in err
        rc, out, _ = cli(capsys, "datastore", "show", "--datastore", etcd.url)
        assert rc == 0 and cluster in out and etcd.url.split(",")[0] in out
        assert cli(capsys, "ipam", "pools", "--datastore", etcd.url)[0] == 0
