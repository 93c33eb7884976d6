"""Structured logs: `--log-format json|text` and a level per part (`--log-level fib=debug,info`)."""

from __future__ import annotations

import json
import logging
import sys
import time

# One name per part that logs: podbgp.<part>, e.g. podbgp.drain (RFC 8326 drains),
# podbgp.cni (the plugin), podbgp.bfd (BFD wiring) beside the bfd.* helper process,
# podbgp.announce (service and run-time announcements).
PARTS = (
    "bgp", "rib", "fib", "ipam", "bfd", "drain", "cni", "underlay", "daemon", "api", "monitor",
    "announce",
)  # fmt: skip
# Parts that are packages of their own log under their package's name too (bgp.speaker,
# bgp.session, bfd.process, any fib.* or rib.* logger), not only under podbgp.<part>.
PACKAGES = frozenset({"bgp", "rib", "fib", "ipam", "bfd"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, part, message, and any `extra=` fields."""

    _skip = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "part": record.name.removeprefix("podbgp."),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._skip:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def parse_levels(spec: str) -> dict[str, int]:
    """`"info"` or `"info,fib=debug,bgp=warning"` → logger name → level."""
    levels: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        part, _, level = item.rpartition("=")
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise ValueError(f"--log-level: {level!r} is not a log level")
        if part and part not in PARTS:
            raise ValueError(f"--log-level: {part!r} is not one of {', '.join(PARTS)}")
        levels["podbgp" + (f".{part}" if part else "")] = value
    return levels


def setup(fmt: str = "text", spec: str = "info") -> None:
    levels = parse_levels(spec)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(levels.pop("podbgp", logging.INFO))
    for name, level in levels.items():
        for logger in loggers_of(name):
            logging.getLogger(logger).setLevel(level)


def loggers_of(name: str) -> tuple[str, ...]:
    """The logger names one `parse_levels` entry sets: `podbgp.bgp` also sets `bgp`,
    the parent of the speaker's and sessions' loggers."""
    part = name.removeprefix("podbgp.")
    return (name, part) if part in PACKAGES else (name,)
