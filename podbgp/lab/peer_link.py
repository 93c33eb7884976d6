"""Two namespaces on one veth, the smallest topology for peering a daemon with another.

`a` gets 10.99.0.1/24 and fd99::1/64, `b` gets 10.99.0.2/24 and fd99::2/64 on `eth0`
(IPv6 without DAD, so the addresses are usable at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from podbgp.lab.netns import Netns, NetnsGroup


@dataclass
class Link:
    a: Netns
    b: Netns
    a4: str = "10.99.0.1"
    b4: str = "10.99.0.2"
    a6: str = "fd99::1"
    b6: str = "fd99::2"


def make_link(group: NetnsGroup, a: str = "a", b: str = "b") -> Link:
    """Create namespaces `a` and `b` in `group`, joined by a veth with both address families."""
    na, nb = group.add(a), group.add(b)
    group.veth(na, "eth0", nb, "eth0")
    link = Link(na, nb)
    for ns, v4, v6 in ((na, link.a4, link.a6), (nb, link.b4, link.b6)):
        ns.ip("addr", "add", f"{v4}/24", "dev", "eth0")
        ns.ip("addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
    return link
