"""A separate allocating process for the contention and crash tests.

    python ipam_worker.py DATASTORE POOL_CIDR BLOCK_SIZE NODE MODE SEED

MODE ``fill``: allocate until the pool is exhausted; prints ``A address handle``
after each allocation returns and ``EXHAUSTED message`` at the end.
MODE ``churn``: allocate and release at random until killed; prints ``A ...``
after an allocation and ``R handle`` after a release returns, so the parent
knows which handles are live (anything else still allocated is a leak).
"""

from __future__ import annotations

import asyncio
import random
import sys

from ipam import Exhausted, Ipam, IpamConfig, Pool
from ipam.identity import join
from ipam.store import open_store


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, cidr: str, block_size: int, node: str, mode: str, seed: int) -> int:
    rng = random.Random(seed)
    cfg = IpamConfig(pools=(Pool.parse({"cidr": cidr, "block_size": block_size}),))
    store = await join(open_store(url), None)  # every write also checks the cluster key
    ipam = Ipam(store, cfg)
    held: list[str] = []
    say("READY")
    try:
        for i in range(10**9):
            handle = f"{node}-{seed}-{i}"
            if mode == "churn" and held and rng.random() < 0.5:
                victim = held.pop(rng.randrange(len(held)))
                await ipam.release_handle(victim)
                say(f"R {victim}")
                continue
            try:
                got = await ipam.allocate(node, handle)
            except Exhausted as e:
                if mode == "fill":
                    say(f"EXHAUSTED {e}")
                    return 0
                if held:
                    victim = held.pop(0)
                    await ipam.release_handle(victim)
                    say(f"R {victim}")
                continue
            held.append(handle)
            say(f"A {got.address} {handle}")
    finally:
        await store.close()
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(asyncio.run(main(a[0], a[1], int(a[2]), a[3], a[4], int(a[5]))))
