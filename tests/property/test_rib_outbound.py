"""Property: whatever the interleaving of announcements, withdrawals, export-policy
changes (``Rib.set_policy``) and partial pulls, every peer ends up told exactly the
best path of each prefix that its current export policy allows, never its own
routes (split horizon, for groups whose export policy does not look at prefixes),
with the policy's attributes (RFC 4271 §9.1.3, §9.2); ``Rib.advertised`` counts
exactly those routes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from ribkit import LOCAL_AS, V4, attrs, decode_out, key, make_rib, peer

from rib import Policy, builtin

PREFIXES = [f"203.0.{i}.0/24" for i in range(5)]
PEERS = [("192.0.2.1", 65001), ("192.0.2.2", 65002), ("192.0.2.3", 65003)]
POLICIES = [
    builtin("all"),
    Policy.from_data(
        {
            "name": "no0",
            "rule": [{"match": {"prefix": PREFIXES[0]}, "action": "reject"}],
            "default_action": "accept",
        }
    ),
    Policy.from_data(
        {
            "name": "med1",
            "rule": [{"match": {"prefix": PREFIXES[1]}, "set": {"med": 42}}],
            "default_action": "accept",
        }
    ),
    Policy.from_data(
        {
            "name": "only23",
            "rule": [{"match": {"prefix": "203.0.2.0/23", "le": 24}}],
            "default_action": "reject",
        }
    ),
    Policy.from_data(  # attribute-only: verdicts cached per path, split horizon applies
        {
            "name": "no7",
            "rule": [{"match": {"as_path": " 7$"}, "action": "reject"}],
            "default_action": "accept",
        }
    ),
]

announce_op = st.tuples(
    st.just("ann"),
    st.integers(0, len(PEERS) - 1),
    st.lists(st.integers(0, len(PREFIXES) - 1), min_size=1, max_size=3, unique=True),
    st.integers(0, 2),
)
withdraw_op = st.tuples(
    st.just("wd"),
    st.integers(0, len(PEERS) - 1),
    st.lists(st.integers(0, len(PREFIXES) - 1), min_size=1, max_size=3, unique=True),
    st.just(0),
)
policy_op = st.tuples(
    st.just("pol"), st.integers(0, len(PEERS)), st.just([]), st.integers(0, len(POLICIES) - 1)
)
pull_op = st.tuples(st.just("pull"), st.integers(0, len(PEERS)), st.just([]), st.integers(0, 2))


def _apply(told: dict[str, Any], blobs: list[bytes]) -> None:
    """Apply UPDATEs in the order they were sent, one message at a time."""
    for blob in blobs:
        i = 0
        while i < len(blob):
            n = int.from_bytes(blob[i + 16 : i + 18], "big")
            out = decode_out([blob[i : i + n]])
            i += n
            for p in out.withdrawn:
                told.pop(p, None)
            told.update(out.announced)


@settings(max_examples=300, deadline=None)
@example(  # switched twice before its catch-up (plain -> prefix-dependent -> plain), a
    # blob of the plain group left unread announces 203.0.0.0/24, then a third switch
    # to a policy rejecting it: the unread blob went out, so the route is withdrawn
    [
        ("ann", 1, [0], 0),
        ("pol", 0, [], 2),
        ("pol", 0, [], 0),
        ("ann", 0, [0], 0),
        ("wd", 0, [0], 0),
        ("pull", 1, [], 0),
        ("pol", 0, [], 1),
    ]
)
@given(st.lists(st.one_of(announce_op, withdraw_op, policy_op, pull_op), max_size=40))
def test_every_peer_converges_to_its_policy(ops: list[tuple[str, int, list[int], int]]) -> None:
    rib = make_rib()
    keys = [peer(rib, a, asn) for a, asn in PEERS] + [peer(rib, "192.0.2.9", 65009)]
    chosen = [0] * len(keys)
    told: list[dict[str, Any]] = [{} for _ in keys]
    for kind, who, idx, n in ops:
        pfx = [key(PREFIXES[i]) for i in idx]
        if kind == "ann":
            path = (PEERS[who][1],) + (7,) * n
            rib.receive(keys[who], V4, (), attrs(path, nh=PEERS[who][0]), pfx)
            rib.flush()
        elif kind == "wd":
            rib.receive(keys[who], V4, pfx)
            rib.flush()
        elif kind == "pol":
            chosen[who] = n
            st_ = rib.peers[keys[who]]
            rib.set_policy(keys[who], replace(st_.policy, export_policy=POLICIES[n]))
        else:
            for _ in range(n + 1):  # a few blobs only: the rest stays unread
                _apply(told[who], rib.pull(keys[who], 1))
    for i, k in enumerate(keys):
        while blobs := rib.pull(k, 1 << 20):
            _apply(told[i], blobs)
        want: dict[str, tuple[Any, int | None]] = {}
        for p in PREFIXES:
            best = rib.best(V4, key(p))
            pol = POLICIES[chosen[i]]
            if best is None or (best.source.key == k and not pol.prefix_dependent):
                continue
            v = POLICIES[chosen[i]].evaluate(V4, key(p), best.attrs)
            if v is None:
                continue
            want[p] = ((LOCAL_AS, *best.attrs.as_path[0][1]), v.attrs.med)
        got = {p: (a.as_path[0][1], a.med) for p, a in told[i].items()}
        assert got == want, (k, chosen[i])
        # Rib.advertised keeps its per-source counts in step with what was sent.
        assert rib.advertised(k)[V4] == len(told[i]), k
