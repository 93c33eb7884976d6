"""Prefixes announced and withdrawn at run time, optionally behind a health check.

The control API's ``announce`` and ``withdraw`` (``podbgp announce``/``withdraw``) add
and remove a prefix with its communities. With a health check — a command that must
exit 0, or a TCP connect that must succeed, within ``timeout`` — the prefix is
announced only while the check passes: the first check runs at once, then one every
``interval`` seconds, so a failing service is withdrawn within one interval (the
ExaBGP health-check pattern, for an anycast address served by a local agent).
Announcements made here live as long as the daemon; persistent ones belong in the
config (``[[bgp.originate]]``) or in the datastore (``podbgp.services``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podbgp import api
from podbgp.services import parse_community

__all__ = ["AnnounceAPI", "Anycast", "CheckKind", "HealthCheck"]

log = logging.getLogger("podbgp.announce")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Announce = dict[IPNetwork, tuple[int, ...]]


class CheckKind(StrEnum):
    EXEC = "exec"  # a command; exit status 0 is healthy
    TCP = "tcp"  # HOST:PORT accepts a connection


@dataclass(frozen=True, slots=True)
class HealthCheck:
    kind: CheckKind
    target: str  # the command line, or HOST:PORT ([V6]:PORT)
    interval: float = 5.0
    timeout: float = 2.0

    @classmethod
    def parse(cls, data: dict[str, Any]) -> HealthCheck:
        """From the control API's ``check`` object; ValueError names the bad field."""
        kinds = [k for k in CheckKind if data.get(str(k))]
        if len(kinds) != 1:
            raise ValueError("check: give exactly one of exec, tcp")
        kind = kinds[0]
        target = data[str(kind)]
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"check.{kind}: a non-empty string is required")
        if kind is CheckKind.TCP:
            _host_port(target)
        else:
            try:
                if not shlex.split(target):
                    raise ValueError
            except ValueError:
                raise ValueError(f"check.exec: {target!r} is not a command line") from None
        interval = _seconds(data, "interval", 5.0, 0.1, 3600)
        timeout = _seconds(data, "timeout", min(2.0, interval), 0.05, 3600)
        return cls(kind, target, interval, timeout)

    def to_json(self) -> dict[str, Any]:
        return {str(self.kind): self.target, "interval": self.interval, "timeout": self.timeout}

    async def run(self) -> tuple[bool, str]:
        """One check: (healthy, what was seen)."""
        try:
            if self.kind is CheckKind.TCP:
                return await asyncio.wait_for(self._tcp(), self.timeout)
            return await self._exec()
        except TimeoutError:
            return False, f"no answer within {self.timeout:g} s"
        except ConnectionRefusedError:
            return False, "connection refused"
        except OSError as exc:
            return False, exc.strerror or str(exc)

    async def _tcp(self) -> tuple[bool, str]:
        host, port = _host_port(self.target)
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, "connected"

    async def _exec(self) -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_exec(
            *shlex.split(self.target),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            code = await asyncio.wait_for(proc.wait(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return code == 0, f"exit status {code}"


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 < number < 65536:
        raise ValueError(f"check.tcp: {text!r} is not ADDRESS:PORT")
    return host, number


def _seconds(data: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"check.{key}: {value!r} is not a number of seconds in [{lo:g}, {hi:g}]")
    return float(value)


@dataclass
class _Entry:
    prefix: IPNetwork
    communities: tuple[int, ...]
    check: HealthCheck | None
    healthy: bool
    seen: str = ""
    since: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None


class Anycast:
    """Run-time announcements; ``apply`` is told the healthy set at every change."""

    def __init__(self, apply: Callable[[Announce], None]) -> None:
        self.apply = apply
        self.entries: dict[IPNetwork, _Entry] = {}

    def announced(self) -> Announce:
        return {p: e.communities for p, e in self.entries.items() if e.healthy}

    def announce(
        self, prefix: IPNetwork, communities: tuple[int, ...], check: HealthCheck | None
    ) -> dict[str, Any]:
        """Add or replace ``prefix``; with a check, announced once the first check passes."""
        self._cancel(prefix)
        entry = _Entry(prefix, communities, check, healthy=check is None)
        self.entries[prefix] = entry
        if check is not None:
            entry.task = asyncio.get_running_loop().create_task(self._watch(entry, check))
        log.info("announce %s%s", prefix, f" while {check.kind} {check.target!r} passes" if check else "")  # fmt: skip
        self.apply(self.announced())
        return self.row(entry)

    def withdraw(self, prefix: IPNetwork) -> bool:
        if prefix not in self.entries:
            return False
        self._cancel(prefix)
        del self.entries[prefix]
        log.info("withdraw %s", prefix)
        self.apply(self.announced())
        return True

    def _cancel(self, prefix: IPNetwork) -> None:
        old = self.entries.get(prefix)
        if old is not None and old.task is not None:
            old.task.cancel()

    async def _watch(self, entry: _Entry, check: HealthCheck) -> None:
        while True:
            ok, seen = await check.run()
            entry.seen = seen
            if ok != entry.healthy:
                entry.healthy, entry.since = ok, time.time()
                how = "passes: announcing" if ok else f"fails ({seen}): withdrawing"
                (log.info if ok else log.warning)("%s: health check %s", entry.prefix, how)
                self.apply(self.announced())
            await asyncio.sleep(check.interval)

    def row(self, e: _Entry) -> dict[str, Any]:
        return {
            "prefix": str(e.prefix),
            "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in e.communities],
            "announced": e.healthy,
            "check": None if e.check is None else e.check.to_json(),
            "last_check": e.seen or None,
            "since": e.since,
        }

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(e) for _, e in sorted(self.entries.items(), key=lambda t: str(t[0]))]

    def stop(self) -> None:
        for p in list(self.entries):
            self._cancel(p)


class AnnounceAPI:
    """The control API's announcement verbs over an `Anycast` and the services' current set:
    ``announce`` {prefix, communities?, check?}, ``withdraw`` {prefix}, and
    ``show.announcements`` (run-time entries and the service prefixes announced here)."""

    def __init__(self, anycast: Anycast, services: Callable[[], Announce]) -> None:
        self.anycast = anycast
        self.services = services

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "announce": self._announce,
            "withdraw": self._withdraw,
            "show.announcements": self._show,
        }

    @staticmethod
    def _prefix(args: dict[str, Any]) -> IPNetwork:
        text = api.arg_str(args, "prefix")
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise api.InvalidArgument(
                f"prefix: {text!r} is not a prefix (host bits must be zero)"
            ) from None

    async def _announce(self, args: dict[str, Any]) -> Any:
        prefix = self._prefix(args)
        raw = args.get("communities") or []
        if not isinstance(raw, list):
            raise api.InvalidArgument("communities: a list of A:B strings is required")
        try:
            communities = tuple(parse_community(c) for c in raw)
            check = None if args.get("check") is None else HealthCheck.parse(_object(args["check"]))
        except ValueError as exc:
            raise api.InvalidArgument(str(exc)) from None
        return self.anycast.announce(prefix, communities, check)

    async def _withdraw(self, args: dict[str, Any]) -> Any:
        prefix = self._prefix(args)
        if not self.anycast.withdraw(prefix):
            raise api.APIError(f"{prefix} was not announced with podbgp announce")
        return {"prefix": str(prefix), "withdrawn": True}

    async def _show(self, args: dict[str, Any]) -> Any:
        return {
            "runtime": self.anycast.rows(),
            "services": [
                {"prefix": str(p), "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in comms]}
                for p, comms in sorted(self.services().items(), key=lambda t: str(t[0]))
            ],
        }


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("check: an object with exec or tcp is required")
    return value
