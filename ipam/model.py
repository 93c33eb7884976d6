"""IPAM's configuration, records, key layout and errors.

Key layout in the store (every IPAM key under one prefix, so one watch sees
all of it)::

    /podbgp/v1/ipam/blocks/<cidr>              a Block (JSON): affinity, allocations
    /podbgp/v1/ipam/affinity/<node>/<cidr>     {"state": "pending"|"confirmed", "ts"}
    /podbgp/v1/ipam/handles/<handle>           {"addrs": {address: {"block", "seq"}}}
    /podbgp/v1/nodes/<node>                    the node registry (ipam.nodes)

``<cidr>`` is written with "-" for "/" (``10.244.3.0-26``); node names and
handles are percent-encoded so any string is a valid single key segment.

A block's owner is written twice, in the block (``affinity``) and in the
affinity key, because a claim is three CAS steps (affinity pending, block
created, affinity confirmed): a crash between them leaves a *pending*
affinity that the next allocation on that node (or `gc`) settles.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

from ipam.block import BlockError, IPNetwork, check_pool, default_block_size

ROOT = "/podbgp/v1/"
BLOCKS = ROOT + "ipam/blocks/"
AFFINITY = ROOT + "ipam/affinity/"
HANDLES = ROOT + "ipam/handles/"
IPAM = ROOT + "ipam/"

MODES = ("Never", "Always", "CrossSubnet")


class IpamError(Exception):
    """Base class: every IPAM failure says what went wrong in its message."""


class ConfigError(IpamError):
    """A pool or [ipam] setting is invalid; the message names the key's path."""


class Exhausted(IpamError):
    """No address could be handed out; the message says what ran out."""


class AddressInUse(IpamError):
    """A specific address was asked for and someone else holds it."""


class NotInPool(IpamError):
    """The address is in no configured pool."""


class Reserved(IpamError):
    """A specific address was asked for and an `[[ipam.reservation]]` keeps it out of use."""


class PoolNotUsable(IpamError):
    """An explicitly requested pool does not exist, is disabled or may not serve the request."""


class TooManyConflicts(IpamError):
    """Compare-and-swap kept failing (others kept writing first); nothing was changed."""


class NodeRemoved(IpamError):
    """The node was removed from the cluster and has not come back (no registry record):
    it gets no new block and borrows nothing; its daemon rejoins when it starts again."""


class RemovalSuperseded(IpamError):
    """A node's removal stopped half-way: the node came back (registered or leased again).

    ``released`` holds what it had released by then (`ipam.allocator.Released` records)."""

    def __init__(self, message: str, released: list[Any] | None = None) -> None:
        super().__init__(message)
        self.released = list(released or [])


# -- keys -------------------------------------------------------------------------
def cidr_key(cidr: IPNetwork) -> str:
    return str(cidr).replace("/", "-")


def cidr_of_key(segment: str) -> IPNetwork:
    return ipaddress.ip_network(segment.replace("-", "/"))


def block_key(cidr: IPNetwork) -> str:
    return BLOCKS + cidr_key(cidr)


def affinity_prefix(node: str) -> str:
    return AFFINITY + quote(node, safe="") + "/"


def affinity_key(node: str, cidr: IPNetwork) -> str:
    return affinity_prefix(node) + cidr_key(cidr)


def parse_affinity_key(key: str) -> tuple[str, IPNetwork]:
    node, _, cidr = key[len(AFFINITY) :].partition("/")
    return unquote(node), cidr_of_key(cidr)


def handle_key(handle: str) -> str:
    return HANDLES + quote(handle, safe="")


def handle_of_key(key: str) -> str:
    return unquote(key[len(HANDLES) :])


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


# -- node selectors -----------------------------------------------------------------
_TERM = re.compile(
    r"""^\s*(?:
        (?P<all>all\(\))
      | (?P<neg>!)?\s*has\(\s*(?P<has>[\w./-]+)\s*\)
      | (?P<key>[\w./-]+)\s*(?P<op>==|!=)\s*(?P<q>["'])(?P<val>[^"']*)(?P=q)
    )\s*$""",
    re.X,
)


def check_selector(selector: str) -> None:
    """Raise ValueError unless `selector` is a supported Calico-style node selector.

    Supported: ``all()``, ``has(k)``, ``!has(k)``, ``k == "v"``, ``k != "v"``,
    joined with ``&&``.
    """
    for term in selector.split("&&") if selector.strip() else []:
        if not _TERM.match(term):
            raise ValueError(f"unsupported selector term {term.strip()!r}")


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether a node with `labels` is selected (an empty selector selects all)."""
    for term in selector.split("&&") if selector.strip() else []:
        m = _TERM.match(term)
        if m is None:
            return False
        if m["all"]:
            continue
        if m["has"]:
            if (m["has"] in labels) == bool(m["neg"]):
                return False
            continue
        equal = labels.get(m["key"]) == m["val"]
        if equal != (m["op"] == "=="):
            return False
    return True


# -- configuration ------------------------------------------------------------------
class PoolUse(StrEnum):
    """What a pool's addresses may be given to (Calico's IPPool ``allowedUses``)."""

    WORKLOAD = "workload"  # pods (the CNI plugin, `podbgp ipam allocate`)
    TUNNEL = "tunnel"  # a node's own tunnel device (the VXLAN VTEP address)


@dataclass(frozen=True, slots=True)
class Pool:
    """One ``[[ipam.pool]]`` (CONFIG.md)."""

    cidr: IPNetwork
    block_size: int
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool = False
    node_selector: str = "all()"
    namespace_selector: str = "all()"
    allowed_uses: tuple[PoolUse, ...] = (PoolUse.WORKLOAD, PoolUse.TUNNEL)  # as Calico

    @property
    def version(self) -> int:
        return self.cidr.version

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str = "ipam.pool[0]") -> Pool:
        """Validate one pool table; errors name the key's path."""
        known = {f for f in cls.__dataclass_fields__}
        for key in raw:
            if key not in known:
                raise ConfigError(f"{where}.{key}: unknown key")
        if "cidr" not in raw:
            raise ConfigError(f"{where}.cidr: required")
        try:
            cidr = ipaddress.ip_network(str(raw["cidr"]))
        except ValueError as e:
            raise ConfigError(f"{where}.cidr: {e}") from e
        # As podbgp.config: a pool smaller than the default block is one block.
        block_size = raw.get("block_size", max(default_block_size(cidr.version), cidr.prefixlen))
        if not isinstance(block_size, int) or isinstance(block_size, bool):
            raise ConfigError(f"{where}.block_size: {block_size!r} is not an integer")
        try:
            check_pool(cidr, block_size)
        except BlockError as e:
            raise ConfigError(f"{where}.block_size: {e}") from e
        kw: dict[str, Any] = {}
        for key in ("ipip_mode", "vxlan_mode"):
            val = raw.get(key, "Never")
            if val not in MODES:
                raise ConfigError(f"{where}.{key}: {val!r} is not one of {', '.join(MODES)}")
            kw[key] = val
        if kw["ipip_mode"] != "Never" and kw["vxlan_mode"] != "Never":
            raise ConfigError(f"{where}: ipip_mode and vxlan_mode cannot both be on")
        for key in ("nat_outgoing", "disabled", "disable_bgp_export"):
            val = raw.get(key, False)
            if not isinstance(val, bool):
                raise ConfigError(f"{where}.{key}: {val!r} is not true or false")
            kw[key] = val
        for key in ("node_selector", "namespace_selector"):
            selector = str(raw.get(key, "all()"))
            try:
                check_selector(selector)
            except ValueError as e:
                raise ConfigError(f"{where}.{key}: {e}") from e
            kw[key] = selector
        kw["allowed_uses"] = _parse_uses(raw.get("allowed_uses", ["workload", "tunnel"]), where)
        return cls(cidr=cidr, block_size=block_size, **kw)

    def to_json(self) -> dict[str, Any]:
        return {
            "cidr": str(self.cidr),
            "block_size": self.block_size,
            "ipip_mode": self.ipip_mode,
            "vxlan_mode": self.vxlan_mode,
            "nat_outgoing": self.nat_outgoing,
            "disabled": self.disabled,
            "disable_bgp_export": self.disable_bgp_export,
            "node_selector": self.node_selector,
            "namespace_selector": self.namespace_selector,
            "allowed_uses": [str(u) for u in self.allowed_uses],
        }


def _parse_uses(raw: object, where: str) -> tuple[PoolUse, ...]:
    names = " | ".join(u.value for u in PoolUse)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.allowed_uses: must be a non-empty list of {names}")
    try:
        uses = tuple(PoolUse(u) for u in raw)
    except ValueError:
        raise ConfigError(f"{where}.allowed_uses: {raw!r} lists something not {names}") from None
    if len(set(uses)) != len(uses):
        raise ConfigError(f"{where}.allowed_uses: {raw!r} lists a use twice")
    return uses


@dataclass(frozen=True, slots=True)
class Reservation:
    """Addresses never handed out (one CIDR of an ``[[ipam.reservation]]``)."""

    cidr: IPNetwork
    name: str = ""

    def __str__(self) -> str:
        return f"{self.cidr} (reservation {self.name})" if self.name else str(self.cidr)


@dataclass(frozen=True, slots=True)
class IpamConfig:
    """``[ipam]`` and its pools."""

    pools: tuple[Pool, ...] = ()
    strict_affinity: bool = False
    max_blocks_per_node: int = 20
    reservations: tuple[Reservation, ...] = ()

    def __post_init__(self) -> None:
        for i, a in enumerate(self.pools):
            for b in self.pools[i + 1 :]:
                if a.cidr.version == b.cidr.version and a.cidr.overlaps(b.cidr):
                    raise ConfigError(f"ipam.pool: {a.cidr} overlaps {b.cidr}")
        if self.max_blocks_per_node < 1:
            raise ConfigError(f"ipam.max_blocks_per_node: {self.max_blocks_per_node} must be >= 1")

    @classmethod
    def parse(cls, ipam: Mapping[str, Any]) -> IpamConfig:
        """From the ``[ipam]`` table (with its ``pool`` array) of a config file."""
        for key in ipam:
            if key not in ("strict_affinity", "max_blocks_per_node", "pool"):
                raise ConfigError(f"ipam.{key}: unknown key")
        strict = ipam.get("strict_affinity", False)
        if not isinstance(strict, bool):
            raise ConfigError(f"ipam.strict_affinity: {strict!r} is not true or false")
        mbn = ipam.get("max_blocks_per_node", 20)
        if not isinstance(mbn, int) or isinstance(mbn, bool):
            raise ConfigError(f"ipam.max_blocks_per_node: {mbn!r} is not an integer")
        raw_pools = ipam.get("pool", [])
        if not isinstance(raw_pools, list):
            raise ConfigError("ipam.pool: must be an array of tables ([[ipam.pool]])")
        pools = tuple(Pool.parse(p, f"ipam.pool[{i}]") for i, p in enumerate(raw_pools))
        return cls(pools=pools, strict_affinity=strict, max_blocks_per_node=mbn)

    def pool_of(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Pool | None:
        for p in self.pools:
            if address.version == p.version and address in p.cidr:
                return p
        return None

    def reservation_of(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> Reservation | None:
        """The reservation that keeps `address` out of use, or None."""
        for r in self.reservations:
            if address.version == r.cidr.version and address in r.cidr:
                return r
        return None

    def reserved_in(self, block: IPNetwork) -> frozenset[int]:
        """The ordinals (offsets from the block's first address) reservations cover."""
        first, size = int(block.network_address), block.num_addresses
        out: set[int] = set()
        for r in self.reservations:
            if r.cidr.version != block.version or not r.cidr.overlaps(block):
                continue
            lo = max(int(r.cidr.network_address), first) - first
            hi = min(int(r.cidr.broadcast_address), first + size - 1) - first
            out.update(range(lo, hi + 1))
        return frozenset(out)

    def pool_of_block(self, cidr: IPNetwork) -> Pool | None:
        for p in self.pools:
            if cidr.version == p.version and cidr.subnet_of(p.cidr):  # type: ignore[arg-type]
                return p
        return None
