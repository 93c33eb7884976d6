"""Long-lived graceful restart (RFC 9494) against FRR 8.4, in both roles.

FRR (namespace ``a``, AS 65001) and podbgp (``rib_node.RibNode`` in ``b``, AS 65002)
both run graceful restart with a short restart time and long-lived graceful
restart (FRR: ``bgp long-lived-graceful-restart stale-time``).

- podbgp as the helper: FRR's bgpd is killed and stays down. podbgp keeps FRR's
  route as stale for FRR's restart time, then as long-lived stale — with the
  LLGR_STALE community, ranked below a local path it beat before (even with the
  higher LOCAL_PREF an import policy gave it) — and removes it once the long-lived
  stale time is over.
- FRR as the helper: podbgp's speaker stops the way a restart does and stays
  away. FRR keeps podbgp's route through podbgp's restart time and then marks it
  LLGR_STALE itself, then drops it after the long-lived time.
"""

from __future__ import annotations

import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from rib_node import RibNode
from sessions_harness import V4

from bgp.restart import StopKind
from bgp.settings import PeerSettings
from podbgp.lab.peer_link import Link
from podbgp.lab.peers import BgpConfig, DaemonError, Frr, Neighbor, Route, wait_for
from rib import PeerPolicy, Policy, RibSettings

pytestmark = [pytest.mark.interop, pytest.mark.root]

FRR_AS, POD_AS = 65001, 65002
FRR_PREFIX, POD_PREFIX = "10.201.0.0/24", "10.202.0.0/24"
RESTART = 3  # both sides' graceful restart time, seconds
LONG_LIVED = 8  # long-lived stale time, seconds (the smaller of both sides' counts)
LLGR_STALE = "65535:6"


def frr_config(link: Link) -> BgpConfig:
    nb = Neighbor(link.b4, POD_AS, graceful_restart=True, restart_time=RESTART)
    return BgpConfig(asn=FRR_AS, router_id=link.a4, neighbors=[nb], routes=[Route(FRR_PREFIX)])


def start_frr(link: Link, tmp_path: Path) -> Frr:
    why = Frr.missing()
    if why:
        pytest.skip(f"{why} (install with `make deps`)")
    frr = Frr(link.a, tmp_path / "frr", frr_config(link))
    frr.start()
    # Before podbgp connects, so FRR's first OPEN carries the capability.
    frr.configure(f"bgp long-lived-graceful-restart stale-time {LONG_LIVED}")
    return frr


def pod(link: Link, import_policy: Policy | None = None) -> RibNode:
    ps = PeerSettings(link.a4, FRR_AS, local_address=link.b4, families=(V4,), hold_time=9,
                      connect_retry=1.0, graceful_restart=True, restart_time=RESTART,
                      long_lived_stale_time=3600)  # fmt: skip
    kw: dict[str, Any] = {"import_policy": import_policy} if import_policy else {}
    pp = PeerPolicy(IPv4Address(link.a4), FRR_AS, families=(V4,), **kw)
    settings = RibSettings(local_as=POD_AS, router_id=IPv4Address(link.b4))
    return RibNode(link.b, settings, [(ps, pp)])


def frr_paths(frr: Frr, prefix: str) -> list[dict[str, Any]]:
    try:
        return frr.routes().get(prefix, [])
    except (DaemonError, ValueError, OSError):  # busy with the session change: ask again
        return []


def test_podbgp_keeps_frr_routes_long_lived_stale_then_removes_them(
    link: Link, tmp_path: Path
) -> None:
    lp200 = Policy.from_data(
        {"name": "lp200", "rule": [{"action": "accept", "set": {"local_pref": 200}}]}
    )
    frr = start_frr(link, tmp_path)
    try:
        with pod(link, lp200) as node:
            node.wait_established(link.a4)
            node.call(lambda: node.rib.originate(FRR_PREFIX))  # type: ignore[union-attr]
            node.wait(lambda: len(node.routes().get(FRR_PREFIX, {}).get("paths", [])) == 2,
                      15, "FRR's path and the local one")  # fmt: skip
            neg = node.call(lambda: node.speaker.peer(link.a4).stats()["negotiated"])
            assert neg["long_lived_graceful_restart"] == {"ipv4_unicast": LONG_LIVED}, neg
            row = node.routes()[FRR_PREFIX]
            assert row["paths"][0]["peer"] == link.a4  # LOCAL_PREF 200 beats the local path

            frr.procs[-1].kill()  # bgpd, without a NOTIFICATION; zebra stays
            down = time.monotonic()
            node.wait(lambda: node.state(link.a4) != "established", 15, "the session drop")
            rows: list[tuple[float, dict[str, Any], str]] = []  # (t, FRR's path, winner)
            while time.monotonic() - down < RESTART + LONG_LIVED + 4:
                row = node.routes().get(FRR_PREFIX, {})
                theirs = [p for p in row.get("paths", []) if p["peer"] == link.a4]
                best = f"{row['paths'][0]['peer']} {row['reason']}" if row else ""
                rows.append((time.monotonic() - down, theirs[0] if theirs else {}, best))
                time.sleep(0.25)
            during_gr = [(p, b) for t, p, b in rows if t < RESTART - 0.5]
            long_lived = [(p, b) for t, p, b in rows if RESTART + 1 < t < RESTART + LONG_LIVED - 1]
            after = [p for t, p, _ in rows if t > RESTART + LONG_LIVED + 1.5]
            # Restart time: stale, still the best path (LOCAL_PREF 200).
            assert during_gr and all(
                p.get("stale") and not p["llgr_stale"] and b.startswith(link.a4)
                for p, b in during_gr
            ), during_gr
            # Long-lived: LLGR_STALE attached, and the local path wins at the first step.
            assert long_lived and all(
                p.get("llgr_stale")
                and LLGR_STALE in p["communities"]
                and p["local_pref"] == 200
                and b == "local not-llgr-stale"
                for p, b in long_lived
            ), long_lived
            assert after and all(p == {} for p in after), after[:1]
    finally:
        frr.stop()


def test_frr_keeps_podbgp_routes_long_lived_stale_then_removes_them(
    link: Link, tmp_path: Path
) -> None:
    frr = start_frr(link, tmp_path)
    try:
        node = pod(link).__enter__()
        try:
            node.wait_established(link.a4)
            node.call(lambda: node.rib.originate(POD_PREFIX))  # type: ignore[union-attr]
            wait_for(lambda: frr_paths(frr, POD_PREFIX), 15, f"FRR learned {POD_PREFIX}")
            # podbgp goes away the way a restart does and does not come back.
            node.call_async(node.speaker.stop("podbgp restarting", StopKind.RESTART))  # type: ignore[union-attr]
            down = time.monotonic()
            seen: list[tuple[float, list[str] | None]] = []  # None: FRR has no path
            while time.monotonic() - down < RESTART + LONG_LIVED + 5:
                paths = frr_paths(frr, POD_PREFIX)
                seen.append((time.monotonic() - down, paths[0]["communities"] if paths else None))
                time.sleep(0.25)
        finally:
            node.__exit__(None, None, None)
    finally:
        frr.stop()
    early = [c for t, c in seen if t < RESTART - 0.5]
    marked = [c for t, c in seen if RESTART + 1.5 < t < RESTART + LONG_LIVED - 1]
    late = [c for t, c in seen if t > RESTART + LONG_LIVED + 2]
    # FRR names the community "llgr-stale" (65535:6).
    assert early and all(c is not None and "llgr-stale" not in c for c in early), seen
    assert marked and all(c is not None and "llgr-stale" in c for c in marked), seen
    assert late and all(c is None for c in late), seen
