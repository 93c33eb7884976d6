"""Next hop self is the session's own local address, not the node's configured one.

A podbgp speaker with its RIB (``Speaker`` + ``RibAdapter`` + ``Rib``) whose node
address is 10.0.0.1 (on no interface) peers from 198.51.100.1 with a recording
speaker at 198.51.100.2, both addresses on the loopback device of a test
namespace (127/8 would not do: it is a martian next hop). The route it
originates must reach the peer with NEXT_HOP 198.51.100.1, the address the peer
actually reaches it at (RFC 4271 §5.1.3), whether podbgp dialled or accepted.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from bgp.settings import SpeakerSettings
from bgp.speaker import Speaker, _socket_ip
from fib.netns import in_netns
from podbgp.lab.netns import NetnsGroup
from rib import PeerPolicy, Rib, RibSettings
from rib.adapter import PeerHandles, RibAdapter

from .support import make_node, peer

A_IP, B_IP = "198.51.100.1", "198.51.100.2"
NODE = "10.0.0.1"  # the node's configured address: differs from the session's end
PREFIX = "10.1.0.0/16"


@pytest.mark.root
@pytest.mark.parametrize("podbgp_dials", [True, False], ids=["dialled", "accepted"])
def test_next_hop_self_is_the_sessions_local_address(netns: NetnsGroup, podbgp_dials: bool) -> None:
    ns = netns.add("nh")
    for addr in (A_IP, B_IP):
        ns.ip("addr", "add", f"{addr}/32", "dev", "lo")
    in_netns(ns.name, lambda: asyncio.run(_exchange(podbgp_dials)))


async def _exchange(podbgp_dials: bool) -> None:
    loop = asyncio.get_running_loop()
    handles = PeerHandles()
    rib = Rib(
        RibSettings(local_as=65001, router_id=IPv4Address(NODE)),
        wake=handles.wake,
        max_prefix_exceeded=handles.max_prefix_exceeded,
    )
    adapter = RibAdapter(
        rib, handles, local4=IPv4Address(NODE), clock=loop.time, call_at=loop.call_at
    )
    a = Speaker(
        SpeakerSettings(asn=65001, router_id=NODE, listen=(A_IP,), port=0), adapter, adapter
    )
    await a.start()
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        rib.add_peer(PeerPolicy.make(B_IP, 65002))
        rib.originate(PREFIX)
        b.speaker.add_peer(peer(A_IP, 65001, a.ports[0], B_IP, passive=podbgp_dials))
        a.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, passive=not podbgp_dials))
        await b.wait(lambda: PREFIX in b.sink.announced())
        attrs = b.sink.announced()[PREFIX]
        assert attrs is not None and attrs.next_hop == IPv4Address(A_IP)
        handle = a.peer(B_IP)
        assert handle is not None and handle.local_address == IPv4Address(A_IP)
    finally:
        await a.stop()
        await b.speaker.stop()
    assert handle.local_address is None  # no session, no local address


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", IPv4Address("127.0.0.1")),
        ("::ffff:10.0.0.1", IPv4Address("10.0.0.1")),  # IPv4 on a dual-stack socket
        ("fe80::1%eth0", IPv6Address("fe80::1")),
        ("2001:db8::1", ip_address("2001:db8::1")),
    ],
)
def test_socket_host_as_an_address(host: str, address: object) -> None:
    assert _socket_ip(host) == address
