"""`podbgp show fib|ipam|peers|node` human output from the daemon's documented JSON shapes."""

from __future__ import annotations

from typing import Any

from podbgp.cmd_show import _text

FIB: dict[str, Any] = {
    "table": 254, "protocol": 80, "converged": True, "desired": 2, "installed": 2,
    "in_sync": 1, "stale": 1, "conflicts": 0, "failed": 0, "unroutable": [],
    "tunnels": {"vxlan": True, "ipip": False, "ipip_unsupported": ""},
    "counters": {"resyncs": 2, "dumps": 2, "stale_adopted": 1, "drift_repaired": 0},
    "rows": [
        {"prefix": "10.244.1.0/26", "desired": "10.244.1.0/26 via 10.0.0.2 dev eth0 proto 80",
         "installed": "10.244.1.0/26 via 10.0.0.2 dev eth0 proto 80", "state": "ok"},
        {"prefix": "10.244.2.0/26", "desired": None,
         "installed": "10.244.2.0/26 via 10.0.0.3 dev eth0 proto 80", "state": "stale"},
    ],
}  # fmt: skip

IPAM: dict[str, Any] = {
    "announced": {"prefixes": ["10.244.0.0/26"], "blackholes": ["10.244.0.0/26"]},
    "rows": [{"cidr": "10.244.0.0/16", "block_size": 26, "blocks": 3, "blocks_total": 1024,
              "used": 5, "free": 65531, "ipip_mode": "Never", "vxlan_mode": "CrossSubnet",
              "nat_outgoing": True, "disabled": False}],
}  # fmt: skip


def test_fib_summary_and_rows() -> None:
    lines = _text("fib", FIB).splitlines()
    assert lines[0] == "table 254, protocol 80, converged: yes"
    assert lines[1] == "routes: 2 desired, 2 installed, 1 in sync, 1 stale, 0 conflicts, 0 failed"
    assert lines[2] == "tunnels: vxlan"
    assert lines[3] == "counters: resyncs=2 dumps=2 stale_adopted=1"
    assert lines[4].split() == ["PREFIX", "STATE", "ROUTE", "KERNEL"]
    assert lines[5].split() == ["10.244.1.0/26", "ok", "via", "10.0.0.2", "dev", "eth0",
                                "proto", "80", "same"]  # fmt: skip
    # A stale route: nothing desired, the kernel's route shown, not "same".
    assert lines[6].split()[:3] == ["10.244.2.0/26", "stale", "via"]
    assert lines[6].split()[-1] == "80"


def test_ipam_announcement_and_pools() -> None:
    lines = _text("ipam", IPAM).splitlines()
    assert lines[0] == "announced: 10.244.0.0/26"
    assert lines[1] == "blackholes: 10.244.0.0/26"
    assert lines[2].split() == ["POOL", "BLOCK", "BLOCKS", "USED", "FREE", "IPIP", "VXLAN",
                                "NAT", "DISABLED"]  # fmt: skip
    assert lines[3].split() == ["10.244.0.0/16", "/26", "3/1024", "5", "65531", "Never",
                                "CrossSubnet", "yes", "no"]  # fmt: skip


def test_peer_last_error_and_node_booleans() -> None:
    peers = [{"address": "10.0.0.2", "asn": 64512, "state": "Active", "uptime": None,
              "prefixes_received": 0, "prefixes_advertised": 0,
              "last_error": {"code": 6, "subcode": 2, "reason": "maintenance"}}]  # fmt: skip
    row = _text("peers", peers).splitlines()[1]
    assert row.split()[-2:] == ["maintenance", "(6/2)"]
    node = _text("node", {"name": "n1", "converged": False, "metrics": None})
    assert node.splitlines() == ["name: n1", "converged: no", "metrics: -"]
