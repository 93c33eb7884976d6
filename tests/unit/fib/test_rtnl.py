"""`fib.rtnl`: the device, address and neighbour messages decode to what they encode."""

from __future__ import annotations

import socket

from fib import rtnl
from fib.model import pack_addr
from fib.wire import NLMSGHDR, iter_messages


def _payload(msg: bytes) -> tuple[int, int, int, int]:
    ((msg_type, flags, _seq, start, end),) = list(iter_messages(msg))
    return msg_type, flags, start, end


def test_a_vxlan_device_reads_back_as_created() -> None:
    create = rtnl.VxlanCreate("vxlan.podbgp", 4096, 4789, pack_addr("10.0.0.1"), 7,
                              "66:00:00:00:00:01", 1450)  # fmt: skip
    msg = rtnl.encode_vxlan_add(create, seq=9)
    msg_type, flags, start, end = _payload(msg)
    assert msg_type == rtnl.RTM_NEWLINK
    assert flags & rtnl.NLM_F_CREATE and flags & rtnl.NLM_F_EXCL
    link = rtnl.decode_link(msg, start, end)
    assert (link.name, link.mtu, link.mac, link.kind) == (
        "vxlan.podbgp",
        1450,
        "66:00:00:00:00:01",
        "vxlan",
    )
    assert rtnl.vxlan_info(link) == rtnl.VxlanInfo(4096, 4789, 0, 7, pack_addr("10.0.0.1"))
    # The UDP port is big-endian on the wire (IFLA_VXLAN_PORT is a __be16).
    assert rtnl.attr(rtnl.IFLA_VXLAN_PORT, b"\x12\xb5") in msg


def test_ipv6_local_and_other_kinds() -> None:
    create = rtnl.VxlanCreate("v", 1, 4789, pack_addr("fd00::1"), 2, "66:00:00:00:00:02", 1430)
    _t, _f, start, end = _payload(rtnl.encode_vxlan_add(create, 1))
    info = rtnl.vxlan_info(rtnl.decode_link(rtnl.encode_vxlan_add(create, 1), start, end))
    assert info is not None and info.local == pack_addr("fd00::1")
    msg = rtnl.encode_kind_add("tunl0", "ipip", 2)
    _t, _f, start, end = _payload(msg)
    link = rtnl.decode_link(msg, start, end)
    assert link.kind == "ipip" and rtnl.vxlan_info(link) is None


def test_link_set_changes_only_what_is_asked() -> None:
    msg = rtnl.encode_link_set(5, 1, mtu=1400)
    _t, _f, start, end = _payload(msg)
    link = rtnl.decode_link(msg, start, end)
    assert (link.index, link.mtu, link.mac, link.flags) == (5, 1400, None, 0)
    msg = rtnl.encode_link_set(5, 1, up=True)
    _t, _f, start, end = _payload(msg)
    link = rtnl.decode_link(msg, start, end)
    assert link.up and link.mtu is None
    assert rtnl.IFINFOMSG.unpack_from(msg, start)[4] == rtnl.IFF_UP  # ifi_change


def test_neighbour_and_fdb_entries_round_trip() -> None:
    msg = rtnl.encode_neigh(rtnl.RTM_NEWNEIGH, socket.AF_INET, 4, pack_addr("10.244.1.0"),
                            "0e:00:00:00:00:0a", 3)  # fmt: skip
    _t, flags, start, end = _payload(msg)
    assert flags & rtnl.NLM_F_REPLACE
    assert rtnl.decode_neigh(msg, start, end) == rtnl.NeighEntry(
        socket.AF_INET, 4, rtnl.NUD_PERMANENT, 0, pack_addr("10.244.1.0"), "0e:00:00:00:00:0a"
    )
    msg = rtnl.encode_neigh(rtnl.RTM_NEWNEIGH, rtnl.AF_BRIDGE, 4, pack_addr("10.0.0.2"),
                            "0e:00:00:00:00:0b", 3, rtnl.NTF_SELF)  # fmt: skip
    _t, _f, start, end = _payload(msg)
    entry = rtnl.decode_neigh(msg, start, end)
    assert entry is not None and entry.flags == rtnl.NTF_SELF and entry.family == rtnl.AF_BRIDGE
    gone = rtnl.encode_neigh(rtnl.RTM_DELNEIGH, socket.AF_INET, 4, pack_addr("10.1.1.1"), None, 4)
    _t, _f, start, end = _payload(gone)
    assert rtnl.decode_neigh(gone, start, end) is None  # no lladdr: not an entry to keep


def test_addresses_round_trip() -> None:
    msg = rtnl.encode_addr_add(3, pack_addr("10.244.0.0"), 1)
    _t, _f, start, end = _payload(msg)
    addr = rtnl.decode_addr(msg, start, end)
    assert addr is not None
    assert (addr.index, addr.prefixlen, addr.local, addr.address) == (
        3,
        32,
        pack_addr("10.244.0.0"),
        pack_addr("10.244.0.0"),
    )
    msg = rtnl.encode_addr_add(3, pack_addr("fd00::1"), 1)
    _t, _f, start, end = _payload(msg)
    addr = rtnl.decode_addr(msg, start, end)
    assert addr is not None and addr.prefixlen == 128 and addr.family == socket.AF_INET6


def test_attributes_mask_flags_and_stop_at_a_truncated_one() -> None:
    nested = rtnl.RTATTR.pack(8, rtnl.IFLA_LINKINFO | 0x8000) + b"abcd"
    assert rtnl.attrs(nested, 0, len(nested)) == {rtnl.IFLA_LINKINFO: b"abcd"}
    broken = rtnl.attr(1, b"ok") + rtnl.RTATTR.pack(40, 2) + b"short"
    assert rtnl.attrs(broken, 0, len(broken)) == {1: b"ok"}
    assert NLMSGHDR.size == 16
