"""The metrics endpoint is scraped over HTTP and parsed with the Prometheus parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from podbgp.metrics import MetricsServer, MetricsSnapshot, PeerMetrics, PoolMetrics


def test_scrape_and_parse() -> None:
    snap = MetricsSnapshot(
        peers=[
            PeerMetrics(
                "10.0.0.2",
                "Established",
                12.5,
                7,
                3,
                {"ipv4": (10, 9, 4)},
                bfd={"state": "up", "flaps": 2},
            ),
            PeerMetrics("10.0.0.3", "Idle"),  # no BFD: no BFD samples
        ],
        fib_desired=5,
        fib_installed=4,
        fib_drift_repairs=1,
        fib_backlog=70000,
        fib_input_holds=2,
        fib_input_held_seconds=0.75,
        pools=[PoolMetrics("10.244.0.0/16", 2, 3, 125)],
        decision_runs=6,
        decision_seconds=0.25,
    )
    server = MetricsServer("127.0.0.1:0", lambda: snap)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    peer = ("peer", "10.0.0.2")
    assert samples[("podbgp_bgp_session_state", (peer, ("state", "Established")))] == 1.0
    assert samples[("podbgp_bgp_session_state", (peer, ("state", "Idle")))] == 0.0
    assert samples[("podbgp_bgp_session_uptime_seconds", (peer,))] == 12.5
    assert samples[("podbgp_bgp_updates_total", (("direction", "in"), peer))] == 7
    key = ("podbgp_bgp_prefixes", (("family", "ipv4"), ("kind", "accepted"), peer))
    assert samples[key] == 9
    assert samples[("podbgp_fib_routes", (("kind", "installed"),))] == 4
    assert samples[("podbgp_fib_drift_repairs_total", ())] == 1
    assert samples[("podbgp_fib_backlog", ())] == 70000
    assert samples[("podbgp_fib_input_holds_total", ())] == 2
    assert samples[("podbgp_fib_input_held_seconds_total", ())] == 0.75
    used = ("podbgp_ipam_addresses", (("kind", "used"), ("pool", "10.244.0.0/16")))
    assert samples[used] == 3
    assert samples[("podbgp_decision_runs_total", ())] == 6
    assert samples[("podbgp_bfd_session_state", (peer, ("state", "up")))] == 1.0
    assert samples[("podbgp_bfd_session_state", (peer, ("state", "down")))] == 0.0
    assert samples[("podbgp_bfd_session_flaps_total", (peer,))] == 2
    assert not [
        k for k in samples if k[0].startswith("podbgp_bfd") and ("peer", "10.0.0.3") in k[1]
    ]
