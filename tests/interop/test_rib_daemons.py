"""The RIB against real daemons in namespaces: route reflection (RFC 4456) both roles,
graceful-restart helper (RFC 4724), ADD-PATH (RFC 7911) and max-prefix (RFC 4486).

podbgp (``rib_node.RibNode``: speaker + RIB on a loop in a thread that joined
the hub namespace) sits at 10.70.0.1 on a bridge; the daemons sit at
10.70.0.2, .3, ... on the same segment (``rib_node.lan``). Timers 3/9 and
restart times of a few seconds keep the module around a minute.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from rib_node import HUB, RibNode, lan, spoke_address

from bgp.settings import AddPathMode, PeerSettings
from bgp.wire.constants import Family
from podbgp.lab.netns import NetnsGroup
from podbgp.lab.peers import BgpConfig, Daemon, Frr, Gobgp, Neighbor, Route, wait_for
from rib import PeerPolicy, RibSettings, builtin

pytestmark = [pytest.mark.interop, pytest.mark.root]

V4 = Family.IPV4_UNICAST
AS = 65000  # iBGP tests
CLUSTER = "10.70.9.9"
Require = Callable[[str], type[Daemon]]


def session(i: int, asn: int = AS, **kw: Any) -> PeerSettings:
    kw.setdefault("hold_time", 9)
    kw.setdefault("connect_retry", 1.0)
    return PeerSettings(spoke_address(i), asn, local_address=HUB, families=(V4,), **kw)


def rib_peer(i: int, asn: int = AS, **kw: Any) -> PeerPolicy:
    kw.setdefault("import_policy", builtin("all"))
    kw.setdefault("export_policy", builtin("all"))
    return PeerPolicy.make(spoke_address(i), asn, families=(V4,), **kw)


def settings(**kw: Any) -> RibSettings:
    return RibSettings(local_as=AS, router_id=IPv4Address(HUB), **kw)


def client_config(i: int, asn: int = AS, *, routes: list[Route], **nb: Any) -> BgpConfig:
    nb.setdefault("passive", True)
    return BgpConfig(
        asn=asn,
        router_id=spoke_address(i),
        neighbors=[Neighbor(HUB, AS, **nb)],
        routes=routes,
    )


# ---------------------------------------------------------------- podbgp as route reflector


@pytest.mark.parametrize("daemon", ["frr", "bird"])
def test_reflector_for_two_clients(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Require, daemon: str
) -> None:
    cls = require_daemon(daemon)
    hub, (s1, s2) = lan(netns, 2)
    r1, r2 = Route("10.201.1.0/24"), Route("10.201.2.0/24")
    peers = [(session(i), rib_peer(i, route_reflector_client=True)) for i in (1, 2)]
    with (
        cls(s1, tmp_path / "c1", client_config(1, routes=[r1])) as c1,
        cls(s2, tmp_path / "c2", client_config(2, routes=[r2])) as c2,
        RibNode(hub, settings(cluster_id=IPv4Address(CLUSTER)), peers) as pod,
    ):
        for i in (1, 2):
            pod.wait_established(spoke_address(i))
        # RFC 4456 §8: the reflected route carries the client's router id as
        # ORIGINATOR_ID and our cluster id in CLUSTER_LIST; the next hop is unchanged.
        for client, prefix, origin in ((c2, r1.prefix, 1), (c1, r2.prefix, 2)):
            path = client.wait_route(prefix)[0]
            assert path["originator_id"] == spoke_address(origin)
            assert path["cluster_list"] == [CLUSTER]
            assert path["next_hop"] == spoke_address(origin)
            assert path["as_path"] == []
            assert path["local_pref"] == 100
        # Both clients' routes are in podbgp's table, each from its client.
        rows = pod.routes()
        assert rows[r1.prefix]["best"]["peer"] == spoke_address(1)
        assert rows[r2.prefix]["best"]["peer"] == spoke_address(2)
        # A client withdrawing reaches the other client through the reflector.
        c1.withdraw(r1.prefix)
        c2.wait_route(r1.prefix, present=False)


# ---------------------------------------------------------------- podbgp as client of FRR


def test_client_of_frr_reflector(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Require
) -> None:
    require_daemon("frr")
    hub, (s1, s2) = lan(netns, 2)
    rr = BgpConfig(
        asn=AS,
        router_id=spoke_address(1),
        cluster_id=CLUSTER,
        neighbors=[
            Neighbor(HUB, AS, passive=True, rr_client=True),
            Neighbor(spoke_address(2), AS, rr_client=True),
        ],
    )
    other = BgpConfig(
        asn=AS,
        router_id=spoke_address(2),
        neighbors=[Neighbor(spoke_address(1), AS, passive=True)],
        routes=[Route("10.202.2.0/24")],
    )
    # podbgp peers only with the reflector: an iBGP non-client of nobody.
    peers = [(session(1), rib_peer(1))]
    with (
        Frr(s1, tmp_path / "rr", rr),
        Frr(s2, tmp_path / "c2", other) as c2,
        RibNode(hub, settings(), peers) as pod,
    ):
        pod.wait_established(spoke_address(1))
        pod.call(lambda: pod.rib.originate("10.202.0.0/24"))  # type: ignore[union-attr]
        # Our route reaches the other client reflected: ORIGINATOR_ID is our router id.
        path = c2.wait_route("10.202.0.0/24")[0]
        assert path["originator_id"] == HUB and path["cluster_list"] == [CLUSTER]
        assert path["next_hop"] == HUB
        # The other client's route reaches us the same way, and is used.
        row = pod.wait(lambda: pod.routes().get("10.202.2.0/24"), 15, "reflected route")
        best = row["best"]
        assert best["originator_id"] == spoke_address(2)
        assert best["cluster_list"] == [CLUSTER]
        assert best["next_hop"] == spoke_address(2) and best["eligible"]
        # RFC 4456 §8: our own route reflected back (ORIGINATOR_ID = us) is never accepted.
        assert [p["peer"] for p in pod.routes()["10.202.0.0/24"]["paths"]] == ["local"]


# ---------------------------------------------------------------- graceful-restart helper


class FrrPreservingForwarding(Frr):
    """FRR that keeps its forwarding state across a restart (F bit set, RFC 4724 §3)."""

    def _write_config(self) -> None:
        super()._write_config()
        conf = self.dir / "bgpd.conf"
        text = conf.read_text().replace(
            " bgp graceful-restart\n",
            " bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n",
        )
        conf.write_text(text)


def test_gr_helper_keeps_routes_of_restarting_frr(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Require
) -> None:
    require_daemon("frr")
    hub, (s1, s2) = lan(netns, 2)
    prefix = "10.203.1.0/24"
    restarter = client_config(
        1, 65001, routes=[Route(prefix)], graceful_restart=True, restart_time=30
    )
    third = client_config(2, 65002, routes=[])
    peers = [
        (session(1, 65001, graceful_restart=True, restart_time=30), rib_peer(1, 65001)),
        (session(2, 65002), rib_peer(2, 65002)),
    ]
    with (
        FrrPreservingForwarding(s1, tmp_path / "r", restarter) as frr,
        Frr(s2, tmp_path / "t", third) as watcher,
        RibNode(hub, settings(), peers) as pod,
    ):
        watcher.wait_route(prefix)
        gr = pod.call(lambda: pod.rib.peers[spoke_address(1)].facts)  # type: ignore[union-attr]
        assert gr is not None and gr.does_gr and gr.gr_families.get(V4)
        # bgpd and zebra die without a NOTIFICATION (TCP closes): a graceful end.
        for p in frr.procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)

        def stale() -> bool:
            row = pod.routes().get(prefix)
            return row is not None and row["best"]["stale"]

        pod.wait(stale, 15, "the route kept as stale")  # RFC 4724 §4.2
        frr.start()
        pod.wait_established(spoke_address(1), timeout=30)
        pod.wait(lambda: not stale(), 20, "the route refreshed")
        pod.wait(
            lambda: not pod.call(lambda: pod.rib.peers[spoke_address(1)].stale),  # type: ignore[union-attr]
            20,
            "End-of-RIB from the restarted FRR",
        )
        # Nothing about the prefix was withdrawn towards the third peer at any time.
        for u in pod.sent_updates(spoke_address(2)):
            assert prefix not in {str(p) for p in u.withdrawn}
        assert watcher.routes().get(prefix)


# ---------------------------------------------------------------- ADD-PATH


def test_add_path_both_ways_with_frr(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Require
) -> None:
    require_daemon("frr")
    hub, (s1, s2, s3) = lan(netns, 3)
    prefix = "10.204.0.0/24"
    ap = client_config(1, 65001, routes=[], add_path="both")
    ap.neighbors += [Neighbor(spoke_address(2), 64992), Neighbor(spoke_address(3), 64993)]
    feeders = []
    for i in (2, 3):
        cfg = client_config(i, 64990 + i, routes=[Route(prefix)])
        cfg.neighbors.append(Neighbor(spoke_address(1), 65001, passive=True))
        feeders.append(cfg)
    peers = [
        (
            session(1, 65001, add_path=AddPathMode.BOTH),
            rib_peer(1, 65001, add_path_receive=True, add_path_send=-1),
        ),
        (session(2, 64992), rib_peer(2, 64992)),
        (session(3, 64993), rib_peer(3, 64993)),
    ]
    with (
        Frr(s1, tmp_path / "ap", ap) as frr,
        Frr(s2, tmp_path / "f2", feeders[0]),
        Frr(s3, tmp_path / "f3", feeders[1]),
        RibNode(hub, settings(), peers) as pod,
    ):
        # podbgp -> FRR: both of podbgp's paths (via 64992 and via 64993), not just the best.
        def from_pod() -> list[list[int]] | None:
            paths = frr.routes().get(prefix, [])
            got = sorted(p["as_path"] for p in paths if p["as_path"][:1] == [AS])
            return got if len(got) == 2 else None

        assert wait_for(from_pod, 20, "two paths from podbgp") == [[AS, 64992], [AS, 64993]]

        # FRR -> podbgp: FRR's two paths arrive with distinct path identifiers.
        def from_frr() -> list[dict[str, Any]] | None:
            row = pod.routes().get(prefix)
            paths = [p for p in row["paths"] if p["peer"] == spoke_address(1)] if row else []
            return paths if len(paths) == 2 else None

        paths = pod.wait(from_frr, 20, "two paths from FRR")
        assert sorted(p["as_path"] for p in paths) == ["65001 64992", "65001 64993"]
        assert len({p["path_id"] for p in paths}) == 2


# ---------------------------------------------------------------- max-prefix


def test_max_prefix_closes_gobgp_session_with_cease_1(
    netns: NetnsGroup, tmp_path: Path, require_daemon: Require
) -> None:
    require_daemon("gobgp")
    hub, (s1,) = lan(netns, 1)
    routes = [Route(f"10.205.{i}.0/24") for i in range(5)]
    cfg = client_config(1, 65001, routes=routes, local_address=spoke_address(1))
    peers = [(session(1, 65001), rib_peer(1, 65001, max_prefixes=3))]
    with Gobgp(s1, tmp_path / "gobgp", cfg) as gobgp, RibNode(hub, settings(), peers) as pod:
        pod.wait(lambda: pod.max_prefix_hits, 20, "the prefix limit")
        assert pod.max_prefix_hits[0] == (spoke_address(1), 3)
        # The over-limit peer's routes are gone from the table.
        pod.wait(lambda: not pod.routes(), 10, "the peer's routes flushed")

        def notified() -> str | None:
            log = (tmp_path / "gobgp" / "gobgpd.log").read_text(errors="replace")
            lines = [ln for ln in log.splitlines() if "Peer Down" in ln and HUB in ln]
            return "\n".join(lines) or None

        # RFC 4486 §4: Cease, subcode 1, as GoBGP decoded it.
        text = wait_for(notified, 10, "GoBGP to log the NOTIFICATION")
        assert "notification-received code 6(cease) subcode 1" in text
        assert gobgp.neighbor_state(HUB) != "Established"
