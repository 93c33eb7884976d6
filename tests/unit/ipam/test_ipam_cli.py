"""`podbgp ipam …` end to end on a real SQLite file (and once on etcd)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ipam import Node, NodeRegistry
from ipam.etcdlab import EtcdCluster
from ipam.identity import ensure_cluster
from ipam.store import OpenMode, open_store
from podbgp.cli import main


def prepare(url: str, *nodes: str) -> None:
    """What a cluster has before `podbgp ipam` is used: an initialised store, registered nodes."""

    async def go() -> None:
        store = open_store(url, OpenMode.CREATE)
        try:
            await ensure_cluster(store)
            for n in nodes:
                await NodeRegistry(store).register(Node(n))
        finally:
            await store.close()

    asyncio.run(go())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["ipam", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def js(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_cli_lifecycle_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepare(f"sqlite:{tmp_path}/db.sqlite", "n1")
    ds = ["--datastore", f"sqlite:{tmp_path}/db.sqlite", "--pool", "10.50.0.0/24/28"]
    a = js(capsys, "allocate", *ds, "--node", "n1", "--handle", "c1", "--attr", "pod=web")
    assert a["address"].startswith("10.50.0.") and a["borrowed"] is False
    b = js(capsys, "allocate", *ds, "--node", "n1", "--handle", "c2", "--address", "10.50.0.200")
    assert b["address"] == "10.50.0.200" and b["block"] == "10.50.0.192/28"
    shown = js(capsys, "show", *ds, a["address"])
    assert shown["allocation"]["handle"] == "c1" and shown["allocation"]["attrs"] == {"pod": "web"}
    assert shown["pool"] == "10.50.0.0/24" and shown["affinity"] == "n1"
    pools = js(capsys, "pools", *ds)["pools"]
    assert [(p["cidr"], p["used"], p["blocks"]) for p in pools] == [("10.50.0.0/24", 2, 2)]
    blocks = js(capsys, "blocks", *ds, "--node", "n1")["blocks"]
    assert {(x["cidr"], x["state"], x["used"]) for x in blocks} == {
        (a["block"], "confirmed", 1),
        ("10.50.0.192/28", "confirmed", 1),
    }
    # Human output is a table.
    rc, out, _ = run(capsys, "blocks", *ds)
    assert rc == 0 and out.splitlines()[0].split() == [
        "BLOCK",
        "POOL",
        "AFFINITY",
        "STATE",
        "USED",
        "FREE",
    ]
    # A stale sequence number releases nothing; the right one does.
    assert js(capsys, "release", *ds, "--address", a["address"], "--seq", "999")["released"] == []
    rel = js(capsys, "release", *ds, "--address", a["address"], "--seq", str(a["seq"]))
    assert rel["released"] == [a["address"]]
    # gc: c2 is not live, grace 0 -> released.
    rc, _, err = run(capsys, "gc", *ds)
    assert rc == 1 and "needs the live handles" in err
    dry = js(capsys, "gc", *ds, "--live", "someone-else", "--grace", "0", "--dry-run")
    assert dry["released"] == [{"address": "10.50.0.200", "handle": "c2"}] and dry["dry_run"]
    live = tmp_path / "live"
    live.write_text("someone-else\n")
    done = js(capsys, "gc", *ds, "--live-file", str(live), "--grace", "0")
    assert done["released"] == [{"address": "10.50.0.200", "handle": "c2"}]
    assert js(capsys, "check", *ds) == {"consistent": True, "problems": []}
    rc, out, _ = run(capsys, "show", *ds, "10.50.0.200")
    assert "state     free" in out


def test_cli_reads_config_and_reports_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "podbgp.toml"
    cfg.write_text(
        f"""
[node]
name = "n1"
asn = 64512
address = "10.0.0.1/24"
[datastore]
kind = "sqlite"
path = "{tmp_path}/from-config.db"
[ipam]
strict_affinity = true
max_blocks_per_node = 1
[[ipam.pool]]
cidr = "10.60.0.0/28"
block_size = 29
"""
    )
    c = ["--config", str(cfg)]
    prepare(f"sqlite:{tmp_path}/from-config.db", "n1")
    for i in range(8):
        js(capsys, "allocate", *c, "--node", "n1", "--handle", f"h{i}")
    assert (tmp_path / "from-config.db").exists()
    rc, _, err = run(capsys, "allocate", *c, "--node", "n1", "--handle", "h9")
    assert rc == 1
    assert "node n1 has all its max_blocks_per_node=1 blocks full and strict_affinity is on" in err
    rc, _, err = run(
        capsys, "allocate", *c, "--node", "n1", "--handle", "x", "--address", "1.2.3.4"
    )
    assert rc == 1 and "1.2.3.4 is in no configured pool" in err
    cfg.write_text('[[ipam.pool]]\ncidr = "10.0.0.0/8"\nblock_size = 40\n')
    rc, _, err = run(capsys, "pools", *c)
    assert rc == 1 and "ipam.pool[0].block_size" in err


@pytest.mark.etcd
def test_cli_on_etcd(etcd_server: EtcdCluster, capsys: pytest.CaptureFixture[str]) -> None:
    prepare(etcd_server.url, "n1")
    ds = ["--datastore", etcd_server.url, "--pool", "fd00:77::/120"]
    a = js(capsys, "allocate", *ds, "--node", "n1", "--handle", "cli-etcd", "--ipv6")
    assert a["address"].startswith("fd00:77::")
    assert js(capsys, "release", *ds, "--handle", "cli-etcd")["released"] == [a["address"]]


def test_allocate_for_a_namespace_and_reservations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--namespace` picks the namespace's pool; a reserved `--address` is refused naming
    its reservation; reserved addresses are skipped by plain allocation."""
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\nname = "n1"\nasn = 64512\naddress = "10.0.0.1/24"\n'
        f'[datastore]\npath = "{tmp_path}/ns.db"\n'
        '[[ipam.pool]]\ncidr = "10.70.0.0/28"\nblock_size = 28\n'
        '[[ipam.pool]]\ncidr = "10.71.0.0/28"\nblock_size = 28\n'
        "namespace_selector = 'projectcalico.org/name == \"legacy\"'\n"
        '[[ipam.reservation]]\nname = "gw"\ncidrs = ["10.71.0.0/31"]\n'
    )
    c = ["--config", str(cfg), "--node", "n1"]
    prepare(f"sqlite:{tmp_path}/ns.db", "n1")
    web = js(capsys, "allocate", *c, "--handle", "w", "--namespace", "web")
    old = js(capsys, "allocate", *c, "--handle", "l", "--namespace", "legacy")
    assert web["address"] == "10.70.0.0" and old["address"] == "10.71.0.2"
    rc, _, err = run(capsys, "allocate", *c, "--handle", "x", "--address", "10.71.0.1")
    assert rc == 1 and "10.71.0.1 is reserved: 10.71.0.0/31 (reservation gw)" in err
