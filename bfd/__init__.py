"""BFD: Bidirectional Forwarding Detection for podbgp's BGP sessions.

Parts, from the wire up:

- ``bfd.packet``: the Control packet codec (RFC 5880 §4.1) with the stateless
  reception checks of §6.8.6. Pure; malformed input raises ``BfdPacketError``
  and nothing else.
- ``bfd.session``: one session in asynchronous mode, sans-IO, time injected:
  the state machine of §6.2 as a table, timer negotiation (§6.8.2-§6.8.4),
  Poll/Final (§6.5), the slow 1 s rate while not Up (§6.8.3), jitter
  (§6.8.7), the single-hop TTL 255 rule (RFC 5881 §5).
- ``bfd.runner``: the I/O. A selector loop in a thread, with its own UDP
  sockets (RFC 5881 §4: port 3784, source port 49152-65535, TTL 255, the
  peer's source address checked).
- ``bfd.process``: the runner in a helper process, so that BFD keeps its
  timers while the daemon ingests a full table (a thread inside the daemon
  flapped: the daemon's main thread held the GIL past the detection time).
  State changes come back over a socketpair and reach the asyncio loop with
  ``call_soon_threadsafe``.

This package knows nothing of BGP, the RIB or the kernel: the composition root
(``podbgp.bgpnode``) starts a session per BGP peer that asks for BFD and turns
a Down into a BGP Cease (RFC 9384).
"""
