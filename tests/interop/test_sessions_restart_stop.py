"""RFC 8538 and the restart stop against FRR 8.4, BIRD 2 and GoBGP 3, in namespaces.

podbgp (namespace ``b``) and each daemon (``a``) both run graceful restart. The test
records whether the daemon set the N bit (``N_BIT``, what this machine's versions do),
then stops podbgp the way SIGTERM does (``StopKind.RESTART``) and checks that the
daemon keeps podbgp's route while podbgp is away: a soft Cease where N was exchanged,
a close without NOTIFICATION where it was not. A shutdown stop, for contrast, makes
every daemon drop the route.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sessions_harness import V4, SpeakerThread, announce

from bgp.restart import StopKind
from bgp.settings import PeerSettings, SpeakerSettings
from podbgp.lab.peer_link import Link
from podbgp.lab.peers import BgpConfig, Daemon, DaemonError, Neighbor, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.root]

PEER_AS, POD_AS = 65001, 65002
PREFIX = "10.202.0.0/24"
# Whether each daemon sets the Graceful Notification bit in its OPEN (found by this test).
N_BIT = {"frr": True, "bird": False, "gobgp": False}


def run_pod(link: Link, restart_time: int = 60) -> SpeakerThread:
    ps = PeerSettings(link.a4, PEER_AS, local_address=link.b4, families=(V4,), hold_time=9,
                      connect_retry=1.0, graceful_restart=True, restart_time=restart_time)  # fmt: skip
    settings = SpeakerSettings(asn=POD_AS, router_id=link.b4, listen=("0.0.0.0",))
    routes = {link.a4: announce(PREFIX, (POD_AS,), link.b4)}
    return SpeakerThread(link.b.name, settings, [ps], routes)


def daemon_config(link: Link) -> BgpConfig:
    nb = Neighbor(link.b4, POD_AS, passive=True, graceful_restart=True, restart_time=60)
    return BgpConfig(asn=PEER_AS, router_id=link.a4, neighbors=[nb])


def has_route(daemon: Daemon) -> bool:
    try:
        return bool(daemon.routes().get(PREFIX))
    except (DaemonError, ValueError, OSError):  # busy with the session drop: ask again
        return False


@pytest.mark.parametrize("name", sorted(N_BIT))
def test_restart_stop_keeps_our_route_at_the_peer(
    name: str, link: Link, tmp_path: Path, require_daemon: Callable[[str], type[Daemon]]
) -> None:
    cls = require_daemon(name)
    with cls(link.a, tmp_path / name, daemon_config(link)) as daemon:
        pod = run_pod(link).__enter__()
        try:
            pod.wait_established(link.a4)
            wait_for(lambda: has_route(daemon), 15, f"{name} learned {PREFIX}")
            neg = pod.stats(link.a4)["negotiated"]
            assert neg["graceful_restart"], neg
            assert neg["graceful_notification"] is N_BIT[name], neg
            pod.call_async(pod.speaker.stop("podbgp restarting", StopKind.RESTART))  # type: ignore[union-attr]
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # the daemon keeps it while we are away
                assert has_route(daemon), f"{name} dropped {PREFIX} on a restart stop"
                time.sleep(0.2)
        finally:
            pod.__exit__(None, None, None)


@pytest.mark.parametrize("name", sorted(N_BIT))
def test_shutdown_stop_makes_the_peer_drop_our_route(
    name: str, link: Link, tmp_path: Path, require_daemon: Callable[[str], type[Daemon]]
) -> None:
    cls = require_daemon(name)
    with cls(link.a, tmp_path / name, daemon_config(link)) as daemon, run_pod(link) as pod:
        pod.wait_established(link.a4)
        wait_for(lambda: has_route(daemon), 15, f"{name} learned {PREFIX}")
        pod.call_async(pod.speaker.stop("decommissioned", StopKind.SHUTDOWN))  # type: ignore[union-attr]
        wait_for(lambda: not has_route(daemon), 10, f"{name} dropped {PREFIX}")
