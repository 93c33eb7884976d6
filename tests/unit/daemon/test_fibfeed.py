"""The RIB → FIB edge: longest-match pool table and packed keys straight into the reconciler."""

from __future__ import annotations

import ipaddress

import pytest

from bgp.wire.constants import Family
from bgp.wire.prefix import key_from_network
from fib.fake import FakeKernel
from fib.model import Dest, Encap, NodeInfo, Prefix, Reach, pack_addr
from fib.reconciler import FibConfig, Reconciler
from podbgp.fibfeed import PLAIN, FibFeed, PoolTable

A, C, N = Encap.ALWAYS, Encap.CROSS_SUBNET, Encap.NEVER
V4, V6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST
HOP_B, HOP_C = pack_addr("10.0.0.2"), pack_addr("10.0.0.3")
HOP6 = pack_addr("fd00::2")


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def modes(table: PoolTable, prefix: str) -> tuple[Encap, Encap]:
    p = Prefix.parse(prefix)
    return table.modes(p.addr, p.length)


def test_overlapping_pools_longest_match_wins() -> None:
    table = PoolTable([(net("10.0.0.0/8"), A, N), (net("10.244.0.0/16"), N, C),
                       (net("10.244.128.0/17"), N, A)])  # fmt: skip
    assert modes(table, "10.1.0.0/24") == (A, N)
    assert modes(table, "10.244.1.0/26") == (N, C)
    assert modes(table, "10.244.200.0/26") == (N, A)
    assert modes(table, "10.244.128.0/17") == (N, A)  # a pool's own prefix is in it
    assert modes(table, "10.244.0.0/15") == (A, N)  # wider than /16: only the /8 holds it
    assert modes(table, "11.0.0.0/24") == PLAIN
    assert modes(table, "0.0.0.0/0") == PLAIN


def test_pool_lengths_off_byte_boundaries() -> None:
    table = PoolTable([(net("10.244.0.0/14"), A, N), (net("192.168.1.0/27"), N, A)])
    assert modes(table, "10.247.255.0/24") == (A, N)
    assert modes(table, "10.248.0.0/24") == PLAIN
    assert modes(table, "192.168.1.31/32") == (N, A)
    assert modes(table, "192.168.1.32/32") == PLAIN


def test_ipv6_pools_apart_from_ipv4() -> None:
    table = PoolTable([(net("fd00:10::/48"), N, A), (net("fd00:10:0:8000::/49"), A, N),
                       (net("10.0.0.0/8"), A, N)])  # fmt: skip
    assert modes(table, "fd00:10::/122") == (N, A)
    assert modes(table, "fd00:10:0:8000::/122") == (A, N)
    assert modes(table, "fd00:11::/64") == PLAIN
    # the same leading bytes in the other family are not in the pool
    assert modes(table, "10.0.0.0/24") == (A, N)
    assert modes(table, "a00::/24") == PLAIN


def test_no_pools_is_falsy_and_plain() -> None:
    table = PoolTable(())
    assert not table and modes(table, "10.0.0.0/24") == PLAIN


def _feed(pools: PoolTable, own: frozenset[ipaddress.IPv4Network] = frozenset()) -> FibFeed:
    rec = Reconciler(FakeKernel(), FibConfig())
    rec.set_node(NodeInfo.parse("node-a", "10.0.0.1/24", "eth0"))
    woken: list[int] = []
    feed = FibFeed(rec, lambda: pools, lambda: woken.append(1), lambda: own)  # type: ignore[arg-type,return-value]
    return feed


def key(text: str) -> bytes:
    return key_from_network(text)[1]


def dest(text: str) -> Dest:
    return Prefix.parse(text).dest


def test_keys_and_hops_become_prefixes_and_shared_reach() -> None:
    feed = _feed(PoolTable([(net("10.244.0.0/16"), N, C)]))
    feed.best_paths(V4, {key("10.244.1.0/26"): (HOP_C, HOP_B), key("10.244.2.0/26"): (HOP_C, HOP_B),
                         key("172.16.0.0/12"): (HOP_B,), key("192.0.2.7/32"): (HOP_B,)})  # fmt: skip
    remote = feed.reconciler.inputs.remote
    assert remote == {
        dest("10.244.1.0/26"): Reach((HOP_B, HOP_C), N, C),
        dest("10.244.2.0/26"): Reach((HOP_B, HOP_C), N, C),
        dest("172.16.0.0/12"): Reach((HOP_B,)),
        dest("192.0.2.7/32"): Reach((HOP_B,)),
    }
    r1, r2 = remote[dest("10.244.1.0/26")], remote[dest("10.244.2.0/26")]
    assert r1 is r2  # interned: one object per distinct reach
    rib_key = key("10.244.9.0/24")
    feed.best_paths(V4, {rib_key: (HOP_B,)})
    assert next(k for k in remote if k == rib_key) is rib_key  # the RIB's key, not a copy
    feed.best_paths(V4, {key("172.16.0.0/12"): ()})
    assert dest("172.16.0.0/12") not in remote


def test_ipv6_keys_pad_to_sixteen_bytes() -> None:
    feed = _feed(PoolTable(()))
    feed.best_paths(V6, {key("fd10::/64"): (HOP6,), key("::/0"): (HOP6,)})
    assert set(feed.reconciler.inputs.remote) == {dest("fd10::/64"), dest("::/0")}


def test_own_blocks_never_become_remote_routes() -> None:
    own = frozenset({net("10.244.0.0/26")})
    feed = _feed(PoolTable(()), own)  # type: ignore[arg-type]
    feed.best_paths(V4, {key("10.244.0.0/26"): (HOP_B,), key("10.244.0.64/26"): (HOP_B,)})
    assert set(feed.reconciler.inputs.remote) == {dest("10.244.0.64/26")}


@pytest.mark.parametrize("prefix", ["10.244.3.0/26", "10.1.0.0/16", "fd00:10::/122"])
def test_same_route_as_the_datastore_path(prefix: str) -> None:
    """`podbgp.wiring.remote_route` (VXLAN without BGP) and the feed agree on modes."""
    from podbgp import wiring
    from podbgp.config import load_config_text

    cfg = load_config_text("""
[node]
name = "node-a"
asn = 64512
address = "10.0.0.1/24"
address6 = "fd00::1/64"
[datastore]
path = "/tmp/x.db"
[[ipam.pool]]
cidr = "10.244.0.0/16"
vxlan_mode = "CrossSubnet"
[[ipam.pool]]
cidr = "fd00:10::/48"
ipip_mode = "Never"
vxlan_mode = "Always"
""")
    hop = "fd00::2" if ":" in prefix else "10.0.0.2"
    route = wiring.remote_route(cfg, net(prefix), [hop])
    feed = _feed(wiring.pool_table(cfg))
    family, k = key_from_network(prefix)
    feed.best_paths(family, {k: (pack_addr(hop),)})
    assert feed.reconciler.inputs.remote[route.prefix.dest] == route.reach


def test_pools_read_per_batch_so_a_reload_applies_to_new_routes() -> None:
    tables = [PoolTable([(net("10.244.0.0/16"), N, N)])]
    rec = Reconciler(FakeKernel(), FibConfig())
    rec.set_node(NodeInfo.parse("node-a", "10.0.0.1/24", "eth0"))
    feed = FibFeed(rec, lambda: tables[-1], lambda: None)
    feed.best_paths(V4, {key("10.244.1.0/26"): (HOP_B,)})
    tables.append(PoolTable([(net("10.244.0.0/16"), N, A)]))  # a reload: vxlan Always
    feed.best_paths(V4, {key("10.244.2.0/26"): (HOP_B,)})
    assert rec.inputs.remote[dest("10.244.1.0/26")] == Reach((HOP_B,))
    assert rec.inputs.remote[dest("10.244.2.0/26")] == Reach((HOP_B,), N, A)


def test_a_pool_change_re_plans_only_the_routes_whose_modes_changed() -> None:
    """A pool's mode changed live: its routes take the new encapsulation at once, routes of
    other pools and outside every pool are not touched (the same Reach objects)."""
    tables = [PoolTable([(net("10.244.0.0/16"), N, N), (net("10.245.0.0/16"), N, C)])]
    rec = Reconciler(FakeKernel(), FibConfig())
    rec.set_node(NodeInfo.parse("node-a", "10.0.0.1/24", "eth0"))
    woken: list[int] = []
    feed = FibFeed(rec, lambda: tables[0], lambda: woken.append(1))
    feed.best_paths(V4, {key("10.244.1.0/26"): (HOP_B,), key("10.245.1.0/26"): (HOP_C,),
                         key("172.16.0.0/12"): (HOP_B,)})  # fmt: skip
    remote = rec.inputs.remote
    before = dict(remote)
    woken.clear()
    assert feed.pools_changed() == 0 and not woken  # nothing changed: nothing re-planned
    tables[0] = PoolTable([(net("10.244.0.0/16"), N, A), (net("10.245.0.0/16"), N, C)])
    assert feed.pools_changed() == 1 and woken == [1]
    assert remote[dest("10.244.1.0/26")] == Reach((HOP_B,), N, A)
    for other in ("10.245.1.0/26", "172.16.0.0/12"):
        assert remote[dest(other)] is before[dest(other)]
    assert dest("10.244.1.0/26") in rec.encapsulated
