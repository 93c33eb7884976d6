"""Reader of `[[service]]`: the service ranges every node announces (`podbgp.services`).

Errors carry their key path like every other section's (`service[1].cidr: …`). A range
must not overlap a pod pool: the pool's blocks are routed to the nodes that hold them,
and a service range over them would pull that traffic to every node instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from podbgp.config.reader import _REQUIRED, _community, _done, _prefix, _Table, default_of
from podbgp.config.schema import IPNetwork, Service

__all__ = ["_read_services"]


def _read_service(t: _Table) -> Service | None:
    cidr = t.get("cidr", str, _REQUIRED, _prefix)
    name = t.get("name", str, default_of(Service, "name"))
    communities = t.get_list("communities", default_of(Service, "communities"), _community)
    return _done(t, lambda: Service(cidr, name, communities))


def _read_services(
    tables: Sequence[_Table], pools: Sequence[IPNetwork]
) -> tuple[Service, ...] | None:
    services = [_read_service(t) for t in tables]
    seen: set[IPNetwork] = set()
    for s, t in zip(services, tables, strict=True):
        if s is None:
            continue
        if s.cidr in seen:
            t.error("cidr", f"{s.cidr} is listed twice")
        seen.add(s.cidr)
        for pool in pools:
            if pool.version == s.cidr.version and pool.overlaps(s.cidr):
                t.error("cidr", f"{s.cidr} overlaps pool {pool}: pod addresses are not services")
    if None in services or any(t.failed for t in tables):
        return None
    return tuple(s for s in services if s is not None)
