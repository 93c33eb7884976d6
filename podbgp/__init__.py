"""podbgp: the application — config, daemon, CLI, control API, metrics and lab.

This package is the composition root (DESIGN.md): it reads the config, builds
the four parts (`bgp`, `rib`, `fib`, `ipam`), connects their events, and owns
the command line, the control socket and the metrics endpoint. Nothing else
wires parts together.
"""
