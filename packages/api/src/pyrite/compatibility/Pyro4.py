"""Pyro4's API on top of pyrite, as far as Pyro5's own Pyro4 layer goes.

For code that uses names of the ``Pyro4`` package itself (``Pyro4.Proxy``,
not ``Pyro4.core.Proxy``).  Import this first; from then on ``import Pyro4``
(and ``Pyro4.errors``, ``Pyro4.util``, ``Pyro4.socketutil``,
``Pyro4.constants``) gives these objects::

    from pyrite.compatibility import Pyro4

    @Pyro4.expose
    class Thing: ...

    daemon = Pyro4.Daemon(host="127.0.0.1")
    ns = Pyro4.locateNS()
    with Pyro4.Proxy("PYRONAME:thing") as p: ...

Pyro4 features that Pyro5 dropped raise ``NotImplementedError`` saying so:
asynchronous proxies (``asyncproxy``, ``Proxy._pyroAsync``, ``batch(...)(
asynchronous=True)``), ``Future``, HMAC keys (``hmac_key=``,
``Proxy._pyroHmacKey``), and the submodules ``Pyro4.core``, ``Pyro4.naming``
and ``Pyro4.message`` (use the names of the ``Pyro4`` package instead).
``Pyro4.config`` is pyrite's one config (``PYRITE_*`` variables) with
Pyro4's ``asDict()``: unlike Pyro5's layer, whose ``Pyro4.config`` is a
separate copy, settings made through it take effect.  The wire protocol is Pyro5's: this talks to Pyro5 and pyrite
peers, not to Pyro4 ones.
"""

from __future__ import annotations

import ipaddress
import sys
from types import ModuleType, TracebackType
from typing import Any, NoReturn

from pyrite import api
from pyrite.core import constants as _constants
from pyrite.core import errors
from pyrite.core.config import config as _config
from pyrite.serializers import SerializerBase
from pyrite.transports import socketutil as _socketutil

__all__ = [
    "config",
    "URI",
    "Proxy",
    "Daemon",
    "callback",
    "batch",
    "asyncproxy",
    "oneway",
    "expose",
    "behavior",
    "current_context",
    "locateNS",
    "resolve",
    "Future",
    "errors",
]

_NO_ASYNC = "asynchronous proxies were removed in Pyro5 (and are not in pyrite): use threads or pyrite.api.aio"
_NO_HMAC = "HMAC keys were removed in Pyro5 (and are not in pyrite): use 2-way TLS (config.SSL_REQUIRECLIENTCERT)"


def asyncproxy(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: Pyro5 removed asynchronous proxies."""
    raise NotImplementedError(_NO_ASYNC)


class Future:
    """Not available: use ``concurrent.futures`` (Pyro5 removed Pyro4's own Future)."""

    def __init__(self, *args: Any) -> None:
        raise NotImplementedError("Pyro4's Future is gone since Pyro5: use Python's concurrent.futures")


class _StandInModule(ModuleType):
    """A module object whose names are class attributes (so ``sys.modules`` can hold it)."""

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(type(self)) if not n.startswith("_")})


class NamespaceInterceptor(ModuleType):
    """Stands in for a Pyro4 submodule this layer does not offer; using any of its names raises."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"Pyro4.{namespace}", f"Pyro4.{namespace} is not offered by the Pyro4 layer.")
        self.namespace = namespace

    def __getattr__(self, item: str) -> NoReturn:
        if item.startswith("__") and item.endswith("__"):
            # introspection (``__file__``, ``__path__``, ...) from tools that walk sys.modules
            raise AttributeError(item)
        raise NotImplementedError(
            f"the Pyro4 compatibility layer has no Pyro4.{self.namespace} module: "
            f"use the names of the Pyro4 package itself (Pyro4.{item} instead of Pyro4.{self.namespace}.{item})"
        )


naming = NamespaceInterceptor("naming")
core = NamespaceInterceptor("core")
message = NamespaceInterceptor("message")

__version__ = api.__version__
callback = api.callback
oneway = api.oneway
expose = api.expose
behavior = api.behavior
current_context = api.current_context


class CompatConfiguration:
    """pyrite's configuration under Pyro4's name, with Pyro4's ``asDict()`` spelling.

    Reads and writes go to pyrite's one ``config`` (``pyrite.api.config``), so
    ``Pyro4.config.COMMTIMEOUT = 5`` takes effect; unknown item names are refused.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(_config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_config, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(_config)) | {"asDict"})

    def asDict(self) -> dict[str, Any]:
        """The items as a plain dict (Pyro4's name for ``as_dict``)."""
        return _config.as_dict()


config = CompatConfiguration()


class URI(api.URI):
    """pyrite's ``URI`` under Pyro4's name."""


class Proxy(api.Proxy):
    """pyrite's ``Proxy``; Pyro4's asynchronous mode and HMAC key raise ``NotImplementedError``."""

    def _pyroAsync(self, asynchronous: bool = True) -> NoReturn:
        raise NotImplementedError(_NO_ASYNC)

    @property
    def _pyroHmacKey(self) -> NoReturn:
        raise NotImplementedError(_NO_HMAC)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_pyroHmacKey":
            raise NotImplementedError(_NO_HMAC)
        super().__setattr__(name, value)


class Daemon(api.Daemon):
    """pyrite's ``Daemon`` under Pyro4's name."""


def locateNS(host: Any = None, port: int | None = None, broadcast: bool = True, hmac_key: Any = None) -> Any:
    """Pyro4's ``locateNS``: pyrite's ``locate_ns`` (``hmac_key`` is refused)."""
    if hmac_key:
        raise NotImplementedError(_NO_HMAC)
    return api.locate_ns(host, port, broadcast)


def resolve(uri: Any, hmac_key: Any = None) -> Any:
    """Pyro4's ``resolve``: pyrite's ``resolve`` (``hmac_key`` is refused)."""
    if hmac_key:
        raise NotImplementedError(_NO_HMAC)
    return api.resolve(uri)


class BatchProxy(api.BatchProxy):
    """pyrite's ``BatchProxy``; Pyro4's ``asynchronous=True`` raises ``NotImplementedError``."""

    def __call__(self, oneway: bool = False, asynchronous: bool = False) -> Any:
        if asynchronous:
            raise NotImplementedError(_NO_ASYNC)
        return super().__call__(oneway)


def batch(proxy: Any) -> BatchProxy:
    """Pyro4's ``batch(proxy)``: a ``BatchProxy`` for ``proxy``."""
    return BatchProxy(proxy)


class UtilModule(_StandInModule):
    """``Pyro4.util``: Pyro4's camel-case traceback helpers and ``SerializerBase``."""

    SerializerBase = SerializerBase

    @staticmethod
    def getPyroTraceback(ex_type: Any = None, ex_value: Any = None, ex_tb: Any = None) -> list[str]:
        """The remote (and local) traceback lines of a Pyro exception."""
        return errors.get_pyro_traceback(ex_type, ex_value, ex_tb)

    @staticmethod
    def formatTraceback(
        ex_type: Any = None, ex_value: Any = None, ex_tb: Any = None, detailed: bool = False
    ) -> list[str]:
        """A traceback as lines, optionally with local variables (``detailed``)."""
        return errors.format_traceback(ex_type, ex_value, ex_tb, detailed)

    def excepthook(self, ex_type: Any, ex_value: BaseException, ex_tb: TracebackType | None) -> None:
        """An ``sys.excepthook`` that prints remote tracebacks too."""
        errors.excepthook(ex_type, ex_value, ex_tb)


util = UtilModule("Pyro4.util")


class SocketUtilModule(_StandInModule):
    """``Pyro4.socketutil``: Pyro4's camel-case names over ``pyrite.transports.socketutil``."""

    @staticmethod
    def getIpVersion(hostnameOrAddress: str) -> int:
        """4 or 6 for a numeric address (ValueError for anything else)."""
        return ipaddress.ip_address(hostnameOrAddress).version

    @staticmethod
    def getIpAddress(hostname: str, workaround127: bool = False, ipVersion: int | None = None) -> str:
        """The IP address of ``hostname`` as a string."""
        return str(_socketutil.get_ip_address(hostname, workaround127, ipVersion))

    @staticmethod
    def getInterfaceAddress(ip_address: str) -> str:
        """The address of the local interface that reaches ``ip_address``."""
        return str(_socketutil.get_interface(ip_address).ip)

    @staticmethod
    def createSocket(
        bind: Any = None,
        connect: Any = None,
        reuseaddr: bool = False,
        keepalive: bool = True,
        timeout: float | None = -1,
        noinherit: bool = False,
        ipv6: bool | None = False,
        nodelay: bool = True,
        sslContext: Any = None,
    ) -> Any:
        """``socketutil.create_socket``."""
        return _socketutil.create_socket(
            bind, connect, reuseaddr, keepalive, timeout, noinherit, ipv6, nodelay, sslContext
        )

    @staticmethod
    def createBroadcastSocket(
        bind: Any = None, reuseaddr: bool = False, timeout: float | None = -1, ipv6: bool | None = False
    ) -> Any:
        """``socketutil.create_bc_socket``."""
        return _socketutil.create_bc_socket(bind, reuseaddr, timeout, ipv6)

    @staticmethod
    def receiveData(sock: Any, size: int) -> bytes | bytearray:
        """``socketutil.receive_data``."""
        return _socketutil.receive_data(sock, size)

    @staticmethod
    def sendData(sock: Any, data: bytes) -> None:
        """``socketutil.send_data``."""
        _socketutil.send_data(sock, data)


socketutil = SocketUtilModule("Pyro4.socketutil")


class ConstantsModule(_StandInModule):
    """``Pyro4.constants``: the version and the well-known object names."""

    VERSION = api.__version__
    DAEMON_NAME = _constants.DAEMON_NAME
    NAMESERVER_NAME = _constants.NAMESERVER_NAME
    PROTOCOL_VERSION = _constants.PROTOCOL_VERSION


constants = ConstantsModule("Pyro4.constants")

# so that a later ``import Pyro4`` / ``from Pyro4 import ...`` / ``import Pyro4.errors`` finds these
sys.modules["Pyro4"] = sys.modules[__name__]
sys.modules["Pyro4.errors"] = errors
sys.modules["Pyro4.core"] = core
sys.modules["Pyro4.naming"] = naming
sys.modules["Pyro4.util"] = util
sys.modules["Pyro4.socketutil"] = socketutil
sys.modules["Pyro4.constants"] = constants
sys.modules["Pyro4.message"] = message
