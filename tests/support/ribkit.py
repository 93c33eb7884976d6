"""Helpers shared by the RIB unit tests: attribute sets, a small RIB, decoded output."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address

from bgp.wire import CodecContext, Family, PathAttributes
from bgp.wire.prefix import key_from_network, key_to_str, split_path_id
from bgp.wire.update import decode_update
from rib import PeerPolicy, Rib, RibSettings, SessionFacts, builtin
from rib.adapter import PeerHandles

V4 = Family.IPV4_UNICAST
V6 = Family.IPV6_UNICAST
LOCAL_AS = 65000


def attrs(
    path: tuple[int, ...] = (65001,),
    nh: str = "192.0.2.1",
    *,
    origin: int = 0,
    med: int | None = None,
    lp: int | None = None,
    communities: tuple[int, ...] = (),
    originator: str | None = None,
    clusters: tuple[str, ...] = (),
) -> PathAttributes:
    a = ip_address(nh)
    return PathAttributes(
        origin=origin,
        as_path=((2, path),) if path else (),
        next_hop=a if a.version == 4 else None,  # type: ignore[arg-type]
        mp_next_hop=(a,) if a.version == 6 else (),
        med=med,
        local_pref=lp,
        communities=communities,
        originator_id=IPv4Address(originator) if originator else None,
        cluster_list=tuple(IPv4Address(c) for c in clusters),
    )


def key(prefix: str) -> bytes:
    return key_from_network(prefix)[1]


def facts(local: str = "10.0.0.1", bgp_id: str = "10.9.9.9", **kw: object) -> SessionFacts:
    fams = kw.pop("families", (V4, V6))
    return SessionFacts(
        families=fams,  # type: ignore[arg-type]
        bgp_id=IPv4Address(bgp_id),
        local_address=ip_address(local),
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class Out:
    """What one peer was sent, decoded."""

    announced: dict[str, PathAttributes] = field(default_factory=dict)
    withdrawn: list[str] = field(default_factory=list)
    eor: list[Family] = field(default_factory=list)
    refresh: list[int] = field(default_factory=list)


def decode_out(blobs: list[bytes], add_path: bool = False) -> Out:
    # Extended next hop on: IPv4 routes with an IPv6 next hop decode (RFC 8950); a
    # session without it never gets them (the exporter's next-hop check).
    ctx = CodecContext(
        as4=True, add_path_ipv4=add_path, add_path_ipv6=add_path, extended_nexthop_ipv4=True
    )
    out = Out()
    for blob in blobs:
        i = 0
        while i < len(blob):
            ln = int.from_bytes(blob[i + 16 : i + 18], "big")
            msg = blob[i : i + ln]
            i += ln
            if msg[18] == 5:
                out.refresh.append(msg[21])
                continue
            u = decode_update(msg, ctx)
            if u.end_of_rib is not None:
                out.eor.append(u.end_of_rib)
                continue
            for fam, items in u.unreach.items():
                for n in items:
                    out.withdrawn.append(_name(fam, n, add_path))
            for fam, items in u.reach.items():
                for n in items:
                    assert u.attrs is not None
                    out.announced[_name(fam, n, add_path)] = u.attrs
    return out


def _name(fam: Family, n: bytes, add_path: bool) -> str:
    if add_path:
        pid, k = split_path_id(n)
        return f"{key_to_str(fam, k)}#{pid}"
    return key_to_str(fam, n)


def drain(rib: Rib, peer: str, add_path: bool = False) -> Out:
    blobs: list[bytes] = []
    while True:
        got = rib.pull(peer, 1 << 20)
        if not got:
            break
        blobs += got
    return decode_out(blobs, add_path)


def make_rib(handles: PeerHandles | None = None, **kw: object) -> Rib:
    """A RIB for tests; with ``handles``, calling back into them (``rib.adapter``)."""
    settings = RibSettings(local_as=LOCAL_AS, router_id=IPv4Address("10.0.0.1"), **kw)  # type: ignore[arg-type]
    if handles is None:
        return Rib(settings)
    return Rib(settings, wake=handles.wake, max_prefix_exceeded=handles.max_prefix_exceeded)


def peer(
    rib: Rib,
    address: str,
    asn: int,
    *,
    up: bool = True,
    export: str = "all",
    fx: SessionFacts | None = None,
    **kw: object,
) -> str:
    p = PeerPolicy.make(address, asn, export_policy=builtin(export), **kw)
    rib.add_peer(p)
    if up:
        rib.peer_up(p.key, fx or facts(bgp_id=address if ":" not in address else "10.9.9.9"))
    return p.key


def announce(rib: Rib, peer_key: str, prefixes: list[str], a: PathAttributes) -> None:
    fam = key_from_network(prefixes[0])[0]
    rib.receive(peer_key, fam, (), a, [key(p) for p in prefixes])
    rib.flush()


def withdraw(rib: Rib, peer_key: str, prefixes: list[str]) -> None:
    fam = key_from_network(prefixes[0])[0]
    rib.receive(peer_key, fam, [key(p) for p in prefixes])
    rib.flush()
