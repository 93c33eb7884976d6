"""Runs of received UPDATEs, decoded in one pass (sans-IO, no state of its own).

In Established the session core (``bgp.fsm``) hands each run of whole UPDATE
frames that one read produced (``Framer.update_frames``) to
``decode_update_run`` instead of dispatching Event 27 once per message. The
outcome is what one dispatch per message would give (RFC 4271 §8.2.2
Established), so the FSM only adds the Hold timer and the counters:

- consecutive UPDATEs become one ``UpdatesReceived`` event, in arrival order;
- an End-of-RIB marker (RFC 4724 §2) becomes an ``EndOfRib`` event in its
  place, closing the ``UpdatesReceived`` before it;
- a malformed UPDATE (Event 28) stops the run: the events of the UPDATEs
  before it are returned, with its error, for the FSM to end the session.

Consecutive UPDATEs that only withdraw (no attributes, no RFC 7606 finding)
are merged into one ``Update``: withdrawals commute, so the consumer's work is
per run of withdrawals instead of per message. A full table is withdrawn in
some 140,000 small UPDATEs; those that are plain IPv4 withdrawals — the
codec's own ``withdraws_only`` framing test — are parsed together by
``plain_withdrawals`` without an ``Update`` being built for each. Everything
else goes through ``decode_update``, the reference decoder.

This is the receive side's one fast path outside the codec; it is kept out
of the state machine, which only needs to know how many UPDATEs were taken
and whether one was malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgp.errors import BGPError
from bgp.events import EndOfRib, UpdatesReceived
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.update import Update, decode_update, plain_withdrawals, withdraws_only

__all__ = ["UpdateRun", "decode_update_run"]

_V4 = Family.IPV4_UNICAST
_V6 = Family.IPV6_UNICAST


@dataclass(frozen=True, slots=True)
class UpdateRun:
    """What a run of UPDATE frames gave.

    ``events``: ``UpdatesReceived`` and ``EndOfRib`` in arrival order.
    ``taken``: how many UPDATEs were decoded (the count of messages, not of
    merged runs). ``error``: the malformed UPDATE's error (RFC 7606 session
    reset) that stopped the run, or None when every frame was taken.
    """

    events: list[UpdatesReceived | EndOfRib]
    taken: int
    error: BGPError | None


def decode_update_run(frames: list[bytes], ctx: CodecContext) -> UpdateRun:
    """Decode ``frames`` (whole UPDATE messages) with the session's ``ctx`` (module docstring)."""
    run = _Run(ctx)
    plain: list[bytes] = []  # plain withdrawals not parsed yet, parsed in one pass
    plain_ok = not ctx.add_path_ipv4  # path ids in the field: decode_update's job
    err: BGPError | None = None
    for frame in frames:
        if plain_ok and withdraws_only(frame):
            plain.append(frame)
            continue
        if plain:
            err = run.take_plain(plain)
            plain = []
            if err is not None:
                break
        try:
            upd = decode_update(frame, ctx)
        except BGPError as exc:
            err = exc
            break
        run.take(upd)
    else:
        if plain:
            err = run.take_plain(plain)
    run.close()
    return UpdateRun(run.events, run.taken, err)


class _Run:
    """The events being built; ``merged`` is the withdrawals ``Update`` that ends ``updates``."""

    def __init__(self, ctx: CodecContext) -> None:
        self.ctx = ctx
        self.events: list[UpdatesReceived | EndOfRib] = []
        self.updates: list[Update] = []
        self.merged: dict[Family, list[bytes]] | None = None
        self.taken = 0
        # RFC 7911: the families whose received NLRI carry path identifiers.
        on = ((_V4, ctx.add_path_ipv4), (_V6, ctx.add_path_ipv6))
        self.add_path = frozenset(f for f, yes in on if yes)

    def take(self, upd: Update) -> None:
        """One decoded UPDATE: an End-of-RIB, a withdrawal to merge, or a plain UPDATE."""
        self.taken += 1
        if upd.attrs is None and not upd.reach:
            if not upd.unreach.get(_V4):  # plain IPv4 withdrawals are never End-of-RIB
                eor = upd.end_of_rib
                if eor is not None:
                    self.close()
                    self.events.append(EndOfRib(eor))
                    return
            if not upd.action:
                self.withdraw(upd.unreach, upd.add_path)
                return
        self.merged = None
        self.updates.append(upd)

    def take_plain(self, frames: list[bytes]) -> BGPError | None:
        """Plain IPv4 withdrawals, parsed in one pass; the error of a malformed one."""
        keys, ok, err = plain_withdrawals(frames, self.ctx)
        if keys:
            self.withdraw({_V4: keys}, self.add_path)
        self.taken += ok
        return err

    def withdraw(self, unreach: dict[Family, list[bytes]], add_path: frozenset[Family]) -> None:
        """Add withdrawn NLRI to the merged ``Update`` (one is started if the last was not)."""
        merged = self.merged
        if merged is None:
            merged = self.merged = {}
            self.updates.append(Update(None, {}, merged, add_path=add_path))
        for fam, items in unreach.items():
            merged.setdefault(fam, []).extend(items)

    def close(self) -> None:
        """End the current ``UpdatesReceived`` (before an End-of-RIB, or at the end)."""
        if self.updates:
            self.events.append(UpdatesReceived(self.updates))
            self.updates = []
        self.merged = None
