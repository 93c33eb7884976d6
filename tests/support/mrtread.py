"""MRT files read back with mrtparse (PyPI), an MRT reader independent of podbgp.

``read_table`` turns a TABLE_DUMP_V2 file into plain rows the tests compare
with what podbgp holds; nothing here uses podbgp's own code.
"""

from __future__ import annotations

import io
import signal
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

# mrtparse sets SIGPIPE to its default action when imported, which would kill the whole
# test process at the first write to a closed socket: Python's own setting is put back.
_sigpipe = signal.getsignal(signal.SIGPIPE)
# A venv made before mrtparse joined the test extras lacks it: `make venv` installs it.
mrtparse = pytest.importorskip("mrtparse", reason="mrtparse is not installed: run make venv")
signal.signal(signal.SIGPIPE, _sigpipe)


def _ip(text: str) -> str:
    """One spelling per address (the reader writes some IPv6 addresses in dotted form)."""
    return str(ip_address(text))


@dataclass(frozen=True)
class Row:
    prefix: str
    peer_ip: str
    peer_as: int
    next_hop: str
    as_path: tuple[int, ...]
    path_id: int | None
    communities: tuple[str, ...] = ()


def records(data: bytes) -> list[dict[str, Any]]:
    """Every record as mrtparse decodes it; a record it cannot parse fails the test."""
    out = []
    for entry in mrtparse.Reader(io.BytesIO(data)):
        assert entry.err is None, (entry.err, entry.err_msg)
        out.append(entry.data)
    return out


def _name(field: dict[Any, str]) -> str:
    return next(iter(field.values()))


def _attrs(attrs: list[dict[str, Any]]) -> tuple[str, tuple[int, ...], tuple[str, ...]]:
    nh, path, comms = "", (), ()
    for a in attrs:
        kind = _name(a["type"])
        if kind == "NEXT_HOP":
            nh = _ip(a["value"])
        elif kind == "MP_REACH_NLRI":
            nh = _ip(a["value"]["next_hop"][0])
        elif kind == "AS_PATH":
            path = tuple(int(x) for seg in a["value"] for x in seg["value"])
        elif kind == "COMMUNITY":
            comms = tuple(a["value"])
    return nh, path, comms


def read_table(data: bytes) -> tuple[list[dict[str, Any]], list[Row]]:
    """(peer entries of the PEER_INDEX_TABLE, one Row per RIB entry)."""
    recs = records(data)
    assert recs and _name(recs[0]["subtype"]) == "PEER_INDEX_TABLE", recs[:1]
    peers = recs[0]["peer_entries"]
    for p in peers:
        p["peer_ip"] = _ip(p["peer_ip"])
    rows = []
    for r in recs[1:]:
        assert _name(r["type"]) == "TABLE_DUMP_V2", r
        prefix = str(ip_network(f"{r['prefix']}/{r['length']}"))
        for e in r["rib_entries"]:
            peer = peers[e["peer_index"]]
            nh, path, comms = _attrs(e["path_attributes"])
            rows.append(
                Row(
                    prefix, peer["peer_ip"], int(peer["peer_as"]), nh, path, e.get("path_id"), comms
                )
            )
    return peers, rows
