"""Cluster resources, live, on running daemons (`podbgp.daemon.Daemon._follow_resources`).

The `peered` lab (each node its own AS, eBGP to an FRR ToR, one SQLite datastore):
`podbgp apply` of three peer resources -- one per node, an in-cluster peer list that
every node takes except the peer at its own address -- brings up n1 ↔ n2 ↔ n3 sessions
on every node with no restart and no SIGHUP. Changing one peer resets only the sessions
to that peer; the others and the ToR sessions keep their uptime. A pool added as a
resource is allocated from (the IPAM CLI reads the node's effective config) and its
block is routed on the other nodes. Deleting the resources takes the sessions away.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_lab import Cluster, peers, routes, sessions, start, stop, wait

from podbgp.cli import main
from podbgp.lab.labplan import tor_address

pytestmark = [pytest.mark.root, pytest.mark.e2e]
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start(Path(tmp_path_factory.mktemp("clusterlive")), "peered", nodes=3, spare=0)
    try:
        yield c
    finally:
        stop(c)


def apply(c: Cluster, tmp: Path, text: str) -> int:
    """`podbgp apply` the text; returns the store revision it left (`apply --json`)."""
    f = tmp / "resources.toml"
    f.write_text(text)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["apply", "-f", str(f), "--datastore", f"sqlite:{c.plan.datastore}", "--json"])
    assert code == 0
    return int(json.loads(out.getvalue())["revision"])


def taken(c: Cluster, revision: int) -> bool:
    """Every node runs with the resources at `revision` or later (show.node "resources")."""
    return all((c.ask(n, "show.node")["resources"] or {}).get("revision", 0) >= revision
               for n in NODES)  # fmt: skip


def peer_resources(c: Cluster, hold: dict[str, int] | None = None) -> str:
    out = []
    for name in NODES:
        n = c.plan.node(name)
        out.append(f'[[peer]]\nname = "{name}"\naddress = "{n.ip}"\nasn = {n.asn}\n'
                   f'families = ["ipv4"]\nhold_time = {(hold or {}).get(name, 90)}\n')  # fmt: skip
    return "\n".join(out)


def all_sessions(c: Cluster) -> dict[tuple[str, str], tuple[float, int]]:
    return {(node, a): s for node in NODES for a, s in sessions(c, node).items()}


def meshed(c: Cluster) -> bool:
    ips = {n: c.plan.node(n).ip for n in NODES}
    return all({ips[o] for o in NODES if o != node} <= set(sessions(c, node)) for node in NODES)


def new_pool_routes(c: Cluster, node: str) -> list[str]:
    extra = ipaddress.ip_network("10.251.0.0/16")
    return [d for d in routes(c.ns(node)) if ipaddress.ip_network(d).subnet_of(extra)]


def test_peers_and_a_pool_applied_live(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    ips = {n: c.plan.node(n).ip for n in NODES}
    tor = tor_address(0)
    before = all_sessions(c)
    assert {(n, tor) for n in NODES} <= set(before)

    revision = apply(c, tmp_path, peer_resources(c))
    wait(lambda: taken(c, revision), 20, "every node took the peer resources")
    wait(lambda: meshed(c), 40, "n1 ↔ n2 ↔ n3 sessions from the peer resources")
    for node in NODES:
        assert ips[node] not in peers(c, node), f"{node} peers with itself"
        assert sessions(c, node)[tor] == before[node, tor], f"{node}'s ToR session was reset"

    # One peer changes: only the sessions to (and so from) n2 reset.
    up = all_sessions(c)
    apply(c, tmp_path, peer_resources(c, hold={"n2": 60}))

    def n2_reset() -> bool:
        now = all_sessions(c)
        keys = [("n1", ips["n2"]), ("n3", ips["n2"])]
        return all(k in now and now[k][0] != up[k][0] for k in keys) and meshed(c)

    wait(n2_reset, 40, "the sessions to n2 reset and came back")
    now = all_sessions(c)
    for key in [("n1", ips["n3"]), ("n3", ips["n1"]), *((n, tor) for n in NODES)]:
        assert now[key] == up[key], f"{key} was reset by a change to another peer"
    assert c.ask("n1", "show.peer", address=ips["n2"])["timers"]["configured"]["hold_time"] == 60

    # A pool added as a resource: a block of it on n1 is routed on n2 and n3.
    apply(c, tmp_path, '[[pool]]\nname = "extra"\ncidr = "10.251.0.0/16"\nblock_size = 26\n')
    config = str(c.plan.config_path("n1"))
    assert main(["ipam", "allocate", "--config", config, "--node", "n1", "--handle", "live-1",
                 "--from-pool", "10.251.0.0/16"]) == 0  # fmt: skip
    for node in ("n2", "n3"):
        wait(lambda node=node: new_pool_routes(c, node), 30,  # type: ignore[misc]
             f"n1's block of the new pool routed on {node}")  # fmt: skip

    # Deleted: the sessions go, the ToR sessions stay.
    for name in NODES:
        assert main(["delete", "peer", name, "--datastore", f"sqlite:{c.plan.datastore}"]) == 0
    wait(lambda: not any(ips[o] in peers(c, n) for n in NODES for o in NODES), 20,
         "the peer resources' sessions removed")  # fmt: skip
    for node in NODES:
        assert sessions(c, node)[tor] == before[node, tor], f"{node}'s ToR session was reset"


def test_a_set_a_node_cannot_use_is_logged_once_and_the_config_kept(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A cluster pool overlapping the pool in the nodes' own files passes `apply` (the set is
    fine) but not the merge on each node: each logs it once, keeps running as it was, and
    takes the next set that works."""
    from podbgp.lab.labplan import POOL

    c = cluster
    before = all_sessions(c)
    half = str(next(ipaddress.ip_network(POOL).subnets(1)))
    apply(c, tmp_path, f'[[pool]]\nname = "clash"\ncidr = "{half}"\n')
    refused = "refused on this node, keeping the running config"
    for node in NODES:
        wait(lambda node=node: refused in c.log(node, 400), 20, f"{node} logged the refusal")  # type: ignore[misc]
        status = c.ask(node, "show.node")["resources"]
        assert status["seen"] > status["revision"] and "overlaps" in status["error"], status
    applied = "applied the cluster resources"
    counts = {node: c.log(node, 100000).count(applied) for node in NODES}
    # Another change while the clash stands: the same refusal, not logged again.
    apply(c, tmp_path, '[[policy]]\nname = "unused"\n[[policy.rule]]\naction = "accept"\n')
    assert main(["delete", "pool", "clash", "--datastore", f"sqlite:{c.plan.datastore}"]) == 0
    for node in NODES:
        wait(lambda node=node: c.log(node, 100000).count(applied) > counts[node], 20,  # type: ignore[misc]
             f"{node} took the next set")  # fmt: skip
        assert c.log(node, 100000).count(refused) == 1, c.log(node, 40)
    assert all_sessions(c) == before  # nothing was reset by any of it
    main(["delete", "policy", "unused", "--datastore", f"sqlite:{c.plan.datastore}"])
