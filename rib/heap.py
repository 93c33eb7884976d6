"""Large RIB tables and the C allocator: keep big blocks out of the ``brk`` heap.

A full table lives in a few large dicts (the Loc-RIB, the Adj-RIB-Out of an
ADD-PATH or prefix-dependent update group): at 1M prefixes each one's hash table is a single 21 MB block
that CPython replaces by a 42 MB one when the dict grows. glibc's malloc
serves blocks above ``M_MMAP_THRESHOLD`` with ``mmap`` and gives them back
to the kernel when freed; but the threshold is *dynamic*: freeing an
mmapped block raises it to that block's size (up to 32 MB). After that, a
table of a few MB lands in the ``brk`` heap, and once several such tables
were freed side by side the next big one is carved out of that free space.
When the dict grows again, the old table is freed in the middle of the heap,
cannot be trimmed, and stays resident next to its successor.

Measured with ``benchmarks/rib.py --prefixes 1000000 --monitors 1``: peak
RSS was 161 or 189-191 bytes per route depending on nothing in ``rib/`` (a
one-line change in an unrelated module flipped it, by moving earlier
allocations), because the Adj-RIB-Out's 21 MB table did or did not end up in
the heap. Pinning the threshold (which also turns the dynamic adjustment
off) makes every big table an mmap of its own: 161 bytes per route every
time, at no measurable cost in speed (see ``pin_mmap_threshold``).
"""

from __future__ import annotations

import ctypes
import gc
import os

__all__ = ["GC_THRESHOLDS", "MMAP_THRESHOLD", "pin_mmap_threshold", "tune_gc"]

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's <malloc.h>
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MiB or more: only whole tables and large lists


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process (see the module docstring).

    Returns True if it was set. A no-op (False) when the C library is not
    glibc, or when the operator chose a value with ``MALLOC_MMAP_THRESHOLD_``
    or ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...`` (which then wins).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        # The process's own symbols, the C library's among them: no search for the
        # library (``ctypes.util.find_library`` runs ``ldconfig -p`` in a child
        # process, a fork of the whole daemon at every start)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # musl and others have no mallopt: nothing to pin
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a long-lived process holding big tables.

    A full table is a few dicts of a million entries that the collector walks
    on every full collection; with the default thresholds (700, 10, 10) a
    table being learned sets off so many that learning it takes 15-27 % longer
    (docs/benchmarks.md). Objects alive at the call are moved out
    of the collector's sight (``gc.freeze``), and young collections run every
    100,000 container allocations instead of every 700: cyclic garbage still
    goes, a little later (the RIB makes little of it).
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
