"""podbgp's FIB: the node's kernel routing table, kept equal to what the pod network needs.

Parts and data flow::

    inputs (model)            plan (pure)                reconciler              kernel
    node, remote routes  ──►  KernelRoute per prefix ──► desired vs installed ──► netlink
    + pool modes, VTEPs,      neighbours, FDB entries,   dirty keys → batches     (netlink.py,
    local pods, own blocks    tunnel devices             full resync, events      or fake.py)

* `model`: typed values. Addresses are packed bytes; kernel routes and next
  hops are named tuples (cheap to build by the half million).
* `plan`: pure functions from inputs to kernel routes: ``via NODE``,
  ``via NODE dev tunl0 onlink`` (IP-in-IP, RFC 2003), ``via VTEP dev
  vxlan.podbgp onlink`` with a neighbour and an FDB entry (VXLAN, RFC 7348),
  Never/Always/CrossSubnet per next hop, ECMP as one multipath route,
  blackholes for own blocks, ``dev VETH scope link`` for local pods.
* `wire`: rtnetlink route messages packed and parsed with `struct`.
* `kernel`: the typed interface the reconciler talks to; `netlink` implements
  it on the real kernel (batched raw-socket route writes, pyroute2 for
  devices, neighbours and FDB), `fake` in memory for unit tests.
* `reconciler`: desired vs. installed, owned routes marked by `rtm_protocol`,
  foreign routes never touched, drift repaired from events and resyncs, stale
  routes adopted at start and swept after End-of-RIB (RFC 4724 §4.2).
  `Reconciler.snapshot()` is the data behind `podbgp show fib`.
* `service`: the asyncio loop that runs a reconciler; the kernel calls of a
  pass (writes, dumps) go to a worker thread, so the loop that also reads BGP
  sessions never waits for the kernel (DESIGN.md rule 8).

Remote routes arrive in bulk (`Reconciler.update_remote`, fed by
`podbgp.fibfeed` straight from the RIB's packed keys): a batch is planned once
per distinct `Reach` (next hops and pool modes) and family, not per prefix,
and a property test holds it to the prefix-by-prefix path (`set_routes`).
The tables are keyed by `model.Dest` (a length octet and the address; for
IPv4 the RIB's own key object), `Prefix` being the readable form at the edges.
The event socket drops the kernel's echoes of our own writes by the writer's
netlink port id before anything is read (`netlink`).

The FIB knows kernel routes only: never BGP, never IPAM (DESIGN.md layering).
"""
