"""Name-server storages are plugins: the entry-point group ``pyrite.nameserver.storages``.

A storage spec (``pyrite-ns -s SPEC``, ``start_ns(storage=SPEC)``) picks its
plugin by the part before the first ``:`` (the whole spec when there is
none).  pyrite-nameserver declares::

    memory  -> pyrite.nameserver.storage:MemoryStorage          "memory"
    sql     -> pyrite.nameserver.storage:SqlStorage             "sql:FILE"
    redis   -> pyrite.nameserver.redis_storage:RedisStorage     "redis://[user:password@]host:port/db"
    rediss  -> (the same)                                       "rediss://..." (TLS)
    unix    -> (the same)                                       "unix:///path/to/redis.sock"

The entry point names a class (or any callable object) with a ``from_spec(spec)``
class method that returns the storage.  A third party adds a storage the same
way, in its own distribution::

    [project.entry-points."pyrite.nameserver.storages"]
    etcd = "mypackage.etcdstore:EtcdStorage"

The group is read once per process, on first use (``reset()`` forgets it, for
tests).  A plugin whose module cannot be imported, such as the Redis storage
without redis-py, is a ``NamingError`` that says what to install.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pyrite.core.errors import NamingError

__all__ = ["STORAGE_GROUP", "open_storage", "storage_names", "reset"]

STORAGE_GROUP = "pyrite.nameserver.storages"

# What to install for the storages pyrite itself declares.
_HINTS = {
    "redis": "pip install pyrite-nameserver[redis]",
    "rediss": "pip install pyrite-nameserver[redis]",
    "unix": "pip install pyrite-nameserver[redis]",
}

_lock = threading.Lock()
_found: dict[str, EntryPoint] | None = None


def _plugins() -> dict[str, EntryPoint]:
    global _found
    with _lock:
        if _found is None:
            _found = {ep.name: ep for ep in entry_points(group=STORAGE_GROUP)}
        return _found


def storage_names() -> list[str]:
    """The storage schemes installed plugins provide, sorted."""
    return sorted(_plugins())


def reset() -> None:
    """Forget the plugins read so far (tests install plugins while running)."""
    global _found
    with _lock:
        _found = None


def scheme_of(spec: str) -> str:
    """The plugin name of a spec: ``"sql:/x"`` -> ``"sql"``, ``"memory"`` -> ``"memory"``."""
    return spec.split(":", 1)[0].lower()


def open_storage(spec: str | None) -> Any:
    """Make the storage a spec names.  ValueError for a spec no plugin serves,
    NamingError (with the pip command) when the plugin cannot be loaded."""
    spec = spec or "memory"
    scheme = scheme_of(spec)
    ep = _plugins().get(scheme)
    if ep is None:
        known = ", ".join(storage_names()) or "none installed"
        raise ValueError(f"unknown storage {spec!r}: no storage plugin for {scheme!r} (known: {known})")
    try:
        factory = ep.load()
    except ImportError as exc:
        hint = _HINTS.get(scheme, f"install the distribution that provides the {scheme!r} storage")
        raise NamingError(f"the {scheme!r} storage cannot be loaded ({exc}); run: {hint}") from exc
    return factory.from_spec(spec)
