"""SIGHUP reload on a running node: only the difference is applied, unchanged sessions stay.

The lab is the `peered` option (each node its own AS, eBGP to an FRR ToR), so every
change has a real neighbour on the other side: a policy change on n1's ToR session
filters routes with no reset (export: the ToR withdraws; import: a ROUTE-REFRESH, RFC
2918, re-judges the ToR's routes), and a static peer added between n1 and n2 comes up
and goes away again while the ToR sessions keep their uptime.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import Cluster, blocks, peers, routes, sessions, start, stop, wait

from podbgp.lab.labplan import render_node_config, tor_address

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("reload")), "peered", nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


def reload(c: Cluster, node: str, *, tor_peer: str = "", extra: str = "") -> None:
    """Rewrite `node`'s config (the lab's, with `tor_peer` replacing the ToR peer's
    `export = "local"` line and `extra` tables at the end) and send SIGHUP."""
    text = render_node_config(c.plan, c.plan.node(node))
    if tor_peer:
        text = text.replace('export = "local"\n', tor_peer)
    c.plan.config_path(node).write_text(text + extra)
    os.kill(c.pid(node), signal.SIGHUP)


def reject_one(name: str, prefix: str) -> str:
    return f"""
[[policy]]
name = "{name}"
default_action = "accept"
[[policy.rule]]
match = {{ prefix = "{prefix}" }}
action = "reject"
"""


def tor_session(c: Cluster, node: str) -> tuple[float, int]:
    return sessions(c, node)[tor_address(0)]


def test_policy_change_filters_without_reset(cluster: Cluster) -> None:
    c = cluster
    n1, n2, n3 = (blocks(c, n)[0] for n in ("n1", "n2", "n3"))
    before = {n: tor_session(c, n) for n in ("n1", "n2", "n3")}
    tor = c.plan.ns("tor")
    assert {n1, n2, n3} <= set(routes(tor, "bgp"))
    assert n1 in routes(c.ns("n2")) and n2 in routes(c.ns("n1"))

    # Export: n1 stops announcing its block to the ToR; everyone else loses it.
    reload(c, "n1", tor_peer='export = "hide-n1"\n', extra=reject_one("hide-n1", n1))
    wait(lambda: n1 not in routes(tor, "bgp"), 15, "the ToR withdrew n1's block")
    wait(lambda: n1 not in routes(c.ns("n2")), 15, "n2 lost the route to n1's block")
    assert n2 in routes(tor, "bgp") and n3 in routes(tor, "bgp")

    # Import: n1 rejects n2's block from the ToR (ROUTE-REFRESH), keeps n3's.
    reload(c, "n1", tor_peer='export = "local"\nimport = "drop-n2"\n',
           extra=reject_one("drop-n2", n2))  # fmt: skip
    wait(lambda: n2 not in routes(c.ns("n1")), 15, "n1 dropped the route to n2's block")
    wait(lambda: n1 in routes(c.ns("n2")), 15, "n1's block back at n2 (export is local again)")
    assert n3 in routes(c.ns("n1"))

    # Back to the lab's config: everything returns.
    reload(c, "n1")
    wait(lambda: n2 in routes(c.ns("n1")), 15, "n1 has n2's block again")
    assert {n1, n2, n3} <= set(routes(tor, "bgp"))
    for node, session in before.items():
        assert tor_session(c, node) == session, f"{node}'s ToR session was reset"


def test_static_peer_added_and_removed(cluster: Cluster) -> None:
    c = cluster
    before = {n: tor_session(c, n) for n in ("n1", "n2", "n3")}
    a1, a2 = c.plan.node("n1"), c.plan.node("n2")
    peer_of = {
        "n1": f'\n[[bgp.peer]]\naddress = "{a2.ip}"\nasn = {a2.asn}\nfamilies = ["ipv4"]\n',
        "n2": f'\n[[bgp.peer]]\naddress = "{a1.ip}"\nasn = {a1.asn}\nfamilies = ["ipv4"]\n',
    }
    for node, extra in peer_of.items():
        reload(c, node, extra=extra)
    wait(lambda: a2.ip in sessions(c, "n1") and a1.ip in sessions(c, "n2"), 20,
         "n1 ↔ n2 static session Established")  # fmt: skip
    for node in ("n1", "n2"):
        reload(c, node)
    wait(lambda: a2.ip not in peers(c, "n1") and a1.ip not in peers(c, "n2"), 15,
         "n1 ↔ n2 static peer removed")  # fmt: skip
    for node, session in before.items():
        assert tor_session(c, node) == session, f"{node}'s ToR session was reset"


def test_listen_range_added_and_removed(cluster: Cluster) -> None:
    """n1 accepts n2 as a dynamic neighbour once a listen range says so, and drops it
    when the range goes; the ToR sessions (a static peer inside the range) stay."""
    c = cluster
    before = {n: tor_session(c, n) for n in ("n1", "n2", "n3")}
    a1, a2 = c.plan.node("n1"), c.plan.node("n2")
    listen = (
        f'\n[[bgp.listen_range]]\nprefix = "10.99.1.0/24"\nasn = {a2.asn}\nfamilies = ["ipv4"]\n'
    )
    to_n1 = f'\n[[bgp.peer]]\naddress = "{a1.ip}"\nasn = {a1.asn}\nfamilies = ["ipv4"]\n'
    reload(c, "n2", extra=to_n1)
    wait(lambda: a1.ip in peers(c, "n2"), 10, "n2 configured with n1")
    assert a1.ip not in sessions(c, "n2")  # n1 refuses it: no range yet
    reload(c, "n1", extra=listen)
    wait(lambda: a2.ip in sessions(c, "n1") and a1.ip in sessions(c, "n2"), 20,
         "n2 accepted by n1's new listen range")  # fmt: skip
    assert peers(c, "n1")[a2.ip]["dynamic"] is True
    reload(c, "n1")
    wait(lambda: a1.ip not in sessions(c, "n2"), 15, "n1 dropped n2 with its listen range")
    error = peers(c, "n2")[a1.ip]["last_error"]
    # Cease / Peer De-configured, sent as a Hard Reset between N-bit speakers (RFC 8538).
    assert (error["code"], error["subcode"], error["inner_code"], error["inner_subcode"]) == (
        6, 9, 6, 3), error  # fmt: skip
    reload(c, "n2")
    wait(lambda: a1.ip not in peers(c, "n2") and a2.ip not in peers(c, "n1"), 15, "cleaned up")
    for node, session in before.items():
        assert tor_session(c, node) == session, f"{node}'s ToR session was reset"
