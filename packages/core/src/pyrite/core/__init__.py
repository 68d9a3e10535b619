"""pyrite-core: URI, Pyro5's wire protocol, Proxy and Daemon, and the plugin registries.

Names are loaded on first access, so importing ``pyrite.core`` is cheap and
``pyrite.core.Proxy`` works without importing the server side.
"""

from __future__ import annotations

from ._version import __version__
from .lazy import lazy_exports

_EXPORTS = {
    "URI": "uri",
    "DAEMON_NAME": "uri",
    "NAMESERVER_NAME": "uri",
    "config": "config",
    "current_context": "callcontext",
    "SerializedBlob": "blob",
    "Proxy": "client",
    "BatchProxy": "client",
    "SharedProxy": "shared",
    "Daemon": "daemon",
    "DaemonObject": "daemon",
    "serve": "daemon",
    "expose": "exposure",
    "oneway": "exposure",
    "behavior": "exposure",
    "callback": "exposure",
    "locate_ns": "naming",
    "resolve": "naming",
    "type_meta": "naming",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
