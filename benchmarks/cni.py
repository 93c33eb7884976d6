"""podbgp-cni latency as a container runtime sees it; prints one JSON object.

    .venv/bin/python benchmarks/cni.py [--pods N]      (root: network namespaces)

Each call is a fresh `podbgp-cni` process run in a node namespace with the
CNI_* environment and the config on stdin, dual-stack pools and a SQLite
store in a temporary directory, exactly like tests/integration/cni:

* ``add_ms_median`` / ``add_ms_p90``: ADD per pod (interpreter start-up,
  imports, IPAM allocation of one IPv4 and one IPv6 address, veth, sysctls,
  addresses and routes in both namespaces);
* ``del_ms_median``: DEL per pod (veth removal, IPAM release);
* ``version_ms_median``: VERSION, i.e. the interpreter and import floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podbgp.lab.netns import IP, NetnsGroup

PLUGIN = str(Path(sys.executable).parent / "podbgp-cni")


def call(node: str, command: str, cid: str, netns: str, conf: bytes) -> float:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(PLUGIN).parent),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [IP, "netns", "exec", node, PLUGIN], input=conf, env=env, capture_output=True, check=False
    )
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{command} {cid} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NetnsGroup(f"bcni{os.getpid()}-") as group:
        node, peer = group.add("node"), group.add("peer")
        group.veth(node, "eth0", peer, "eth0")
        node.ip("route", "add", "169.254.1.1/32", "dev", "eth0", "scope", "link")
        conf = json.dumps({
            "cniVersion": "1.0.0", "name": "bench", "type": "podbgp-cni", "node_name": "n1",
            "datastore": f"sqlite:{tmp}/podbgp.db", "pools": ["10.244.0.0/16", "fd00:244::/56"],
        }).encode()  # fmt: skip
        subprocess.run([sys.executable, "-m", "podbgp", "datastore", "init",
                        "--datastore", f"sqlite:{tmp}/podbgp.db"], check=True, capture_output=True)  # fmt: skip
        pods = [group.add(f"p{i}") for i in range(args.pods)]
        version = [call(node.name, "VERSION", "x", "", conf) for _ in range(5)]
        adds = [call(node.name, "ADD", f"c{i}", f"/var/run/netns/{p.name}", conf) for i, p in enumerate(pods)]  # fmt: skip
        dels = [call(node.name, "DEL", f"c{i}", f"/var/run/netns/{p.name}", conf) for i, p in enumerate(pods)]  # fmt: skip
    adds.sort()
    print(json.dumps({
        "pods": args.pods,
        "add_ms_median": round(statistics.median(adds), 1),
        "add_ms_p90": round(adds[int(len(adds) * 0.9) - 1], 1),
        "del_ms_median": round(statistics.median(dels), 1),
        "version_ms_median": round(statistics.median(version), 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
