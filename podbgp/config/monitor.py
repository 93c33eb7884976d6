"""Readers of the monitoring sections: `[bmp]` with its `[[bmp.station]]`s, and `[mrt]`.

Each collects every error with its key path, as `podbgp.config.sections` does for the
other sections; the defaults are the dataclasses' own (`schema`)."""

from __future__ import annotations

import re

from podbgp.config.reader import (
    _REQUIRED,
    _address,
    _done,
    _enum,
    _int_range,
    _Invalid,
    _port,
    _Table,
    default_of,
    show,
)
from podbgp.config.schema import BMPConfig, BMPStation, MRTConfig, RouteMonitoring

__all__ = ["_read_bmp", "_read_mrt"]

DAY = 86400


def _read_station(t: _Table) -> BMPStation | None:
    def d(name: str) -> object:
        return default_of(BMPStation, name)

    address = t.get("address", str, _REQUIRED, _address)
    port = t.get("port", int, d("port"), _port)
    monitoring = t.get("route_monitoring", str, d("route_monitoring"), _enum(RouteMonitoring))
    stats = t.get("statistics_interval", int, d("statistics_interval"), _int_range(0, DAY))
    queue = t.get("queue_limit", int, d("queue_limit"), _int_range(100, 10_000_000))
    reconnect = t.get("reconnect_max", int, d("reconnect_max"), _int_range(1, 3600))
    return _done(t, lambda: BMPStation(address, port, monitoring, stats, queue, reconnect))


def _read_bmp(t: _Table) -> BMPConfig | None:
    tables = t.subs("station")
    stations = [_read_station(s) for s in tables]
    seen: set[tuple[object, int]] = set()
    for s, table in zip(stations, tables, strict=True):
        if s is None:
            continue
        if (s.address, s.port) in seen:
            table.error("address", f"station {s.address} port {s.port} is listed twice")
        seen.add((s.address, s.port))
    sys_name = t.get("sys_name", str, default_of(BMPConfig, "sys_name"))
    sys_descr = t.get("sys_descr", str, default_of(BMPConfig, "sys_descr"))
    if None in stations or any(x.failed for x in tables):
        t.failed = True
    return _done(t, lambda: BMPConfig(tuple(s for s in stations if s), sys_name, sys_descr))


def _directory(v: str) -> str:
    if not v.startswith("/"):
        raise _Invalid(f"{show(v)} is not an absolute path")
    return v


def _file_pattern(v: str) -> str:
    if "/" in v or not v:
        raise _Invalid(f"{show(v)} must be a file name (no /)")
    if not re.search(r"%[a-zA-Z]", v):
        raise _Invalid(f"{show(v)} has no strftime field (%Y%m%d.%H%M%S): every dump would "
                       "overwrite the last")  # fmt: skip
    return v


def _read_mrt(t: _Table) -> MRTConfig | None:
    def d(name: str) -> object:
        return default_of(MRTConfig, name)

    directory = t.get("directory", str, d("directory"), _directory)
    interval = t.get("table_dump_interval", int, d("table_dump_interval"), _int_range(0, 7 * DAY))
    pattern = t.get("file_pattern", str, d("file_pattern"), _file_pattern)
    keep = t.get("keep", int, d("keep"), _int_range(0, 1_000_000))
    updates = t.get("update_dump_interval", int, d("update_dump_interval"), _int_range(0, DAY))
    upattern = t.get("update_file_pattern", str, d("update_file_pattern"), _file_pattern)
    if pattern is not None and pattern == upattern:
        t.error("update_file_pattern", "must differ from file_pattern (rotation tells them apart)")
    return _done(t, lambda: MRTConfig(directory, interval, pattern, keep, updates, upattern))
