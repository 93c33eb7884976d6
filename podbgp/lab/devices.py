"""Which tunnel devices this kernel can create: the one probe behind `podbgp lab` and
`podbgp advise`.

Creating the device is the only reliable test: the driver may be built in, loadable or
absent, and /proc/config.gz is not always there. It is tried in a child process that moves
itself into a new, private network namespace (``unshare(CLONE_NEWNET)``) and refuses to try
if its namespace is still the parent's; the namespace and the devices in it disappear with
the child, so nothing is left behind and no namespace name can clash. Creating a device may
load the kernel module, as any first use would. The child creates them with iproute2's
``ip`` (rtnetlink belongs to ``fib.netlink``).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Sequence

from fib.netns import CLONE_NEWNET
from podbgp.lab.netns import IP
from podbgp.lab.shell import CommandFailed, run

__all__ = ["KERNEL_OPTION", "KINDS", "ProbeFailed", "probe_devices"]

KINDS: dict[str, tuple[str, ...]] = {
    "ipip": ("type", "ipip", "local", "192.0.2.1"),
    "vxlan": ("type", "vxlan", "id", "4096", "dstport", "4789", "local", "192.0.2.1"),
}
KERNEL_OPTION = {"ipip": "CONFIG_NET_IPIP", "vxlan": "CONFIG_VXLAN"}


class ProbeFailed(RuntimeError):
    """The probe itself could not run (no private namespace, no answer): nothing is known."""


def probe_devices(
    kinds: Sequence[str] = tuple(KINDS), timeout: float = 20
) -> dict[str, str | None]:
    """For each kind: None when this kernel creates such a device, else its error text."""
    code = "import sys; from podbgp.lab.devices import _child; _child(sys.argv[1], sys.argv[2:])"
    parent_ns = os.readlink("/proc/thread-self/ns/net")
    try:
        out = run([sys.executable, "-c", code, parent_ns, *kinds], timeout=timeout)
        result: dict[str, str | None] = json.loads(out or "{}")
    except (OSError, CommandFailed, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        raise ProbeFailed(str(e)) from e
    if "error" in result or set(result) != set(kinds):
        raise ProbeFailed(str(result.get("error") or "no answer"))
    return result


def _child(parent_ns: str, kinds: Sequence[str]) -> None:
    """Runs in the child: enter a private namespace, try each kind, print JSON."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        print(json.dumps({"error": f"unshare: {os.strerror(ctypes.get_errno())}"}))
        return
    if os.readlink("/proc/thread-self/ns/net") == parent_ns:
        print(json.dumps({"error": "still in the parent's network namespace"}))
        return
    found: dict[str, str | None] = {}
    for kind in kinds:
        try:
            run([IP, "link", "add", f"probe-{kind}", *KINDS[kind]], timeout=10)
            found[kind] = None
        except CommandFailed as e:
            found[kind] = e.stderr or f"exit status {e.returncode}"
    print(json.dumps(found))
