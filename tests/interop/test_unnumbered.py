"""Unnumbered peering: podbgp and FRR 8.4 / BIRD 2 over IPv6 link-local addresses only.

Topology (namespaces): pod ``pp`` — node ``p`` (podbgp) ══eth1══ router ``r`` (FRR or
BIRD) — pod ``rp``. The link ``eth1`` carries link-local addresses only; each side's pod
subnet (10.244.1.0/24 + fd00:244:1::/64 behind podbgp, 10.245.1.0/24 + fd00:245:1::/64
behind the router, announced as 10.245.0.0/16 + fd00:245::/32 so that BIRD's static
blackholes for them never shadow the pod subnet) is announced over the one session. Shown for each daemon:

- the session comes up with the neighbour's address found on the link — by router
  advertisements against FRR's ``neighbor eth1 interface`` (FRR's zebra must hear our
  RAs to find us), by neighbour discovery (an echo to all-nodes) against BIRD, which is
  configured with our link-local address (``neighbor fe80::… % 'eth1'``);
- extended next hop (RFC 8950) negotiated; IPv4 and IPv6 routes go both ways with the
  link-local next hop;
- podbgp installs the IPv4 route as ``via inet6 fe80::… dev eth1`` (RTA_VIA), the IPv6
  one as ``via fe80::… dev eth1``;
- IPv4 and IPv6 pings between the pods cross the link-local-only link.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podbgp.api import APIError, ControlClient
from podbgp.lab.lab import wait_control
from podbgp.lab.netns import Netns, NetnsGroup
from podbgp.lab.peers import BgpConfig, Bird, Daemon, Frr, Neighbor, Route, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.root]

POD_AS, PEER_AS = 65000, 65001
Require = Callable[[str], type[Daemon]]


@pytest.fixture
def unnumbered(netns: NetnsGroup) -> dict[str, Netns]:
    """p (podbgp) and r (the router) joined by eth1 with link-local addresses only,
    a pod namespace behind each."""
    names = {k: netns.add(k) for k in ("p", "r", "pp", "rp")}
    for k in ("p", "r"):
        names[k].sysctl("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                        "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")  # fmt: skip
    for k in ("pp", "rp"):
        names[k].sysctl("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    netns.veth(names["p"], "eth1", names["r"], "eth1")
    for node, pod, n in (("p", "pp", 244), ("r", "rp", 245)):
        netns.veth(names[node], "pod0", names[pod], "eth0")
        names[node].ip("addr", "add", f"10.{n}.1.1/24", "dev", "pod0")
        names[node].ip("addr", "add", f"fd00:{n}:1::1/64", "dev", "pod0", "nodad")
        names[pod].ip("addr", "add", f"10.{n}.1.10/24", "dev", "eth0")
        names[pod].ip("addr", "add", f"fd00:{n}:1::10/64", "dev", "eth0", "nodad")
        names[pod].ip("route", "add", "default", "via", f"10.{n}.1.1")
        names[pod].ip("-6", "route", "add", "default", "via", f"fd00:{n}:1::1")
    return names


def link_local(ns: Netns, dev: str = "eth1") -> str:
    out = ns.ip("-6", "-o", "addr", "show", "dev", dev, "scope", "link")
    return out.split("inet6 ")[1].split("/")[0]


def pod_config(tmp: Path, discovery: str, password: str = "") -> str:
    return f"""
[node]
name = "p"
asn = {POD_AS}
address = "10.244.1.1/24"

[bgp]
listen = ["::"]
hold_time = 9
keepalive = 3
connect_retry = 1

[[bgp.peer]]
interface = "eth1"
asn = {PEER_AS}
neighbor_discovery = "{discovery}"
neighbor_discovery_interval = 1
password = "{password}"

[[bgp.originate]]
prefix = "10.244.1.0/24"

[[bgp.originate]]
prefix = "fd00:244:1::/64"

[datastore]
kind = "sqlite"
path = "{tmp / "p.db"}"
create = true

[fib]
enabled = true

[api]
socket = "{tmp / "p.sock"}"
metrics = ""
"""


@contextlib.contextmanager
def podbgp(ns: Netns, tmp: Path, discovery: str, password: str = "") -> Iterator[ControlClient]:
    cfg = tmp / "p.toml"
    cfg.write_text(pod_config(tmp, discovery, password))
    log_path = tmp / "p.log"
    with open(log_path, "ab") as log:
        proc = ns.popen([sys.executable, "-m", "podbgp", "run", "--config", str(cfg)],
                        stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_control("p", tmp / "p.sock", log_path, proc, timeout=30)
        yield ControlClient(str(tmp / "p.sock"))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def established(client: ControlClient) -> dict[str, Any] | None:
    with contextlib.suppress(APIError, OSError):
        for row in client.request("show.peers"):
            if row.get("interface") == "eth1" and row.get("state") == "Established":
                return dict(row)
    return None


def kernel_route(ns: Netns, prefix: str, *family: str) -> str:
    """`ip route show PREFIX proto 80` (podbgp's), squeezed, without `nhid N`."""
    out = ns.ip(*family, "route", "show", prefix, "proto", "80")
    return " ".join(re.sub(r" nhid \d+", "", out).split())


def ping(ns: Netns, dest: str) -> bool:
    ping6 = ["-6"] if ":" in dest else []
    try:
        ns.run("ping", *ping6, "-c", "1", "-W", "1", dest, timeout=5)
        return True
    except Exception:
        return False


def check_both_ways(
    names: dict[str, Netns], client: ControlClient, router: Daemon, router_ll: str
) -> None:
    row = wait_for(lambda: established(client), 40, "podbgp session on eth1")
    assert row["neighbour"] == router_ll
    assert row["negotiated"]["extended_nexthop"] is True  # RFC 8950 both ways
    # podbgp's routes reached the router, with our link-local next hop.
    for prefix in ("10.244.1.0/24", "fd00:244:1::/64"):
        router.wait_route(prefix, timeout=30)
    # The router's routes are in podbgp's kernel, through the link-local next hop.
    v4 = wait_for(lambda: kernel_route(names["p"], "10.245.0.0/16") or None, 30,
                  "IPv4 route in p's kernel")  # fmt: skip
    assert v4 == f"10.245.0.0/16 via inet6 {router_ll} dev eth1"
    v6 = wait_for(lambda: kernel_route(names["p"], "fd00:245::/32", "-6") or None, 30,
                  "IPv6 route in p's kernel")  # fmt: skip
    assert v6.startswith(f"fd00:245::/32 via {router_ll} dev eth1")
    # Pod to pod, both families, across the link-local-only link.
    for src, dest in (("pp", "10.245.1.10"), ("rp", "10.244.1.10"), ("pp", "fd00:245:1::10")):
        try:
            wait_for(lambda: ping(names[src], dest) or None, 30, f"ping {src} -> {dest}")  # noqa: B023
        except TimeoutError as exc:
            tables = {k: names[k].ip("-6", "route") + names[k].ip("route") for k in ("p", "r")}
            raise AssertionError(f"{exc}; routes: {tables}") from None


@pytest.mark.parametrize("password", ["", "s3cret"], ids=["plain", "tcp-md5"])
def test_frr_neighbor_interface(
    unnumbered: dict[str, Netns], tmp_path: Path, require_daemon: Require, password: str
) -> None:
    """With a password the TCP MD5 key (RFC 2385) follows the neighbour found on the link."""
    require_daemon("frr")
    cfg = BgpConfig(
        asn=PEER_AS, router_id="10.245.1.1", hostname="r",
        neighbors=[Neighbor("", POD_AS, interface="eth1", families=("ipv4", "ipv6"),
                            password=password or None)],
        routes=[Route("10.245.0.0/16"), Route("fd00:245::/32")],
    )  # fmt: skip
    with (
        Frr(unnumbered["r"], tmp_path / "frr", cfg) as frr,
        podbgp(unnumbered["p"], tmp_path, "ra", password) as client,
    ):
        check_both_ways(unnumbered, client, frr, link_local(unnumbered["r"]))
        # zebra put our IPv4 route in the router's kernel over our link-local address.
        ours = link_local(unnumbered["p"])
        route = wait_for(lambda: " ".join(unnumbered["r"].ip("route", "show", "10.244.1.0/24")
                                          .split()) or None, 20, "route in r")  # fmt: skip
        assert f"via inet6 {ours} dev eth1" in route


def test_bird_link_local_neighbor(
    unnumbered: dict[str, Netns], tmp_path: Path, require_daemon: Require
) -> None:
    require_daemon("bird")
    ours = link_local(unnumbered["p"])
    cfg = BgpConfig(
        asn=PEER_AS, router_id="10.245.1.1", hostname="r", install_routes=True,
        neighbors=[Neighbor(ours, POD_AS, interface="eth1", families=("ipv4", "ipv6"))],
        routes=[Route("10.245.0.0/16"), Route("fd00:245::/32")],
    )  # fmt: skip
    with (
        Bird(unnumbered["r"], tmp_path / "bird", cfg) as bird,
        podbgp(unnumbered["p"], tmp_path, "nd") as client,
    ):
        check_both_ways(unnumbered, client, bird, link_local(unnumbered["r"]))
