"""A BGP feeder for load tests: connect, send a full table, keep the session alive.

`python -m podbgp.lab.feeder --connect ADDR --local-as AS --prefixes N` (run it inside
the feeder's namespace) opens an eBGP session (4-octet AS and IPv4 unicast capabilities),
sends N IPv4 prefixes (/24s from 11.0.0.0 upwards, then /24s of the next /8s) packed up to
~4 KB per UPDATE over 1,000 attribute sets (AS_PATHs of 1-4 hops, some MEDs), then
End-of-RIB, prints one JSON line `{"sent": N, "t0": ..., "t1": ...}` (CLOCK_MONOTONIC,
comparable across namespaces) and keeps answering keepalives until stdin closes.
Anything it receives is read and dropped.

The same feed is built by `updates(n, local_as, next_hop)` for in-process use.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
import sys
import threading
import time

MARKER = b"\xff" * 16
ATTR_SETS = 1000
MAX_UPDATE = 4096


def _msg(mtype: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def open_msg(local_as: int, router_id: str, hold: int) -> bytes:
    caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack("!I", local_as)
    params = bytes([2, len(caps)]) + caps
    my_as = local_as if local_as < 65536 else 23456
    body = struct.pack("!BHH4sB", 4, my_as, hold, socket.inet_aton(router_id), len(params))
    return _msg(1, body + params)


KEEPALIVE = _msg(4, b"")
END_OF_RIB = _msg(2, b"\x00\x00\x00\x00")


def _attrs(i: int, local_as: int, next_hop: str) -> bytes:
    """Attribute set `i`: ORIGIN, AS_PATH (4-byte ASNs), NEXT_HOP, MED on a third."""
    hops = [local_as] + [64900 + (i * 7 + k) % 500 for k in range(i % 4)]
    seg = bytes([2, len(hops)]) + b"".join(struct.pack("!I", a) for a in hops)
    out = bytes([0x40, 1, 1, 0])  # ORIGIN IGP
    out += bytes([0x40, 2, len(seg)]) + seg
    out += bytes([0x40, 3, 4]) + socket.inet_aton(next_hop)
    if i % 3 == 0:
        out += bytes([0x80, 4, 4]) + struct.pack("!I", i)
    return out


def _prefixes(n: int) -> list[bytes]:
    base = int(ipaddress.IPv4Address("11.0.0.0")) >> 8
    return [bytes([24]) + ((base + k) << 8).to_bytes(4, "big")[:3] for k in range(n)]


def updates(n: int, local_as: int, next_hop: str) -> list[bytes]:
    """The feed: UPDATE messages carrying `n` /24s round-robin over the attribute sets."""
    sets = [_attrs(i, local_as, next_hop) for i in range(ATTR_SETS)]
    pfx = _prefixes(n)
    per = max(1, n // ATTR_SETS)
    out = []
    for i in range(0, n, per):
        attrs = sets[(i // per) % ATTR_SETS]
        room = (MAX_UPDATE - 19 - 4 - len(attrs)) // 4
        chunk = pfx[i : i + per]
        for j in range(0, len(chunk), room):
            nlri = b"".join(chunk[j : j + room])
            out.append(_msg(2, struct.pack("!HH", 0, len(attrs)) + attrs + nlri))
    return out


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _handshake(sock: socket.socket, local_as: int, router_id: str, hold: int) -> None:
    sock.sendall(open_msg(local_as, router_id, hold))
    got_open = False
    while True:
        head = _recv_exact(sock, 19)
        length, mtype = struct.unpack("!HB", head[16:19])
        body = _recv_exact(sock, length - 19)
        if mtype == 1:
            got_open = True
            sock.sendall(KEEPALIVE)
        elif mtype == 4 and got_open:
            return
        elif mtype == 3:
            raise ConnectionError(f"NOTIFICATION {body[0]}/{body[1]} during the handshake")


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(1 << 16):
            pass
    except OSError:
        pass


def _keepalives(sock: socket.socket, every: float, lock: threading.Lock) -> None:
    while True:
        time.sleep(every)
        try:
            with lock:
                sock.sendall(KEEPALIVE)
        except OSError:
            return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connect", required=True)
    ap.add_argument("--local-as", type=int, required=True)
    ap.add_argument("--router-id", default="10.255.0.1")
    ap.add_argument("--next-hop", required=True)
    ap.add_argument("--prefixes", type=int, required=True)
    ap.add_argument("--hold", type=int, default=90)
    a = ap.parse_args(argv)
    feed = updates(a.prefixes, a.local_as, a.next_hop)
    deadline = time.monotonic() + 60
    while True:
        try:
            sock = socket.create_connection((a.connect, 179), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    sock.settimeout(None)
    _handshake(sock, a.local_as, a.router_id, a.hold)
    lock = threading.Lock()
    threading.Thread(target=_drain, args=(sock,), daemon=True).start()
    threading.Thread(target=_keepalives, args=(sock, a.hold / 3, lock), daemon=True).start()
    t0 = time.monotonic()
    blob = b"".join(feed)
    for i in range(0, len(blob), 1 << 16):
        with lock:
            sock.sendall(blob[i : i + (1 << 16)])
    with lock:
        sock.sendall(END_OF_RIB)
    print(json.dumps({"sent": a.prefixes, "t0": t0, "t1": time.monotonic()}), flush=True)
    sys.stdin.read()  # until the caller closes stdin
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
