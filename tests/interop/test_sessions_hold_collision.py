"""Hold-timer expiry and connection collision against all five reference daemons.

For each of FRR, BIRD, GoBGP, OpenBGPD and ExaBGP one daemon (namespace ``a``)
and one podbgp speaker (namespace ``b``) are started per module and shared by
the two tests, which pytest runs in this order for each daemon:

1. Both sides are active and start dialling together (RFC 4271 §6.8): once the
   session is up, exactly one TCP connection is left and it stays up.
2. The daemon's whole process group is stopped with SIGSTOP: podbgp declares
   the session down with a Hold Timer Expired NOTIFICATION (code 4) within
   about one hold time (3 s), and re-establishes once the daemon continues.

Every daemon here can initiate: ExaBGP and OpenBGPD are active by default, and
ExaBGP is told to listen as well (``listen_addresses``) so both directions
exist for it too.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sessions_harness import V4, SpeakerThread

from bgp.settings import PeerSettings, SpeakerSettings
from podbgp.lab.netns import Netns, NetnsGroup, cleanup_prefix, have_netns
from podbgp.lab.peer_link import Link, make_link
from podbgp.lab.peers import DAEMONS, BgpConfig, Daemon, Neighbor, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.root]

PEER_AS, POD_AS = 65001, 65002
HOLD = 3
_counter = itertools.count()


@dataclass
class Pair:
    name: str
    link: Link
    daemon: Daemon
    pod: SpeakerThread


def daemon_config(link: Link) -> BgpConfig:
    """Active (not passive) on both sides, listening too; hold 3 s, keepalive 1 s."""
    nb = Neighbor(link.b4, POD_AS, local_address=link.a4)
    cfg = BgpConfig(asn=PEER_AS, router_id=link.a4, neighbors=[nb], listen_addresses=(link.a4,))
    cfg.hold_time, cfg.keepalive, cfg.connect_retry = HOLD, 1, 1
    return cfg


def pod_peer(link: Link) -> PeerSettings:
    return PeerSettings(
        link.a4,
        PEER_AS,
        local_address=link.b4,
        families=(V4,),
        hold_time=HOLD,
        connect_retry=0.5,
        connect_retry_max=2.0,
    )


@pytest.fixture(scope="module", params=list(DAEMONS))
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    name: str = request.param
    why = have_netns() or DAEMONS[name].missing()
    if why:
        pytest.skip(why)
    prefix = f"t{os.getpid() % 100000}h{next(_counter)}-"
    cleanup_prefix(prefix)
    group = NetnsGroup(prefix)
    try:
        link = make_link(group)
        workdir: Path = tmp_path_factory.mktemp(name)
        settings = SpeakerSettings(asn=POD_AS, router_id=link.b4, listen=("0.0.0.0",))
        pairs: list[Pair] = []
        open_gate = gate(link, lambda: second_connection(pairs[0]))
        # podbgp first: OpenBGPD dials once at start and then only every 120 s.
        with (
            SpeakerThread(link.b.name, settings, [pod_peer(link)]) as pod,
            DAEMONS[name](link.a, workdir, daemon_config(link)) as daemon,
        ):
            pairs.append(Pair(name, link, daemon, pod))
            open_gate()
            yield pairs[0]
    finally:
        group.close()


def _nft_drop(ns: Netns, table: str, *match: str) -> None:
    """A table of its own in ``ns`` dropping incoming IPv4 segments that match each ``match``."""
    ns.run("nft", "add", "table", "ip", table)
    ns.run("nft", "add", "chain", "ip", table, "inp", "{ type filter hook input priority 0; }")
    for m in match:
        ns.run("nft", "add", "rule", "ip", table, "inp", *m.split(), "drop")


def gate(link: Link, second: Callable[[], bool]) -> Callable[[], None]:
    """Open two TCP connections, one each way, before either carries a BGP message.

    Both namespaces drop incoming port-179 segments that carry data (IPv4 total
    length above 64: a BGP message is at least 19 bytes on 52 bytes of headers),
    so every OPEN waits for retransmission; ``a`` also drops podbgp's SYNs for a
    start. The returned opener waits for the daemon's connection to podbgp, lets
    podbgp's SYNs through, waits until ``second`` says podbgp's connection has
    reached the daemon, and then lets the messages flow: two BGP connections to
    the same peer run their OPEN exchange at once (RFC 4271 §6.8), never a late
    dial refused by a session that is already Established.
    """
    data = ("tcp dport 179 ip length > 64", "tcp sport 179 ip length > 64")
    _nft_drop(link.a, "gate", *data)
    _nft_drop(link.a, "gatesyn", "tcp dport 179 tcp flags & (syn | ack) == syn")
    _nft_drop(link.b, "gate", *data)

    def open_gate() -> None:
        try:
            wait_for(lambda: bool(incoming_connections(link)), 15, "the daemon's connection")
            link.a.run("nft", "delete", "table", "ip", "gatesyn")
            wait_for(second, 15, "podbgp's connection too")
        finally:
            link.a.run("nft", "delete", "table", "ip", "gatesyn", check=False)
            for ns in (link.a, link.b):
                ns.run("nft", "delete", "table", "ip", "gate")

    return open_gate


# Daemons that close a connection arriving while they have one in OpenSent, without
# reading its OPEN (no §6.8 comparison), and the line each logs when it does.
CLOSES_SECOND = {
    "gobgp": "Closed an accepted connection",
    "openbgpd": "while session is in state OpenSent",
}


def second_connection(pair: Pair) -> bool:
    """podbgp's own connection has reached the daemon, while the daemon's is still open."""
    if pair.name in CLOSES_SECOND:
        return CLOSES_SECOND[pair.name] in pair.daemon.log_tail(100)
    return len(bgp_connections(pair.link)) == 2


def incoming_connections(link: Link) -> list[str]:
    out = link.b.run("ss", "-Htn", "state", "established", "( sport = :179 )")
    return out.strip().splitlines()


def bgp_connections(link: Link) -> list[str]:
    out = link.b.run("ss", "-Htn", "state", "established", "( sport = :179 or dport = :179 )")
    return out.strip().splitlines()


def test_both_sides_connecting_leaves_exactly_one_session(pair: Pair) -> None:
    link, pod = pair.link, pair.pod
    pod.wait_established(link.a4, timeout=20)
    pair.daemon.wait_established(link.b4, timeout=10)
    # Every daemon retries its connection each second: a second one would show by now.
    time.sleep(3)
    pod.wait_established(link.a4, timeout=10)
    ups, downs = len(pod.sink.ups), len(pod.sink.downs)
    time.sleep(2)
    assert len(bgp_connections(link)) == 1, bgp_connections(link)
    assert pod.peer(link.a4).extra is None and pod.state(link.a4) == "established"
    assert pair.daemon.neighbor_state(link.b4) == "Established"
    assert (len(pod.sink.ups), len(pod.sink.downs)) == (ups, downs)  # settled, no flapping
    # The end state is exactly one session, and at most one reconnect led to it. How the
    # daemons get there varies from run to run with timing (seen here): FRR 8.4 and BIRD
    # sometimes close their *Established* session when the losing connection's OPEN,
    # held back by the gate and retransmitted, arrives ~300 ms late, and reconnect once;
    # ExaBGP sometimes drops the second connection without a Cease; GoBGP and OpenBGPD
    # close it in OpenSent. So only the outcome RFC 4271 §6.8 promises is asserted.
    assert ups - downs == 1 and downs <= 1, (ups, downs)


def test_stopped_peer_is_declared_down_at_hold_expiry(pair: Pair) -> None:
    link, pod, daemon = pair.link, pair.pod, pair.daemon
    pod.wait_established(link.a4, timeout=20)
    assert pod.stats(link.a4)["negotiated"]["hold_time"] == HOLD
    before = len(pod.sink.downs)
    daemon.pause()
    try:
        t0 = time.monotonic()
        pod.wait(lambda: len(pod.sink.downs) > before, 3 * HOLD, "hold expiry")
        elapsed = time.monotonic() - t0
    finally:
        daemon.resume()
    down = pod.sink.downs[before][1]
    assert (down.code, down.sent, down.was_established) == (4, True, True)
    assert elapsed < 2 * HOLD
    pod.wait_established(link.a4, timeout=30)
    daemon.wait_established(link.b4, timeout=10)
