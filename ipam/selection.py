"""Which pools may serve one request: pure, so the rules are tested as tables.

A request is for an IP version and a use (`PoolUse`: a pod's address, or a node's
tunnel address), from a node with labels, optionally for a pod in a namespace,
optionally naming its pools. `candidate_pools` answers with the pools to try, in
configuration order:

* every candidate is enabled, of the version, allows the use, and its
  ``node_selector`` selects the node;
* explicitly named pools (the CNI plugin's ``IPV4_POOLS``, Calico's
  ``ipv4_pools``) are all used, in the order named, and each must also pass the
  checks above and its ``namespace_selector``: a named pool that cannot serve
  the request is an error naming the pool and why (`PoolNotUsable`), never a
  silent fallback to another pool;
* otherwise the pools whose ``namespace_selector`` is more than ``all()`` and
  selects the namespace are used if there are any (a pool made for a namespace
  is that namespace's), else the pools with no namespace selector;
* and of those, the pools dedicated to the request's use (``allowed_uses``
  naming it alone) if there are any: with a tunnel-only pool configured, tunnel
  addresses never come from a pool that also serves pods, whatever blocks the
  node already holds.

Namespace labels: without Kubernetes there is no store of namespace labels, so a
namespace carries the one label Calico gives every namespace,
``projectcalico.org/name = NAME`` (`namespace_labels`). A request with no
namespace has no labels, so only unrestricted pools serve it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ipam.model import IpamConfig, Pool, PoolNotUsable, PoolUse, selector_matches

NAMESPACE_NAME_LABEL = "projectcalico.org/name"
_ALL = ("", "all()")


def namespace_labels(namespace: str) -> dict[str, str]:
    """The labels a namespace is selected by (empty for no namespace)."""
    return {NAMESPACE_NAME_LABEL: namespace} if namespace else {}


@dataclass(frozen=True, slots=True)
class PoolRequest:
    """What an allocation asks of the pools (besides the node, known to the allocator)."""

    version: int = 4
    use: PoolUse = PoolUse.WORKLOAD
    namespace: Mapping[str, str] = field(default_factory=dict)  # the namespace's labels
    explicit: tuple[str, ...] = ()  # pool CIDRs named by the request, in order

    def describe(self) -> str:
        ns = self.namespace.get(NAMESPACE_NAME_LABEL)
        where = f" for namespace {ns}" if ns else ""
        return f"{self.use} address{where}"


def _unrestricted(selector: str) -> bool:
    return selector.strip() in _ALL


def _why_not(pool: Pool, request: PoolRequest, node: str, node_labels: Mapping[str, str]) -> str:
    """Why `pool` cannot serve `request` on `node` ("" if it can)."""
    if pool.version != request.version:
        return f"is IPv{pool.version}, the request is for IPv{request.version}"
    if pool.disabled:
        return "is disabled"
    if request.use not in pool.allowed_uses:
        uses = ", ".join(str(u) for u in pool.allowed_uses)
        return f"allows {uses}, not {request.use}"
    if not selector_matches(pool.node_selector, node_labels):
        return f"does not select node {node} (node_selector {pool.node_selector})"
    if not selector_matches(pool.namespace_selector, request.namespace):
        ns = request.namespace.get(NAMESPACE_NAME_LABEL, "(none)")
        return f"does not select namespace {ns} (namespace_selector {pool.namespace_selector})"
    return ""


def candidate_pools(
    config: IpamConfig, request: PoolRequest, node: str, node_labels: Mapping[str, str]
) -> list[Pool]:
    """The pools to allocate from, best first; `PoolNotUsable` for a named pool that
    cannot serve. An empty list means no pool serves the request (the caller says so)."""
    if request.explicit:
        return _explicit(config, request, node, node_labels)
    usable = [p for p in config.pools if not _why_not(p, request, node, node_labels)]
    scoped = [p for p in usable if not _unrestricted(p.namespace_selector)]
    pools = scoped or [p for p in usable if _unrestricted(p.namespace_selector)]
    dedicated = [p for p in pools if p.allowed_uses == (request.use,)]
    return dedicated or pools


def _explicit(
    config: IpamConfig, request: PoolRequest, node: str, node_labels: Mapping[str, str]
) -> list[Pool]:
    by_name = {str(p.cidr): p for p in config.pools}
    out: list[Pool] = []
    for name in request.explicit:
        pool = by_name.get(name)
        if pool is None:
            known = ", ".join(by_name) or "none"
            raise PoolNotUsable(f"pool {name} does not exist (pools: {known})")
        why = _why_not(pool, request, node, node_labels)
        if why:
            raise PoolNotUsable(f"pool {name} {why}")
        if pool not in out:
            out.append(pool)
    return out


def needs_node_labels(config: IpamConfig, pools: Sequence[Pool] | None = None) -> bool:
    """Whether any pool's node selector looks at labels (else the registry need not be read)."""
    return any(not _unrestricted(p.node_selector) for p in pools or config.pools)
