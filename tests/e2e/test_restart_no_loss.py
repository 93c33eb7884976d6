"""A node's daemon restarted in every lab option: not one ping lost, sessions back in 2 s.

Each option's lab is built once (three nodes, two pods each); in it, n3's daemon gets
SIGTERM (the restart stop, ``bgp.restart``), stays down 5 s and is started again, then
the same with SIGKILL, while every pod of n1 and n2 pings every pod of n3 and back
every 200 ms (``podbgp.lab.failover``). n3 has the highest address: in the mesh it is
the passive side of each pair, so its sessions come back only because it dials once
at start. Meanwhile ``ip monitor route`` on n1 should see nothing happen to n3's blocks
(RFC 4724 §4.2: a peer's stale routes stay untouched, and the same routes announced
again after its restart are not rewritten).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_lab import LabSpot, lab_up

from podbgp.lab import lab
from podbgp.lab.failover import TrialResult, restart_trial
from podbgp.lab.labplan import OPTIONS, LabPlan
from podbgp.lab.netns import cleanup_prefix, have_netns, list_namespaces

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

SESSIONS_BACK = 2.0  # seconds from the daemon's start to every session Established
_counter = itertools.count()


# Every option of this kernel in IPv4; the mesh and the ToR-peered option dual stack (IPv4
# and IPv6 probes between the same pods, the IPv6 routes riding on the IPv4 sessions, kept
# by FRR's graceful restart too); VXLAN IPv6-only (no BGP: routes from the datastore, the
# tunnel over the IPv6 underlay).
LABS = [(o, "ipv4") for o in OPTIONS if not o.startswith("ipip")] + [
    ("mesh", "dual"),
    ("peered", "dual"),
    ("vxlan", "ipv6"),
]


@pytest.fixture(
    scope="module", params=LABS, ids=[o if f == "ipv4" else f"{o}-{f}" for o, f in LABS]
)
def running_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LabPlan, lab.LabState]]:
    why = have_netns()
    if why:
        pytest.skip(why)
    prefix = f"r{os.getpid() % 100000}x{next(_counter)}-"
    spot = LabSpot(prefix, Path(tmp_path_factory.mktemp("restart")) / "lab")
    cleanup_prefix(prefix)
    try:
        option, family = request.param
        yield lab_up(spot, option, family=family)
    finally:
        lab.down(spot.prefix, spot.state_dir)
        cleanup_prefix(spot.prefix)
        assert not list_namespaces(spot.prefix)


def check(result: TrialResult, plan: LabPlan, state: lab.LabState) -> None:
    detail = f"{result.as_dict()}"
    assert result.sent >= result.probes * 30, detail  # ~8 s of probes each
    assert result.lost == 0, f"{result.lost} probes lost: {detail}"
    if plan.option.bgp != "none":
        back, ready = result.sessions_back_seconds, result.daemon_ready_seconds
        assert back is not None and ready is not None, detail
        # From the process start (interpreter, imports, datastore, FIB resync, then BGP)
        # to every session Established: 0.37-0.53 s on a quiet machine
        # (docs/benchmarks.md); BGP's own part, from the daemon's first answer, is
        # milliseconds.
        assert back <= SESSIONS_BACK, detail
        assert back - ready <= SESSIONS_BACK, detail
    if result.kernel_changes:
        # RFC 4724 §4.2: n3's stale routes stay untouched and its same routes announced
        # again are not rewritten. This failed in about 1 of 10 trials while n3's End-of-RIB
        # went out ahead of its routes (rib.core `_end_deferral`): n1 swept the route and
        # got it back a moment later, with a new nexthop object when a FIB pass fell between.
        logs = "\n".join(f"--- {n['name']}\n{_tail(n['log'])}" for n in state.nodes)
        raise AssertionError(f"n1's kernel rewrote n3's routes: {result.kernel_changes}\n{logs}")


def _tail(path: str, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_restart_loses_no_probe(
    sig: signal.Signals, running_lab: tuple[LabPlan, lab.LabState]
) -> None:
    plan, state = running_lab
    result = restart_trial(plan, state, "n3", sig, down=5.0, monitor_on="n1")
    check(result, plan, state)


def test_operator_resets_of_a_young_session_are_back_at_once(
    running_lab: tuple[LabPlan, lab.LabState],
) -> None:
    """Issue 12 item 5: `podbgp peer reset` is no flap: each of three resets in a row (the
    session never 30 s old) is back within 2 s, and the command says when to expect it."""
    plan, state = running_lab
    if plan.option.bgp == "none":
        pytest.skip("no BGP in this option")
    n1 = state.nodes[0]
    peers = [p for p in lab.peers_of(state, n1) if p["state"] == "Established"]
    assert peers
    target = peers[-1]["address"]
    flaps = peers[-1]["flaps"]  # the restarts above counted; the resets must not
    # podbgp's peers take it back at once. FRR on the ToR closes the first new connection
    # of a neighbour whose previous session ended only milliseconds before (a reset right
    # after a reset), and podbgp's next attempt follows the connect_retry back-off.
    bound = SESSIONS_BACK if plan.option.bgp != "tor" else SESSIONS_BACK + 3.0
    for _ in range(3):
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "podbgp", "peer", "reset", target, "--socket", n1["socket"]],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert out.startswith(f"{target}: ") and ("dialling now" in out or "waits for" in out)
        while time.monotonic() - t0 < bound:
            row = next(p for p in lab.peers_of(state, n1) if p["address"] == target)
            if row["state"] == "Established" and (row["uptime_seconds"] or 0) < bound:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{target} not back within {bound} s: {row}")
        assert row["last_error"]["notification"] == "Cease/Administrative Reset", row
    assert row["flaps"] == flaps, row
