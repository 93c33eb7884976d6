"""atheris target: ``decode_message`` and every consumer of what it returns.

Run ``python tests/fuzz/fuzz_decode.py -runs=N`` or ``-max_total_time=S``
(``make fuzz``); with no corpus directory given it uses ``corpus-local/``
(git-ignored), seeded from ``tests/data/captures`` and ``tests/data/wire``.

An input is three header octets and a byte stream:

- octet 0, session flags: bit 0 the peer's session ends by TCP loss (graceful
  restart keeps its routes stale) instead of a NOTIFICATION; bit 1 the
  session is in OpenSent, so the stream's own OPEN is validated and
  negotiated, else it is already Established; bits 2 and 7 deliver the stream
  in two or three reads; bit 3 soft reconfiguration; bit 4 the RIB is a
  restarting speaker (selection deferral); bit 5 the receiving peer is an
  iBGP route-reflector client instead of eBGP; bit 6 a 40-prefix limit.
- octet 1, the negotiated session (``fuzz_world.Profile``): 4-octet AS,
  ADD-PATH, extended message, extended next hop, eBGP, graceful restart,
  route refresh, a peer AS above 65535.
- octet 2: bit 0 re-frames the stream (it is cut at every 16-octet marker and
  each piece gets a correct length, so mutations inside messages stay
  parseable); bits 1-7 pick the codec context for the codec-level checks.

Consumers, and what is a bug:

1. codec: ``decode_message`` on the whole stream and on each frame the
   ``Framer`` cuts; anything but ``BGPError`` is a bug, and so is any
   exception from printing prefixes, reading attributes, re-encoding (only
   "does not fit" is allowed: re-encoding can grow a message) and decoding
   that again;
2. OPEN handling: every decoded OPEN through ``bgp.negotiate``
   (``validate_open`` may only raise ``OpenMessageError``);
3. session and RIB: the stream through ``BgpFsm.receive_data`` and its events
   through ``rib.adapter.RibAdapter`` into a ``rib.core.Rib`` with a second
   peer, then ``show routes``, End-of-RIB, refreshes, peer down, timers and
   removal (``fuzz_world``; its checks raise ``HarnessBug``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["bgp", "rib"]):
    from bgp.errors import BGPError
    from bgp.wire import (
        CodecContext,
        Framer,
        Notification,
        Open,
        Update,
        as_path_str,
        decode_message,
        encode_message,
    )
    from bgp.wire.constants import MARKER

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzz_world import Profile, check_open, run_session, synthetic_seeds

CONTEXTS = [
    CodecContext(
        as4=bool(i & 1),
        add_path_ipv4=bool(i & 2),
        add_path_ipv6=bool(i & 2),
        add_path_send_ipv4=bool(i & 2),
        add_path_send_ipv6=bool(i & 2),
        extended_message=bool(i & 4),
        extended_nexthop_ipv4=bool(i & 8),
        ebgp=bool(i & 16),
        peer_as=65001 if i & 32 else 0,
        confed_peer=bool(i & 64),
    )
    for i in range(128)
]
MAX_FRAMES = 64  # the session sees them all; the codec-level checks stop here


def use(msg: object, ctx: CodecContext) -> None:
    """Touch everything a consumer would."""
    if isinstance(msg, Update):
        [str(p) for p in msg.announced]
        [repr(p) for p in msg.withdrawn]
        _ = (msg.end_of_rib, msg.action, msg.disabled, [e.reason for e in msg.errors])
        if msg.attrs is not None:
            a = msg.attrs
            hash(a)
            _ = (as_path_str(a.as_path), a.as_path_length, [a.nexthop(f) for f in msg.reach])
            a.encode(ctx)
    elif isinstance(msg, Open):
        _ = (msg.peer_as, [c.code for c in msg.capabilities])
    elif isinstance(msg, Notification):
        _ = (msg.shutdown_message, msg.error())
    try:
        raw = encode_message(msg, ctx)  # type: ignore[arg-type]
    except ValueError as exc:
        if "exceeds" not in str(exc):
            raise
        return
    decode_message(raw, ctx)


def reframe(stream: bytes) -> bytes:
    """Cut at each marker and give every piece a correct length (see module docstring)."""
    out = []
    for piece in stream.split(MARKER)[1:]:
        out.append(MARKER + (16 + len(piece)).to_bytes(2, "big") + piece[2:])
    return b"".join(out)


def codec_consumers(stream: bytes, ctx: CodecContext, profile: Profile) -> None:
    """Consumers 1 and 2 of the module docstring."""
    try:
        use(decode_message(stream, ctx), ctx)
    except BGPError:
        pass
    framer = Framer(ctx.max_message_len)
    framer.feed(stream)
    for _ in range(MAX_FRAMES):
        try:
            frame = framer.next_frame()
        except BGPError:
            return
        if frame is None:
            return
        try:
            msg = decode_message(frame, ctx)
        except BGPError:
            continue
        use(msg, ctx)
        if isinstance(msg, Open):
            check_open(msg, profile)


def one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, profile, cbyte = data[0], Profile.of(data[1]), data[2]
    stream = reframe(data[3:]) if cbyte & 1 else data[3:]
    codec_consumers(stream, CONTEXTS[cbyte >> 1], profile)
    run_session(profile, flags, stream)


HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"

# Header octets of the seeds (see the module docstring).
OPEN_SENT = 2
ESTABLISHED = 0
REAL_PEER = 1 | 4 | 16 | 32 | 64  # what FRR, BIRD and GoBGP negotiate: 4-octet AS, ext. msg...
ADD_PATH_PEER = REAL_PEER | 2
REFRAME = 1
AS4_CTX = 1 << 1


def _captured_sessions() -> dict[str, list[bytes]]:
    """Messages per ``sender>receiver/session`` in capture order."""
    sessions: dict[str, list[bytes]] = {}
    for path in sorted((DATA / "captures").glob("*.txt")):
        for line in path.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            tag = fields[2] if len(fields) > 2 else path.stem
            sessions.setdefault(tag, []).append(bytes.fromhex(fields[0]))
    return sessions


def _vectors() -> list[tuple[dict[str, object], bytes]]:
    out = []
    for record in (DATA / "wire" / "vectors.txt").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.strip().splitlines() if ": " in line)
        if "hex" in fields:
            ctx = json.loads(fields.get("ctx", "{}"))
            out.append((ctx, bytes.fromhex(fields["hex"].replace(" ", ""))))
    return out


def seeds() -> list[bytes]:
    """Whole captured sessions (from their OPEN, or once Established), single messages."""
    out = []
    for msgs in _captured_sessions().values():
        stream = b"".join(msgs)
        after_open = b"".join(m for m in msgs if m[18] != 1)
        out.append(bytes((OPEN_SENT, REAL_PEER, REFRAME | AS4_CTX)) + stream)
        out.append(bytes((OPEN_SENT | 4, REAL_PEER, AS4_CTX)) + stream)
        for flags, prof in ((ESTABLISHED, REAL_PEER), (8 | 1, REAL_PEER), (16, ADD_PATH_PEER)):
            out.append(bytes((flags, prof, REFRAME | AS4_CTX)) + after_open)
        for m in msgs:
            out.append(bytes((ESTABLISHED, REAL_PEER, AS4_CTX)) + m)
    for ctx, raw in _vectors():
        bits = (1 if ctx.get("as4", True) else 0) | (16 if ctx.get("ebgp") else 0)
        prof = REAL_PEER & ~1 | (bits & 1)
        if not ctx.get("ebgp"):
            prof &= ~16
        out.append(bytes((ESTABLISHED, prof, REFRAME | bits << 1)) + raw)
    return out + synthetic_seeds()


def seed_corpus(where: Path) -> Path:
    """Add the seeds to a corpus directory (named by content, so re-seeding is idempotent)."""
    where.mkdir(parents=True, exist_ok=True)
    for s in seeds():
        path = where / f"seed-{hashlib.sha1(s).hexdigest()[:16]}"
        if not path.exists():
            path.write_bytes(s)
    return where


def main() -> None:
    """libFuzzer writes new inputs to the first corpus directory; ``regressions/``
    (inputs that once found a bug) is always read as well, and ``bgp.dict`` (BGP
    tokens for the mutator) is used unless another ``-dict=`` is given."""
    argv = list(sys.argv)
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if dirs:
        seed_corpus(Path(dirs[0]))
    else:
        argv.append(str(seed_corpus(HERE / "corpus-local")))
    argv.append(str(HERE / "regressions"))
    if not any(a.startswith("-dict=") for a in argv):
        argv.insert(1, f"-dict={HERE / 'bgp.dict'}")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
