"""BFD: Bidirectional Forwarding Detection for podbgp's BGP sessions.

Parts, from the wire up:

- ``bfd.packet``: the Control packet codec (RFC 5880 §4.1) with the stateless
  reception checks of §6.8.6. Pure; malformed input raises ``BfdPacketError``
  and nothing else.
- ``bfd.session``: one session in asynchronous mode, sans-IO, time injected:
  the state machine of §6.2 as a table, timer negotiation (§6.8.2-§6.8.4),
  Poll/Final (§6.5), the slow 1 s rate while not Up (§6.8.3), jitter
  (§6.8.7), the single-hop TTL 255 rule (RFC 5881 §5).
- ``bfd.runner``: the I/O. A thread with its own selector loop and UDP
  sockets (RFC 5881 §4: port 3784, source port 49152-65535, TTL 255),
  so that BFD keeps its timers while the daemon's asyncio loop is busy; state
  changes go to the loop with ``call_soon_threadsafe``.

This package knows nothing of BGP, the RIB or the kernel: the composition root
(``podbgp.bgpnode``) starts a session per BGP peer that asks for BFD and turns
a Down into a BGP Cease (RFC 9384).
"""
