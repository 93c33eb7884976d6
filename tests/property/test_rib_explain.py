"""Property: ``rib.explain`` tells the truth about what the RIB sends.

For random peers (eBGP, iBGP clients and non-clients of a reflector, some down),
random export policies and random routes with well-known communities, after the
RIB has flushed and every peer has pulled its messages: a peer's verdict on a
prefix is ``SENT`` exactly when its Adj-RIB-Out holds the prefix, and the policy
decision it names (``Policy.decide``) agrees with ``Policy.evaluate``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ribkit import V4, attrs, drain, facts, key, make_rib

from rib import PeerPolicy, Policy, builtin
from rib.explain import ExportStep, export_verdicts
from rib.policy import NO_ADVERTISE, NO_EXPORT

PREFIXES = [f"203.0.{i}.0/24" for i in range(4)]
POLICIES = [
    "all",
    "none",
    Policy.from_data({
        "name": "no1",
        "rule": [{"match": {"prefix": PREFIXES[1]}, "action": "reject"}],
        "default_action": "accept",
    }),
    Policy.from_data({
        "name": "no7",
        "rule": [{"match": {"as_path": " 7$"}, "action": "reject"}],
        "default_action": "accept",
    }),
]  # fmt: skip
# (address, asn, route-reflector client): 65000 is the RIB's own AS (iBGP).
PEERS = [
    ("192.0.2.1", 65001, False),
    ("192.0.2.2", 65000, True),
    ("192.0.2.3", 65000, False),
    ("192.0.2.4", 65004, False),
]
COMMUNITIES = [(), (NO_EXPORT,), (NO_ADVERTISE,), (65000 << 16 | 7,)]

peer_setup = st.tuples(st.integers(0, len(POLICIES) - 1), st.booleans())
route = st.tuples(
    st.integers(0, len(PEERS) - 1),
    st.integers(0, len(PREFIXES) - 1),
    st.integers(0, len(COMMUNITIES) - 1),
    st.sampled_from([(), (7,), (9, 7)]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(peer_setup, min_size=len(PEERS), max_size=len(PEERS)), st.lists(route, max_size=12))
def test_verdict_sent_iff_advertised(setups: list[tuple[int, bool]], routes: list) -> None:  # type: ignore[type-arg]
    rib = make_rib()
    keys = []
    for (address, asn, client), (pol, up) in zip(PEERS, setups, strict=True):
        p = POLICIES[pol]
        policy = builtin(p) if isinstance(p, str) else p
        pp = PeerPolicy.make(address, asn, export_policy=policy, route_reflector_client=client)
        rib.add_peer(pp)
        keys.append(pp.key)
        if up:
            rib.peer_up(pp.key, facts(bgp_id=address))
    for src, pfx, comm, tail in routes:
        if not rib.peers[keys[src]].up:
            continue
        asn = PEERS[src][1]
        path = tail if asn == 65000 else (asn, *tail)
        a = attrs(path, f"192.0.2.{src + 1}", communities=COMMUNITIES[comm], lp=100)
        rib.receive(keys[src], V4, (), a, [key(PREFIXES[pfx])])
    rib.flush()
    for k in keys:
        if rib.peers[k].up:
            drain(rib, k)
    for pfx in PREFIXES:
        for v in export_verdicts(rib, V4, key(pfx)):
            assert (v.step is ExportStep.SENT) == v.advertised, (pfx, v)
            if v.policy is not None:
                st_ = rib.peers[v.peer]
                best = rib.best(V4, key(pfx))
                assert best is not None
                g = st_.members[V4].group
                assert g is not None
                got = g.exporter.policy.evaluate(
                    V4, key(pfx), best.attrs, local=best.local, peer=best.source.address
                )
                assert v.policy.accepted == (got is not None)
