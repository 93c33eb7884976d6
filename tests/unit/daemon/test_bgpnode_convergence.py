"""After a restart the daemon sweeps its stale kernel routes once the RIB says every
graceful-restart peer's End-of-RIB is in (``Rib.on_all_eor``), not on a poll, and
at the latest after ``bgp.deferral_time`` (RFC 4724 §4.1)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address

from bgp.wire.constants import Family
from podbgp.bgpnode import BgpNode
from podbgp.config import load_config_text
from rib.settings import SessionFacts

V4 = Family.IPV4_UNICAST
PEER = "127.0.0.2"
CONFIG = """
[node]
name = "n1"
asn = 64512
address = "127.0.0.1/8"

[bgp]
mesh = false
listen = ["127.0.0.1"]
graceful_restart = true
deferral_time = {deferral}

[[bgp.peer]]
address = "127.0.0.2"
asn = 64513
families = ["ipv4"]
"""


def _restarting_peer() -> SessionFacts:
    """A graceful-restart peer with Restart State set (FRR sets it): selection
    deferral does not wait for it (§4.1 (a)), the sweep does."""
    return SessionFacts(
        families=(V4,),
        bgp_id=IPv4Address(PEER),
        gr_restart_time=120,
        gr_families={V4: True},
        gr_restarting=True,
        gr_capable=True,
    )


async def _node(deferral: int, converged: list[float]) -> BgpNode:
    loop = asyncio.get_running_loop()
    cfg = load_config_text(CONFIG.format(deferral=deferral))
    node = BgpNode(cfg, converged=lambda: converged.append(loop.time()), restarting=True)
    node._add(PEER, cfg.bgp.peers[0])  # configured; the speaker is not started
    node._tasks.append(asyncio.ensure_future(node._watch_convergence()))
    return node


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_converged_as_soon_as_the_last_end_of_rib_is_in() -> None:
    converged: list[float] = []
    node = await _node(300, converged)
    try:
        node.rib.peer_up(PEER, _restarting_peer(), asyncio.get_running_loop().time())
        await _turns(5)
        assert node.rib.converged and converged == []  # selected, but its EoR is due
        node.rib.end_of_rib(PEER, V4)
        await _turns(5)  # a few loop turns, no sleep: an event, not a poll
        assert len(converged) == 1 and not node.restarting
        peer = node.speaker.peer(PEER)
        assert peer is not None and not peer.settings.restarting  # RFC 4724 §3
    finally:
        for t in node._tasks:
            t.cancel()


async def test_without_the_end_of_rib_the_deferral_time_bounds_the_wait() -> None:
    converged: list[float] = []
    node = await _node(1, converged)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        node.rib.peer_up(PEER, _restarting_peer(), started)
        for _ in range(100):
            if converged:
                break
            await asyncio.sleep(0.05)
        assert len(converged) == 1 and converged[0] - started >= 0.9
    finally:
        for t in node._tasks:
            t.cancel()
