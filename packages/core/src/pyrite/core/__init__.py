"""pyrite-core: URI, Pyro5's wire protocol, Proxy and Daemon, and the plugin registries.

Names are loaded on first access, so importing ``pyrite.core`` is cheap and
``pyrite.core.Proxy`` works without importing the server side.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

_EXPORTS = {
    "URI": "uri",
    "DAEMON_NAME": "uri",
    "NAMESERVER_NAME": "uri",
    "config": "config",
    "current_context": "callcontext",
    "SerializedBlob": "blob",
    "Proxy": "client",
    "BatchProxy": "client",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pyrite.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
