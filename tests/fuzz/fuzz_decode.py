"""atheris target: ``decode_message`` and every consumer of what it returns.

Run ``python tests/fuzz/fuzz_decode.py -runs=N`` or ``-max_total_time=S``
(``make fuzz``). The first input byte picks the codec context; the rest is
fed to the framer and to ``decode_message``. Anything but ``BGPError`` from
decoding is a bug; so is any exception from using the result: printing
prefixes, reading attributes, re-encoding (only "does not fit" is allowed,
since re-encoding can legitimately grow a message), and decoding that again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
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
SEED_HEADER = b"\xff" * 16


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


def one_input(data: bytes) -> None:
    if not data:
        return
    ctx = CONTEXTS[data[0] & 127]
    body = data[1:]
    if data[0] & 128:
        # Give the header a valid marker and length so the body gets parsed.
        body = SEED_HEADER + (19 + len(body[1:])).to_bytes(2, "big") + body[:1] + body[1:]
    try:
        msg = decode_message(body, ctx)
    except BGPError:
        return
    use(msg, ctx)
    framer = Framer(ctx.max_message_len)
    framer.feed(body)
    try:
        framer.frames()
    except BGPError:
        pass


HERE = Path(__file__).resolve().parent
CAPTURES = HERE.parent / "data" / "captures"


def seed_corpus(where: Path) -> Path:
    """A corpus of real messages (captures) under several contexts, once."""
    where.mkdir(parents=True, exist_ok=True)
    if not any(where.iterdir()):
        n = 0
        for path in sorted(CAPTURES.glob("*.txt")):
            for line in path.read_text().splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                raw = bytes.fromhex(line.split()[0])
                for ctx_byte in (1, 17, 35):
                    (where / f"seed-{n:04d}").write_bytes(bytes((ctx_byte,)) + raw)
                    n += 1
    return where


def main() -> None:
    argv = list(sys.argv)
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        argv.append(str(seed_corpus(HERE / "corpus-local")))
    for d in dirs:
        seed_corpus(Path(d))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
