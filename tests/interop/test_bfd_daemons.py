"""BFD against FRR 8.4 `bfdd` and BIRD 2 `protocol bfd`, through `podbgp run` and the kernel.

podbgp (`podbgp.lab.bfd_lab.PodbgpNode`, kernel FIB on) sits at 10.99.0.1, the
daemon at 10.99.0.2, one eBGP session with BFD at 300 ms x 3 and a hold time of
30 s. Each side announces one prefix, which reaches the other's kernel table.
Then nftables drops BGP and BFD on podbgp's side of the link (this kernel has no
netem): both BFD sessions expire after ~0.9 s, podbgp closes the session with
Cease / BFD Down (RFC 9384) and removes the peer's route from its kernel table,
and the daemon removes podbgp's. The bound (3 s) is far below the hold time, so
only BFD can have done it; without BFD the routes stay until the hold time.
Restoring the link brings BFD and BGP back.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rib_node import HUB, lan, spoke_address

from podbgp.lab.bfd_lab import (
    LabPeer,
    PodbgpNode,
    drop_bgp_and_bfd,
    kernel_hops,
    restore,
    wait_until,
)
from podbgp.lab.netns import NetnsGroup
from podbgp.lab.peer_link import Link
from podbgp.lab.peers import BgpConfig, Daemon, Neighbor, Route

pytestmark = [pytest.mark.interop, pytest.mark.root]

POD_AS, PEER_AS = 64701, 64702
POD_PREFIX, PEER_PREFIX = "10.210.1.0/24", "10.220.1.0/24"
HOLD = 30
DETECT_BOUND = 3.0  # 300 ms x 3 = 0.9 s, plus the kernel work and a loaded machine
Require = Callable[[str], type[Daemon]]


def _peer_config(link: Link, bfd: bool, hold: int = HOLD, gr: bool = False) -> BgpConfig:
    return BgpConfig(
        asn=PEER_AS,
        router_id=link.b4,
        neighbors=[Neighbor(link.a4, POD_AS, bfd=bfd, graceful_restart=gr, restart_time=60)],
        routes=[Route(PEER_PREFIX)],
        install_routes=True,
        hold_time=hold,
        keepalive=hold // 3,
    )


def _node(link: Link, tmp_path: Path, bfd: bool, hold: int = HOLD, gr: bool = False) -> PodbgpNode:
    return PodbgpNode(
        link.a, tmp_path / "podbgp", asn=POD_AS, address=link.a4,
        peers=[LabPeer(link.b4, PEER_AS, bfd=bfd)], originate=(POD_PREFIX,), hold_time=hold,
        graceful_restart=gr,
    )  # fmt: skip


def _routes_everywhere(link: Link) -> None:
    wait_until(lambda: kernel_hops(link.a, PEER_PREFIX) == [link.b4], 30, "peer route in podbgp")
    wait_until(lambda: kernel_hops(link.b, POD_PREFIX) == [link.a4], 30, "podbgp route in peer")


def _gone_after_drop(link: Link, timeout: float) -> tuple[float, float]:
    """Drop BGP and BFD; seconds until each side's kernel lost the other's route."""
    t0 = time.monotonic()
    drop_bgp_and_bfd(link.a)
    done: dict[str, float] = {}
    checks = {"podbgp": (link.a, PEER_PREFIX), "peer": (link.b, POD_PREFIX)}

    def both_gone() -> bool:
        for name, (ns, prefix) in checks.items():
            if name not in done and not kernel_hops(ns, prefix):
                done[name] = time.monotonic() - t0
        return len(done) == 2

    wait_until(both_gone, timeout, "routes gone from both kernels", 0.02)
    return done["podbgp"], done["peer"]


def _peer_bfd_up(daemon: Daemon, address: str) -> bool:
    if hasattr(daemon, "bfd_peer"):
        return daemon.bfd_peer(address).get("status") == "up"  # type: ignore[no-any-return]
    return daemon.bfd_state(address) == "Up"  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("daemon", ["frr", "bird"])
def test_bfd_down_removes_routes_both_ways(
    link: Link, tmp_path: Path, require_daemon: Require, daemon: str
) -> None:
    cls = require_daemon(daemon)
    with (
        cls(link.b, tmp_path / daemon, _peer_config(link, bfd=True)) as peer,
        _node(link, tmp_path, bfd=True) as pod,
    ):
        peer.wait_established(link.a4, timeout=30)
        bfd = wait_until(lambda: (pod.peer().get("bfd") or {}).get("up") and pod.peer()["bfd"],
                         30, "podbgp's BFD session Up")  # fmt: skip
        wait_until(lambda: _peer_bfd_up(peer, link.a4), 30, f"{daemon}'s BFD session Up")
        assert bfd["tx_interval_ms"] == 300.0  # agreed: max(our 300, their 300)
        wait_until(lambda: pod.peer()["bfd"]["detection_time_ms"] == 900.0, 10, "detect 900 ms")
        _routes_everywhere(link)
        # FRR's bgpd re-registers its BFD session once the BGP connection has a source
        # address (bfdd log: session-new with local 0.0.0.0, then with 10.99.0.2); when the
        # first one was already Up, the new one's Down flaps both ends once. Count from here.
        flaps = pod.peer()["bfd"]["flaps"]

        ours, theirs = _gone_after_drop(link, timeout=HOLD)
        assert ours < DETECT_BOUND, f"podbgp's kernel kept the route {ours:.2f} s"
        assert theirs < DETECT_BOUND, f"{daemon}'s kernel kept podbgp's route {theirs:.2f} s"
        row = pod.peer()
        assert row["state"] != "Established"
        err = row["last_error"]
        assert (err["code"], err["subcode"], err["direction"]) == (6, 10, "sent"), err
        assert row["bfd"]["flaps"] == flaps + 1
        assert row["bfd"]["diag"] == "control_detection_time_expired"

        restore(link.a)
        wait_until(lambda: pod.peer()["state"] == "Established", 40, "session back")
        wait_until(lambda: pod.peer()["bfd"]["up"], 20, "BFD back Up")
        _routes_everywhere(link)


def test_without_bfd_routes_wait_for_the_hold_time(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    """The control: with BFD off the same failure takes the hold time (9 s here)."""
    cls = require_daemon("frr")
    hold = 9
    with (
        cls(link.b, tmp_path / "frr", _peer_config(link, bfd=False, hold=hold)) as peer,
        _node(link, tmp_path, bfd=False, hold=hold) as pod,
    ):
        peer.wait_established(link.a4, timeout=30)
        _routes_everywhere(link)
        assert pod.peer()["bfd"] is None
        ours, theirs = _gone_after_drop(link, timeout=hold + 10)
        assert ours >= hold - 3 and theirs >= hold - 3, (ours, theirs)  # keepalive phase: -3 s


def test_remote_admin_down_leaves_bgp_up(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    """RFC 5882 §3.2: a session taken AdminDown by the remote is no path failure."""
    cls = require_daemon("frr")
    with (
        cls(link.b, tmp_path / "frr", _peer_config(link, bfd=True)) as peer,
        _node(link, tmp_path, bfd=True) as pod,
    ):
        peer.wait_established(link.a4, timeout=30)
        wait_until(lambda: (pod.peer().get("bfd") or {}).get("up"), 30, "BFD Up")
        peer.vtysh("configure terminal", "bfd", "profile podbgp", "shutdown")  # type: ignore[attr-defined]
        wait_until(lambda: pod.peer()["bfd"]["remote_state"] == "admindown", 10, "AdminDown seen")
        time.sleep(1.5)  # more than a detection time
        assert pod.peer()["state"] == "Established"
        assert kernel_hops(link.a, PEER_PREFIX) == [link.b4]


def test_bfd_down_shrinks_the_ecmp_set(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Require
) -> None:
    """Two eBGP peers (FRR, BIRD) announce one prefix: the kernel has both next hops;
    when BFD fails on FRR's link only, the route keeps BIRD's next hop alone."""
    frr_cls, bird_cls = require_daemon("frr"), require_daemon("bird")
    hub, (s1, s2) = lan(netns, 2)
    a1, a2 = spoke_address(1), spoke_address(2)
    shared = "10.230.0.0/24"

    def spoke(i: int, asn: int) -> BgpConfig:
        return BgpConfig(asn=asn, router_id=spoke_address(i), routes=[Route(shared)],
                         neighbors=[Neighbor(HUB, POD_AS, bfd=True)], install_routes=True,
                         hold_time=HOLD, keepalive=HOLD // 3)  # fmt: skip

    with (
        frr_cls(s1, tmp_path / "frr", spoke(1, 64711)),
        bird_cls(s2, tmp_path / "bird", spoke(2, 64712)),
        PodbgpNode(
            hub,
            tmp_path / "podbgp",
            asn=POD_AS,
            address=HUB,
            peers=[LabPeer(a1, 64711), LabPeer(a2, 64712)],
            hold_time=HOLD,
        ) as pod,
    ):
        for a in (a1, a2):
            wait_until(lambda a=a: (pod.peer(a).get("bfd") or {}).get("up"), 30, f"BFD {a} Up")
        wait_until(lambda: kernel_hops(hub, shared) == sorted([a1, a2]), 30, "two next hops")
        t0 = time.monotonic()
        drop_bgp_and_bfd(s1)
        wait_until(lambda: kernel_hops(hub, shared) == [a2], HOLD, "ECMP set shrunk to BIRD")
        assert time.monotonic() - t0 < DETECT_BOUND
        assert pod.peer(a1)["last_error"]["subcode"] == 10
        assert pod.peer(a2)["state"] == "Established" and pod.peer(a2)["bfd"]["up"]


def test_podbgp_to_podbgp_bfd_switched_on_by_reload(link: Link, tmp_path: Path) -> None:
    """Two `podbgp run` nodes: BFD switched on by SIGHUP (no BGP reset), comes Up
    between them, and a dark link takes each one's routes out of the other's kernel."""
    a = PodbgpNode(link.a, tmp_path / "a", asn=POD_AS, address=link.a4,
                   peers=[LabPeer(link.b4, PEER_AS, bfd=False)], originate=(POD_PREFIX,))  # fmt: skip
    b = PodbgpNode(link.b, tmp_path / "b", asn=PEER_AS, address=link.b4,
                   peers=[LabPeer(link.a4, POD_AS, bfd=False)], originate=(PEER_PREFIX,))  # fmt: skip
    with a, b:
        _routes_everywhere(link)
        flaps = a.peer()["flaps"], b.peer()["flaps"]
        for node in (a, b):
            node.config.write_text(node.config.read_text().replace("bfd = false", "bfd = true"))
            assert node.proc is not None
            node.proc.send_signal(signal.SIGHUP)
        for node in (a, b):
            wait_until(lambda n=node: (n.peer().get("bfd") or {}).get("up"), 30, "BFD Up")
        assert (a.peer()["flaps"], b.peer()["flaps"]) == flaps  # no BGP reset for BFD
        assert a.peer()["state"] == b.peer()["state"] == "Established"
        ours, theirs = _gone_after_drop(link, timeout=HOLD)
        assert ours < DETECT_BOUND and theirs < DETECT_BOUND, (ours, theirs)
        assert b.peer()["last_error"]["subcode"] == 10


def test_listen_range_neighbour_gets_bfd(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    """A dynamic neighbour (FRR dialling into a listen range with `bfd = true`) gets its
    BFD session once it is Established, and a dark link takes its routes out at once."""
    cls = require_daemon("frr")
    pod = PodbgpNode(link.a, tmp_path / "podbgp", asn=POD_AS, address=link.a4, peers=[],
                     ranges=(("10.99.0.0/24", PEER_AS),), originate=(POD_PREFIX,))  # fmt: skip
    with cls(link.b, tmp_path / "frr", _peer_config(link, bfd=True)) as peer, pod:
        peer.wait_established(link.a4, timeout=30)
        wait_until(lambda: (pod.peer(link.b4).get("bfd") or {}).get("up"), 30, "BFD Up")
        assert pod.peer(link.b4)["dynamic"] is True
        _routes_everywhere(link)
        ours, theirs = _gone_after_drop(link, timeout=HOLD)
        assert ours < DETECT_BOUND and theirs < DETECT_BOUND, (ours, theirs)


@pytest.mark.parametrize("daemon", ["frr", "bird"])
def test_bfd_down_keeps_no_stale_routes_with_graceful_restart(
    link: Link, tmp_path: Path, require_daemon: Require, daemon: str
) -> None:
    """Graceful restart on both ends (60 s restart time): a BFD-detected failure is a
    dead path, not a restarting control plane, so neither end keeps the other's routes
    as stale (RFC 9384 §2, RFC 5882 §4.3.1; FRR's bgpd flushes the same way)."""
    cls = require_daemon(daemon)
    with (
        cls(link.b, tmp_path / daemon, _peer_config(link, bfd=True, gr=True)) as peer,
        _node(link, tmp_path, bfd=True, gr=True) as pod,
    ):
        peer.wait_established(link.a4, timeout=30)
        wait_until(lambda: (pod.peer().get("bfd") or {}).get("up"), 30, "BFD Up")
        wait_until(lambda: pod.peer()["peer_graceful_restart"] is not None, 10, "GR negotiated")
        _routes_everywhere(link)
        ours, theirs = _gone_after_drop(link, timeout=HOLD)
        assert ours < DETECT_BOUND and theirs < DETECT_BOUND, (ours, theirs)
