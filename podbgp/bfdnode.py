"""BFD for the node's BGP peers: which peers get a session, and what a Down does.

``BfdPeers`` owns one ``bfd.process.BfdProcess``, the helper process that
runs the sessions away from the daemon's GIL (started with the first session,
so a node without BFD never binds UDP 3784 nor spawns it) and keeps one BFD
session per BGP peer whose options say ``bfd = true``: static and mesh peers
from the moment they are configured, dynamic peers of a listen range from
their first Established (their address is unknown before). A session is
removed, with an AdminDown, when its peer goes.

Its reader thread reports state changes through ``call_soon_threadsafe``;
on the loop, a move from Up to Down calls ``on_down(key)``, and
``podbgp.bgpnode`` takes the BGP session down with Cease / BFD Down
(RFC 9384 §2) and no graceful-restart retention (the forwarding path failed;
FRR's bgpd likewise stops the peer and flushes on a BFD Down unless the
C bit says only the control plane went, RFC 5882 §4.3.1). A Down caused by the
remote's AdminDown is not a failure (RFC 5882 §3.2) and leaves BGP alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bfd.packet import State
from bfd.process import BfdProcess
from bfd.runner import CONTROL_PORT, SessionSpec
from bfd.session import BfdSettings, StateChanged
from podbgp.config import Peer, PeerOptions

log = logging.getLogger("podbgp.bfd")


def bfd_settings(options: PeerOptions) -> BfdSettings:
    interval = options.bfd_interval_ms / 1000
    return BfdSettings(
        desired_min_tx=interval, required_min_rx=interval, detect_mult=options.bfd_multiplier
    )


class BfdPeers:
    """BFD sessions keyed by BGP peer key (the normalised address); see the module docstring."""

    def __init__(self, on_down: Callable[[str, StateChanged], None], port: int = CONTROL_PORT):
        self.on_down = on_down
        self.port = port
        self.runner: BfdProcess | None = None
        self.specs: dict[str, SessionSpec] = {}
        self.failed: str | None = None

    def set_peer(self, key: str, options: PeerOptions | None, local: str | None = None) -> None:
        """Run a session with ``key`` if ``options`` ask for BFD; stop it otherwise.
        Not on an unnumbered peer (``interface``): BFD here runs between addresses, and
        the neighbour's link-local one is found only later (docs/configuration.md)."""
        if options is None or not options.bfd or (isinstance(options, Peer) and options.interface):
            if self.specs.pop(key, None) is not None and self.runner is not None:
                self.runner.remove(key)
            return
        spec = SessionSpec(key, key, bfd_settings(options), local, self.port)
        if self.specs.get(key) == spec:
            return
        runner = self._runner()
        if runner is not None:
            self.specs[key] = spec
            runner.add(spec)

    def stats(self, key: str) -> dict[str, Any] | None:
        if self.runner is None or key not in self.specs:
            return None
        return self.runner.stats().get(key, {"state": "down", "flaps": 0, "up": False})

    def stop(self) -> None:
        """AdminDown to every peer (RFC 5880 §6.8.16), so they do not see a path failure."""
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
        self.specs.clear()

    def _runner(self) -> BfdProcess | None:
        if self.runner is None and self.failed is None:
            loop = asyncio.get_running_loop()

            def notify(key: str, ev: StateChanged) -> None:  # runs in the reader thread
                with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                    loop.call_soon_threadsafe(self._changed, key, ev)

            runner = BfdProcess(notify, listen_port=self.port)
            try:
                runner.start()
            except OSError as exc:
                self.failed = f"cannot run BFD on UDP {self.port}: {exc}"
                log.error("bfd: %s; BFD is off", self.failed)
                return None
            self.runner = runner
        return self.runner

    def _changed(self, key: str, ev: StateChanged) -> None:
        if key not in self.specs:
            return
        log.info("bfd %s: %s -> %s (%s)", key, ev.old.name, ev.new.name, ev.diag.name.lower())
        if ev.old is State.UP and ev.new is State.DOWN and ev.remote_state is not State.ADMIN_DOWN:
            log.warning("bfd %s: down (%s)", key, ev.diag.name.lower())
            self.on_down(key, ev)
