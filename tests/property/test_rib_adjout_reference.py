"""Property: every update group's UPDATE stream, decoded, tells each peer exactly
what the readable reference (``adjout_ref.expected``) recomputes from the Loc-RIB.

The groups are of every kind at once: plain table-less groups (two eBGP peers
sharing one, so split horizon makes per-source variants), ADD-PATH groups
(best 2 to eBGP, all paths to an RR client), prefix-dependent export groups,
iBGP client and non-client groups through route reflection. The runs mix
batches of one or several UPDATEs (announce-only, withdraw-only and mixed
batches, the RIB's three batch shapes), 64 prefixes against a build step
(``CHUNK``) patched down to a few prefixes so batches cross chunk
boundaries, partial pulls, peers coming up late (catch-up) and going down,
export-policy switches, ROUTE-REFRESH (plain and enhanced, RFC 7313) and
local routes. After every full drain of a peer, and for every peer at the
end, what it was told equals the reference, and ``Rib.advertised`` counts it.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, ip_address
from typing import Any
from unittest.mock import patch

from adjout_ref import expected
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ribkit import LOCAL_AS, V4, decode_out

import rib.adjout.group as adjout_group
from bgp.wire import PathAttributes
from bgp.wire.prefix import key_from_network, key_to_str
from rib import PeerPolicy, Policy, Rib, RibSettings, SessionFacts, builtin
from rib.path import Path
from rib.policy import NO_EXPORT

N_PREFIXES = 64
PREFIXES = [key_from_network(f"10.{i // 16}.{(i % 16) * 16}.0/20")[1] for i in range(N_PREFIXES)]
UNREACHABLE = IPv4Address("192.0.2.99")  # a next hop the resolver cannot reach
SEVEN = (65000 << 16) | 7  # a community the "no-7" export policy refuses


class PeerSpec:
    """One configured peer of the run."""

    def __init__(
        self, address: str, asn: int, *, client: bool = False, add_path: int = 0, enhanced=False
    ) -> None:
        self.address = address
        self.asn = asn
        self.client = client
        self.add_path = add_path
        self.enhanced = enhanced

    @property
    def ebgp(self) -> bool:
        return self.asn != LOCAL_AS


PEERS = [
    PeerSpec("192.0.2.1", 65001),  # eBGP, plain group shared with the next one
    PeerSpec("192.0.2.2", 65002, enhanced=True),
    PeerSpec("192.0.2.3", 65003, add_path=2),  # eBGP, ADD-PATH best 2, group shared with
    PeerSpec("192.0.2.4", 65004, add_path=2),  # this one (a late joiner catches up)
    PeerSpec("10.0.1.1", LOCAL_AS, client=True),  # iBGP RR client, plain
    PeerSpec("10.0.1.2", LOCAL_AS, client=True, add_path=-1, enhanced=True),  # all paths
    PeerSpec("10.0.1.3", LOCAL_AS),  # iBGP non-client
]
POLICIES = [
    builtin("all"),
    Policy.from_data(  # prefix-dependent: its group keeps a table
        {
            "name": "low-half",
            "rule": [
                {"match": {"prefix": "10.0.0.0/14", "le": 24}, "set": {"med": 5}},
                {"match": {"prefix": "10.0.0.0/12", "le": 24}, "action": "reject"},
            ],
            "default_action": "accept",
        }
    ),
    Policy.from_data(  # attribute-only: verdicts cached per path
        {
            "name": "no-7",
            "rule": [{"match": {"community": ["65000:7"]}, "action": "reject"}],
            "default_action": "accept",
        }
    ),
    Policy.from_data(
        {
            "name": "self",
            "rule": [{"match": {"as_path": "7"}, "set": {"next_hop": "self"}}],
            "default_action": "accept",
        }
    ),
]

# (peer index or -1 for a local route, announce?, first prefix, count, attribute variant)
receive_op = st.tuples(
    st.integers(-1, len(PEERS) - 1),
    st.booleans(),
    st.integers(0, N_PREFIXES - 1),
    # Small batches fit one build step; past 64 the keys wrap (a prefix repeats).
    st.one_of(st.integers(1, 6), st.integers(1, 80)),
    st.integers(0, 7),
)
batch_op = st.tuples(st.just("batch"), st.lists(receive_op, min_size=1, max_size=3), st.just(0))
# Peer -1: every peer.
pull_op = st.tuples(st.just("pull"), st.integers(-1, len(PEERS) - 1), st.integers(1, 3))
drain_op = st.tuples(st.just("drain"), st.integers(-1, len(PEERS) - 1), st.just(0))
# The last value changes an ADD-PATH peer's best-N (2, all, 0) instead of its policy.
policy_op = st.tuples(
    st.just("policy"), st.integers(0, len(PEERS) - 1), st.integers(0, len(POLICIES))
)
refresh_op = st.tuples(st.just("refresh"), st.integers(0, len(PEERS) - 1), st.just(0))
updown_op = st.tuples(st.just("updown"), st.integers(0, len(PEERS) - 1), st.just(0))
timer_op = st.tuples(st.just("timer"), st.just(0), st.just(0))  # ends selection deferral
drain_all_op = st.tuples(st.just("drain"), st.just(-1), st.just(0))
# Batches between full drains mostly, as a running daemon sees them: only then can a
# group keep a batch as it came (nothing else dirty).
OPS = st.one_of(
    batch_op,
    batch_op,
    batch_op,
    drain_all_op,
    drain_all_op,
    pull_op,
    drain_op,
    policy_op,
    refresh_op,
    updown_op,
    timer_op,
)


def attrs_for(spec: PeerSpec | None, variant: int) -> PathAttributes:
    """An attribute set of ``spec``'s (None: a local route) in one of a few variants."""
    comms: tuple[int, ...] = ()
    if variant == 3:
        comms = (NO_EXPORT,)
    elif variant == 4:
        comms = (SEVEN,)
    if spec is None:
        return PathAttributes(origin=0, as_path=(), med=variant, communities=comms)
    nh = UNREACHABLE if variant == 5 else IPv4Address(spec.address)
    if spec.ebgp:
        path = (spec.asn,) + (7,) * (variant % 3)
        return PathAttributes(
            origin=0, as_path=((2, path),), next_hop=nh, med=variant, communities=comms
        )
    return PathAttributes(
        origin=0,
        as_path=((2, (65010,) * (variant % 2)),) if variant % 2 else (),
        next_hop=nh,
        local_pref=100 + 10 * (variant % 3),
        communities=comms,
    )


class Run:
    """A RIB, its peers, and what each peer was told (decoded, message by message)."""

    def __init__(
        self, specs: list[PeerSpec], up: list[bool], policies: list[int], restarting: bool
    ) -> None:
        self.specs = specs
        rib_settings = RibSettings(
            local_as=LOCAL_AS, router_id=IPv4Address("10.0.0.1"), restarting=restarting
        )
        self.fib: dict[bytes, tuple[bytes, ...]] = {}
        self.rib = Rib(
            rib_settings,
            fib=lambda fam, changes: self.fib.update(changes),
            resolve=lambda fam, a: None if a.next_hop == UNREACHABLE else 0,
        )
        self.keys: list[str] = []
        for spec, pol in zip(specs, policies, strict=False):
            policy = PeerPolicy.make(
                spec.address,
                spec.asn,
                export_policy=POLICIES[pol],
                route_reflector_client=spec.client,
                add_path_send=spec.add_path,
                families=(V4,),
            )
            self.rib.add_peer(policy)
            self.keys.append(policy.key)
        self.up = [False] * len(specs)
        self.told: list[dict[str, Any]] = [{} for _ in specs]
        self.eors = [0] * len(specs)
        for i, u in enumerate(up):
            if u:
                self.peer_up(i)

    def peer_up(self, i: int) -> None:
        spec = self.specs[i]
        facts = SessionFacts(
            families=(V4,),
            bgp_id=IPv4Address(spec.address),
            local_address=ip_address("10.0.0.1"),
            add_path_tx=(V4,) if spec.add_path else (),
            enhanced_refresh=spec.enhanced,
        )
        self.rib.peer_up(self.keys[i], facts)
        self.up[i] = True
        self.told[i] = {}
        self.eors[i] = 0

    def receive(self, who: int, announce: bool, first: int, count: int, variant: int) -> None:
        keys = [PREFIXES[(first + j) % N_PREFIXES] for j in range(count)]
        if who < 0:
            for k in dict.fromkeys(keys):
                name = key_to_str(V4, k)
                if announce:
                    self.rib.originate(name, med=variant)
                else:
                    self.rib.withdraw_originated(name)
            return
        who %= len(self.specs)
        if not self.up[who]:
            return
        if announce:
            self.rib.receive(self.keys[who], V4, (), attrs_for(self.specs[who], variant), keys)
        else:
            if variant < 4:  # only prefixes the peer has a route for: a clean withdrawal
                src = self.rib.peers[self.keys[who]].source
                keys = [k for k in dict.fromkeys(keys) if _has_path(self.rib, k, src)]
            self.rib.receive(self.keys[who], V4, keys)

    def pull(self, i: int, max_bytes: int) -> bool:
        """One pull for peer ``i``; False when it had nothing."""
        if not self.up[i]:
            return False
        blobs = self.rib.pull(self.keys[i], max_bytes)
        add_path = bool(self.specs[i].add_path)
        for blob in blobs:
            at = 0
            while at < len(blob):
                n = int.from_bytes(blob[at + 16 : at + 18], "big")
                out = decode_out([blob[at : at + n]], add_path)
                at += n
                for name in out.withdrawn:
                    self.told[i].pop(name, None)
                self.told[i].update(out.announced)
                self.eors[i] += len(out.eor)
        return bool(blobs)

    def drain_and_check(self, i: int) -> None:
        if not self.up[i]:
            return
        while self.pull(i, 1 << 20):
            pass
        k = self.keys[i]
        assert self.told[i] == expected(self.rib, k, V4), (k, _diff(self.told[i], self.rib, k))
        assert self.eors[i] == (0 if V4 in self.rib.deferred else 1), (k, self.eors[i])
        prefixes = {name.split("#")[0] for name in self.told[i]}
        assert self.rib.advertised(k)[V4] == len(prefixes), k

    def check_fib(self) -> None:
        """The FIB callback was told every prefix's ECMP next hops once selected."""
        if V4 in self.rib.deferred:
            return
        got = {k: h for k, h in self.fib.items() if h}
        want = {k: self.rib.nexthops(V4, k) for k in self.rib.loc[V4]}
        assert got == {k: h for k, h in want.items() if h}


def _has_path(rib: Rib, key: bytes, src: Any) -> bool:
    e = rib.loc[V4].get(key)
    paths = () if e is None else (e,) if isinstance(e, Path) else e.paths
    return any(p.source is src for p in paths)


def _diff(told: dict[str, Any], rib: Rib, k: str) -> dict[str, Any]:
    want = expected(rib, k, V4)
    return {
        n: (told.get(n), want.get(n))
        for n in told.keys() | want.keys()
        if told.get(n) != want.get(n)
    }


def _play(run: Run, ops: list[tuple[str, Any, int]]) -> None:
    n_peers = len(run.specs)
    for kind, arg, n in ops:
        if kind == "batch":
            for rec in arg:
                run.receive(*rec)
            run.rib.flush()
            continue
        who = range(n_peers) if arg == -1 else (arg % n_peers,)
        if kind == "pull":
            for i in who:
                for _ in range(n):
                    run.pull(i, 60)  # about one message: the rest stays queued
        elif kind == "drain":
            for i in who:
                run.drain_and_check(i)
        elif kind == "timer":
            run.rib.handle_timer(1e9)
        elif kind == "policy":
            (i,) = who
            pol = run.rib.peers[run.keys[i]].policy
            if n < len(POLICIES):
                pol = replace(pol, export_policy=POLICIES[n])
            elif run.specs[i].add_path:  # 2 -> all -> 0 (the best, with a path id) -> 2
                pol = replace(pol, add_path_send={2: -1, -1: 0, 0: 2}[pol.add_path_send])
            run.rib.set_policy(run.keys[i], pol)
        elif kind == "refresh":
            (i,) = who
            if run.up[i]:
                run.rib.route_refresh(run.keys[i], V4, 0)
        else:
            (i,) = who
            if run.up[i]:
                run.rib.peer_down(run.keys[i])
                run.up[i] = False
            else:
                run.peer_up(i)
    for i in range(n_peers):
        run.drain_and_check(i)
    run.check_fib()


@settings(max_examples=300, deadline=None)
@example(  # an ADD-PATH peer (all paths) switched to low-half, then, mid-catch-up, asked
    # for a ROUTE-REFRESH (the switch finishes in full), and switched back to "all"
    chunk=2,
    restarting=False,
    up=[False, False, False, True, False, True, False],
    policies=[0] * len(PEERS),
    ops=[
        ("batch", [(0, False, 0, 1, 0)], 0),
        ("batch", [(0, False, 0, 1, 0), (3, True, 0, 3, 0)], 0),
        ("timer", 0, 0),
        ("policy", 5, 1),
        ("batch", [(0, False, 4, 5, 3)], 0),
        ("pull", -1, 1),
        ("refresh", 5, 0),
        ("updown", 3, 0),
        ("batch", [(0, False, 0, 1, 0)], 0),
        ("policy", 5, 0),
    ],
)
@example(  # an ADD-PATH peer switched twice before its catch-up (all -> low-half -> all);
    # its group's next blob, left unread, announces path 1 of 10.0.0.0/20; then a switch
    # to no-7, which refuses that path: the blob went out, so the path is withdrawn
    chunk=16,
    restarting=False,
    up=[True, True, True, True, False, False, False],
    policies=[0] * len(PEERS),
    ops=[
        ("batch", [(1, True, 0, 1, 4)], 0),
        ("policy", 2, 1),
        ("policy", 2, 0),
        ("pull", 3, 1),
        ("policy", 2, 2),
    ],
)
@given(
    chunk=st.sampled_from([2, 3, 5, 16]),
    restarting=st.booleans(),
    up=st.lists(st.booleans(), min_size=len(PEERS), max_size=len(PEERS)),
    policies=st.lists(st.integers(0, len(POLICIES) - 1), min_size=len(PEERS), max_size=len(PEERS)),
    ops=st.lists(OPS, min_size=10, max_size=40),
)
def test_every_group_tells_each_peer_what_the_reference_computes(
    chunk: int,
    restarting: bool,
    up: list[bool],
    policies: list[int],
    ops: list[tuple[str, Any, int]],
) -> None:
    with patch.object(adjout_group, "CHUNK", chunk):
        _play(Run(PEERS, up, policies, restarting), ops)


@settings(max_examples=300, deadline=None)
@example(  # the same as a plain group's member: switched twice before its catch-up, the
    # unread blob announcing 10.0.0.0/20 goes out, so the switch to no-7 withdraws it
    chunk=16,
    up=[True, True],
    ops=[
        ("batch", [(1, True, 0, 1, 4)], 0),
        ("policy", 0, 1),
        ("policy", 0, 0),
        ("pull", 1, 1),
        ("policy", 0, 2),
    ],
)
@example(  # in one batch: a kept withdrawal, then new prefixes; then the reverse
    chunk=5,
    up=[True, True],
    ops=[
        ("batch", [(0, True, 0, 10, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(0, False, 0, 3, 0), (0, True, 20, 4, 0)], 0),
        ("batch", [(0, True, 30, 2, 1), (0, True, 40, 2, 1), (0, False, 5, 2, 0)], 0),
        ("drain", -1, 0),
    ],
)
@example(  # kept batches that step aside: new prefixes with an unreachable next hop,
    # then withdrawals of one source's routes (all, some, unreachable ones), then of
    # routes from two sources
    chunk=5,
    up=[True, True],
    ops=[
        ("batch", [(0, True, 0, 3, 5)], 0),
        ("drain", -1, 0),
        ("batch", [(0, True, 10, 6, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(0, False, 10, 2, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(0, False, 0, 3, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(1, True, 30, 3, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(0, False, 12, 4, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(1, False, 30, 3, 0)], 0),
        ("batch", [(0, True, 40, 2, 0)], 0),
        ("batch", [(1, True, 50, 2, 0)], 0),
        ("drain", -1, 0),
        ("batch", [(0, False, 40, 2, 0), (1, False, 50, 2, 0)], 0),
        ("drain", -1, 0),
    ],
)
@given(
    chunk=st.sampled_from([2, 3, 5]),
    up=st.lists(st.booleans(), min_size=2, max_size=2),
    ops=st.lists(OPS, min_size=10, max_size=40),
)
def test_a_plain_group_tells_each_peer_what_the_reference_computes(
    chunk: int, up: list[bool], ops: list[tuple[str, Any, int]]
) -> None:
    """Two eBGP peers and local routes in one table-less group: the kept batches
    (announce-only, withdraw-only) and the one-source withdrawal run often here."""
    with patch.object(adjout_group, "CHUNK", chunk):
        _play(Run(PEERS[:2], up, [0, 0], False), ops)
