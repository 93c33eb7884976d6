"""rib.heap: a pinned mmap threshold keeps large tables out of the brk heap.

Each case runs in a fresh interpreter, since the allocator setting is per
process. glibc's ``mallinfo2().hblkhd`` counts the bytes held in mmapped
blocks, which shows where a new 2 MiB block went.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import textwrap

import pytest


def has_mallinfo2() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")


pytestmark = pytest.mark.skipif(
    not has_mallinfo2(), reason="mallopt/mallinfo2 are glibc interfaces (mallinfo2: glibc >= 2.33)"
)

PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from rib.heap import pin_mmap_threshold

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else False
    big = bytearray(8 << 20)
    del big  # freeing an mmapped block raises glibc's dynamic threshold to 8 MiB
    before = libc.mallinfo2().hblkhd
    blocks = [bytearray(2 << 20) for _ in range(3)]
    print(pinned, libc.mallinfo2().hblkhd - before)
    """
)


def probe(mode: str, **env: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return out[0] == "True", int(out[1])


def test_unpinned_threshold_rises_and_blocks_go_to_the_heap() -> None:
    pinned, mmapped = probe("none")
    assert not pinned
    assert mmapped == 0  # the regression's mechanism: 2 MiB blocks carved from brk


def test_pinned_threshold_keeps_large_blocks_mmapped() -> None:
    pinned, mmapped = probe("pin")
    assert pinned
    assert mmapped >= 3 * (2 << 20)


def test_operator_setting_wins() -> None:
    pinned, mmapped = probe("pin", MALLOC_MMAP_THRESHOLD_=str(16 << 20))
    assert not pinned
    assert mmapped == 0  # 2 MiB is below the operator's 16 MiB threshold
    pinned, _ = probe("pin", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=16777216")
    assert not pinned
