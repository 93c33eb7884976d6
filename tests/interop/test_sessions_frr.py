"""podbgp sessions against FRR 8.4 in network namespaces.

FRR runs in namespace ``a`` (10.99.0.1, fd99::1), podbgp in ``b`` (10.99.0.2,
fd99::2) on its own loop in a thread (``sessions_harness``). Timers 3/9, so
the whole module takes well under a minute. Hold-timer expiry under SIGSTOP
and connection collision run against every daemon in
``test_sessions_hold_collision``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sessions_harness import V4, V6, SpeakerThread, announce

from bgp.settings import PeerSettings, SpeakerSettings
from podbgp.lab.peer_link import Link
from podbgp.lab.peers import BgpConfig, Daemon, Frr, Neighbor, Route, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.root]

FRR_AS, POD_AS = 65001, 4200000002
FRR_V4 = Route(
    "10.201.0.0/24", communities=("65001:1", "65001:2"), large_communities=("65001:3:4",), med=10
)
FRR_V6 = Route("fd00:201::/64", communities=("65001:6",), large_communities=("65001:6:6",), med=6)
Require = Callable[[str], type[Daemon]]


def pod_routes(link: Link) -> dict[str, list[bytes]]:
    return {
        link.a4: announce(
            "10.202.0.0/24",
            (POD_AS, 64999),
            link.b4,
            med=20,
            communities=(65002 << 16 | 7,),
            large_communities=((POD_AS, 8, 9),),
        ),
        link.a6: announce(
            "fd00:202::/64",
            (POD_AS,),
            link.b6,
            med=7,
            communities=(65002 << 16 | 6,),
            large_communities=((POD_AS, 6, 6),),
        ),
    }


def frr_config(link: Link, v6: bool = True, **nb: Any) -> BgpConfig:
    nb.setdefault("passive", True)
    neighbors = [Neighbor(link.b4, POD_AS, **nb)]
    if v6:
        neighbors.append(Neighbor(link.b6, POD_AS, families=("ipv6",), **nb))
    return BgpConfig(asn=FRR_AS, router_id=link.a4, neighbors=neighbors, routes=[FRR_V4, FRR_V6])


def pod_peers(link: Link, v6: bool = True, **kw: Any) -> list[PeerSettings]:
    kw.setdefault("hold_time", 9)
    kw.setdefault("connect_retry", 1.0)
    peers = [PeerSettings(link.a4, FRR_AS, local_address=link.b4, families=(V4,), **kw)]
    if v6:
        peers.append(PeerSettings(link.a6, FRR_AS, local_address=link.b6, families=(V6,), **kw))
    return peers


def speaker(
    link: Link, peers: list[PeerSettings], routes: dict[str, list[bytes]] | None = None
) -> SpeakerThread:
    settings = SpeakerSettings(asn=POD_AS, router_id=link.b4, listen=("0.0.0.0", "::"))
    return SpeakerThread(link.b.name, settings, peers, routes)


@pytest.fixture
def frr_cls(require_daemon: Require) -> type[Daemon]:
    return require_daemon("frr")


def test_v4_v6_routes_both_ways_md5_and_shutdown_message(
    link: Link, tmp_path: Path, frr_cls: type[Daemon]
) -> None:
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link, password="s3cret")) as frr,
        speaker(link, pod_peers(link, password="s3cret"), pod_routes(link)) as pod,
    ):
        # Established over IPv4 and IPv6 transport, with TCP MD5 on both.
        pod.wait_established(link.a4)
        pod.wait_established(link.a6)
        frr.wait_established(link.b4, timeout=10)
        frr.wait_established(link.b6, timeout=10)
        # podbgp -> FRR, read back from FRR's JSON.
        p4 = frr.wait_route("10.202.0.0/24")[0]
        assert p4["as_path"] == [POD_AS, 64999] and p4["med"] == 20
        assert p4["communities"] == ["65002:7"] and p4["large_communities"] == [f"{POD_AS}:8:9"]
        p6 = frr.wait_route("fd00:202::/64")[0]
        assert p6["as_path"] == [POD_AS] and p6["med"] == 7
        assert p6["communities"] == ["65002:6"] and p6["large_communities"] == [f"{POD_AS}:6:6"]
        # FRR -> podbgp.
        a4 = pod.wait_route(FRR_V4.prefix)
        assert a4.as_path == ((2, (FRR_AS,)),) and a4.med == 10
        assert a4.communities == (65001 << 16 | 1, 65001 << 16 | 2)
        assert a4.large_communities == ((65001, 3, 4),)
        assert str(a4.next_hop) == link.a4
        a6 = pod.wait_route(FRR_V6.prefix)
        assert a6.as_path == ((2, (FRR_AS,)),) and a6.med == 6
        assert a6.communities == (65001 << 16 | 6,) and a6.large_communities == ((65001, 6, 6),)
        stats = pod.stats(link.a4)
        assert stats["negotiated"]["four_octet_as"] and stats["negotiated"]["route_refresh"]
        assert stats["messages_in"]["update"] >= 2 and stats["messages_out"]["update"] >= 2
        # Admin shutdown with an RFC 9003 message shows in FRR's neighbour output.
        pod.call(lambda: pod.peer(link.a4).shutdown("podbgp maintenance 7"))
        wait_for(lambda: frr.neighbor_state(link.b4) != "Established", 5, "FRR sees the shutdown")
        info = frr.neighbor_info(link.b4)
        assert info["lastNotificationReason"] == "Cease/Administrative Shutdown"
        assert info["lastShutdownDescription"] == "podbgp maintenance 7"
        pod.call(lambda: pod.peer(link.a4).enable())
        pod.wait_established(link.a4)
        # A wrong MD5 password never establishes.
        wrong = pod_peers(link, v6=False, password="wrong")[0]
        pod.call(lambda: pod.speaker.update_peer(wrong))  # type: ignore[union-attr]
        time.sleep(5)
        assert pod.state(link.a4) != "established"
        assert frr.neighbor_state(link.b4) != "Established"


def test_gtsm(link: Link, tmp_path: Path, frr_cls: type[Daemon]) -> None:
    """RFC 5082 with FRR: TTL below 255 never makes a session, GTSM on both sides does.

    FRR dials here: it sets TTL 255 and IP_MINTTL 255 on its socket before
    connect, so podbgp's SYN-ACK (TTL 64, no GTSM yet) is dropped by FRR's
    kernel and no handshake ever completes. (With podbgp dialling FRR instead,
    FRR 8.4 accepts at its listener, which has no minimum TTL, and sets
    IP_MINTTL only on the accepted socket: an OPEN already queued before that
    gets through, and podbgp reached Established in about 1 run in 6.)
    """
    cfg = frr_config(link, v6=False, ttl_security=1, passive=False)
    no_gtsm = pod_peers(link, v6=False, passive=True)
    with Frr(link.a, tmp_path / "frr", cfg) as frr, speaker(link, no_gtsm) as pod:
        dialling = False
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            out = link.a.run("ss", "-Htn", "state", "syn-sent", "dst", link.b4)
            dialling = dialling or bool(out.strip())
            assert frr.neighbor_state(link.b4) != "Established"
            time.sleep(0.2)
        assert dialling, "FRR never dialled podbgp"
        assert not pod.sink.ups and pod.stats(link.a4)["messages_in"]["open"] == 0
        gtsm = pod_peers(link, v6=False, ttl_security=1)[0]
        pod.call(lambda: pod.speaker.update_peer(gtsm))  # type: ignore[union-attr]
        pod.wait_established(link.a4, timeout=15)
        frr.wait_established(link.b4, timeout=5)


def test_wrong_peer_as_is_an_open_error_frr_reports(
    link: Link, tmp_path: Path, frr_cls: type[Daemon]
) -> None:
    peers = [PeerSettings(link.a4, 65099, local_address=link.b4, families=(V4,), hold_time=9)]
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link, v6=False)) as frr,
        speaker(link, peers) as pod,
    ):
        # FRR logs the NOTIFICATION it received (its JSON keeps only the latest reset reason).
        wait_for(
            lambda: "2/2 (OPEN Message Error/Bad Peer AS)" in frr.log_tail(200),
            15,
            "FRR to report the OPEN error",
        )
        assert frr.neighbor_state(link.b4) != "Established"
        err = pod.stats(link.a4)["last_error"]
        assert (err["code"], err["subcode"], err["direction"]) == (2, 2, "sent")


def test_restarted_frr_repeers_at_once_with_graceful_restart(
    link: Link, tmp_path: Path, frr_cls: type[Daemon]
) -> None:
    """RFC 4724 §4.2: FRR restarts and nothing of its old connection reaches podbgp.

    An nftables rule in podbgp's namespace drops what the dead connection
    would still deliver (FIN/RST), as when a host loses power: podbgp's old
    session stays Established. The restarted FRR dials in with graceful
    restart, and podbgp takes the new connection at once (no Cease 7, no
    wait for its 60 s hold time), the old session ending like a TCP loss.
    """
    cfg = frr_config(link, v6=False, passive=False, graceful_restart=True, restart_time=60)
    cfg.hold_time, cfg.keepalive = 60, 20
    peers = pod_peers(link, v6=False, passive=True, graceful_restart=True, hold_time=60)
    with Frr(link.a, tmp_path / "frr", cfg) as frr, speaker(link, peers) as pod:
        pod.wait_established(link.a4)
        pod.wait_route(FRR_V4.prefix)
        assert pod.stats(link.a4)["negotiated"]["graceful_restart"]
        old_port = str(pod.stats(link.a4)["remote"]).rsplit(":", 1)[1]
        nft = ("nft", "add")
        link.b.run(*nft, "table", "inet", "grtest")
        link.b.run(*nft, "chain", "inet", "grtest", "inp", "{ type filter hook input priority 0; }")
        link.b.run(*nft, "rule", "inet", "grtest", "inp", "tcp", "sport", old_port, "drop")
        for p in frr.procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        time.sleep(1)
        assert pod.state(link.a4) == "established"  # podbgp noticed nothing
        t0 = time.monotonic()
        frr.start()
        pod.wait(lambda: pod.sink.downs, 20, "the old session to end")
        pod.wait(
            lambda: pod.state(link.a4) == "established" and len(pod.sink.ups) == 2,
            20,
            "the new session",
        )
        assert time.monotonic() - t0 < 30  # not at the 60 s hold expiry
        down = pod.sink.downs[0][1]
        assert (down.code, down.sent, down.was_established) == (0, None, True)
        assert "restarted" in down.reason
        assert len(pod.sink.downs) == 1
        assert str(pod.stats(link.a4)["remote"]).rsplit(":", 1)[1] != old_port
        frr.wait_established(link.b4, timeout=10)
        pod.wait_route(FRR_V4.prefix)
