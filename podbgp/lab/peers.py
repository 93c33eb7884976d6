"""Runners for real BGP daemons in network namespaces: FRR, BIRD, GoBGP, OpenBGPD, ExaBGP.

Used by the interop tests, by `podbgp lab` and by the benchmarks.  Describe the peer once with
the neutral `BgpConfig` (see `podbgp.lab.peers_base`), pick a runner, and use it as a context
manager::

    cfg = BgpConfig(asn=65001, router_id="10.99.0.1",
                    neighbors=[Neighbor("10.99.0.2", 65002)],
                    routes=[Route("10.201.0.0/24", communities=("65001:1",), med=10)])
    with Frr(ns, tmp_path / "frr", cfg) as frr:
        frr.wait_established("10.99.0.2", timeout=10)
        frr.routes("ipv4")        # {prefix: [{"as_path": [...], "med": ..., ...}]}

Every runner renders its daemon's own config (with the pitfalls of
`../shared/lab/RECIPES.md` handled), starts it with `Popen` inside the namespace, waits until its
control socket answers, and always stops it (TERM, then KILL).  One module per daemon.
"""

from __future__ import annotations

from podbgp.lab.peers_base import (
    FAMILIES,
    STATES,
    BgpConfig,
    Daemon,
    DaemonError,
    ListenRange,
    Neighbor,
    Route,
    wait_for,
)
from podbgp.lab.peers_bird import Bird
from podbgp.lab.peers_exabgp import Exabgp
from podbgp.lab.peers_frr import Frr
from podbgp.lab.peers_gobgp import Gobgp
from podbgp.lab.peers_openbgpd import Openbgpd

DAEMONS: dict[str, type[Daemon]] = {
    "frr": Frr,
    "bird": Bird,
    "gobgp": Gobgp,
    "openbgpd": Openbgpd,
    "exabgp": Exabgp,
}

__all__ = [
    "DAEMONS",
    "FAMILIES",
    "STATES",
    "BgpConfig",
    "Bird",
    "Daemon",
    "DaemonError",
    "Exabgp",
    "Frr",
    "Gobgp",
    "ListenRange",
    "Neighbor",
    "Openbgpd",
    "Route",
    "wait_for",
]
