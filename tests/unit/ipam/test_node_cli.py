"""`podbgp node list|show|remove|cordon|uncordon` on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ipam import Node, NodeRegistry
from ipam.identity import ensure_cluster, join
from ipam.lifecycle import Lifecycle
from ipam.store import OpenMode, open_store
from podbgp.cli import main


def prepare(url: str, *nodes: str) -> None:
    async def go() -> None:
        store = open_store(url, OpenMode.CREATE)
        try:
            await ensure_cluster(store)
            for n in nodes:
                await NodeRegistry(store).register(Node(n))
        finally:
            await store.close()

    asyncio.run(go())


def node(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["node", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def js(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    rc, out, err = node(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def hold(url: str, name: str, ttl: int = 60) -> int:
    async def go() -> int:
        store = open_store(url)
        try:
            return (await Lifecycle(await join(store, None, record=False)).hold(name, ttl)).lease
        finally:
            await store.close()

    return asyncio.run(go())


def test_node_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:{tmp_path}/db.sqlite"
    ds = ["--datastore", url]
    prepare(url, "n1", "n2", "old")
    hold(url, "n1")
    hold(url, "n2")
    assert main(["ipam", "allocate", *ds, "--pool", "10.50.0.0/24/28", "--node", "n2",
                 "--handle", "c1"]) == 0  # fmt: skip
    capsys.readouterr()
    rows = {r["name"]: r for r in js(capsys, "list", *ds)["nodes"]}
    assert {n: r["phase"] for n, r in rows.items()} == {
        "n1": "live", "n2": "live", "old": "unleased"
    }  # fmt: skip
    assert rows["n2"]["blocks"] == 1 and rows["n1"]["lease"]["ttl"] == 60
    rc, out, _ = node(capsys, "list", *ds)
    assert rc == 0 and out.splitlines()[0].split() == [
        "NAME", "PHASE", "AGE", "LEASE", "BLOCKS", "CORDONED"
    ]  # fmt: skip

    assert js(capsys, "cordon", *ds, "n1")["changed"] is True
    assert js(capsys, "show", *ds, "n1")["cordoned"] is True
    rc, out, _ = node(capsys, "uncordon", *ds, "n1")
    assert rc == 0 and out.strip() == "node n1 uncordoned"

    rc, _, err = node(capsys, "remove", *ds, "n2")
    assert rc == 1 and err.count("\n") == 1 and "holds a live lease" in err
    gone = js(capsys, "remove", *ds, "n2", "--force")
    assert gone["removed"] == "n2" and len(gone["released"]) == 1
    shown = js(capsys, "show", *ds, "n2")
    assert shown["phase"] == "removed" and shown["released"] == gone["released"]
    rc, out, _ = node(capsys, "show", *ds, "n2")
    assert rc == 0 and "released  1 addresses, taken back on its return" in out
    assert js(capsys, "remove", *ds, "n2")["forgotten"] == "n2"  # a second remove forgets it
    assert "n2" not in {r["name"] for r in js(capsys, "list", *ds)["nodes"]}
    assert main(["ipam", "blocks", *ds, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["blocks"] == []

    for argv in (["show", "ghost"], ["cordon", "ghost"], ["remove", "ghost"]):
        rc, out, err = node(capsys, *argv, *ds)
        assert rc == 1 and out == "" and err.count("\n") == 1 and "ghost" in err, argv
    rc, _, err = node(capsys, "list", "--datastore", f"sqlite:{tmp_path}/nope.db")
    assert rc == 1 and err.count("\n") == 1
