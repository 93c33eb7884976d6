"""``podbgp explain ADDRESS|PREFIX``: one answer, a reason at each step, from IPAM to the kernel.

The chain a pod route follows, in order, each step with what this node knows
and why it stands as it does:

1. ``ipam``: the pool and block the address is in, which node holds the
   block's affinity and whether it is confirmed or still pending, who holds
   the address (``ipam.Ipam.show``, ``Ipam.affinities``);
2. ``origin``: whether this node originates it and how — its own confirmed
   block as an aggregate, a borrowed address as a host route — or why not
   (another node's block, a pending affinity, a pool with
   ``disable_bgp_export``), from the node's announcement (``ipam.announce``);
3. ``rib``: the prefix's paths with the decision step that chose or rejected
   each (``rib.show.routes``, the reasons ``rib.bestpath`` records);
4. ``peers``: per peer, where the best path stops on its way out and the
   policy rule that decided (``rib.explain.export_verdicts``), what its
   Adj-RIB-Out holds, and what it sent us before and after import policy;
5. ``kernel``: the planned and the installed route and how they compare,
   with the last time someone else changed or deleted it
   (``fib.reconciler.Reconciler.route_state``).

``breaks`` lists, in chain order, every place the chain stops; empty when the
prefix is originated or learned, chosen, sent where it should be and
installed. The JSON shape is documented in docs/control-api.md.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from bgp.wire.constants import Family
from bgp.wire.prefix import key_from_network
from fib.model import Prefix
from fib.reconciler import Reconciler
from ipam import Announcement, Ipam
from rib import show
from rib.core import Rib
from rib.explain import ExportStep, export_verdicts, import_verdict

__all__ = ["Parts", "explain"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Parts:
    """What ``explain`` reads; each part None where this node runs without it."""

    node: str
    ipam: Ipam | None
    announced: Announcement | None
    rib: Rib | None
    reconciler: Reconciler | None
    ipam_fault: str | None = None  # the datastore's trouble, when it has one


def parse_target(
    text: str,
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, IPNetwork | None]:
    """An address (``prefix`` None) or a prefix (its network address and the prefix).

    Raises ValueError with a one-line reason."""
    if "/" in text:
        net = ipaddress.ip_network(text, strict=False)
        return net.network_address, net
    return ipaddress.ip_address(text), None


async def _ipam(parts: Parts, address: Any) -> dict[str, Any]:
    if parts.ipam is None:
        return {"known": False, "why": "this node has no datastore"}
    if parts.ipam_fault is not None:
        return {"known": False, "why": f"the datastore is unusable: {parts.ipam_fault}"}
    info = await parts.ipam.show(address)
    out: dict[str, Any] = {"known": True, **info.to_json()}
    if info.pool is None:
        out["why"] = "in no pool of this cluster"
        return out
    out["pool"] = {
        "cidr": str(info.pool.cidr),
        "block_size": info.pool.block_size,
        "ipip_mode": info.pool.ipip_mode,
        "vxlan_mode": info.pool.vxlan_mode,
        "nat_outgoing": info.pool.nat_outgoing,
        "disabled": info.pool.disabled,
        "disable_bgp_export": info.pool.disable_bgp_export,
    }
    if info.block is None:
        out["why"] = "no node has claimed the block this address is in"
        return out
    state = None
    if info.affinity is not None:
        state = (await parts.ipam.affinities()).get((info.affinity, info.block))
    out["affinity_state"] = state
    holder = (
        "nobody"
        if info.allocation is None
        else f"{info.allocation.handle!r} on node {info.allocation.node}"
    )
    owner = info.affinity or "no node (orphaned)"
    out["why"] = (
        f"block {info.block} of pool {info.pool.cidr}, affine to {owner} ({state or 'no affinity'}); address held by {holder}"
    )
    return out


def _covers(net: IPNetwork, address: IPAddress, prefix: IPNetwork | None) -> bool:
    """Does ``net`` cover the queried prefix (or, for an address query, the address)?"""
    if prefix is None:
        return address in net
    return (
        prefix.version == net.version
        and int(prefix.network_address) & int(net.netmask) == int(net.network_address)
        and prefix.prefixlen >= net.prefixlen
    )


def _origin(
    parts: Parts, address: Any, prefix: IPNetwork | None, ipam_step: dict[str, Any]
) -> dict[str, Any]:
    ann = parts.announced
    if ann is None:
        return {"originated": False, "why": "this node announces nothing from IPAM"}
    covering = sorted(
        (p for p in ann.prefixes if _covers(p, address, prefix)), key=lambda p: -p.prefixlen
    )
    if covering:
        p = covering[0]
        how = (
            "host route (borrowed address)"
            if p.prefixlen == p.max_prefixlen
            else "aggregate of own blocks"
        )
        return {"originated": True, "prefix": str(p), "how": how,
                "why": f"this node originates {p} as the {how}"}  # fmt: skip
    block = ipam_step.get("block")
    affinity = ipam_step.get("affinity")
    pool = ipam_step.get("pool") or {}
    if block is not None and affinity == parts.node:
        if ipam_step.get("affinity_state") != "confirmed":
            why = f"block {block} is affine to this node but the affinity is still pending: not announced until confirmed"
        elif pool.get("disable_bgp_export"):
            why = f"pool {pool.get('cidr')} has disable_bgp_export = true"
        else:
            why = f"block {block} is this node's, yet not in its announcement (not refreshed yet?)"
        return {"originated": False, "why": why}
    if block is not None and affinity and ipam_step.get("affinity_state") != "confirmed":
        why = (f"node {affinity} claimed block {block} but its affinity is "
               f"{ipam_step.get('affinity_state') or 'missing'}: nobody announces it until it is confirmed")  # fmt: skip
        return {"originated": False, "why": why}
    if block is not None and affinity:
        return {
            "originated": False,
            "why": f"block {block} belongs to node {affinity}: it originates it",
        }
    return {"originated": False, "why": "no block of this node covers it"}


def _rib(parts: Parts, target: str) -> tuple[dict[str, Any], tuple[Family, bytes] | None]:
    rib = parts.rib
    if rib is None:
        return {"known": False, "why": "BGP is disabled on this node"}, None
    entries = show.routes(rib, prefix=target)
    if not entries:
        return {"known": True, "prefix": None, "why": "no path to it in the RIB"}, None
    e = entries[0]
    fam, key = key_from_network(e["prefix"])
    best = next((p for p in e["paths"] if p["best"]), None)
    if best is None:
        why = "no usable path: " + "; ".join(
            f"{p.get('peer') or 'local'}: {p['reason']}" for p in e["paths"]
        )
    else:
        src = best.get("peer") or "this node"
        why = f"best path from {src}, chosen at step: {best['reason']}"
    return {"known": True, **e, "why": why}, (fam, key)


def _peers(parts: Parts, fk: tuple[Family, bytes] | None) -> list[dict[str, Any]]:
    rib = parts.rib
    if rib is None or fk is None:
        return []
    fam, key = fk
    rows = []
    for v in export_verdicts(rib, fam, key):
        row = v.to_json()
        row["received"] = show.received(rib, v.peer, prefix=show_prefix(fam, key))
        row["received_pre_policy"] = import_verdict(rib, v.peer, fam, key)
        rows.append(row)
    return rows


def show_prefix(family: Family, key: bytes) -> str:
    from bgp.wire.prefix import key_to_str

    return key_to_str(family, key)


def _kernel(parts: Parts, prefix: str | None) -> dict[str, Any]:
    if parts.reconciler is None:
        return {"known": False, "why": "the FIB is disabled on this node"}
    if prefix is None:
        return {"known": False, "why": "no prefix to look up"}
    st = parts.reconciler.route_state(Prefix.parse(prefix))
    why = {
        "ok": "installed as planned",
        "absent": "nothing planned and nothing installed",
        "missing": "planned but not in the kernel",
        "differs": "the kernel's route differs from the plan",
        "conflict": "a route podbgp does not own holds the slot; podbgp never touches it",
        "stale": "left from before a restart, removed once converged",
        "extra": "installed by podbgp but no longer planned",
    }.get(st["state"], st["state"])
    if st["state"] == "absent" and parts.announced is not None:
        why += " (local blocks have blackhole routes; remote ones need a best path)"
    return {"known": True, "prefix": prefix, **st, "why": why}


def _breaks(steps: dict[str, Any]) -> list[str]:
    out = []
    rib, origin, kernel = steps["rib"], steps["origin"], steps["kernel"]
    if steps["ipam"].get("known") and steps["ipam"].get("pool") is None:
        out.append("ipam: " + steps["ipam"]["why"])
    if not origin["originated"] and rib.get("prefix") is None:
        out.append("nobody announces it to this node: " + origin["why"])
    elif (
        rib.get("known")
        and rib.get("prefix") is not None
        and not any(p["best"] for p in rib["paths"])
    ):
        out.append("rib: " + rib["why"])
    for p in steps["peers"]:
        step = ExportStep(p["step"])
        if step in (ExportStep.POLICY, ExportStep.NEXT_HOP, ExportStep.SESSION_DOWN):
            out.append(
                f"not sent to {p['peer']}: {p['why']}"
                + (f" ({p['policy']['policy']}: {p['policy']['why']})" if p["policy"] else "")
            )
        elif step is ExportStep.SENT and not p["advertised"]:
            out.append(f"{p['peer']}: due but not sent yet")
    if kernel.get("known") and kernel.get("state") not in ("ok", "absent"):
        out.append(f"kernel: {kernel['why']}")
    if (
        kernel.get("known")
        and kernel.get("state") == "absent"
        and rib.get("prefix") is not None
        and not origin["originated"]
    ):
        out.append("kernel: a best path exists but no route is planned")
    return out


async def explain(parts: Parts, target: str) -> dict[str, Any]:
    """The whole chain for ``target`` (an address or a prefix); see the module docstring."""
    address, prefix = parse_target(target)
    steps: dict[str, Any] = {"query": target, "node": parts.node}
    steps["ipam"] = await _ipam(parts, address)
    steps["origin"] = _origin(parts, address, prefix, steps["ipam"])
    steps["rib"], fk = _rib(parts, target)
    steps["peers"] = _peers(parts, fk)
    kprefix = (
        steps["rib"].get("prefix") or steps["origin"].get("prefix") or steps["ipam"].get("block")
    )
    steps["kernel"] = _kernel(parts, kprefix)
    steps["breaks"] = _breaks(steps)
    return steps
