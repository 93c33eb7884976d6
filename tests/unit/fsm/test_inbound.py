"""Runs of received UPDATEs (``bgp.inbound.decode_update_run``) and the FSM's use of it.

Decoding a run must give what one table dispatch of Event 27 per message
gives (RFC 4271 §8.2.2): same events in the same order, counters, Hold timer,
and an UPDATE error (Event 28) ending the session after the good ones before
it. The first tests call ``decode_update_run`` alone; the rest go through a
pair of FSMs.
"""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import ErrorCode, UpdateSubcode
from bgp.events import EndOfRib, SessionDown, UpdatesReceived
from bgp.fsm import State, Timer
from bgp.inbound import decode_update_run
from bgp.wire.attributes import PathAttributes
from bgp.wire.constants import Family
from bgp.wire.context import CodecContext
from bgp.wire.framer import Framer
from bgp.wire.messages import Keepalive, Notification, decode_message, encode_message
from bgp.wire.prefix import Prefix
from bgp.wire.update import (
    decode_update,
    encode_announce,
    encode_end_of_rib,
    encode_withdraw,
    plain_withdrawal,
)

from .helpers import Pair

V4, V6 = Family.IPV4_UNICAST, Family.IPV6_UNICAST
KEEPALIVE = encode_message(Keepalive(), CodecContext())


def _announce(prefix: str, med: int, ctx: CodecContext) -> bytes:
    attrs = PathAttributes(
        origin=0, as_path=((2, (65001,)),), next_hop=ip_address("192.0.2.1"), med=med
    )
    return b"".join(encode_announce(attrs, V4, [Prefix.from_str(prefix).nlri()], ctx))


def _withdraw(prefix: str, ctx: CodecContext) -> bytes:
    return b"".join(encode_withdraw(V4, [Prefix.from_str(prefix).nlri()], ctx))


def _stream(ctx: CodecContext) -> list[bytes]:
    return [
        _announce("10.1.0.0/16", 1, ctx),
        _announce("10.2.0.0/16", 2, ctx),
        encode_end_of_rib(V4),
        KEEPALIVE,
        _withdraw("10.1.0.0/16", ctx),
        _withdraw("10.2.0.0/16", ctx),
        _withdraw("10.4.0.0/16", ctx),
        encode_end_of_rib(V6),
        _announce("10.3.0.0/24", 3, ctx),
        _withdraw("10.3.0.0/24", ctx),
        _withdraw("10.5.0.0/24", ctx),
    ]


def _summary(events: list[object]) -> list[object]:
    """Events as comparable tuples, one per prefix (merged withdrawals compare equal)."""
    out: list[object] = []
    for ev in events:
        if isinstance(ev, UpdatesReceived):
            for u in ev.updates:
                out += [("withdraw", str(p)) for p in u.withdrawn]
                out += [("announce", str(p), u.attrs) for p in u.announced]
        elif isinstance(ev, EndOfRib):
            out.append(("eor", ev.family))
        else:
            out.append(type(ev).__name__)
    return out


CTX = CodecContext(as4=True)


def _frames(blob: bytes) -> list[bytes]:
    framer = Framer()
    framer.feed(blob)
    return framer.update_frames()


def test_a_run_gives_events_in_order_with_withdrawals_merged() -> None:
    wd = [_withdraw(f"10.{i}.0.0/16", CTX) for i in range(1, 4)]
    frames = _frames(
        _announce("10.8.0.0/16", 8, CTX) + wd[0] + wd[1] + encode_end_of_rib(V4) + wd[2]
    )
    run = decode_update_run(frames, CTX)
    assert run.taken == 5 and run.error is None
    assert [type(e) for e in run.events] == [UpdatesReceived, EndOfRib, UpdatesReceived]
    first, eor, last = run.events
    assert isinstance(first, UpdatesReceived) and isinstance(last, UpdatesReceived)
    assert [[str(p) for p in u.announced] for u in first.updates] == [["10.8.0.0/16"], []]
    assert [str(p) for p in first.updates[1].withdrawn] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert isinstance(eor, EndOfRib) and eor.family == V4
    assert [str(p) for p in last.updates[0].withdrawn] == ["10.3.0.0/16"]


def test_plain_withdrawals_are_the_codecs_own_kind() -> None:
    """The run takes the shortcut exactly for what ``plain_withdrawal`` accepts, and
    its keys equal the reference decoder's."""
    frames = [_withdraw(f"10.{i}.0.0/16", CTX) for i in range(3)]
    assert all(plain_withdrawal(f, CTX) is not None for f in frames)
    run = decode_update_run(frames, CTX)
    (ev,) = run.events
    assert isinstance(ev, UpdatesReceived) and len(ev.updates) == 1
    assert ev.updates[0].unreach == {
        V4: [k for f in frames for k in decode_update(f, CTX).unreach[V4]]
    }


def test_add_path_withdrawals_go_through_the_decoder() -> None:
    """With ADD-PATH for IPv4 the Withdrawn Routes field holds path ids: not the shortcut."""
    ctx = CodecContext(as4=True, add_path_ipv4=True)
    nlri = b"\x00\x00\x00\x07" + Prefix.from_str("10.1.0.0/16").nlri()
    frames = encode_withdraw(V4, [nlri], ctx)
    assert plain_withdrawal(frames[0], ctx) is None
    (ev,) = decode_update_run(frames, ctx).events
    assert isinstance(ev, UpdatesReceived)
    assert ev.updates[0].unreach == {V4: [nlri]} and ev.updates[0].add_path == {V4}


def test_a_malformed_update_stops_the_run_after_the_good_ones() -> None:
    good = _announce("10.1.0.0/16", 1, CTX)
    bad = b"\xff" * 16 + b"\x00\x17\x02" + b"\xff\xff\x00\x00"
    run = decode_update_run([good, _withdraw("10.2.0.0/16", CTX), bad, good], CTX)
    assert run.taken == 2 and run.error is not None
    assert run.error.code == ErrorCode.UPDATE_MESSAGE
    (ev,) = run.events
    assert isinstance(ev, UpdatesReceived) and len(ev.updates) == 2


def test_a_malformed_plain_withdrawal_keeps_the_keys_before_it() -> None:
    frames = [_withdraw("10.1.0.0/16", CTX), _withdraw("10.2.0.0/16", CTX)]
    broken = bytearray(frames[1])
    broken[21] = 33  # prefix length past /32: RFC 7606 §5.3
    run = decode_update_run([frames[0], bytes(broken)], CTX)
    assert run.taken == 1 and run.error is not None
    (ev,) = run.events
    assert isinstance(ev, UpdatesReceived)
    assert [str(p) for p in ev.updates[0].withdrawn] == ["10.1.0.0/16"]


def test_one_read_with_updates_eor_and_keepalive_keeps_order_and_counts() -> None:
    p = Pair()
    p.connect()
    p.b.events.clear()
    msgs = _stream(p.a.fsm.ctx)
    p.now += 2.0
    p.b.fsm.receive_data(b"".join(msgs), p.now)
    events = p.b.drain()
    assert [type(e).__name__ for e in events] == [
        "UpdatesReceived",
        "EndOfRib",
        "UpdatesReceived",
        "EndOfRib",
        "UpdatesReceived",
    ]
    assert [len(e.updates) for e in events if isinstance(e, UpdatesReceived)] == [2, 1, 2]
    assert [e.family for e in events if isinstance(e, EndOfRib)] == [V4, V6]
    ups = [u for e in events if isinstance(e, UpdatesReceived) for u in e.updates]
    assert not any(u.errors for u in ups)  # clean routes, not treat-as-withdraw
    assert p.b.fsm.counters.msgs_in["update"] == 10
    assert p.b.fsm.counters.msgs_in["keepalive"] == 2  # OpenConfirm's and this one
    assert p.b.fsm.deadline(Timer.HOLD) == p.now + 9


def test_consecutive_withdrawals_arrive_merged_in_order() -> None:
    p = Pair()
    p.connect()
    p.b.events.clear()
    ctx = p.a.fsm.ctx
    wd = [_withdraw(f"10.{i}.0.0/16", ctx) for i in range(1, 6)]
    blob = wd[0] + wd[1] + wd[2] + _announce("10.9.0.0/16", 9, ctx) + wd[3] + wd[4]
    p.b.fsm.receive_data(blob, p.now)
    (ev,) = p.b.drain()
    assert isinstance(ev, UpdatesReceived)
    assert [[str(x) for x in u.withdrawn] for u in ev.updates] == [
        ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"],
        [],
        ["10.4.0.0/16", "10.5.0.0/16"],
    ]
    assert [str(x) for x in ev.updates[1].announced] == ["10.9.0.0/16"]
    assert all(u.attrs is None for u in (ev.updates[0], ev.updates[2]))
    assert p.b.fsm.counters.msgs_in["update"] == 6  # messages, not merged runs


def test_malformed_update_ends_the_session_after_the_good_ones() -> None:
    p = Pair()
    p.connect()
    p.b.events.clear()
    good = _announce("10.1.0.0/16", 1, p.a.fsm.ctx)
    # Withdrawn Routes Length pointing past the message: RFC 4271 §6.3 → 3/1.
    bad = b"\xff" * 16 + b"\x00\x17\x02" + b"\xff\xff\x00\x00"
    p.b.fsm.receive_data(good + good + bad + good, p.now)
    events = p.b.drain()
    assert isinstance(events[0], UpdatesReceived) and len(events[0].updates) == 2
    down = [e for e in events if isinstance(e, SessionDown)]
    assert len(down) == 1 and down[0].sent is True and down[0].was_established
    assert (down[0].code, down[0].subcode) == (
        ErrorCode.UPDATE_MESSAGE,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    )
    note = decode_message(p.b.fsm.data_to_send(), CodecContext())
    assert isinstance(note, Notification) and (note.code, note.subcode) == (3, 1)
    assert p.b.fsm.state is not State.ESTABLISHED
    assert p.b.fsm.counters.msgs_in["update"] == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12))
def test_any_split_of_the_stream_gives_the_same_events(cuts: list[int]) -> None:
    """TCP may cut the byte stream anywhere: the events must not depend on where."""
    whole = Pair()
    whole.connect()
    whole.b.events.clear()
    blob = b"".join(_stream(whole.a.fsm.ctx))
    whole.b.fsm.receive_data(blob, whole.now)
    expected = _summary(whole.b.drain())

    split = Pair()
    split.connect()
    split.b.events.clear()
    pos = 0
    for n in cuts:
        split.b.fsm.receive_data(blob[pos : pos + n], split.now)
        pos += n
    split.b.fsm.receive_data(blob[pos:], split.now)
    assert _summary(split.b.drain()) == expected
    assert split.b.fsm.counters.msgs_in == whole.b.fsm.counters.msgs_in
