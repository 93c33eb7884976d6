"""Decode every message captured from FRR, BIRD and GoBGP (tests/data/captures).

The expected values come from each line's note, written by the capture tool's
own small parser (independent of podbgp), and from the originated routes the
captures README lists. Every decoded message must also survive
``decode(encode(m)) == m``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bgp.wire import (
    Action,
    CapCode,
    CodecContext,
    Family,
    Keepalive,
    Notification,
    Open,
    Update,
    decode_message,
    encode_message,
)

DIR = Path(__file__).resolve().parents[2] / "data" / "captures"
LINES = [
    (f"{p.stem}:{i}", line)
    for p in sorted(DIR.glob("*.txt"))
    for i, line in enumerate(p.read_text().splitlines(), 1)
    if line.strip() and not line.startswith("#")
]
# The README's negotiated facts: 4-octet AS, no ADD-PATH, eBGP everywhere.
CTX = CodecContext(as4=True, ebgp=True)
CAP_NAMES = {
    "ROUTE_REFRESH_OLD": 128,
    "ROUTE_REFRESH": CapCode.ROUTE_REFRESH,
    "ENHANCED_ROUTE_REFRESH": CapCode.ENHANCED_ROUTE_REFRESH,
    "AS4": CapCode.FOUR_OCTET_AS,
    "EXTENDED_MESSAGE": CapCode.EXTENDED_MESSAGE,
    "EXTENDED_NEXTHOP": CapCode.EXTENDED_NEXT_HOP,
    "ADD_PATH": CapCode.ADD_PATH,
    "FQDN": CapCode.FQDN,
    "GRACEFUL_RESTART": CapCode.GRACEFUL_RESTART,
    "LLGR": CapCode.LONG_LIVED_GRACEFUL_RESTART,
}
ATTR_FIELDS = {
    "ORIGIN": "origin",
    "AS_PATH": "as_path",
    "NEXT_HOP": "next_hop",
    "MED": "med",
    "COMMUNITIES": "communities",
    "LARGE_COMMUNITY": "large_communities",
    "MP_REACH_NLRI": "mp_next_hop",
}


def _fields(note: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=('[^']*'|\S+)", note))


def test_captures_present_for_each_daemon() -> None:
    assert {name.split(":")[0] for name, _ in LINES} >= {"frr", "bird", "gobgp"}


@pytest.mark.parametrize(("where", "line"), LINES, ids=[w for w, _ in LINES])
def test_captured_message(where: str, line: str) -> None:
    hexpart, _, note = line.partition("#")
    raw = bytes.fromhex(hexpart.strip())
    msg = decode_message(raw, CTX)
    f = _fields(note)
    kind = note.split()[1]
    if kind == "KEEPALIVE":
        assert msg == Keepalive()
    elif kind == "OPEN":
        _check_open(msg, f)
    elif kind == "NOTIFICATION":
        assert isinstance(msg, Notification)
        assert (msg.code, msg.subcode) == (int(f["code"]), int(f["subcode"]))
        if "shutdown_message" in f:
            assert msg.shutdown_message == f["shutdown_message"].strip("'")
    else:
        _check_update(msg, note, f)
    assert decode_message(encode_message(msg, CTX), CTX) == msg


def _check_open(msg: object, f: dict[str, str]) -> None:
    assert isinstance(msg, Open)
    assert msg.asn == int(f["my_as"]) and msg.hold_time == int(f["hold"])
    assert str(msg.router_id) == f["id"]
    assert msg.peer_as == int(f["as4"])
    want = []
    for name in f["caps"].split(","):
        m = re.fullmatch(r"MP\((\d+)/(\d+)\)", name)
        want.append(int(CapCode.MULTIPROTOCOL) if m else int(CAP_NAMES[name]))
    assert [c.code for c in msg.capabilities] == want


def _check_update(msg: object, note: str, f: dict[str, str]) -> None:
    assert isinstance(msg, Update)
    assert msg.action == Action.NONE and not msg.errors
    if "End-of-RIB" in note:
        fam = Family.IPV6_UNICAST if f.get("afi") == "2" else Family.IPV4_UNICAST
        assert msg.end_of_rib is fam
        return
    assert msg.end_of_rib is None
    announced = f["nlri"].split(",") if "nlri" in f else []
    withdrawn = f["withdrawn"].split(",") if "withdrawn" in f else []
    assert [str(p) for p in msg.announced] == announced
    assert [str(p) for p in msg.withdrawn] == withdrawn
    names = [n for n in f.get("attrs", "").split(",") if n and n != "MP_UNREACH_NLRI"]
    if announced:
        assert msg.attrs is not None
        for name in names:
            assert getattr(msg.attrs, ATTR_FIELDS[name]) not in (None, ()), name
        if "nh_len" in f:
            assert len(msg.attrs.mp_next_hop) * 16 == int(f["nh_len"])


def _find(prefix: str, sender: str) -> Update:
    for where, line in LINES:
        if where.startswith(sender) and f"nlri={prefix}" in line and "UPDATE" in line:
            msg = decode_message(bytes.fromhex(line.split()[0]), CTX)
            assert isinstance(msg, Update)
            return msg
    raise AssertionError(f"{prefix} not captured from {sender}")


def test_frr_originated_attributes_from_readme() -> None:
    a = _find("10.201.0.0/24", "frr").attrs
    assert a is not None
    assert a.communities == ((65001 << 16) | 1, (65001 << 16) | 2)
    assert a.large_communities == ((4200000001, 1, 2),) and a.med == 10
    assert a.as_path == ((2, (4200000001,)),)


def test_gobgp_originated_attributes_from_readme() -> None:
    a = _find("10.203.1.0/25", "gobgp").attrs
    assert a is not None and a.as_path == ((2, (4200000003, 64512, 4200000099)),)
    b = _find("fd00:203::/64", "gobgp").attrs
    assert b is not None and b.large_communities == ((1, 2, 3),)
    assert [str(h) for h in b.mp_next_hop] == ["fd99:2::3"]


def test_bird_originated_attributes_from_readme() -> None:
    a = _find("fd00:202:8000::/33", "bird").attrs
    assert a is not None and a.large_communities == ((65002, 0, 4294967295),)
    assert len(a.mp_next_hop) == 2 and a.mp_next_hop[1].is_link_local
