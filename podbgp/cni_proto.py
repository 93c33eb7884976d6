"""The CNI execution protocol, without I/O: environment, errors, versions, results.

CNI spec 1.0 ("Container Network Interface Specification", SPEC.md):

* §"Parameters": the runtime passes ``CNI_COMMAND``, ``CNI_CONTAINERID``,
  ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS`` and ``CNI_PATH`` in the
  environment; which of them a command needs is in `REQUIRED`.
* §"Error": a failed plugin prints ``{"cniVersion", "code", "msg", "details"}``
  on stdout and exits non-zero. Codes 1-99 are the spec's (`ErrorCode`);
  999 is what libcni calls an internal error and we use it for every
  plugin-specific failure (netlink, IPAM exhausted).
* §"Version": ``VERSION`` answers the versions the plugin speaks.
* §"Success": the ADD result (`Attachment.to_result`): ``interfaces`` (the
  host side without ``sandbox``, the pod side with it), ``ips`` pointing at the
  pod interface by index, ``routes`` and ``dns``. Results for 0.3.x/0.4.0
  differ from 1.0.0 only in the per-address ``version`` key, which 1.0.0
  dropped.

Unknown ``CNI_ARGS`` keys are ignored (kubelet always sends
``IgnoreUnknown=1`` and the ``K8S_POD_*`` keys anyway).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
LATEST = "1.0.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")

# Which variables each command needs (SPEC.md §"Parameters", per operation).
REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "VERSION": (),
}

# SPEC.md §"Parameters": "Must start with an alphanumeric character, optionally
# followed by any combination of one or more alphanumeric characters,
# underscore, dot or hyphen."
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class ErrorCode(IntEnum):
    """SPEC.md §"Error" well-known codes, plus libcni's internal error."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODE_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    INTERNAL = 999


class CniError(Exception):
    """A failure reported to the runtime as CNI error JSON."""

    def __init__(self, code: ErrorCode, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str = LATEST) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": int(self.code), "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True, slots=True)
class CniEnv:
    """The ``CNI_*`` environment of one invocation, validated."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()

    @property
    def pod_namespace(self) -> str:
        return self.args.get("K8S_POD_NAMESPACE", "")

    @property
    def pod_name(self) -> str:
        return self.args.get("K8S_POD_NAME", "")


def parse_cni_args(text: str) -> dict[str, str]:
    """``CNI_ARGS``: ``KEY=VALUE`` pairs separated by ``;`` (SPEC.md §"Parameters")."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CniError(
                ErrorCode.INVALID_ENVIRONMENT, f"CNI_ARGS: {part!r} is not KEY=VALUE", text
            )
        out[key.strip()] = value.strip()
    return out


def check_ifname(name: str) -> str | None:
    """Why `name` is not a valid interface name (SPEC.md §"Parameters"), or None."""
    if not name:
        return "must not be empty"
    if len(name) > 15:
        return "must be at most 15 characters"
    if name in (".", ".."):
        return "must not be . or .."
    if any(c in name for c in "/:") or any(c.isspace() for c in name):
        return "must not contain '/', ':' or whitespace"
    return None


def parse_env(environ: Mapping[str, str]) -> CniEnv:
    """Validate the ``CNI_*`` variables for the command; code 4 names the bad ones."""
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            ErrorCode.INVALID_ENVIRONMENT,
            f"CNI_COMMAND: {command!r} is not one of {', '.join(COMMANDS)}",
        )
    missing = [v for v in REQUIRED[command] if not environ.get(v)]
    if missing:
        raise CniError(
            ErrorCode.INVALID_ENVIRONMENT, f"{command} needs {', '.join(missing)} (not set)"
        )
    cid = environ.get("CNI_CONTAINERID", "")
    if cid and not _CONTAINER_ID.match(cid):
        raise CniError(
            ErrorCode.INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID: {cid!r} must start alphanumeric and contain only "
            "alphanumerics, '_', '.' and '-'",
        )
    ifname = environ.get("CNI_IFNAME", "")
    why = check_ifname(ifname) if command != "VERSION" else None
    if why:
        raise CniError(ErrorCode.INVALID_ENVIRONMENT, f"CNI_IFNAME: {ifname!r} {why}")
    return CniEnv(
        command=command,
        container_id=cid,
        netns=environ.get("CNI_NETNS", ""),
        ifname=ifname,
        args=parse_cni_args(environ.get("CNI_ARGS", "")),
        path=tuple(p for p in environ.get("CNI_PATH", "").split(":") if p),
    )


def check_version(version: object) -> str:
    """The config's ``cniVersion`` if this plugin speaks it; code 1 otherwise."""
    if not isinstance(version, str) or not version:
        raise CniError(ErrorCode.INVALID_CONFIG, "cniVersion: required (a string)")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            ErrorCode.INCOMPATIBLE_VERSION,
            f"incompatible CNI version {version!r}; "
            f"this plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    return version


def version_reply(requested: object) -> dict[str, Any]:
    """SPEC.md §"VERSION": the versions we speak, in the requested version if we know it."""
    version = (
        requested if isinstance(requested, str) and requested in SUPPORTED_VERSIONS else LATEST
    )
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def version_allows_check(version: str) -> bool:
    """CHECK arrived with spec 0.4.0."""
    return tuple(int(x) for x in version.split(".")) >= (0, 4, 0)


@dataclass(frozen=True, slots=True)
class Attachment:
    """What ADD made: both veth ends, the pod's addresses and its default routes."""

    host_ifname: str
    host_mac: str
    pod_ifname: str
    pod_mac: str
    sandbox: str
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]
    gateways: Mapping[int, str]  # IP version -> the pod's default gateway
    dns: Mapping[str, Any] = field(default_factory=dict)

    def to_result(self, version: str) -> dict[str, Any]:
        """The ADD result for spec `version` (SPEC.md §"Success")."""
        ips: list[dict[str, Any]] = []
        for addr in self.addresses:
            entry: dict[str, Any] = {
                "address": str(addr),
                "gateway": self.gateways[addr.version],
                "interface": 1,
            }
            if version != "1.0.0":
                entry["version"] = str(addr.version)
            ips.append(entry)
        versions = sorted({a.version for a in self.addresses})
        routes = [
            {"dst": "0.0.0.0/0" if v == 4 else "::/0", "gw": self.gateways[v]} for v in versions
        ]
        return {
            "cniVersion": version,
            "interfaces": [
                {"name": self.host_ifname, "mac": self.host_mac},
                {"name": self.pod_ifname, "mac": self.pod_mac, "sandbox": self.sandbox},
            ],
            "ips": ips,
            "routes": routes,
            "dns": dict(self.dns),
        }


def result_addresses(
    prev: Mapping[str, Any], ifname: str
) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """The pod interface's addresses in a previous result (CHECK's ``prevResult``)."""
    try:
        ifaces = list(prev.get("interfaces") or [])
        out = []
        for ip in prev.get("ips") or []:
            idx = ip.get("interface")
            if idx is not None and (
                not 0 <= int(idx) < len(ifaces) or ifaces[int(idx)].get("name") != ifname
            ):
                continue
            out.append(ipaddress.ip_interface(str(ip["address"])))
        return out
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CniError(ErrorCode.INVALID_CONFIG, f"prevResult: cannot read its ips: {e}") from e
