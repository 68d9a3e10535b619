"""The pyrite name server: a registry of names -> URIs (with metadata tags), its storage
backends, the UDP broadcast responder, and the ``pyrite-ns`` / ``pyrite-nsc`` tools.

Names are imported on first use, so ``import pyrite.nameserver.storage`` (or
the registry) does not load the daemon machinery::

    from pyrite.nameserver import start_ns, start_ns_loop, NameServer
"""

from __future__ import annotations

from pyrite.core.lazy import lazy_exports

from ._version import __version__

_EXPORTS = {
    "NameServer": "registry",
    "NameServerDaemon": "server",
    "start_ns": "server",
    "start_ns_loop": "server",
    "BroadcastServer": "broadcast",
    "AutoCleaner": "autoclean",
    "MemoryStorage": "storage",
    "SqlStorage": "storage",
    "RedisStorage": "redis_storage",
    "open_storage": "storages",
    "lookup": "waiting",
    "yplookup": "waiting",
    "main": "cli",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
