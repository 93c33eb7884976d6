"""bgp — podbgp's BGP speaker.

``bgp.wire`` is the pure codec (bytes ⇄ typed messages, RFC 7606 error
handling, no I/O); ``bgp.errors`` holds the NOTIFICATION-shaped errors it
raises. The sans-IO session state machine and the asyncio shell that owns
sockets and timers sit on top of it (see DESIGN.md, "Layering").
"""
