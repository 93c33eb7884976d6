"""A node restarted behind a ToR that sets the N bit (FRR 8.4) and one that does not (BIRD 2).

Option `peered` with each daemon on the ToR. n3's daemon gets SIGTERM, stays down 5 s
and starts again while the pods of n1 and n2, and the ToR itself, ping n3's pods every
200 ms. The restart stop tells FRR a soft Cease (RFC 8538: N exchanged) and closes
BIRD's session without a NOTIFICATION (graceful restart without N, RFC 4724 §4.2): both
keep n3's blocks in their kernel table for the whole downtime, and nothing is lost.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from e2e_lab import LabSpot, lab_up_with_tor, tor_has_route

from podbgp.lab import lab
from podbgp.lab.failover import restart_trial, victim_blocks

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]


@pytest.fixture(params=["frr", "bird"])
def tor_lab(request: pytest.FixtureRequest, lab_spot: LabSpot) -> Iterator[tuple[object, ...]]:
    yield (request.param, *lab_up_with_tor(lab_spot, request.param))


def test_sigterm_restart_behind_the_tor_loses_nothing(tor_lab: tuple[object, ...]) -> None:
    name, plan, state, _daemon = tor_lab
    assert isinstance(state, lab.LabState)
    blocks = victim_blocks(state, "n3")
    assert blocks
    peer = next(p for p in lab.peers_of(state, state.nodes[2]) if p["state"] == "Established")
    assert peer["negotiated"]["graceful_notification"] is (name == "frr"), peer["negotiated"]

    def tor_keeps_blocks() -> dict[str, bool]:
        return {b: tor_has_route(plan, b) for b in blocks}  # type: ignore[arg-type]

    assert all(tor_keeps_blocks().values())
    result = restart_trial(plan, state, "n3", signal.SIGTERM, down=5.0,  # type: ignore[arg-type]
                           while_down=tor_keeps_blocks, from_tor=True)  # fmt: skip
    detail = str(result.as_dict())
    assert all(result.during_down.values()), f"the {name} ToR dropped n3's blocks: {detail}"
    assert result.lost == 0, detail
    back, ready = result.sessions_back_seconds, result.daemon_ready_seconds
    assert back is not None and ready is not None and back - ready <= 2.0, detail
