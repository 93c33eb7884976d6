"""`podbgp-cni`: the CNI plugin that puts a pod on podbgp's network.

A container runtime runs it once per operation (CNI spec 1.0, SPEC.md
§"Execution Protocol"): the operation and the container in ``CNI_*``
environment variables (`podbgp.cni_proto`), the network configuration as JSON
on stdin (`podbgp.cni_conf`), the result or an error as JSON on stdout.

* ADD: check the namespace exists, take one address per IP version from
  podbgp's IPAM (handle = CNI_CONTAINERID, attributes namespace/pod from
  ``CNI_ARGS``, affinity to ``node_name``; the pools chosen by the pod's
  namespace, ``K8S_POD_NAMESPACE``, or named by ``IPV4_POOLS``/``IPV6_POOLS``
  or the config, `ipam.selection`), then wire the pod
  (`podbgp.cni_net`). If wiring fails the veth is removed and the addresses
  released, so a failed ADD leaves nothing behind. An ADD repeated for the
  same container gets the same addresses (IPAM returns what the handle
  holds) and a fresh veth.
* DEL: remove the veth (and with it the pod end and the node's routes), then
  release every address the handle holds. Idempotent: a missing veth, a
  missing namespace, an unknown container are all success (SPEC.md §"DEL":
  "Plugins should generally complete a DEL action without error even if some
  resources are missing").
* CHECK: the veth ends, addresses and routes of ``prevResult`` (or, without
  one, of the IPAM handle) are in place, and IPAM still holds the addresses.
* VERSION: the versions this plugin speaks.

IPAM is asynchronous (`ipam.Ipam`); each call runs it with `asyncio.run` and
closes the store before returning. Store trouble (unreachable etcd, a locked
SQLite file past its timeout, CAS conflicts that do not settle) is reported
as code 11, "try again later", because a retry can succeed.

Every call first joins the store (`ipam.identity.join`): it must exist (the
plugin never creates one), carry a cluster ID, and -- when this node has
recorded one (``cluster_id_file``, by default the daemon's) -- the same ID.
A missing, uninitialised, replaced or foreign store is code 11 with a
message saying which, and nothing is allocated or released: handing out an
address from the wrong store is how two pods get one address.

Kernel work goes through `podbgp.cni_net`, which with this module's gateway check is the
plugin's stated exception to "only ``fib.netlink`` imports pyroute2" (see its docstring).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ipam import Ipam, IpamError, NodeRemoved, PoolUse, TooManyConflicts, leaks
from ipam.identity import join
from ipam.model import handle_key, loads
from ipam.selection import PoolRequest, namespace_labels
from ipam.store import Store, StoreError, StoreIdentityError, open_store
from podbgp import cni_net
from podbgp.cni_conf import POOL_ARGS, NetConf, parse_netconf, pool_names
from podbgp.cni_proto import (
    LATEST,
    SUPPORTED_VERSIONS,
    Attachment,
    CniEnv,
    CniError,
    ErrorCode,
    parse_env,
    result_addresses,
    version_allows_check,
    version_reply,
)

log = logging.getLogger("podbgp.cni")
T = TypeVar("T")
IPAM_TIMEOUT = 60.0  # seconds; kubelet's own CNI timeout is a few minutes


def _ipam_call(conf: NetConf, fn: Callable[[Ipam], Awaitable[T]]) -> T:
    """Run one IPAM operation against the configured store; store trouble is code 11."""

    async def run() -> T:
        store: Store = open_store(conf.datastore)
        try:
            joined = await join(store, conf.cluster_id_file or None)
            return await asyncio.wait_for(fn(Ipam(joined, conf.ipam)), IPAM_TIMEOUT)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreIdentityError as e:
        raise CniError(ErrorCode.TRY_AGAIN_LATER, f"{e} (nothing was allocated or released)") from e
    except (StoreError, TooManyConflicts, TimeoutError) as e:
        raise CniError(
            ErrorCode.TRY_AGAIN_LATER, f"datastore {conf.datastore}: {e or 'timed out'}"
        ) from e
    except NodeRemoved as e:  # the node's daemon rejoins when it starts: a retry can succeed
        raise CniError(ErrorCode.TRY_AGAIN_LATER, f"IPAM: {e}") from e
    except IpamError as e:  # exhausted, address in use, not in a pool
        raise CniError(ErrorCode.INTERNAL, f"IPAM: {e}") from e


def _requested(env: CniEnv) -> list[cni_net.IPIface]:
    """``IP=ADDR[,ADDR]`` in CNI_ARGS asks for specific addresses (a static pod IP)."""
    text = env.args.get("IP", "")
    try:
        return [ipaddress.ip_interface(a.strip()) for a in text.split(",") if a.strip()]
    except ValueError as e:
        raise CniError(ErrorCode.INVALID_ENVIRONMENT, f"CNI_ARGS IP: {e}") from e


def _pool_request(conf: NetConf, env: CniEnv, version: int) -> PoolRequest:
    """The pod's namespace and the pools it names: ``IPV4_POOLS``/``IPV6_POOLS`` in
    CNI_ARGS, else the config's ``runtimeConfig``/``ipam`` lists (`podbgp.cni_conf`)."""
    key = POOL_ARGS[version]
    if key in env.args:
        try:
            explicit = pool_names(env.args[key], version, f"CNI_ARGS {key}")
        except CniError as e:
            raise CniError(ErrorCode.INVALID_ENVIRONMENT, e.msg) from e
    else:
        explicit = tuple(conf.explicit_pools.get(version, ()))
    return PoolRequest(version, PoolUse.WORKLOAD, namespace_labels(env.pod_namespace), explicit)


def _allocate(conf: NetConf, env: CniEnv) -> list[cni_net.IPIface]:
    attrs = {"namespace": env.pod_namespace, "pod": env.pod_name, "node": conf.node_name}
    attrs = {k: v for k, v in attrs.items() if v}
    attrs |= _netns_attrs(env.netns)
    wanted = {a.version: a.ip for a in _requested(env)}
    requests = {v: _pool_request(conf, env, v) for v in conf.versions}

    async def go(ipam: Ipam) -> list[cni_net.IPIface]:
        out: list[cni_net.IPIface] = []
        for version in conf.versions:
            if version in wanted:
                got = await ipam.assign(wanted[version], conf.node_name, env.container_id, attrs)
            else:
                got = await ipam.allocate(
                    conf.node_name, env.container_id, attrs=attrs, request=requests[version]
                )
            out.append(ipaddress.ip_interface(f"{got.address}/{got.address.max_prefixlen}"))
        return out

    return _ipam_call(conf, go)


def _netns_attrs(path: str) -> dict[str, str]:
    """The pod's namespace, recorded so its node's daemon can tell when it is gone (`ipam.leaks`)."""
    try:
        return {leaks.NETNS: path, leaks.NETNS_ID: leaks.netns_id(path)}
    except OSError as e:
        raise CniError(ErrorCode.UNKNOWN_CONTAINER, f"CNI_NETNS {path}: {e.strerror}") from e


def _release(conf: NetConf, handle: str) -> list[str]:
    async def go(ipam: Ipam) -> list[str]:
        return [str(a) for a in await ipam.release_handle(handle)]

    return _ipam_call(conf, go)


def _held(conf: NetConf, handle: str) -> set[str]:
    """The addresses IPAM has recorded for `handle`."""

    async def go(ipam: Ipam) -> set[str]:
        kv = await ipam.store.get(handle_key(handle))
        return set() if kv is None else set(loads(kv.value).get("addrs", {}))

    return _ipam_call(conf, go)


def _plumbing_error(e: cni_net.PlumbingError) -> CniError:
    if isinstance(e, cni_net.NoNetns):
        return CniError(ErrorCode.UNKNOWN_CONTAINER, str(e))
    return CniError(ErrorCode.INTERNAL, str(e))


def cmd_add(env: CniEnv, conf: NetConf) -> dict[str, Any]:
    if not os.path.exists(env.netns):
        raise CniError(ErrorCode.UNKNOWN_CONTAINER, f"CNI_NETNS {env.netns}: no such namespace")
    host_if = cni_net.host_ifname(env.container_id)
    addresses = _allocate(conf, env)
    try:
        plumbed = cni_net.add(
            env.netns, env.ifname, host_if, addresses, conf.mtu, conf.route_protocol
        )
    except cni_net.PlumbingError as e:
        _undo_add(conf, env, host_if)
        raise _plumbing_error(e) from e
    _warn_gateway(host_if)
    log.info("ADD %s %s %s", env.container_id, host_if, " ".join(map(str, addresses)))
    return Attachment(
        host_ifname=host_if,
        host_mac=plumbed.host_mac,
        pod_ifname=env.ifname,
        pod_mac=plumbed.pod_mac,
        sandbox=env.netns,
        addresses=tuple(addresses),
        gateways=cni_net.GATEWAYS,
        dns=conf.dns,
    ).to_result(conf.cni_version)


def _undo_add(conf: NetConf, env: CniEnv, host_if: str) -> None:
    """Best effort after a failed ADD: the runtime may never call DEL for it."""
    try:
        cni_net.delete(host_if)
    except cni_net.PlumbingError as e:
        log.warning("ADD %s failed and %s could not be removed: %s", env.container_id, host_if, e)
    try:
        _release(conf, env.container_id)
    except CniError as e:
        log.warning("ADD %s failed and its addresses were not released: %s", env.container_id, e)


def _warn_gateway(host_if: str) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        missing = cni_net.gateway_route_missing(ipr, host_if)
    if missing:
        log.warning(
            "this node has no route to %s through another interface; proxy ARP will not "
            "answer the pods' gateway (add a default route or %s/32 via the uplink)",
            cni_net.GATEWAY4,
            cni_net.GATEWAY4,
        )


def cmd_del(env: CniEnv, conf: NetConf) -> None:
    host_if = cni_net.host_ifname(env.container_id)
    try:
        removed = cni_net.delete(host_if)
    except cni_net.PlumbingError as e:
        raise _plumbing_error(e) from e
    released = _release(conf, env.container_id)
    log.info(
        "DEL %s %s%s released %s",
        env.container_id,
        host_if,
        "" if removed else " (already gone)",
        " ".join(released) or "nothing",
    )


def cmd_check(env: CniEnv, conf: NetConf) -> None:
    if not version_allows_check(conf.cni_version):
        raise CniError(
            ErrorCode.INCOMPATIBLE_VERSION,
            f"CHECK needs cniVersion 0.4.0 or later, got {conf.cni_version}",
        )
    held = _held(conf, env.container_id)
    if conf.prev_result is not None:
        addresses = result_addresses(conf.prev_result, env.ifname)
    else:
        addresses = [ipaddress.ip_interface(a) for a in sorted(held)]
    if not addresses:
        raise CniError(ErrorCode.INTERNAL, f"CHECK {env.container_id}: no addresses to check")
    lost = [str(a.ip) for a in addresses if str(a.ip) not in held]
    if lost:
        raise CniError(
            ErrorCode.INTERNAL,
            f"IPAM does not hold {', '.join(lost)} for container {env.container_id}",
        )
    try:
        cni_net.check(env.netns, env.ifname, cni_net.host_ifname(env.container_id), addresses)
    except cni_net.PlumbingError as e:
        raise _plumbing_error(e) from e


def _setup_log(path: str) -> None:
    if not path:
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _decode(stdin: bytes) -> Any:
    try:
        return json.loads(stdin)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CniError(ErrorCode.DECODE_FAILURE, f"network configuration is not JSON: {e}") from e


def run(environ: Mapping[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None, str]:
    """One invocation: (exit status, JSON for stdout or None, cniVersion for errors)."""
    version = LATEST
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            raw = _decode(stdin) if stdin.strip() else {}
            return (
                0,
                version_reply(raw.get("cniVersion") if isinstance(raw, dict) else None),
                LATEST,
            )
        raw = _decode(stdin)
        if isinstance(raw, dict) and raw.get("cniVersion") in SUPPORTED_VERSIONS:
            version = raw["cniVersion"]
        conf = parse_netconf(raw)
        _setup_log(conf.log_file)
        start = time.monotonic()
        out: dict[str, Any] | None = None
        if env.command == "ADD":
            out = cmd_add(env, conf)
        elif env.command == "DEL":
            cmd_del(env, conf)
        else:
            cmd_check(env, conf)
        log.debug("%s took %.3f s", env.command, time.monotonic() - start)
        return 0, out, version
    except CniError as e:
        log.error("%s: %s", environ.get("CNI_COMMAND", "?"), e.msg)
        return 1, e.to_json(version), version


def main() -> int:
    """Entry point of the `podbgp-cni` executable."""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    log.addHandler(stderr)
    try:
        stdin = sys.stdin.buffer.read()
    except OSError as e:
        err = CniError(ErrorCode.IO_FAILURE, f"reading the network configuration: {e}")
        print(json.dumps(err.to_json()))
        return 1
    try:
        status, out, _ = run(os.environ, stdin)
    except Exception as e:  # a bug: still answer in the protocol's format
        log.exception("unexpected failure")
        err = CniError(ErrorCode.INTERNAL, f"unexpected error: {type(e).__name__}: {e}")
        print(json.dumps(err.to_json()))
        return 1
    if out is not None:
        print(json.dumps(out))
    return status
