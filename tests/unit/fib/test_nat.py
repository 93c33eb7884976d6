"""nat_outgoing rules: the nft script as text, and applied in a namespace."""

from __future__ import annotations

import ipaddress
import shutil
import sys

import pytest

from fib import nat
from podbgp.lab.netns import NetnsGroup

P1 = ipaddress.ip_network("10.244.0.0/16")
P2 = ipaddress.ip_network("10.245.0.0/16")
P6 = ipaddress.ip_network("fd00:244::/48")


def test_render_masquerades_nat_pools_to_outside_every_pool() -> None:
    text = nat.render([P1], [P1, P2, P6])
    assert "table ip podbgp {" in text
    assert (
        "ip saddr { 10.244.0.0/16 } ip daddr != { 10.244.0.0/16, 10.245.0.0/16 } masquerade" in text
    )
    assert "table ip6 podbgp {" not in text  # no IPv6 pool with nat_outgoing
    assert text.count("delete table") == 2  # both families are reset every time


def test_render_without_nat_pools_only_removes() -> None:
    text = nat.render([], [P1])
    assert "masquerade" not in text
    assert "delete table ip podbgp" in text and "delete table ip6 podbgp" in text


def test_apply_in_a_namespace(netns: NetnsGroup) -> None:
    if shutil.which("nft") is None:
        pytest.skip("nftables (nft) is not installed")
    ns = netns.add("nat")
    code = (
        "import ipaddress as i; from fib import nat;"
        "p=[i.ip_network('10.244.0.0/16')]; q=[i.ip_network('fd00:244::/48')];"
        "nat.apply(p+q, p+q); nat.apply(p+q, p+q);"  # idempotent
        "print(nat.active('ip')); print(nat.active('ip6'))"
    )
    out = ns.run(sys.executable, "-c", code)
    assert "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade" in out
    assert "ip6 saddr fd00:244::/48 ip6 daddr != fd00:244::/48 masquerade" in out
    ns.run(sys.executable, "-c", "from fib import nat; nat.apply([], [])")
    assert ns.run("nft", "list", "tables").strip() == ""
