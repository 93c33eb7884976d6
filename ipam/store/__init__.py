"""The datastore: a revisioned key-value interface and its SQLite and etcd implementations.

`open_store("sqlite:/var/lib/podbgp/podbgp.db")` or
`open_store("etcd:http://10.0.0.1:2379,http://10.0.0.2:2379")` picks one from
a URL (the `podbgp ipam --datastore` syntax); see `ipam.store.base` for the
model every implementation follows.
"""

from __future__ import annotations

from ipam.store.base import (
    Compare,
    Delete,
    Event,
    EventKind,
    KeyValue,
    LeaseExpired,
    Op,
    OpenMode,
    Put,
    Store,
    StoreError,
    StoreIdentityError,
    StoreMissing,
    StoreReplaced,
    StoreUnavailable,
    TxnResult,
    WatchCompacted,
)

__all__ = [
    "Compare",
    "Delete",
    "Event",
    "EventKind",
    "KeyValue",
    "LeaseExpired",
    "Op",
    "OpenMode",
    "Put",
    "Store",
    "StoreError",
    "StoreIdentityError",
    "StoreMissing",
    "StoreReplaced",
    "StoreUnavailable",
    "TxnResult",
    "WatchCompacted",
    "open_store",
]


def open_store(url: str, mode: OpenMode = OpenMode.READ_WRITE) -> Store:
    """A store from ``sqlite:PATH`` or ``etcd:URL[,URL...][?ca=CA&cert=CERT&key=KEY]`` (TLS
    files for ``https://`` endpoints); never creates one unless `mode` is CREATE.

    For etcd the mode only matters to `ipam.identity` (an etcd cluster always
    exists; what "created" means there is the cluster key).
    """
    kind, sep, rest = url.partition(":")
    if not sep or not rest:
        raise StoreError(
            f"datastore {url!r}: expected sqlite:PATH or etcd:http(s)://HOST:PORT[,...]"
        )
    if kind == "sqlite":
        from ipam.store.sqlite import SqliteStore

        return SqliteStore(rest, mode=mode)
    if kind == "etcd":
        from ipam.store.etcd import EtcdStore, TlsFiles

        endpoints, _, query = rest.partition("?")
        return EtcdStore([e for e in endpoints.split(",") if e], tls=TlsFiles.from_query(query))
    raise StoreError(f"datastore {url!r}: kind must be sqlite or etcd")
