#!/usr/bin/env python3
"""Capture real BGP messages from FRR, BIRD and GoBGP for the codec's golden tests.

Run as root: ``.venv/bin/python tools/capture_peers.py [--out tests/data/captures]``.

Three namespaces: FRR (AS 4200000001) in the middle, BIRD (AS 65002) on one veth and GoBGP
(AS 4200000003) on another.  FRR has an IPv4-transport and an IPv6-transport session with each
(IPv4 unicast on the first, IPv6 unicast on the second).  tcpdump writes everything on port 179
in FRR's namespace while the daemons open, exchange routes with communities, large communities,
MED and 4-byte ASNs, announce more at runtime, withdraw some, and shut sessions down with an
RFC 9003 message.  The TCP payload is then reassembled per flow (scapy's rdpcap, in this tool
only) and split on the 16-byte marker + length into one message per line:
``HEX  # SENDER>RECEIVER/SESSION TYPE NOTE``.

The NOTE comes from a small summariser in this file, deliberately independent of podbgp's
codec (which the golden tests check against these files).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podbgp.lab.netns import Netns, NetnsGroup
from podbgp.lab.peers import BgpConfig, Bird, Frr, Gobgp, Neighbor, Route

FRR_AS, BIRD_AS, GOBGP_AS = 4200000001, 65002, 4200000003
ADDR = {
    "frr": {"bird": ("10.99.1.1", "fd99:1::1"), "gobgp": ("10.99.2.1", "fd99:2::1")},
    "bird": {"frr": ("10.99.1.2", "fd99:1::2")},
    "gobgp": {"frr": ("10.99.2.3", "fd99:2::3")},
}
MARKER = b"\xff" * 16
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
ATTR_NAMES = {
    1: "ORIGIN",
    2: "AS_PATH",
    3: "NEXT_HOP",
    4: "MED",
    5: "LOCAL_PREF",
    6: "ATOMIC_AGGREGATE",
    7: "AGGREGATOR",
    8: "COMMUNITIES",
    9: "ORIGINATOR_ID",
    10: "CLUSTER_LIST",
    14: "MP_REACH_NLRI",
    15: "MP_UNREACH_NLRI",
    16: "EXT_COMMUNITIES",
    32: "LARGE_COMMUNITY",
}
CAP_NAMES = {
    1: "MP",
    2: "ROUTE_REFRESH",
    5: "EXTENDED_NEXTHOP",
    6: "EXTENDED_MESSAGE",
    9: "BGP_ROLE",
    64: "GRACEFUL_RESTART",
    65: "AS4",
    69: "ADD_PATH",
    70: "ENHANCED_ROUTE_REFRESH",
    71: "LLGR",
    73: "FQDN",
    128: "ROUTE_REFRESH_OLD",
}


# --- scenario ---------------------------------------------------------------------------------
def build_topology(g: NetnsGroup) -> dict[str, Netns]:
    a, b, c = g.add("frr"), g.add("bird"), g.add("gobgp")
    g.veth(a, "eth0", b, "eth0")
    g.veth(a, "eth1", c, "eth0")
    for ns, dev, v4, v6 in (
        (a, "eth0", "10.99.1.1/24", "fd99:1::1/64"),
        (a, "eth1", "10.99.2.1/24", "fd99:2::1/64"),
        (b, "eth0", "10.99.1.2/24", "fd99:1::2/64"),
        (c, "eth0", "10.99.2.3/24", "fd99:2::3/64"),
    ):
        ns.ip("addr", "add", v4, "dev", dev)
        ns.ip("addr", "add", v6, "dev", dev, "nodad")
    return {"frr": a, "bird": b, "gobgp": c}


def configs() -> dict[str, BgpConfig]:
    fb4, fb6 = ADDR["frr"]["bird"]
    fg4, fg6 = ADDR["frr"]["gobgp"]
    b4, b6 = ADDR["bird"]["frr"]
    g4, g6 = ADDR["gobgp"]["frr"]
    frr = BgpConfig(
        asn=FRR_AS,
        router_id="10.99.1.1",
        hostname="frr",
        neighbors=[
            Neighbor(b4, BIRD_AS),
            Neighbor(b6, BIRD_AS, families=("ipv6",)),
            Neighbor(g4, GOBGP_AS),
            Neighbor(g6, GOBGP_AS, families=("ipv6",)),
        ],
        routes=[
            Route(
                "10.201.0.0/24",
                communities=("65001:1", "65001:2"),
                large_communities=("4200000001:1:2",),
                med=10,
            ),
            Route("10.201.16.0/20", communities=("65535:65281",)),  # NO_EXPORT_SUBCONFED
            Route("fd00:201::/64", communities=("65001:6",), large_communities=("4200000001:6:6",)),
            Route("fd00:201:1::/48", med=7),
        ],
    )
    bird = BgpConfig(
        asn=BIRD_AS,
        router_id="10.99.1.2",
        hostname="bird",
        neighbors=[Neighbor(fb4, FRR_AS), Neighbor(fb6, FRR_AS, families=("ipv6",))],
        routes=[
            Route(
                "10.202.0.0/24", communities=("65002:1",), large_communities=("65002:1:2",), med=20
            ),
            Route("10.202.128.0/17"),
            Route("fd00:202::/64", med=5, communities=("65002:6",)),
            Route("fd00:202:8000::/33", large_communities=("65002:0:4294967295",)),
        ],
    )
    gobgp = BgpConfig(
        asn=GOBGP_AS,
        router_id="10.99.2.3",
        hostname="gobgp",
        neighbors=[
            Neighbor(fg4, FRR_AS, local_address=g4),
            Neighbor(fg6, FRR_AS, families=("ipv6",), local_address=g6),
        ],
        routes=[
            Route(
                "10.203.0.0/24",
                communities=("65003:1", "65003:2"),
                large_communities=("4200000003:7:8",),
                med=30,
            ),
            Route("10.203.1.0/25", as_path=(64512, 4200000099)),
            Route("fd00:203::/64", large_communities=("1:2:3",), next_hop=g6),
            Route("fd00:203:1::/56", communities=("65003:6",), med=3, next_hop=g6),
        ],
    )
    return {"frr": frr, "bird": bird, "gobgp": gobgp}


def run_scenario(work: Path, pcap: Path) -> None:
    prefix = f"cap{os.getpid() % 100000}-"
    with NetnsGroup(prefix) as g:
        nss = build_topology(g)
        cfgs = configs()
        tcpdump = start_tcpdump(nss["frr"], pcap, work)
        try:
            with (
                Frr(nss["frr"], work / "frr", cfgs["frr"]) as frr,
                Bird(nss["bird"], work / "bird", cfgs["bird"]) as bird,
                Gobgp(nss["gobgp"], work / "gobgp", cfgs["gobgp"]) as gobgp,
            ):
                exchange(frr, bird, gobgp)
        finally:
            time.sleep(0.5)
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(timeout=10)


def exchange(frr: Frr, bird: Bird, gobgp: Gobgp) -> None:
    (b4, b6), (g4, g6) = ADDR["bird"]["frr"], ADDR["gobgp"]["frr"]
    for addr in (b4, b6, g4, g6):
        frr.wait_established(addr, 30)
    for pfx in ("10.203.0.0/24", "fd00:203::/64", "10.201.0.0/24", "fd00:201::/64"):
        bird.wait_route(pfx)
    for pfx in ("10.202.0.0/24", "fd00:202::/64"):
        gobgp.wait_route(pfx)
    time.sleep(3.5)  # at least one KEEPALIVE each way after the initial exchange
    frr.announce("10.201.99.0/24", communities=["65001:99"], med=99)
    bird.announce("10.202.99.0/24", large_communities=["65002:99:99"])
    gobgp.announce("fd00:203:99::/48", next_hop=g6, communities=["65003:99"])
    bird.wait_route("10.201.99.0/24")
    frr.wait_route("10.202.99.0/24")
    bird.wait_route("fd00:203:99::/48")
    for d, pfx in (
        (frr, "10.201.16.0/20"),
        (frr, "fd00:201:1::/48"),
        (bird, "10.202.128.0/17"),
        (bird, "fd00:202:8000::/33"),
        (gobgp, "10.203.1.0/25"),
        (gobgp, "fd00:203:1::/56"),
    ):
        d.withdraw(pfx)
    gobgp.wait_route("10.202.128.0/17", present=False)
    gobgp.wait_route("fd00:202:8000::/33", present=False)
    bird.wait_route("fd00:203:1::/56", present=False)
    bird.wait_route("10.201.16.0/20", present=False)
    time.sleep(1)
    frr.shutdown_neighbor(b4, "podbgp capture: FRR admin shutdown")
    bird.shutdown_neighbor(ADDR["frr"]["bird"][1], "podbgp capture: BIRD disable")
    gobgp.shutdown_neighbor(ADDR["frr"]["gobgp"][0], "podbgp capture: GoBGP shutdown")
    time.sleep(1.5)


def start_tcpdump(ns: Netns, pcap: Path, work: Path) -> subprocess.Popen[bytes]:
    err = work / "tcpdump.err"
    with open(err, "wb") as f:
        proc = ns.popen(
            ["tcpdump", "-i", "any", "-U", "-s", "0", "-w", str(pcap), "tcp port 179"],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    deadline = time.monotonic() + 10
    while b"listening on" not in err.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tcpdump did not start: {err.read_text()}")
        time.sleep(0.05)
    return proc


# --- reassembly -------------------------------------------------------------------------------
@dataclass
class Flow:
    src: str
    dst: str
    segments: dict[int, tuple[float, bytes]] = field(default_factory=dict)


def read_flows(pcap: Path) -> list[Flow]:
    # Only this tool depends on scapy.
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    flows: dict[tuple[str, int, str, int], Flow] = {}
    for pkt in rdpcap(str(pcap)):
        if TCP not in pkt:
            continue
        ip = pkt[IP] if IP in pkt else pkt[IPv6]
        tcp = pkt[TCP]
        payload = bytes(tcp.payload)
        if not payload:
            continue
        key = (str(ip.src), int(tcp.sport), str(ip.dst), int(tcp.dport))
        flow = flows.setdefault(key, Flow(str(ip.src), str(ip.dst)))
        flow.segments.setdefault(int(tcp.seq), (float(pkt.time), payload))
    return list(flows.values())


def split_messages(flow: Flow) -> list[tuple[float, bytes]]:
    """Reassemble the byte stream (skipping retransmitted bytes) and cut it into messages."""
    stream = bytearray()
    times: list[tuple[int, float]] = []  # stream offset where each segment's new bytes start
    next_seq: int | None = None
    for seq in sorted(flow.segments, key=lambda s: (s - min(flow.segments)) % 2**32):
        ts, data = flow.segments[seq]
        if next_seq is not None:
            skip = (next_seq - seq) % 2**32
            if skip >= len(data):
                continue
            data = data[skip:]
        times.append((len(stream), ts))
        stream += data
        next_seq = (seq + len(flow.segments[seq][1])) % 2**32
    out = []
    pos = 0
    while pos + 19 <= len(stream):
        if stream[pos : pos + 16] != MARKER:
            raise ValueError(f"lost message framing in flow {flow.src}->{flow.dst} at {pos}")
        length = struct.unpack_from("!H", stream, pos + 16)[0]
        ts = max((t for off, t in times if off <= pos), default=0.0)
        out.append((ts, bytes(stream[pos : pos + length])))
        pos += length
    return out


# --- summaries (independent of podbgp's codec) ------------------------------------------------
def prefixes(data: bytes, afi: int) -> list[str]:
    out, pos, width = [], 0, 4 if afi == 1 else 16
    while pos < len(data):
        plen = data[pos]
        nbytes = (plen + 7) // 8
        raw = data[pos + 1 : pos + 1 + nbytes].ljust(width, b"\0")
        addr = ipaddress.ip_address(raw)
        out.append(f"{ipaddress.ip_network((addr, plen))}")
        pos += 1 + nbytes
    return out


def summarise_open(body: bytes) -> str:
    version, my_as, hold, bgp_id, optlen = struct.unpack_from("!BHH4sB", body)
    caps, pos = [], 10
    as4 = None
    while pos < 10 + optlen:
        ptype, plen = body[pos], body[pos + 1]
        p = pos + 2
        while ptype == 2 and p < pos + 2 + plen:
            code, clen = body[p], body[p + 1]
            value = body[p + 2 : p + 2 + clen]
            name = CAP_NAMES.get(code, str(code))
            if code == 1:
                name += f"({struct.unpack('!H', value[:2])[0]}/{value[3]})"
            if code == 65:
                as4 = struct.unpack("!I", value)[0]
            caps.append(name)
            p += 2 + clen
        pos += 2 + plen
    rid = ipaddress.ip_address(bgp_id)
    return f"v{version} my_as={my_as} as4={as4} hold={hold} id={rid} caps={','.join(caps)}"


def summarise_update(body: bytes) -> str:
    wlen = struct.unpack_from("!H", body)[0]
    withdrawn = prefixes(body[2 : 2 + wlen], 1)
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    attrs_raw = body[4 + wlen : 4 + wlen + alen]
    nlri = prefixes(body[4 + wlen + alen :], 1)
    names, notes, pos = [], [], 0
    while pos < len(attrs_raw):
        flags, code = attrs_raw[pos], attrs_raw[pos + 1]
        if flags & 0x10:
            length, hdr = struct.unpack_from("!H", attrs_raw, pos + 2)[0], 4
        else:
            length, hdr = attrs_raw[pos + 2], 3
        value = attrs_raw[pos + hdr : pos + hdr + length]
        names.append(ATTR_NAMES.get(code, str(code)))
        if code == 14:
            afi, safi, nhlen = struct.unpack_from("!HBB", value)
            reach = prefixes(value[5 + nhlen :], afi)  # skip the reserved octet
            notes.append(f"mp_reach afi={afi} safi={safi} nh_len={nhlen} nlri={','.join(reach)}")
        if code == 15:
            afi, safi = struct.unpack_from("!HB", value)
            gone = prefixes(value[3:], afi)
            if not gone and len(attrs_raw) == pos + hdr + length and pos == 0:
                return f"End-of-RIB afi={afi} safi={safi}"
            notes.append(f"mp_unreach afi={afi} safi={safi} withdrawn={','.join(gone)}")
        pos += hdr + length
    if not withdrawn and not attrs_raw and not nlri:
        return "End-of-RIB ipv4 unicast"
    parts = []
    if withdrawn:
        parts.append("withdrawn=" + ",".join(withdrawn))
    if names:
        parts.append("attrs=" + ",".join(names))
    parts += notes
    if nlri:
        parts.append("nlri=" + ",".join(nlri))
    return " ".join(parts)


def summarise_notification(body: bytes) -> str:
    code, sub = body[0], body[1]
    data = body[2:]
    note = f"code={code} subcode={sub}"
    if code == 6 and sub in (2, 4) and data:
        note += f" shutdown_message={data[1 : 1 + data[0]].decode('utf-8', 'replace')!r}"
    elif data:
        note += f" data={data.hex()}"
    return note


def summarise(msg: bytes) -> tuple[str, str]:
    mtype = msg[18]
    name = TYPES.get(mtype, str(mtype))
    body = msg[19:]
    if mtype == 1:
        return name, summarise_open(body)
    if mtype == 2:
        note = summarise_update(body)
        return ("UPDATE(EoR)" if note.startswith("End-of-RIB") else name), note
    if mtype == 3:
        return name, summarise_notification(body)
    return name, ""


# --- output -----------------------------------------------------------------------------------
def who(addr: str) -> tuple[str, str]:
    for name, peers in ADDR.items():
        for _peer, (v4, v6) in peers.items():
            if addr == v4:
                return name, "v4"
            if ipaddress.ip_address(addr) == ipaddress.ip_address(v6):
                return name, "v6"
    raise KeyError(addr)


def write_captures(pcap: Path, out: Path) -> dict[str, int]:
    lines: dict[str, list[tuple[float, str]]] = {"frr": [], "bird": [], "gobgp": []}
    for flow in read_flows(pcap):
        sender, session = who(flow.src)
        receiver, _ = who(flow.dst)
        for ts, msg in split_messages(flow):
            mtype, note = summarise(msg)
            text = f"{msg.hex()}  # {sender}>{receiver}/{session} {mtype} {note}".rstrip()
            lines[sender].append((ts, text))
    counts = {}
    for sender, entries in lines.items():
        entries.sort(key=lambda e: e[0])
        (out / f"{sender}.txt").write_text("".join(t + "\n" for _, t in entries))
        counts[sender] = len(entries)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="tests/data/captures", type=Path)
    parser.add_argument("--pcap", type=Path, help="keep the raw capture here")
    parser.add_argument("--from-pcap", type=Path, help="skip the run, only re-split this pcap")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podbgp-capture-") as tmp:
        work = Path(tmp)
        pcap = args.from_pcap or args.pcap or work / "bgp.pcap"
        if not args.from_pcap:
            run_scenario(work, pcap)
        counts = write_captures(pcap, args.out)
    print(" ".join(f"{k}={v}" for k, v in counts.items()), "messages written to", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
