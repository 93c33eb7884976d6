"""The lab's ping matrix: every pod pings every other pod, over each of its addresses.

A pair is reachable when every address of the destination answers (both families in a
dual-stack lab); `version` narrows the matrix to one family, which is how `podbgp lab up`
prints an IPv4 and an IPv6 table. Pings run as `ping` processes inside the pods'
namespaces, many at a time.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podbgp.lab.netns import IP

if TYPE_CHECKING:
    from podbgp.lab.lab import LabState


@dataclass(frozen=True)
class PingResult:
    src: str
    dst: str
    ok: bool


def ping_pairs(
    pairs: Sequence[tuple[str, str, str]], wait: float = 1.0, parallel: int = 64
) -> list[PingResult]:
    """One ICMP echo per (src namespace, dst name, dst address), run `parallel` at a time."""
    results: list[PingResult] = []
    for i in range(0, len(pairs), parallel):
        chunk = pairs[i : i + parallel]
        procs = [
            subprocess.Popen(
                [IP, "netns", "exec", ns, "ping", "-n", "-q", "-c1", f"-W{wait:g}", addr],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for ns, _, addr in chunk
        ]
        for (ns, dst, _), proc in zip(chunk, procs, strict=True):
            results.append(PingResult(ns, dst, proc.wait(timeout=wait + 10) == 0))
    return results


def pod_addresses(pod: dict[str, Any], version: int | None = None) -> list[str]:
    """A pod's addresses (IPv4 first), or only those of IP `version`."""
    found = [a for a in (pod.get("ip", ""), pod.get("ip6", "")) if a]
    found = list(dict.fromkeys(found))
    if version is not None:
        found = [a for a in found if (":" in a) == (version == 6)]
    return found


def ping_matrix(
    state: LabState, wait: float = 1.0, version: int | None = None
) -> dict[tuple[str, str], bool]:
    """Every pod pings every other pod: {(src pod, dst pod): ok}. A pair is ok when every
    address of the destination (of IP `version` only, if given) answers."""
    by_ns = {p["ns"]: p["name"] for p in state.pods}
    pairs = [(a["ns"], b["name"], addr) for a in state.pods for b in state.pods if a is not b
             for addr in pod_addresses(b, version)]  # fmt: skip
    matrix: dict[tuple[str, str], bool] = {}
    for r in ping_pairs(pairs, wait):
        key = (by_ns[r.src], r.dst)
        matrix[key] = matrix.get(key, True) and r.ok
    return matrix


def wait_matrix(
    state: LabState, timeout: float, progress: Callable[[str], None] | None = None
) -> dict[tuple[str, str], bool]:
    """Ping until every pair answers or `timeout` passes; returns the last matrix."""
    deadline = time.monotonic() + timeout
    while True:
        matrix = ping_matrix(state)
        bad = sum(not ok for ok in matrix.values())
        if not bad or time.monotonic() > deadline:
            return matrix
        if progress:
            progress(f"waiting for convergence: {bad} of {len(matrix)} pod pairs not answering")
        time.sleep(0.5)


def format_matrix(state: LabState, matrix: dict[tuple[str, str], bool]) -> str:
    names = [p["name"] for p in state.pods]
    width = max(len(n) for n in names)
    lines = [" " * width + "  " + " ".join(n.rjust(width) for n in names)]
    for a in names:
        cells = []
        for b in names:
            mark = "·" if a == b else ("✓" if matrix.get((a, b)) else "✗")
            cells.append(mark.rjust(width))
        lines.append(a.ljust(width) + "  " + " ".join(cells))
    ok = sum(matrix.values())
    lines.append(f"{ok}/{len(matrix)} pod pairs reachable")
    return "\n".join(lines)
