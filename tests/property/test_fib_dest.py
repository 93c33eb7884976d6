"""Property: `fib.model.Dest`, the key of the FIB's tables, stands for exactly one prefix:
an IPv4 one is the RIB's key for it (RFC 4271 §4.3's NLRI form), IPv4 and IPv6 ones never
collide, a route's key and shape give the route back, and keys sort as the readable
(address, length, metric) tuples do (`podbgp show fib`'s order)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.wire.prefix import key_from_network
from fib.model import (
    DEST4_MAX,
    RTN_UNICAST,
    KernelRoute,
    Prefix,
    dest_addr,
    dest_len,
    dest_of,
    key_dest,
    key_order,
    route_key,
)
from fib.reconciler import _DEST_ORDER
from fib.table import route_of


@st.composite
def prefix(draw: st.DrawFn) -> Prefix:
    width = draw(st.sampled_from([4, 16]))
    length = draw(st.integers(0, width * 8))
    value = draw(st.integers(0, (1 << length) - 1)) << (width * 8 - length)
    return Prefix(value.to_bytes(width, "big"), length)


@settings(max_examples=500, deadline=None)
@given(prefix())
def test_a_dest_is_its_prefix_and_an_ipv4_one_the_ribs_key(p: Prefix) -> None:
    d = p.dest
    assert Prefix.of_dest(d) == p and (dest_addr(d), dest_len(d)) == p
    assert (len(d) <= DEST4_MAX) == (len(p.addr) == 4)  # the family is the key's size
    if len(p.addr) == 4:
        net = ipaddress.ip_network((p.addr, p.length))
        assert d == key_from_network(net)[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(prefix(), min_size=2, max_size=8, unique=True), st.data())
def test_keys_are_distinct_give_routes_back_and_sort_as_readable_tuples(
    prefixes: list[Prefix], data: st.DataObject
) -> None:
    routes = []
    for p in prefixes:
        default = 0 if len(p.addr) == 4 else 1024
        metric = data.draw(st.sampled_from([default, default, 7]))
        routes.append(KernelRoute(p.addr, p.length, RTN_UNICAST, (), protocol=80,
                                  priority=metric))  # fmt: skip
    keys = [route_key(r) for r in routes]
    assert len(set(keys)) == len(keys)
    for r, k in zip(routes, keys, strict=True):
        assert route_of(k, r[2:]) == r
        assert isinstance(k, bytes) == (r.priority == (0 if len(r.dst) == 4 else 1024))
        assert key_dest(k) == dest_of(r.dst, r.dst_len)
        if isinstance(k, bytes):  # the snapshot's order in C is `key_order`
            assert _DEST_ORDER(k) == key_order(k)

    def readable(r: KernelRoute) -> tuple[bytes, int] | tuple[bytes, int, int]:
        plain = isinstance(route_key(r), bytes)
        return (r.dst, r.dst_len) if plain else (r.dst, r.dst_len, r.priority)

    by_key = sorted(zip(keys, routes, strict=True), key=lambda kr: key_order(kr[0]))
    assert [r for _k, r in by_key] == sorted(routes, key=readable)
