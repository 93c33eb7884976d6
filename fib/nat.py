"""Outgoing NAT for pools with `nat_outgoing` (CONFIG.md `[[ipam.pool]]`).

Traffic from a pod in such a pool to a destination outside every pool leaves the
node with the node's own address (MASQUERADE), so pods reach the world without
the world knowing pod routes. Traffic between pods, across nodes too, is never
translated: pod addresses are routable inside the cluster.

The rules live in one nftables table of podbgp's own (`ip podbgp` /
`ip6 podbgp`), replaced atomically as a whole by one `nft -f` transaction, so a
re-apply is idempotent and never touches anyone else's rules. With no
`nat_outgoing` pool the tables are removed.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TABLE = "podbgp"


class NatError(RuntimeError):
    """nft is missing or refused the rules."""


def _elements(nets: Iterable[IPNetwork]) -> str:
    return ", ".join(str(n) for n in sorted(nets, key=lambda n: (n.network_address, n.prefixlen)))


def render(nat_pools: Iterable[IPNetwork], all_pools: Iterable[IPNetwork]) -> str:
    """The nft script for both families (pure; tested as text)."""
    nat, every = list(nat_pools), list(all_pools)
    lines: list[str] = []
    for family, version, addr in (("ip", 4, "ip"), ("ip6", 6, "ip6")):
        mine = [n for n in nat if n.version == version]
        # `add` then `delete` makes the delete succeed whether or not the table exists.
        lines += [f"add table {family} {TABLE}", f"delete table {family} {TABLE}"]
        if not mine:
            continue
        pools = [n for n in every if n.version == version]
        lines += [
            f"table {family} {TABLE} {{",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f"    {addr} saddr {{ {_elements(mine)} }} {addr} daddr != {{ {_elements(pools)} }}"
            " masquerade",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def apply(nat_pools: Iterable[IPNetwork], all_pools: Iterable[IPNetwork]) -> None:
    """Install (or remove) the rules in the current network namespace."""
    script = render(nat_pools, all_pools)
    nft = shutil.which("nft")
    if nft is None:
        raise NatError("nat_outgoing needs nftables: the nft command is not installed")
    proc = subprocess.run(
        [nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise NatError(f"nft refused the nat_outgoing rules: {proc.stderr.strip()}")


def active(family: str = "ip") -> str:
    """The installed table as nft prints it ("" if there is none)."""
    nft = shutil.which("nft") or "nft"
    proc = subprocess.run(
        [nft, "list", "table", family, TABLE], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    return proc.stdout if proc.returncode == 0 else ""
