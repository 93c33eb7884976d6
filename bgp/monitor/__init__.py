"""Monitoring formats: BMP (RFC 7854) and MRT (RFC 6396), as pure encoders.

Both are sans-IO: typed values in, bytes out, with no sockets, files or
clocks (every timestamp is an argument). They depend only on ``bgp.wire``,
whose messages and attribute encoder they wrap:

- ``bgp.monitor.bmp``: the BMP messages a monitored router sends to a
  station: Initiation, Peer Up, Peer Down, Route Monitoring (pre- and
  post-policy, and the Loc-RIB instance of RFC 9069), Statistics Report and
  Termination (RFC 7854 §4).
- ``bgp.monitor.mrt``: MRT records: TABLE_DUMP_V2 (PEER_INDEX_TABLE and the
  unicast RIB subtypes, RFC 6396 §4.3, with the ADD-PATH subtypes of RFC
  8050) and BGP4MP_MESSAGE_AS4 (RFC 6396 §4.4.3, RFC 8050 §3).

The composition root (``podbgp.bmp``, ``podbgp.mrt``) feeds them from the
speaker's events and the RIB's read side, and owns the I/O.
"""
