"""pyrite: remote-object communication for Python, with Pyro5's API and wire protocol.

``pyrite.api`` holds every name of ``Pyro5.api``, so a Pyro5 program ports by
changing its import::

    import pyrite.api as api          # was: import Pyro5.api as api

    @api.expose
    class Greeter:
        def hello(self, name):
            return f"hello, {name}"

    daemon = api.Daemon(host="127.0.0.1")
    uri = daemon.register(Greeter, "greeter")
    ...
    with api.Proxy(uri) as greeter:
        print(greeter.hello("world"))

Besides Pyro5's names it offers ``errors`` (the module ``pyrite.core.errors``,
Pyro5's ``Pyro5.errors``), ``aio`` (the asyncio API, ``pyrite.core.aio``),
``SharedProxy`` (a proxy that threads may share) and ``__version__``.

Names are imported on first use: ``from pyrite.api import Proxy`` loads the
client side only, never the daemon or the name server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what the lazy loader below hands out, for type checkers and IDEs
    from pyrite.core import aio, errors
    from pyrite.core.blob import SerializedBlob
    from pyrite.core.callcontext import current_context
    from pyrite.core.client import BatchProxy, Proxy
    from pyrite.core.config import config
    from pyrite.core.daemon import Daemon, DaemonObject, serve
    from pyrite.core.exposure import behavior, callback, expose, oneway
    from pyrite.core.naming import locate_ns, resolve, type_meta
    from pyrite.core.shared import SharedProxy
    from pyrite.core.uri import URI
    from pyrite.nameserver import start_ns, start_ns_loop
    from pyrite.serializers.base import SerializerBase

    register_dict_to_class = SerializerBase.register_dict_to_class
    register_class_to_dict = SerializerBase.register_class_to_dict
    unregister_dict_to_class = SerializerBase.unregister_dict_to_class
    unregister_class_to_dict = SerializerBase.unregister_class_to_dict

# name -> module it lives in (attribute of the same name)
_FROM_MODULE = {
    "config": "pyrite.core.config",
    "URI": "pyrite.core.uri",
    "locate_ns": "pyrite.core.naming",
    "resolve": "pyrite.core.naming",
    "type_meta": "pyrite.core.naming",
    "current_context": "pyrite.core.callcontext",
    "Proxy": "pyrite.core.client",
    "BatchProxy": "pyrite.core.client",
    "SharedProxy": "pyrite.core.shared",
    "SerializedBlob": "pyrite.core.blob",
    "SerializerBase": "pyrite.serializers.base",
    "Daemon": "pyrite.core.daemon",
    "DaemonObject": "pyrite.core.daemon",
    "serve": "pyrite.core.daemon",
    "callback": "pyrite.core.exposure",
    "expose": "pyrite.core.exposure",
    "behavior": "pyrite.core.exposure",
    "oneway": "pyrite.core.exposure",
    "start_ns": "pyrite.nameserver",
    "start_ns_loop": "pyrite.nameserver",
}

# Pyro5.api offers these classmethods of SerializerBase as plain names.
_SERIALIZER_BASE_METHODS = (
    "register_dict_to_class",
    "register_class_to_dict",
    "unregister_dict_to_class",
    "unregister_class_to_dict",
)

_MODULES = {"errors": "pyrite.core.errors", "aio": "pyrite.core.aio"}

__all__ = [
    "config",
    "URI",
    "locate_ns",
    "resolve",
    "type_meta",
    "current_context",
    "Proxy",
    "BatchProxy",
    "SerializedBlob",
    "SerializerBase",
    "Daemon",
    "DaemonObject",
    "callback",
    "expose",
    "behavior",
    "oneway",
    "start_ns",
    "start_ns_loop",
    "serve",
    "register_dict_to_class",
    "register_class_to_dict",
    "unregister_dict_to_class",
    "unregister_class_to_dict",
    "errors",
    "aio",
    "SharedProxy",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_MODULE:
        value = getattr(importlib.import_module(_FROM_MODULE[name]), name)
    elif name in _SERIALIZER_BASE_METHODS:
        value = getattr(__getattr__("SerializerBase"), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'pyrite.api' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
