"""The reference-daemon runners work against real peers (podbgp.lab.peers).

Each test peers FRR with one other daemon over a veth between two namespaces and reads the
routes back through the runner's normalised `routes()`, so the interop tests of the session and
RIB work can rely on these runners.  Timers are small (hold 9 / keepalive 3, hold 3 for the
pause test) so the whole file runs in about a minute.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podbgp.lab.peer_link import Link
from podbgp.lab.peers import BgpConfig, Daemon, Frr, ListenRange, Neighbor, Route, wait_for
from podbgp.lab.peers_bird import render_bird
from podbgp.lab.peers_frr import make_traversable
from podbgp.lab.peers_frr import render_bgpd as render_frr
from podbgp.lab.peers_gobgp import render_gobgpd
from podbgp.lab.peers_openbgpd import render_bgpd as render_openbgpd

pytestmark = [pytest.mark.interop, pytest.mark.root]

FRR_AS, PEER_AS = 4200000001, 65002
FRR_ROUTE = Route(
    "10.201.0.0/24",
    communities=("65001:1", "65001:2"),
    large_communities=("4200000001:1:2",),
    med=10,
)
PEER_ROUTE = Route(
    "10.202.0.0/24", communities=("65002:7",), large_communities=("65002:8:9",), med=20
)
Require = Callable[[str], type[Daemon]]


def frr_config(link: Link, families: tuple[str, ...] = ("ipv4",), **neighbor: Any) -> BgpConfig:
    neighbors = [Neighbor(link.b4, PEER_AS, **neighbor)]
    routes = [FRR_ROUTE]
    if "ipv6" in families:
        neighbors.append(Neighbor(link.b6, PEER_AS, families=("ipv6",), **neighbor))
        routes.append(Route("fd00:201::/64", communities=("65001:6",), med=6))
    return BgpConfig(asn=FRR_AS, router_id=link.a4, neighbors=neighbors, routes=routes)


def peer_config(link: Link, families: tuple[str, ...] = ("ipv4",), **neighbor: Any) -> BgpConfig:
    neighbors = [Neighbor(link.a4, FRR_AS, local_address=link.b4, **neighbor)]
    routes = [PEER_ROUTE]
    if "ipv6" in families:
        neighbors.append(
            Neighbor(link.a6, FRR_AS, families=("ipv6",), local_address=link.b6, **neighbor)
        )
        routes.append(Route("fd00:202::/64", large_communities=("65002:6:6",), next_hop=link.b6))
    return BgpConfig(asn=PEER_AS, router_id=link.b4, neighbors=neighbors, routes=routes)


def assert_route(paths: list[dict[str, Any]], route: Route, as_path: list[int]) -> None:
    """The (single) path carries `route`'s attributes and the expected AS path."""
    assert len(paths) == 1, paths
    path = paths[0]
    assert path["as_path"] == as_path
    assert path["communities"] == list(route.communities)
    assert path["large_communities"] == list(route.large_communities)
    if route.med is not None:
        assert path["med"] == route.med


def exchange_and_check(frr: Frr, peer: Daemon, link: Link, peer_sees_med: bool = True) -> None:
    """Both sides Established; each reads the other's route with its attributes."""
    frr.wait_established(link.b4, timeout=20)
    peer.wait_established(link.a4, timeout=10)
    assert_route(frr.wait_route(PEER_ROUTE.prefix), PEER_ROUTE, [PEER_AS])
    seen = peer.wait_route(FRR_ROUTE.prefix)
    expected = (
        FRR_ROUTE
        if peer_sees_med
        else Route(FRR_ROUTE.prefix, FRR_ROUTE.communities, FRR_ROUTE.large_communities)
    )
    assert_route(seen, expected, [FRR_AS])
    assert seen[0]["next_hop"] == link.a4


def test_frr_and_bird_exchange_v4_and_v6_routes_and_shutdown_message(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    bird_cls = require_daemon("bird")
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link, ("ipv4", "ipv6"))) as frr,
        bird_cls(link.b, tmp_path / "bird", peer_config(link, ("ipv4", "ipv6"))) as bird,
    ):
        exchange_and_check(frr, bird, link)
        frr.wait_established(link.b6, timeout=15)
        v6 = frr.wait_route("fd00:202::/64")
        assert v6[0]["large_communities"] == ["65002:6:6"]
        assert v6[0]["as_path"] == [PEER_AS]
        v6_at_bird = bird.wait_route("fd00:201::/64")
        assert v6_at_bird[0]["communities"] == ["65001:6"]
        assert v6_at_bird[0]["med"] == 6
        # Runtime announce through a BIRD reconfigure, withdraw again.
        bird.announce("10.202.99.0/24", communities=["65002:99"])
        assert frr.wait_route("10.202.99.0/24")[0]["communities"] == ["65002:99"]
        bird.withdraw("10.202.99.0/24")
        frr.wait_route("10.202.99.0/24", present=False)
        # RFC 9003 shutdown communication reaches FRR's neighbour output.
        bird.shutdown_neighbor(link.a4, "maintenance window 42")
        wait_for(lambda: frr.neighbor_state(link.b4) != "Established", 5, "session down")
        info = frr.neighbor_info(link.b4)
        assert info["lastNotificationReason"] == "Cease/Administrative Shutdown"
        assert info["lastShutdownDescription"] == "maintenance window 42"


def test_frr_and_gobgp_exchange_routes_and_gobgp_restarts(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    gobgp_cls = require_daemon("gobgp")
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link)) as frr,
        gobgp_cls(link.b, tmp_path / "gobgp", peer_config(link)) as gobgp,
    ):
        exchange_and_check(frr, gobgp, link)
        gobgp.announce("10.202.50.0/24", as_path=[65100], large_communities=["65002:50:50"])
        path = frr.wait_route("10.202.50.0/24")[0]
        assert path["as_path"] == [PEER_AS, 65100]
        assert path["large_communities"] == ["65002:50:50"]
        gobgp.restart()
        gobgp.wait_established(link.a4, timeout=20)
        # Routes announced at runtime are re-originated after a restart.
        assert frr.wait_route("10.202.50.0/24")[0]["as_path"] == [PEER_AS, 65100]
        gobgp.withdraw("10.202.50.0/24")
        frr.wait_route("10.202.50.0/24", present=False)


def test_frr_and_openbgpd_with_tcp_md5(link: Link, tmp_path: Path, require_daemon: Require) -> None:
    openbgpd_cls = require_daemon("openbgpd")
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link, password="s3cret")) as frr,
        openbgpd_cls(link.b, tmp_path / "obgpd", peer_config(link, password="s3cret")) as ob,
    ):
        exchange_and_check(frr, ob, link)
        ob.announce("10.202.60.0/24", communities=["65002:60"], med=60)
        path = frr.wait_route("10.202.60.0/24")[0]
        assert (path["communities"], path["med"]) == (["65002:60"], 60)
        ob.withdraw("10.202.60.0/24")
        frr.wait_route("10.202.60.0/24", present=False)


def test_md5_password_mismatch_never_establishes(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    gobgp_cls = require_daemon("gobgp")
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link, password="right")) as frr,
        gobgp_cls(link.b, tmp_path / "gobgp", peer_config(link, password="wrong")) as gobgp,
    ):
        with pytest.raises(TimeoutError):
            frr.wait_established(link.b4, timeout=5)
        assert gobgp.neighbor_state(link.a4) != "Established"


def test_frr_and_exabgp_runtime_announce_withdraw(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    exabgp_cls = require_daemon("exabgp")
    with (
        Frr(link.a, tmp_path / "frr", frr_config(link)) as frr,
        exabgp_cls(link.b, tmp_path / "exabgp", peer_config(link)) as exa,
    ):
        exchange_and_check(frr, exa, link)
        exa.announce("10.202.70.0/24", as_path=[PEER_AS, 64999], communities=["65002:70"])
        path = frr.wait_route("10.202.70.0/24")[0]
        assert path["as_path"] == [PEER_AS, 64999]
        frr.announce("10.201.70.0/24", large_communities=["4200000001:70:70"])
        assert exa.wait_route("10.201.70.0/24")[0]["large_communities"] == ["4200000001:70:70"]
        exa.withdraw("10.202.70.0/24")
        frr.wait_route("10.202.70.0/24", present=False)
        frr.withdraw("10.201.70.0/24")
        exa.wait_route("10.201.70.0/24", present=False)


def test_paused_peer_is_declared_down_after_hold_time(
    link: Link, tmp_path: Path, require_daemon: Require
) -> None:
    gobgp_cls = require_daemon("gobgp")
    fcfg, gcfg = frr_config(link), peer_config(link)
    for cfg in (fcfg, gcfg):
        cfg.hold_time, cfg.keepalive = 3, 1
    with Frr(link.a, tmp_path / "frr", fcfg) as frr, gobgp_cls(link.b, tmp_path / "g", gcfg) as g:
        frr.wait_established(link.b4, timeout=20)
        g.pause()
        try:
            frr.wait_route(PEER_ROUTE.prefix)  # learned before the pause, still there
            wait_for(lambda: frr.neighbor_state(link.b4) != "Established", 8, "hold expiry")
            info = frr.neighbor_info(link.b4)
            assert info["lastNotificationReason"].startswith("Hold Timer Expired"), info
        finally:
            g.resume()
        frr.wait_established(link.b4, timeout=20)


FULL_CONFIG = BgpConfig(
    asn=65000,
    router_id="10.99.0.1",
    cluster_id="10.99.0.1",
    neighbors=[
        Neighbor("10.99.0.2", 65000, rr_client=True, graceful_restart=True, add_path="both"),
        Neighbor("10.99.0.3", 65003, passive=True, password="s3cret", ttl_security=1),
        Neighbor("10.98.0.4", 65004, multihop=4, local_address="10.99.0.1"),
        Neighbor("fd99::2", 65002, families=("ipv6",), next_hop_self=True),
    ],
    listen_ranges=[ListenRange("10.97.0.0/24", asn=65005, password="s3cret")],
    routes=[FRR_ROUTE, Route("fd00:201::/64", communities=("65001:6",), med=6)],
)


def _check_config(name: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Render FULL_CONFIG for `name` and run that daemon's own config checker on it."""
    if name == "frr":
        path = workdir / "bgpd.conf"
        path.write_text(render_frr(FULL_CONFIG))
        path.chmod(0o644)
        make_traversable(workdir)  # bgpd reads it as the frr user
        args = ["/usr/lib/frr/bgpd", "-C", "-f", str(path), "-i", str(workdir / "bgpd.pid")]
    elif name == "bird":
        path = workdir / "bird.conf"
        path.write_text(render_bird(FULL_CONFIG, str(workdir / "bird.log")))
        args = ["/usr/sbin/bird", "-p", "-c", str(path)]
    elif name == "gobgp":
        path = workdir / "gobgpd.toml"
        path.write_text(render_gobgpd(FULL_CONFIG))
        args = ["/usr/bin/gobgpd", "-d", "-t", "toml", "-f", str(path)]
    else:
        path = workdir / "bgpd.conf"
        path.write_text(render_openbgpd(FULL_CONFIG, str(workdir / "bgpd.sock")))
        path.chmod(0o600)
        args = ["/usr/sbin/bgpd", "-n", "-f", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.parametrize("name", ["frr", "bird", "gobgp", "openbgpd"])
def test_every_neutral_option_renders_a_config_the_daemon_accepts(
    name: str, tmp_path: Path, require_daemon: Require
) -> None:
    """Passive, MD5, GTSM, multihop, RR client, GR, ADD-PATH, listen ranges, v6: all parse."""
    require_daemon(name)
    result = _check_config(name, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # FRR's dry run exits 0 even for lines it rejects; it only logs them.
    for marker in ("No such command", "Unknown command", "Config Failed", "% "):
        assert marker not in output, output
