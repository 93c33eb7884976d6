"""`podbgp mrt dump` on a daemon with two real podbgp peers: the file, read back by an
independent MRT reader (mrtparse), holds exactly what `show routes --json` shows —
prefixes, peers, next hops, AS paths — with the ADD-PATH subtype for the peer that
sends path identifiers (RFC 8050)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import monitor_lab as lab
import pytest
from mrtread import read_table, records

from podbgp.cli import main
from podbgp.lab.netns import NetnsGroup

pytestmark = pytest.mark.root


@pytest.fixture
def trio(tmp_path: Path, netns: NetnsGroup) -> Iterator[lab.Trio]:
    t = lab.make(netns.add("m"), tmp_path)
    try:
        for name in "abc":
            t.start(name)
        lab.wait(lambda: lab.converged(t), "A has every route")
        yield t
    finally:
        t.close()


def _show(trio: lab.Trio, capsys: pytest.CaptureFixture[str], *more: str) -> list[dict]:
    assert main(["show", "routes", "--json", "--socket", trio.socks["a"], *more]) == 0
    return json.loads(capsys.readouterr().out)


def test_table_dump_matches_show_routes(
    trio: lab.Trio, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rib.mrt"
    assert main(["mrt", "dump", str(target), "--json", "--socket", trio.socks["a"]]) == 0
    answer = json.loads(capsys.readouterr().out)
    shown = _show(trio, capsys)
    assert answer["prefixes"] == 4 and answer["entries"] == len(shown) == 5
    assert answer["peers"] == 3 and answer["bytes"] == target.stat().st_size

    peers, rows = read_table(target.read_bytes())
    ids = {(p["peer_ip"], int(p["peer_as"]), p["peer_bgp_id"]) for p in peers}
    # B, C and this node itself (its own route: the unspecified address, our AS and id).
    assert ids == {("10.78.0.2", 65002, "10.78.0.2"), ("10.78.0.3", 65003, "10.78.0.3"),
                   ("0.0.0.0", 65001, "10.78.0.1")}  # fmt: skip
    got = sorted((r.prefix, r.peer_ip, r.next_hop, r.as_path) for r in rows)
    want = sorted(
        (s["prefix"], "0.0.0.0" if s["local"] else s["peer"], s["next_hop"] or "",
         tuple(int(a) for a in s["as_path"].split()))
        for s in shown
    )  # fmt: skip
    assert got == want
    assert {r.communities for r in rows if r.prefix == "10.211.0.0/24"} == {("65002:11",)}
    # Prefixes with a path from B (A receives ADD-PATH from it) use RFC 8050's subtypes.
    subtypes = {
        f"{r['prefix']}/{r['length']}": next(iter(r["subtype"].values()))
        for r in records(target.read_bytes())[1:]
    }
    assert subtypes == {
        "10.200.0.0/24": "RIB_IPV4_UNICAST",
        "10.210.0.0/24": "RIB_IPV4_UNICAST_ADDPATH",
        "10.211.0.0/24": "RIB_IPV4_UNICAST_ADDPATH",
        "10.212.0.0/24": "RIB_IPV4_UNICAST",
    }
    assert not list(tmp_path.glob(".rib.mrt.*"))  # the temporary file was renamed


def test_one_peers_dump_is_its_received_routes(
    trio: lab.Trio, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "c.mrt"
    assert (
        main(["mrt", "dump", str(target), "--peer", "10.78.0.3", "--socket", trio.socks["a"]]) == 0
    )
    assert "prefixes: 2" in capsys.readouterr().out
    received = _show(trio, capsys, "--peer", "10.78.0.3", "--received")
    _, rows = read_table(target.read_bytes())
    assert sorted((r.prefix, r.next_hop) for r in rows) == sorted(
        (s["prefix"], s["next_hop"]) for s in received
    )


def test_bad_requests_are_one_line_errors(
    trio: lab.Trio, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = trio.socks["a"]
    assert main(["mrt", "dump", str(tmp_path / "no/such/dir/x.mrt"), "--socket", sock]) == 1
    assert capsys.readouterr().err.startswith("podbgp: cannot write ")
    assert (
        main(["mrt", "dump", str(tmp_path / "x.mrt"), "--peer", "10.9.9.9", "--socket", sock]) == 2
    )
    assert "is not a peer of this node" in capsys.readouterr().err


def test_periodic_dumps_rotate(tmp_path: Path, netns: NetnsGroup) -> None:
    """`[mrt] table_dump_interval`: a dump every second into the directory, each one a
    whole TABLE_DUMP_V2 the reader parses, and only the newest `keep` left."""
    t = lab.make(netns.add("p"), tmp_path)
    out = tmp_path / "dumps"
    mrt = f'\n[mrt]\ndirectory = "{out}"\ntable_dump_interval = 1\nkeep = 2\n'
    mrt += 'file_pattern = "rib.%Y%m%d.%H%M%S.mrt"\n'
    try:
        for name in "bc":
            t.start(name)
        t.start("a", mrt)
        lab.wait(lambda: lab.converged(t), "A has every route")
        first = lab.wait(lambda: sorted(out.glob("rib.*.mrt")), "a first dump")
        lab.wait(lambda: first[0] not in sorted(out.glob("rib.*.mrt")), "the oldest rotated out")
        lab.wait(lambda: _complete(out), "a dump of the converged table")
        assert len(list(out.glob("rib.*.mrt"))) <= 2
        assert not list(out.glob(".*"))  # no temporary file left behind
    finally:
        t.close()


def _complete(directory: Path) -> bool:
    newest = max(directory.glob("rib.*.mrt"), key=lambda p: p.stat().st_mtime, default=None)
    if newest is None:
        return False
    _, rows = read_table(newest.read_bytes())
    return len(rows) == 5


def test_update_dumps_hold_every_received_update(tmp_path: Path, netns: NetnsGroup) -> None:
    """`[mrt] update_dump_interval`: every UPDATE A received, as BGP4MP_MESSAGE_AS4 records
    (the ADD-PATH subtype for B's session), in files renamed into place per interval."""
    t = lab.make(netns.add("u"), tmp_path)
    out = tmp_path / "updates"
    conf = f'\n[mrt]\ndirectory = "{out}"\nupdate_dump_interval = 1\nkeep = 0\n'
    try:
        t.start("a", conf)
        for name in "bc":
            t.start(name)
        lab.wait(lambda: lab.converged(t), "A has every route")
        lab.wait(lambda: _announced(out) >= {("10.78.0.2", "10.210.0.0/24"),
                                             ("10.78.0.2", "10.211.0.0/24"),
                                             ("10.78.0.3", "10.210.0.0/24"),
                                             ("10.78.0.3", "10.212.0.0/24")},
                 "every received route in a finished update file")  # fmt: skip
        subtypes = {
            (r["peer_ip"], next(iter(r["subtype"].values())))
            for f in out.glob("updates.*.mrt")
            for r in records(f.read_bytes())
        }
        assert ("10.78.0.2", "BGP4MP_MESSAGE_AS4_ADDPATH") in subtypes
        assert ("10.78.0.3", "BGP4MP_MESSAGE_AS4") in subtypes
        assert {r["local_as"] for f in out.glob("updates.*.mrt")
                for r in records(f.read_bytes())} == {"65001"}  # fmt: skip
    finally:
        t.close()


def _announced(directory: Path) -> set[tuple[str, str]]:
    """(peer, prefix) of every route announced in the finished update files."""
    got = set()
    for f in directory.glob("updates.*.mrt"):
        for r in records(f.read_bytes()):
            msg = r["bgp_message"]
            nlri = list(msg.get("nlri", []))
            for a in msg.get("path_attributes", []):
                if "MP_REACH_NLRI" in a["type"].values():
                    nlri += a["value"].get("nlri", [])
            got |= {(r["peer_ip"], f"{n['prefix']}/{n['length']}") for n in nlri}
    return got
