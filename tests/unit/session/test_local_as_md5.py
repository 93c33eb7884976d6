"""Two speakers over loopback: a per-peer local AS in the OPEN (RFC 7705 §3), and a
TCP MD5 key mismatch (RFC 2385), which the kernel answers with silence and the
session shell names in its log."""

from __future__ import annotations

import logging

import pytest

from .support import make_node, peer

A_IP, B_IP = "127.0.0.1", "127.0.0.2"


async def test_the_local_as_is_what_the_peer_sees() -> None:
    a = await make_node(65001, "10.0.0.1", A_IP)
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        # b knows a only as AS 65100: a presents it on this session instead of 65001.
        b.speaker.add_peer(peer(A_IP, 65100, a.speaker.ports[0], B_IP, passive=True))
        a.speaker.add_peer(peer(B_IP, 65002, b.speaker.ports[0], A_IP, local_as=65100))
        await a.wait(lambda: a.sink.ups and b.sink.ups)
        pb = b.speaker.peer(A_IP)
        assert pb is not None and pb.negotiated is not None
        assert pb.negotiated.peer_as == 65100
        pa = a.speaker.peer(B_IP)
        assert pa is not None and pa.negotiated is not None
        assert pa.negotiated.ctx.local_as == 65100 and pa.negotiated.ctx.ebgp
    finally:
        await a.speaker.stop()
        await b.speaker.stop()


async def test_another_md5_key_gets_no_session_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bgp.session")
    a = await make_node(65001, "10.0.0.1", A_IP)
    b = await make_node(65002, "10.0.0.2", B_IP)
    try:
        b.speaker.add_peer(
            peer(A_IP, 65001, a.speaker.ports[0], B_IP, passive=True, password="right")
        )
        a.speaker.add_peer(
            peer(B_IP, 65002, b.speaker.ports[0], A_IP, password="wrong", connect_retry=0.3)
        )

        def told() -> bool:
            return any("TCP MD5 is on" in r.getMessage() for r in caplog.records)

        await a.wait(told, timeout=20)
        assert not a.sink.ups and not b.sink.ups
        line = next(r.getMessage() for r in caplog.records if "TCP MD5 is on" in r.getMessage())
        assert line.startswith(f"{B_IP}: no answer to connect (port {b.speaker.ports[0]})")
    finally:
        await a.speaker.stop()
        await b.speaker.stop()
