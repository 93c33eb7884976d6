"""`podbgp show fib|ipam|peers|node` human output from the daemon's documented JSON shapes."""

from __future__ import annotations

from typing import Any

from podbgp.cmd_show import _bfd_lines, _text, capabilities

FIB: dict[str, Any] = {
    "table": 254, "protocol": 80, "converged": True, "desired": 2, "installed": 2,
    "in_sync": 1, "stale": 1, "conflicts": 0, "failed": 0, "unroutable": [],
    "tunnels": {"vxlan": True, "ipip": False, "ipip_unsupported": ""},
    "counters": {"resyncs": 2, "dumps": 2, "stale_adopted": 1, "drift_repaired": 0},
    "nexthops": {"enabled": True, "unsupported": "", "objects": 1, "installed": 1, "refused": 0,
                 "rows": ["id 1342177280 via 10.0.0.2 dev eth0 proto 80"]},
    "rows": [
        {"prefix": "10.244.1.0/26",
         "desired": "10.244.1.0/26 nhid 1342177280 via 10.0.0.2 dev eth0 proto 80",
         "installed": "10.244.1.0/26 nhid 1342177280 via 10.0.0.2 dev eth0 proto 80",
         "state": "ok"},
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
    assert lines[4] == "nexthops: objects, 1 desired, 1 installed, 0 refused"
    assert lines[5].split() == ["PREFIX", "STATE", "ROUTE", "KERNEL"]
    assert lines[6].split() == ["10.244.1.0/26", "ok", "nhid", "1342177280", "via", "10.0.0.2",
                                "dev", "eth0", "proto", "80", "same"]  # fmt: skip
    # A stale route: nothing desired, the kernel's route shown, not "same".
    assert lines[7].split()[:3] == ["10.244.2.0/26", "stale", "via"]
    assert lines[7].split()[-1] == "80"
    # The objects the routes name, after the routes.
    assert lines[8:] == ["nexthop objects:", "  id 1342177280 via 10.0.0.2 dev eth0 proto 80"]


def test_fib_backlog_and_input_gate() -> None:
    gate = {"holding": True, "holds": 3, "held_seconds": 1.25}
    lines = _text("fib", {**FIB, "backlog": 140000, "input_gate": gate}).splitlines()
    assert lines[4] == ("backlog: 140000 routes waiting for the kernel; "
                        "BGP input held 3 times, 1.25 s in all, holding now")  # fmt: skip
    assert lines[5].startswith("nexthops: objects")
    idle = {"holding": False, "holds": 0, "held_seconds": 0.0}
    lines = _text("fib", {**FIB, "backlog": 0, "input_gate": idle}).splitlines()
    assert lines[4].startswith("nexthops: objects")  # nothing waiting, never held: no line


def test_fib_nexthops_off() -> None:
    off = {"enabled": False, "unsupported": "", "objects": 0, "installed": 0, "refused": 0,
           "rows": []}  # fmt: skip
    lines = _text("fib", {**FIB, "nexthops": off}).splitlines()
    assert lines[4] == "nexthops: inline hops ([fib] nexthops = false)"
    assert "nexthop objects:" not in lines
    refused = {**off, "unsupported": "Operation not supported"}
    lines = _text("fib", {**FIB, "nexthops": refused}).splitlines()
    assert lines[4] == "nexthops: inline hops (kernel refused objects: Operation not supported)"
    # A daemon from before nexthop objects: no line at all.
    old = {k: v for k, v in FIB.items() if k != "nexthops"}
    assert _text("fib", old).splitlines()[4].split()[0] == "PREFIX"


def test_ipam_announcement_and_pools() -> None:
    lines = _text("ipam", IPAM).splitlines()
    assert lines[0] == "announced: 10.244.0.0/26"
    assert lines[1] == "blackholes: 10.244.0.0/26"
    assert lines[2].split() == ["POOL", "BLOCK", "BLOCKS", "USED", "FREE", "IPIP", "VXLAN",
                                "NAT", "DISABLED"]  # fmt: skip
    assert lines[3].split() == ["10.244.0.0/16", "/26", "3/1024", "5", "65531", "Never",
                                "CrossSubnet", "yes", "no"]  # fmt: skip


NEGOTIATED: dict[str, Any] = {
    "hold_time": 90, "keepalive": 30, "families": ["ipv4_unicast", "ipv6_unicast"],
    "four_octet_as": True, "extended_message": False, "extended_nexthop": False,
    "route_refresh": True, "enhanced_route_refresh": True, "graceful_restart": True,
    "add_path_rx": ["ipv4_unicast"], "add_path_tx": ["ipv4_unicast"],
}  # fmt: skip

PEERS: list[dict[str, Any]] = [
    {"address": "10.0.0.2", "asn": 64512, "state": "Established", "admin": "up",
     "uptime": "0:01:02", "negotiated": NEGOTIATED,
     "messages_in": {"open": 1, "update": 10, "keepalive": 5},
     "messages_out": {"open": 1, "update": 3, "keepalive": 5},
     "prefixes_received": 7, "prefixes_advertised": 2, "prefixes_in": 7, "prefixes_out": 2,
     "last_error": {"code": 6, "subcode": 2, "reason": "maintenance", "direction": "received",
                    "time": 1.0}},
    {"address": "10.0.0.3", "asn": 65003, "state": "Idle", "admin": "down", "uptime": None,
     "negotiated": None, "messages_in": {}, "messages_out": {},
     "prefixes_received": 0, "prefixes_advertised": 0, "prefixes_in": 0, "prefixes_out": 0,
     "last_error": {"code": 6, "subcode": 1, "reason": "maximum prefixes (3) reached",
                    "direction": "sent", "time": 2.0}},
    {"address": "10.0.0.4", "asn": 65004, "state": "Active", "admin": "up", "uptime": None,
     "negotiated": None, "messages_in": {}, "messages_out": {},
     "prefixes_received": 0, "prefixes_advertised": 0, "last_error": None,
     "bfd": {"state": "down", "flaps": 1}},
]  # fmt: skip


def test_peers_table_state_caps_messages_prefixes_and_errors() -> None:
    lines = _text("peers", PEERS).splitlines()
    assert lines[0].split() == ["PEER", "AS", "STATE", "UPTIME", "MSGS", "IN/OUT", "PFX",
                                "IN/OUT", "CAPS", "BFD"]  # fmt: skip
    # Messages are totals over every type; prefixes are received/advertised.
    assert lines[1].split() == ["10.0.0.2", "64512", "Established", "0:01:02", "16/9", "7/2",
                                "mp4", "mp6", "rr", "err", "gr", "as4", "ap", "-"]  # fmt: skip
    assert lines[2] == "    last error: received 6/2 maintenance"
    # Shut down (here by the maximum-prefix limit): state says so, no capabilities.
    assert lines[3].split() == ["10.0.0.3", "65003", "Idle", "(Admin)", "-", "0/0", "0/0", "-",
                                "-"]  # fmt: skip
    assert lines[4] == "    last error: sent 6/1 maximum prefixes (3) reached"
    # No error: no second line.
    # BFD: the session's state, and its Up → Down count once it has flapped.
    assert lines[5].split() == ["10.0.0.4", "65004", "Active", "-", "0/0", "0/0", "-", "down",
                                "(1", "flap)"]  # fmt: skip
    assert len(lines) == 6
    # Columns line up: every row's CAPS starts under the heading.
    assert lines[1].index("mp4") == lines[0].index("CAPS")


def test_capabilities_short_form() -> None:
    assert capabilities(NEGOTIATED) == ["mp4", "mp6", "rr", "err", "gr", "as4", "ap"]
    one_way = {**NEGOTIATED, "families": ["ipv4_unicast"], "add_path_rx": [],
               "route_refresh": False, "enhanced_route_refresh": False,
               "extended_message": True, "extended_nexthop": True}  # fmt: skip
    assert capabilities(one_way) == ["mp4", "em", "enh", "gr", "as4", "ap-tx"]
    assert capabilities({**NEGOTIATED, "add_path_tx": []})[-1] == "ap-rx"
    assert capabilities(None) == []


def test_long_last_error_is_abbreviated_and_close_without_notification() -> None:
    long = {**PEERS[2], "last_error": {"code": 6, "subcode": 2, "reason": "x" * 200,
                                       "direction": "received"}}  # fmt: skip
    line = _text("peers", [long]).splitlines()[2]
    assert line.endswith("x…") and len(line) < 100
    closed = {**PEERS[2], "last_error": {"code": 0, "subcode": 0, "reason": "", "direction": None}}
    assert _text("peers", [closed]).splitlines()[2] == "    last error: connection closed"


def test_node_booleans() -> None:
    node = _text("node", {"name": "n1", "converged": False, "metrics": None})
    assert node.splitlines() == ["name: n1", "converged: no", "metrics: -"]


def test_node_uptime_reads_like_show_peers() -> None:
    node = _text("node", {"name": "n1", "uptime_seconds": 3725.4})
    assert node.splitlines() == ["name: n1", "uptime: 1:02:05"]


def test_caps_name_long_lived_graceful_restart_only_when_negotiated() -> None:
    from podbgp.cmd_show import capabilities

    assert "llgr" in capabilities({"long_lived_graceful_restart": {"ipv4_unicast": 600}})
    assert "llgr" not in capabilities({"long_lived_graceful_restart": {}})


def test_peer_detail_bfd_section() -> None:
    bfd = {"state": "up", "remote_state": "up", "diag": "none", "flaps": 2,
           "tx_interval_ms": 300.0, "detection_time_ms": 900.0, "local_discriminator": 7,
           "remote_discriminator": 9, "packets_in": 40, "packets_out": 41,
           "dropped": {"ttl": 1}}  # fmt: skip
    assert _bfd_lines(bfd) == [
        "bfd: up (remote up), diagnostic none, flaps 2",
        "  transmit every 300.0 ms, detection time 900.0 ms, discriminators 7 / 9",
        "  packets in 40, out 41, dropped ttl 1",
    ]
    assert _bfd_lines(None) == ["bfd: off"]
