"""Golden wire vectors (tests/data/wire/vectors.txt): hand-built hex and the
decoded form the RFCs require; see tests/data/wire/README.md for the format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bgp.errors import BGPError
from bgp.wire import (
    CodecContext,
    Keepalive,
    Notification,
    Open,
    RouteRefresh,
    Update,
    decode_message,
    encode_message,
)

FILE = Path(__file__).resolve().parents[2] / "data" / "wire" / "vectors.txt"


def _records() -> list[dict[str, str]]:
    out = []
    for block in FILE.read_text().split("\n\n"):
        rec = dict(line.split(": ", 1) for line in block.strip().splitlines())
        out.append(rec)
    return out


RECORDS = _records()


def describe(msg: object) -> dict[str, Any]:
    """The JSON-able decoded form used by the vectors."""
    if isinstance(msg, Keepalive):
        return {"type": "KEEPALIVE"}
    if isinstance(msg, Notification):
        return {
            "type": "NOTIFICATION",
            "code": msg.code,
            "subcode": msg.subcode,
            "shutdown_message": msg.shutdown_message,
        }
    if isinstance(msg, RouteRefresh):
        return {"type": "ROUTE_REFRESH", "afi": msg.afi, "safi": msg.safi, "subtype": msg.subtype}
    if isinstance(msg, Open):
        return {
            "type": "OPEN",
            "asn": msg.asn,
            "hold_time": msg.hold_time,
            "router_id": str(msg.router_id),
            "capabilities": [c.code for c in msg.capabilities],
        }
    assert isinstance(msg, Update)
    a = msg.attrs
    eor = msg.end_of_rib
    return {
        "type": "UPDATE",
        "action": msg.action.name,
        "announced": [str(p) for p in msg.announced],
        "withdrawn": [str(p) for p in msg.withdrawn],
        "end_of_rib": eor.name if eor is not None else None,
        "origin": a.origin if a else None,
        "as_path": [[t, list(s)] for t, s in a.as_path] if a and a.as_path is not None else None,
        "next_hop": str(a.next_hop) if a and a.next_hop else None,
        "mp_next_hop": [str(h) for h in a.mp_next_hop] if a else [],
        "med": a.med if a else None,
        "local_pref": a.local_pref if a else None,
        "originator_id": str(a.originator_id) if a and a.originator_id else None,
        "cluster_list": [str(c) for c in a.cluster_list] if a else [],
    }


@pytest.mark.parametrize("rec", RECORDS, ids=[r["name"] for r in RECORDS])
def test_golden_vector(rec: dict[str, str]) -> None:
    ctx = CodecContext(**json.loads(rec["ctx"]))
    raw = bytes.fromhex(rec["hex"].replace(" ", ""))
    expect = json.loads(rec["expect"])
    if "error" in expect:
        with pytest.raises(BGPError) as info:
            decode_message(raw, ctx)
        assert [info.value.code, info.value.subcode] == expect["error"]
        assert info.value.data.hex() == expect["data"]
        return
    msg = decode_message(raw, ctx)
    got = describe(msg)
    assert {k: got[k] for k in expect} == expect
    if not isinstance(msg, Update) or not msg.errors:
        assert decode_message(encode_message(msg, ctx), ctx) == msg


def test_every_vector_has_a_description() -> None:
    assert len(RECORDS) >= 15
    assert all(r.get("desc") for r in RECORDS)
