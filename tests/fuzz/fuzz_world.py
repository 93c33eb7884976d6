"""The consumers of decoded messages, wired as the daemon wires them, for the fuzz target.

``fuzz_decode.py`` hands each input to ``run_session`` and ``check_open``:

- a sans-IO session (``bgp.fsm.BgpFsm``) either already Established with a
  negotiated context (``Profile``: 4-octet AS, ADD-PATH, extended message,
  extended next hop, eBGP/iBGP, graceful restart, route refresh) or in
  OpenSent so the input's own OPEN is validated and negotiated; the input
  goes through ``receive_data`` in one to three reads;
- its events go to ``rib.adapter.RibAdapter`` over a real ``rib.core.Rib``
  the way ``bgp.speaker`` delivers them (peer up, UPDATE batches, End-of-RIB,
  ROUTE-REFRESH, peer down), with a second peer up that receives what the
  RIB exports; then ``show routes``, End-of-RIB and refresh requests, a
  policy change, the peer going down, every RIB timer, and peer removal;
- a decoded OPEN through ``bgp.negotiate`` (``validate_open``, ``negotiate``,
  the RIB's ``SessionFacts``).

Besides "no exception", each step checks what the RFCs promise: the FSM
leaves Established only to Idle with a ``SessionDown`` event and, when it
says it sent one, the matching NOTIFICATION queued (RFC 4271 §6, §8.2.2);
every UPDATE the RIB emits decodes cleanly under the receiver's context
(RFC 7606 would have nothing to fix in our own output); and a removed peer
leaves no path behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from bgp.errors import BGPError, CeaseSubcode, OpenMessageError
from bgp.events import (
    DisconnectRequested,
    EndOfRib,
    FsmEvent,
    OpenReceived,
    RouteRefreshReceived,
    SessionDown,
    SessionEstablished,
    UpdatesReceived,
)
from bgp.fsm import BgpFsm, State
from bgp.negotiate import Negotiated, build_open, negotiate, validate_open
from bgp.settings import AddPathMode, PeerSettings
from bgp.wire import (
    CodecContext,
    Framer,
    Keepalive,
    Notification,
    Open,
    Update,
    decode_message,
    encode_message,
)
from bgp.wire.attributes import PathAttributes
from bgp.wire.capabilities import FourOctetAsCapability
from bgp.wire.constants import Action, Family
from bgp.wire.prefix import key_from_network, key_to_str
from rib.adapter import PeerHandles, PeerSource, RibAdapter, facts_from_negotiated
from rib.bestpath import Ranked
from rib.core import Rib
from rib.policy import Policy, builtin
from rib.settings import PeerPolicy, RibSettings
from rib.show import routes

LOCAL_AS = 65000
ROUTER_ID = "10.0.0.1"
LOCAL4 = IPv4Address("10.0.0.1")
LOCAL6 = IPv6Address("fd00::1")
FUZZ_PEER = "192.0.2.1"
RECEIVER = "192.0.2.9"
RECEIVER_AS = 65009
FAMILIES = (Family.IPV4_UNICAST, Family.IPV6_UNICAST)
NOW = 1000.0
MAX_PULLS = 2000  # far more than any input can cause; more means the RIB never drains

# Import and export policies that look at what the fuzzer controls: communities,
# large communities, the AS path (a regex over its text form), origin, prefixes.
IMPORT = Policy.from_data(
    {
        "name": "fuzz-import",
        "default_action": "accept",
        "rule": [
            {"match": {"community": "no-advertise"}, "action": "reject"},
            {"match": {"large_community": "65000:1:1"}, "action": "reject"},
            {
                "match": {"community": "65000:100"},
                "set": {"local_pref": 200, "community_add": "65000:1", "as_path_prepend": 2},
            },
            {"match": {"as_path": "^65001 .*65002$"}, "set": {"med": 7}},
            {
                "match": {"prefix": "10.0.0.0/8", "ge": 16, "le": 28},
                "set": {"large_community_add": "65000:2:3", "community_remove": "65000:1"},
            },
            {"match": {"origin": "incomplete", "family": "ipv6"}, "set": {"next_hop": "fd00::9"}},
        ],
    }
)
EXPORT = Policy.from_data(
    {
        "name": "fuzz-export",
        "default_action": "accept",
        "rule": [
            {"match": {"prefix": "192.168.0.0/16", "le": 32}, "action": "reject"},
            {"match": {"community": "65000:1"}, "set": {"next_hop": "keep", "med": 1}},
            {"match": {"family": "ipv6"}, "set": {"next_hop": "self"}},
        ],
    }
)


def _keys(*prefixes: str) -> list[bytes]:
    return [key_from_network(p)[1] for p in prefixes]


COMPETING = {
    Family.IPV4_UNICAST: _keys("10.1.0.0/16", "10.201.0.0/24", "10.202.0.0/24", "0.0.0.0/0"),
    Family.IPV6_UNICAST: _keys("fd00:201::/64", "fd00:202::/64", "fd00:203::/64", "::/0"),
}
_ORIGIN_IGP = 0
RECEIVER_ATTRS = {
    ibgp: {
        Family.IPV4_UNICAST: PathAttributes(
            origin=_ORIGIN_IGP,
            as_path=() if ibgp else ((2, (RECEIVER_AS, 65002)),),
            next_hop=IPv4Address(RECEIVER),
            local_pref=100 if ibgp else None,
            med=5,
        ),
        Family.IPV6_UNICAST: PathAttributes(
            origin=_ORIGIN_IGP,
            as_path=() if ibgp else ((2, (RECEIVER_AS,)),),
            mp_next_hop=(IPv6Address("fd00::9"), IPv6Address("fe80::9")),
            local_pref=100 if ibgp else None,
        ),
    }
    for ibgp in (False, True)
}


IMPORT_2 = Policy.from_data(
    {
        "name": "fuzz-import-2",
        "default_action": "accept",
        "rule": [
            {"match": {"community": "65000:1"}, "action": "reject"},
            {"match": {"prefix": "::/0", "le": 48}, "set": {"local_pref": 50}},
        ],
    }
)
# Prefix-dependent (``Exporter.per_prefix``), unlike EXPORT's first look.
EXPORT_2 = Policy.from_data(
    {
        "name": "fuzz-export-2",
        "default_action": "accept",
        "rule": [
            {"match": {"prefix": "10.0.0.0/8", "le": 24}, "set": {"as_path_prepend": 3}},
            {"match": {"large_community": "65000:2:3"}, "action": "reject"},
        ],
    }
)


class HarnessBug(AssertionError):
    """A promise of the code under test was broken (not a harness error)."""


@dataclass(frozen=True)
class Profile:
    """What the fuzzed peer's session negotiated, from one byte (see ``of``)."""

    as4: bool
    add_path: bool
    extended_message: bool
    extended_nexthop: bool
    ebgp: bool
    graceful_restart: bool
    route_refresh: bool
    wide_as: bool

    @classmethod
    def of(cls, bits: int) -> Profile:
        flags = [bool(bits >> i & 1) for i in range(8)]
        return cls(*flags)

    @property
    def peer_as(self) -> int:
        if not self.ebgp:
            return LOCAL_AS
        return 4200000001 if self.wide_as and self.as4 else 65001

    def settings(self, asn: int | None = None) -> PeerSettings:
        """Our settings for the fuzzed peer (``asn`` 0 accepts any AS)."""
        return PeerSettings(
            address=FUZZ_PEER,
            asn=self.peer_as if asn is None else asn,
            hold_time=9,
            families=FAMILIES,
            add_path=AddPathMode.BOTH if self.add_path else AddPathMode.OFF,
            graceful_restart=self.graceful_restart,
            route_refresh=self.route_refresh,
            extended_message=self.extended_message,
            extended_nexthop=self.extended_nexthop,
        )

    def peer_open(self) -> bytes:
        """The fuzzed peer's OPEN and KEEPALIVE, as it would send them."""
        mirror = PeerSettings(
            address=ROUTER_ID,
            asn=LOCAL_AS,
            hold_time=9,
            families=FAMILIES,
            add_path=AddPathMode.BOTH if self.add_path else AddPathMode.OFF,
            graceful_restart=self.graceful_restart,
            route_refresh=self.route_refresh,
            extended_message=self.extended_message,
            extended_nexthop=self.extended_nexthop,
        )
        msg = build_open(self.peer_as, FUZZ_PEER, mirror)
        if not self.as4:
            caps = tuple(c for c in msg.capabilities if not isinstance(c, FourOctetAsCapability))
            msg = Open.build(self.peer_as, msg.hold_time, msg.router_id, caps)
        ctx = CodecContext()
        return encode_message(msg, ctx) + encode_message(Keepalive(), ctx)


_OPENS: dict[Profile, bytes] = {}


@dataclass
class Handle:
    """What the RIB sees of a peer (``bgp.events.PeerHandle``)."""

    key: str
    local_address: IPv4Address | IPv6Address | None = None
    prefixes_in: int = 0
    prefixes_out: int = 0
    woken: int = 0

    def wake(self) -> None:
        self.woken += 1


@dataclass
class World:
    """One FSM, one RIB behind its adapter, and the clock and timers they share."""

    fsm: BgpFsm
    rib: Rib
    adapter: RibAdapter
    fuzz: Handle
    receiver: Handle
    recv_ctx: CodecContext
    recv_source: PeerSource
    clock: list[float]
    timers: list[tuple[float, Any]] = field(default_factory=list)
    fuzz_source: PeerSource | None = None
    fuzz_neg: Negotiated | None = None
    recv_view: dict[tuple[Family, bytes], PathAttributes | None] = field(default_factory=dict)
    max_prefix_hits: int = 0
    fib_changes: int = 0


def _receiver_session(rib_add_path: bool) -> tuple[Negotiated, CodecContext]:
    """The receiving peer's negotiated session, and the context it decodes our output with."""
    mode = AddPathMode.BOTH if rib_add_path else AddPathMode.OFF
    ours = PeerSettings(
        address=RECEIVER, asn=RECEIVER_AS, families=FAMILIES, add_path=mode, graceful_restart=True
    )
    theirs = PeerSettings(
        address=ROUTER_ID, asn=LOCAL_AS, families=FAMILIES, add_path=mode, graceful_restart=True
    )
    our_open = build_open(LOCAL_AS, ROUTER_ID, ours)
    their_open = build_open(RECEIVER_AS, "10.9.9.9", theirs)
    asn = validate_open(their_open, LOCAL_AS, ROUTER_ID, ours)
    neg = negotiate(our_open, their_open, LOCAL_AS, ours, asn)
    c = neg.ctx
    recv_ctx = CodecContext(
        as4=c.as4,
        add_path_ipv4=c.add_path_send_ipv4,
        add_path_ipv6=c.add_path_send_ipv6,
        extended_message=c.extended_message,
        ebgp=True,
        local_as=RECEIVER_AS,
        peer_as=LOCAL_AS,
    )
    return neg, recv_ctx


def build_world(profile: Profile, flags: int) -> World:
    """Fresh FSM and RIB for one input; ``flags`` bits are documented in ``fuzz_decode``."""
    open_sent = bool(flags & 2)
    soft = bool(flags & 8)
    restarting = bool(flags & 16)
    rr_client = bool(flags & 32)
    settings = RibSettings.make(
        LOCAL_AS,
        ROUTER_ID,
        restarting=restarting,
        deferral_time=30.0,
        stale_time=60.0,
        local_addresses=frozenset({LOCAL4}),
        cluster_id="10.0.0.7" if rr_client else None,
    )
    world_ref: list[World] = []

    def fib(family: Family, changes: dict[bytes, tuple[bytes, ...]]) -> None:
        for key, hops in changes.items():
            key_to_str(family, key)
            if not all(isinstance(h, bytes) for h in hops):
                raise HarnessBug(f"FIB next hops {hops!r}")
        if world_ref:
            world_ref[0].fib_changes += len(changes)

    handles = PeerHandles(on_max_prefix=lambda h, limit: _max_prefix(world_ref[0], limit))
    rib = Rib(
        settings,
        fib=fib,
        wake=handles.wake,
        max_prefix_exceeded=handles.max_prefix_exceeded,
        now=NOW,
    )

    def policy_for(key: str, asn: int) -> PeerPolicy:
        if key == FUZZ_PEER:
            return PeerPolicy.make(
                key,
                asn,
                import_policy=IMPORT,
                export_policy=builtin("all"),
                soft_reconfiguration=soft,
                add_path_receive=profile.add_path,
                # As podbgp.bgpnode maps it: the RIB must send path ids when the OPENs agreed.
                add_path_send=-1 if profile.add_path else 0,
                max_prefixes=3 if flags & 64 else 0,
            )
        return PeerPolicy.make(
            key,
            asn,
            export_policy=EXPORT if not rr_client else builtin("all"),
            route_reflector_client=rr_client,
            add_path_send=2 if profile.add_path else 0,
        )

    clock = [NOW]
    timers: list[tuple[float, Any]] = []
    adapter = RibAdapter(
        rib,
        handles,
        local4=LOCAL4,
        local6=LOCAL6,
        clock=lambda: clock[0],
        call_at=lambda t, cb: timers.append((t, cb)),
        policy_for=policy_for,
    )
    recv_neg, recv_ctx = _receiver_session(profile.add_path)
    if rr_client:
        recv_neg = _as_ibgp(recv_neg)
        recv_ctx = CodecContext(
            as4=True,
            add_path_ipv4=recv_ctx.add_path_ipv4,
            add_path_ipv6=recv_ctx.add_path_ipv6,
            extended_message=recv_ctx.extended_message,
            local_as=LOCAL_AS,
            peer_as=LOCAL_AS,
        )
    receiver = Handle(RECEIVER, local_address=IPv6Address("fd00::1"))
    recv_source = adapter(receiver, recv_neg)
    adapter.peer_up(receiver, recv_neg)
    # Paths the fuzzed peer's routes compete with (RFC 4271 §9.1.2): from the other
    # peer and originated here, for prefixes the seeds announce.
    for fam, keys in COMPETING.items():
        rib.receive(RECEIVER, fam, (), RECEIVER_ATTRS[rr_client][fam], keys)
    # Not 65000:1: EXPORT would "keep" its missing next hop (a known rib.export bug).
    rib.originate("10.201.0.0/24", communities=(0xFDE80002,))
    rib.originate("fd00:201::/64")
    rib.flush()

    peer_settings = profile.settings(0 if open_sent else None)
    fsm = BgpFsm(LOCAL_AS, ROUTER_ID, peer_settings)
    fsm.start(NOW)
    while fsm.next_event() is not None:  # ConnectRequested: the shell would dial now
        pass
    fsm.connection_made(NOW, outgoing=True)
    fuzz = Handle(FUZZ_PEER, local_address=IPv4Address(ROUTER_ID))
    w = World(fsm, rib, adapter, fuzz, receiver, recv_ctx, recv_source, clock, timers)
    world_ref.append(w)
    if not open_sent:
        raw = _OPENS.get(profile)
        if raw is None:
            raw = _OPENS[profile] = profile.peer_open()
        fsm.receive_data(raw, NOW)
        fsm.resume(NOW)  # no second connection: nothing collides (bgp.session does this)
        if fsm.state is not State.ESTABLISHED:
            raise RuntimeError(f"harness: profile {profile} did not establish")
        _deliver(w, _drain(w))
    fsm.data_to_send()
    return w


def _as_ibgp(neg: Negotiated) -> Negotiated:
    """The receiver as an iBGP route-reflector client (same AS as ours)."""
    c = neg.ctx
    ctx = CodecContext(
        as4=c.as4,
        add_path_ipv4=c.add_path_ipv4,
        add_path_ipv6=c.add_path_ipv6,
        add_path_send_ipv4=c.add_path_send_ipv4,
        add_path_send_ipv6=c.add_path_send_ipv6,
        extended_message=c.extended_message,
        local_as=LOCAL_AS,
        peer_as=LOCAL_AS,
    )
    return Negotiated(
        peer_as=LOCAL_AS,
        peer_router_id=neg.peer_router_id,
        hold_time=neg.hold_time,
        keepalive=neg.keepalive,
        families=neg.families,
        ctx=ctx,
        route_refresh=neg.route_refresh,
        enhanced_route_refresh=neg.enhanced_route_refresh,
        peer_restart=neg.peer_restart,
        add_path_rx=neg.add_path_rx,
        add_path_tx=neg.add_path_tx,
    )


def _max_prefix(w: World, limit: int) -> None:
    """What ``podbgp.bgpnode`` does: Cease / Maximum Number of Prefixes Reached."""
    w.max_prefix_hits += 1
    w.fsm.stop(
        w.clock[0], f"maximum prefixes ({limit}) reached", CeaseSubcode.MAXIMUM_PREFIXES_REACHED
    )


def _drain(w: World) -> list[FsmEvent]:
    out = []
    while (ev := w.fsm.next_event()) is not None:
        out.append(ev)
        if isinstance(ev, OpenReceived):
            w.fsm.resume(w.clock[0])  # as bgp.session does when nothing collides
    return out


_ALLOWED = (
    UpdatesReceived,
    EndOfRib,
    RouteRefreshReceived,
    SessionDown,
    DisconnectRequested,
    OpenReceived,
    SessionEstablished,
)


def _deliver(w: World, events: list[FsmEvent]) -> None:
    """Events to the sink, as ``bgp.speaker.Peer`` does."""
    ad = w.adapter
    for ev in events:
        if not isinstance(ev, _ALLOWED):
            raise HarnessBug(f"unexpected event {ev!r} from a connected session")
        if isinstance(ev, SessionEstablished):
            ad.peer_up(w.fuzz, ev.negotiated)
            w.fuzz_source = ad(w.fuzz, ev.negotiated)
            w.fuzz_neg = ev.negotiated
        elif isinstance(ev, UpdatesReceived):
            if not ev.updates or not all(isinstance(u, Update) for u in ev.updates):
                raise HarnessBug(f"empty or odd UpdatesReceived {ev!r}")
            ad.updates_received(w.fuzz, ev.updates)
        elif isinstance(ev, EndOfRib):
            ad.end_of_rib(w.fuzz, ev.family)
        elif isinstance(ev, RouteRefreshReceived):
            ad.route_refresh(w.fuzz, ev.family, ev.subtype)
        elif isinstance(ev, SessionDown):
            if ev.was_established:
                ad.peer_down(w.fuzz, ev)
            w.fuzz_source = None


def _check_down(w: World, events: list[FsmEvent], sent: bytes, was: State) -> None:
    """RFC 4271 §8.2.2: forward through the OPEN exchange, or to Idle, reported once,
    with the NOTIFICATION queued when the event says one was sent."""
    state = w.fsm.state
    forward = was in (State.OPEN_SENT, State.OPEN_CONFIRM) and state in (
        State.OPEN_CONFIRM,
        State.ESTABLISHED,
    )
    if state not in (was, State.IDLE) and not forward:
        raise HarnessBug(f"{was.name} -> {state.name}")
    if w.fsm.connected != (state is not State.IDLE):
        raise HarnessBug(f"connected={w.fsm.connected} in {state.name}")
    downs = [i for i, e in enumerate(events) if isinstance(e, SessionDown)]
    if state is State.IDLE and was is not State.IDLE and len(downs) != 1:
        raise HarnessBug(f"went Idle with {len(downs)} SessionDown events: {events!r}")
    if state is not State.IDLE and downs:
        raise HarnessBug(f"SessionDown but still {state.name}")
    for i in downs:
        d = events[i]
        assert isinstance(d, SessionDown)
        up = was is State.ESTABLISHED or any(isinstance(e, SessionEstablished) for e in events[:i])
        if d.was_established != up:
            raise HarnessBug(f"was_established={d.was_established} leaving {was.name}")
        if d.sent:
            last = _frames(sent)[-1:]
            note = decode_message(last[0], _OWN) if last else None
            if not isinstance(note, Notification) or (note.code, note.subcode) != (
                d.code,
                d.subcode,
            ):
                raise HarnessBug(f"SessionDown {d!r} but last message sent is {note!r}")


# Our own output is decoded with a context that accepts every size we may send.
_OWN = CodecContext(extended_message=True)


def _frames(data: bytes) -> list[bytes]:
    f = Framer(65535)
    f.feed(data)
    out = f.frames()
    if f.pending:
        raise HarnessBug(f"{f.pending} octets of a partial message sent")
    return out


def _feed(w: World, chunk: bytes) -> None:
    """One read; then events to the sink until quiet (the sink may stop the session)."""
    was = w.fsm.state
    w.fsm.receive_data(chunk, w.clock[0])
    for _ in range(4):
        events = _drain(w)
        sent = w.fsm.data_to_send()
        _check_down(w, events, sent, was)
        if not events:
            break
        was = w.fsm.state
        _deliver(w, events)
        _pull_fuzz(w)


def _pull_fuzz(w: World) -> None:
    """What the RIB sends the fuzzed peer goes out through its FSM (split horizon: little)."""
    src = w.fuzz_source
    if src is None or w.fsm.state is not State.ESTABLISHED:
        return
    data = src.pull(1 << 16)
    if data and w.fsm.send_update_bytes(data, w.clock[0]):
        ctx = _mirror(w.fsm.ctx)
        for frame in _frames(w.fsm.data_to_send()):
            _own(frame, ctx)


def _mirror(ctx: CodecContext) -> CodecContext:
    """The context the peer decodes what we send with."""
    return CodecContext(
        as4=ctx.as4,
        add_path_ipv4=ctx.add_path_send_ipv4,
        add_path_ipv6=ctx.add_path_send_ipv6,
        extended_message=ctx.extended_message,
        extended_nexthop_ipv4=ctx.extended_nexthop_ipv4,
        ebgp=ctx.ebgp,
        local_as=ctx.peer_as,
        peer_as=ctx.local_as,
    )


def _own(frame: bytes, ctx: CodecContext) -> Update | None:
    """A message we sent, decoded as its receiver would: nothing for RFC 7606 to fix."""
    if len(frame) > ctx.max_message_len:
        raise HarnessBug(f"{len(frame)}-octet message to a {ctx.max_message_len}-octet peer")
    try:
        msg = decode_message(frame, ctx)
    except BGPError as err:
        raise HarnessBug(f"we sent a malformed message {frame.hex()}: {err!r}") from err
    if not isinstance(msg, Update):
        return None
    if msg.action is not Action.NONE:
        raise HarnessBug(f"we sent {frame.hex()}, RFC 7606 finds {msg.errors!r}")
    return msg


def pull_receiver(w: World) -> int:
    """Everything the receiver is owed, applied to its view of our routes: every
    UPDATE decodes cleanly, and the receiver ends up holding no prefix the Loc-RIB
    does not have (a stale advertisement would blackhole its traffic)."""
    n = 0
    view = w.recv_view
    ctx = w.recv_ctx
    for _ in range(MAX_PULLS):
        data = w.recv_source.pull(1 << 16)
        if not data:
            _check_view(w)
            return n
        for frame in _frames(data):
            msg = _own(frame, ctx)
            n += 1
            if msg is None:
                continue
            for fam, items in msg.unreach.items():
                for nlri in items:
                    view.pop((fam, nlri), None)
            for fam, items in msg.reach.items():
                for nlri in items:
                    view[(fam, nlri)] = msg.attrs
    raise HarnessBug(f"receiver still has output after {MAX_PULLS} pulls")


def _check_view(w: World) -> None:
    ctx = w.recv_ctx
    for fam, nlri in w.recv_view:
        ap = ctx.add_path_ipv4 if fam is Family.IPV4_UNICAST else ctx.add_path_ipv6
        key = nlri[4:] if ap else nlri
        if key not in w.rib.loc[fam]:
            raise HarnessBug(f"receiver still holds {key_to_str(fam, key)}, gone from the Loc-RIB")


def run_session(profile: Profile, flags: int, stream: bytes) -> None:
    """Feed ``stream`` to the session, its events to the RIB, then exercise the RIB."""
    w = build_world(profile, flags)
    cuts = _cuts(stream, flags >> 2 & 1, flags >> 7 & 1)
    start = 0
    for cut in (*cuts, len(stream)):
        _feed(w, stream[start:cut])
        start = cut
    pull_receiver(w)
    exercise_rib(w, graceful=bool(flags & 1))
    _expire(w)


def _expire(w: World) -> None:
    """Let the session's timers run out: KEEPALIVEs, then the Hold timer (RFC 4271 §8.2.2)."""
    fsm = w.fsm
    for _ in range(8):
        deadline = fsm.get_timer()
        if deadline is None or fsm.state is not State.ESTABLISHED:
            return
        was = fsm.state
        fsm.handle_timer(deadline)
        events = _drain(w)
        _check_down(w, events, fsm.data_to_send(), was)
        _deliver(w, events)


def _cuts(stream: bytes, two: int, three: int) -> tuple[int, ...]:
    """Where reads end: the framer must reassemble messages split anywhere."""
    n = len(stream)
    if not n or not (two or three):
        return ()
    a = stream[-1] * n // 256
    if not three:
        return (a,)
    b = stream[0] * n // 256
    return tuple(sorted((a, b)))


def check_counts(rib: Rib) -> None:
    """Each peer's prefix count (max-prefix, ``show peers``) is its number of paths."""
    have: dict[tuple[str, Family], int] = {}
    for fam, table in rib.loc.items():
        for entry in table.values():
            for p in entry.paths if isinstance(entry, Ranked) else (entry,):
                k = (p.source.key, fam)
                have[k] = have.get(k, 0) + 1
    for key, st in rib.peers.items():
        for fam in Family:
            if st.counts.get(fam, 0) != have.get((key, fam), 0):
                raise HarnessBug(f"{key} {fam.name}: count {st.counts.get(fam)}, paths {have}")


def exercise_rib(w: World, graceful: bool) -> None:
    """``show routes``, End-of-RIB, refreshes, a policy change, down, timers, removal."""
    rib, ad = w.rib, w.adapter
    check_counts(rib)
    _show(rib, lookups=True)
    for fam in FAMILIES:  # the other peer's End-of-RIB: selection deferral may end
        ad.end_of_rib(w.receiver, fam)
    up = rib.peers.get(FUZZ_PEER) is not None and rib.peers[FUZZ_PEER].up
    if up:
        for fam in FAMILIES:
            ad.end_of_rib(w.fuzz, fam)
        v4, v6 = FAMILIES
        # BoRR for both, EoRR for IPv4 only: IPv6 stays stale until its timer (RFC 7313 §4).
        for fam, subtype in ((v4, 1), (v6, 1), (v4, 2), (v4, 0), (v6, 0)):
            ad.route_refresh(w.fuzz, fam, subtype)
        _pull_fuzz(w)
    for fam in FAMILIES:
        for subtype in (0, 1, 2):
            ad.route_refresh(w.receiver, fam, subtype)
    pull_receiver(w)
    if FUZZ_PEER in rib.peers:
        # Run-time policy changes (soft reconfiguration re-import, export group switch).
        rib.set_policy(FUZZ_PEER, replace(rib.peers[FUZZ_PEER].policy, import_policy=IMPORT_2))
        rib.set_policy(RECEIVER, replace(rib.peers[RECEIVER].policy, export_policy=EXPORT_2))
        pull_receiver(w)
        _pull_fuzz(w)
        check_counts(rib)
        rib.advertised(FUZZ_PEER)
        rib.advertised(RECEIVER)
    if up:
        ad.peer_down(w.fuzz, SessionDown(0 if graceful else 6, 0, "fuzz", None, True))
        pull_receiver(w)
        check_counts(rib)
        _show(rib, lookups=False)
        if graceful and w.fuzz_neg is not None:
            # The peer comes back (RFC 4724 §4.2): families it did not preserve go now,
            # its End-of-RIB sweeps the rest for IPv4; IPv6 waits for the stale timer.
            ad.peer_up(w.fuzz, w.fuzz_neg)
            pull_receiver(w)
            ad.end_of_rib(w.fuzz, FAMILIES[0])
            pull_receiver(w)
            check_counts(rib)
    _run_timers(w)
    pull_receiver(w)
    check_counts(rib)
    rib.remove_peer(FUZZ_PEER, w.clock[0])
    pull_receiver(w)
    for fam, table in rib.loc.items():
        for key, entry in table.items():
            paths = entry.paths if isinstance(entry, Ranked) else (entry,)
            if any(p.source.key == FUZZ_PEER for p in paths):
                raise HarnessBug(f"{key_to_str(fam, key)} still has a path from a removed peer")


def _run_timers(w: World) -> None:
    """Fire the RIB's timers in deadline order, as the daemon's loop would."""
    for _ in range(50):
        if not w.timers:
            return
        w.timers.sort(key=lambda t: t[0])
        when, cb = w.timers.pop(0)
        w.clock[0] = max(w.clock[0], when)
        cb()
        pull_receiver(w)


def _show(rib: Rib, lookups: bool) -> None:
    """``podbgp show routes``: all, by family and peer, and one exact and one covering lookup."""
    rows = routes(rib, family="ipv6" if not lookups else None, peer=FUZZ_PEER, limit=5)
    if lookups and rows:
        routes(rib, prefix=rows[-1]["prefix"])
        routes(rib, prefix=rows[0]["prefix"].split("/")[0])  # longest match: one per length


def check_open(msg: Open, profile: Profile) -> Negotiated | None:
    """A decoded OPEN through ``bgp.negotiate``: only ``OpenMessageError`` may come out."""
    neg = None
    for asn in (0, profile.peer_as):
        settings = profile.settings(asn)
        try:
            peer_as = validate_open(msg, LOCAL_AS, ROUTER_ID, settings)
        except OpenMessageError:
            continue
        ours = build_open(LOCAL_AS, ROUTER_ID, settings)
        neg = negotiate(ours, msg, LOCAL_AS, settings, peer_as)
        neg.as_dict()
        if not neg.families:
            raise HarnessBug(f"negotiated no family with {msg!r}")
        if neg.hold_time and not 1 <= neg.keepalive <= max(1, neg.hold_time // 3):
            raise HarnessBug(f"keepalive {neg.keepalive} for hold time {neg.hold_time}")
        facts_from_negotiated(neg, LOCAL4, LOCAL6)
        encode_message(ours, neg.ctx)
    return neg


# ---------------------------------------------------------------- seeds

REAL_PEER = 1 | 4 | 16 | 32 | 64  # 4-octet AS, ext. message, eBGP, GR, route refresh
HEADER_OPEN_SENT = 2


def _sender_ctx(profile: Profile) -> CodecContext:
    """How the fuzzed peer encodes what it sends on its session."""
    return CodecContext(
        as4=profile.as4,
        add_path_send_ipv4=profile.add_path,
        add_path_send_ipv6=profile.add_path,
        extended_message=profile.extended_message,
        extended_nexthop_ipv4=profile.extended_nexthop,
        ebgp=profile.ebgp,
        local_as=profile.peer_as,
        peer_as=LOCAL_AS,
    )


def _nlri(profile: Profile, *prefixes: str, path_id: int = 1) -> list[bytes]:
    pid = path_id.to_bytes(4, "big") if profile.add_path else b""
    return [pid + k for k in _keys(*prefixes)]


def _route_refresh(fam: Family, subtype: int) -> bytes:
    body = fam.afi.to_bytes(2, "big") + bytes((subtype, fam.safi))
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + b"\x05" + body


def synthetic_stream(profile: Profile) -> bytes:
    """Churn a real session would carry, encoded for ``profile``: announcements that
    compete with the RIB's own paths, implicit replacement, runs of withdraw-only
    UPDATEs (merged by the FSM, with a repeated prefix), End-of-RIB, enhanced
    route refresh (RFC 7313), KEEPALIVE, and a Cease with a shutdown message."""
    from bgp.wire.update import encode_announce, encode_end_of_rib, encode_withdraw

    ctx = _sender_ctx(profile)
    v4, v6 = FAMILIES
    path = ((2, (profile.peer_as, 65002)),) if profile.ebgp else ()
    lp = None if profile.ebgp else 100
    a4 = PathAttributes(
        origin=0,
        as_path=path,
        next_hop=IPv4Address(FUZZ_PEER),
        med=5,
        local_pref=lp,
        communities=(0xFDE80064,),  # 65000:100
    )
    a4b = a4.replace(med=9, communities=(), large_communities=((65000, 2, 3),))
    a6 = PathAttributes(
        origin=2,
        as_path=(*path, (1, (65003, 65004))) if path else (),
        local_pref=lp,
        mp_next_hop=(IPv6Address("fd00::2"), IPv6Address("fe80::2")),
        ext_communities=(0x0002FDE800000001,),
    )
    out: list[bytes] = []
    out += encode_announce(a4, v4, _nlri(profile, "10.1.0.0/16", "10.201.0.0/24", "0.0.0.0/0"), ctx)
    out += encode_announce(a6, v6, _nlri(profile, "fd00:201::/64", "::/0"), ctx)
    out += encode_announce(a4b, v4, _nlri(profile, "10.201.0.0/24", path_id=2), ctx)
    if profile.extended_nexthop:
        a46 = a4.replace(next_hop=None, mp_next_hop=(IPv6Address("fd00::2"),))
        out += encode_announce(a46, v4, _nlri(profile, "10.9.0.0/16"), ctx)
    out += encode_withdraw(v4, _nlri(profile, "10.1.0.0/16", "10.1.0.0/16"), ctx)
    out += encode_withdraw(v4, _nlri(profile, "0.0.0.0/0"), ctx)
    out += encode_withdraw(v6, _nlri(profile, "::/0"), ctx)
    out += encode_withdraw(v6, _nlri(profile, "::/0", "fd00:201::/64"), ctx)
    out += [encode_end_of_rib(v4), encode_end_of_rib(v6), _route_refresh(v4, 1)]
    out += encode_announce(a4, v4, _nlri(profile, "10.202.0.0/24"), ctx)
    out += [_route_refresh(v4, 2), _route_refresh(v6, 0), encode_message(Keepalive(), ctx)]
    return b"".join(out)


def _shutdown_message() -> bytes:
    """Cease / Administrative Shutdown with an RFC 9003 communication."""
    return encode_message(Notification.shutdown("maintenance"), CodecContext())


def _open_variants(profile: Profile) -> list[bytes]:
    """OPENs that ``bgp.negotiate`` must refuse or narrow: AS 0, AS_TRANS as the
    4-octet AS, our own BGP identifier on iBGP, no common family, hold time 0."""
    from bgp.wire.capabilities import MultiprotocolCapability

    ctx = CodecContext()
    base = Open.build(65001, 9, FUZZ_PEER, (FourOctetAsCapability(65001),))
    variants = [
        Open.build(0, 9, FUZZ_PEER, ()),
        Open.build(65001, 9, FUZZ_PEER, (FourOctetAsCapability(23456),)),
        Open.build(LOCAL_AS, 9, ROUTER_ID, (FourOctetAsCapability(LOCAL_AS),)),
        Open.build(
            65001,
            0,
            FUZZ_PEER,
            (*base.capabilities, MultiprotocolCapability(1, 1), MultiprotocolCapability(2, 128)),
        ),
        Open.build(65001, 3, FUZZ_PEER, (MultiprotocolCapability(3, 1),)),
    ]
    keep = encode_message(Keepalive(), ctx)
    return [encode_message(o, ctx) + keep for o in variants]


def synthetic_seeds() -> list[bytes]:
    """Whole inputs (three header octets + stream) for ``fuzz_decode``'s corpus."""
    out = []
    for bits in (REAL_PEER, REAL_PEER | 2, REAL_PEER & ~1, REAL_PEER & ~16, REAL_PEER | 8 | 128):
        profile = Profile.of(bits)
        stream = synthetic_stream(profile)
        cbyte = (1 if profile.as4 else 0) << 1 | (2 if profile.add_path else 0) << 1
        for flags in (0, 4, 8 | 1, 16 | 32, 64 | 128):
            out.append(bytes((flags, bits, cbyte | 1)) + stream)
        out.append(bytes((1, bits, cbyte)) + stream + _shutdown_message())
        opened = profile.peer_open() + stream
        out.append(bytes((HEADER_OPEN_SENT, bits, cbyte)) + opened)
    for raw in _open_variants(Profile.of(REAL_PEER)):
        out.append(bytes((HEADER_OPEN_SENT, REAL_PEER, 2)) + raw)
    return out
