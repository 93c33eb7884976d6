"""A removed node that comes back: its still-running pods take their addresses back.

A node is removed while it is away -- by the reaper after ``node_gone_after``
(a partition that long, a host powered off), or by ``podbgp node remove``
while its daemon was stopped -- and IPAM releases every address it held. If
the node then returns with its pods still running, each of those pods uses an
address IPAM may hand to another pod: two pods, one address.

So every removal goes through `ipam.lifecycle.release_node`, which keeps what it released
(the allocations: handle, attributes, the pod's namespace) in the lifecycle's
``released`` record, and a daemon that holds its lease again runs
`restore_pods` before anything else:

* a released address whose pod's namespace still exists (the leak check's
  test, `ipam.leaks.netns_alive`: the path still names the same namespace) is
  assigned again to its own handle with its own attributes -- the CNI DEL that
  comes for that pod later releases it as usual;
* one that another pod got meanwhile cannot be taken back: it is reported,
  with the handle that holds it now (one of the two pods must be restarted);
* one whose pod is gone, or that has no namespace attribute (the VXLAN
  device's address, which the daemon allocates afresh; an address from
  ``podbgp ipam allocate``), stays released.

The record is deleted once every entry was decided; if the store fails
half-way it stays, and the next hold tries again (assigning an address to the
handle that already holds it is a no-op).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ipam.allocator import Ipam, Released
from ipam.leaks import NETNS, NETNS_ID, netns_alive
from ipam.lifecycle import Lifecycle
from ipam.model import IpamError, TooManyConflicts

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Restored:
    """What `restore_pods` did with each released address."""

    taken_back: list[Released] = field(default_factory=list)
    lost: list[tuple[Released, str]] = field(default_factory=list)  # and why (holder, refusal)
    gone: list[Released] = field(default_factory=list)  # its pod ended while the node was away
    skipped: list[Released] = field(default_factory=list)  # no namespace recorded

    def __bool__(self) -> bool:
        return bool(self.taken_back or self.lost or self.gone or self.skipped)


async def restore_pods(
    lifecycle: Lifecycle,
    ipam: Ipam,
    name: str,
    alive: Callable[[str, str], bool] = netns_alive,
) -> Restored:
    """Take back the released addresses of `name`'s pods that still run (module docstring)."""
    records, revision = await lifecycle.released(name)
    out = Restored()
    if not revision:
        return out
    for record in records:
        try:
            r = Released.from_json(record)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("node %s: unreadable released address %r (%s); skipped", name,
                        record.get("address"), exc)  # fmt: skip
            continue
        a = r.allocation
        netns = a.attrs.get(NETNS)
        if not netns:
            out.skipped.append(r)
            continue
        if not alive(netns, a.attrs.get(NETNS_ID, "")):
            out.gone.append(r)
            continue
        try:
            await ipam.assign(r.address, name, a.handle, a.attrs)
        except TooManyConflicts:
            raise  # the store is busy: the record stays for the next hold
        except IpamError as exc:  # held by another pod; or the pool is gone, disabled, reserved
            out.lost.append((r, str(exc)))
            continue
        out.taken_back.append(r)
    for r, why in out.lost:
        log.error(
            "node %s came back after being removed: pod %s (%s) still uses %s, which cannot "
            "be taken back: %s; restart the pod",
            name, _pod(r), r.allocation.handle, r.address, why,
        )  # fmt: skip
    if out.taken_back:
        log.warning(
            "node %s came back after being removed: took back %d addresses of pods still "
            "running here (%s)",
            name, len(out.taken_back), ", ".join(str(r.address) for r in out.taken_back),
        )  # fmt: skip
    if out.gone:
        log.info("node %s came back after being removed: %d released addresses belonged to "
                 "pods that ended meanwhile; they stay free", name, len(out.gone))  # fmt: skip
    await lifecycle.drop_released(name, revision)
    return out


def _pod(r: Released) -> str:
    attrs = r.allocation.attrs
    pod = attrs.get("pod")
    return f"{attrs.get('namespace', '?')}/{pod}" if pod else attrs.get(NETNS, "?")
