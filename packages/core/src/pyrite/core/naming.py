"""Finding things by name: ``locate_ns``, ``resolve`` and ``type_meta``.

``locate_ns()`` finds a name server (directly at ``config.NS_HOST``, or by a
UDP broadcast), ``resolve()`` turns a PYRONAME or PYROMETA uri into the PYRO
uri it stands for, and ``type_meta()`` makes name server metadata out of a
class hierarchy::

    from pyrite.core.naming import locate_ns, resolve

    with locate_ns() as ns:
        ns.register("example.thing", uri, metadata=type_meta(Thing))
    resolve("PYRONAME:example.thing")    # -> URI("PYRO:...@host:port")
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from . import resolver
from .client import Proxy
from .resolver import BROADCAST_REQUEST as BROADCAST_REQUEST
from .resolver import BROADCAST_ROUNDS as BROADCAST_ROUNDS
from .resolver import BROADCAST_TIMEOUT as BROADCAST_TIMEOUT
from .uri import URI

__all__ = ["locate_ns", "resolve", "type_meta"]

log = logging.getLogger("pyrite.core.naming")


def locate_ns(
    host: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    port: int | None = None,
    broadcast: bool = True,
) -> Proxy:
    """A proxy for a name server.

    With ``host`` (a host name, an IP address or a ``./u:path`` Unix socket
    location) it connects there directly, at ``port`` or ``config.NS_PORT``.
    Without, it first tries ``config.NS_HOST`` if that is a loopback name, then
    (unless ``broadcast`` is false or ``config.PREFER_IP_VERSION`` is 6) sends
    ``GET_NSURI`` to ``config.BROADCAST_ADDRS`` on ``port`` or ``config.NS_BCPORT``
    (three rounds of 0.7 seconds), and last connects to
    ``config.NS_HOST:config.NS_PORT``.  Raises NamingError if nothing answers.
    A name server reached directly comes connected (the proxy keeps the
    connection that found it); one found by broadcast connects on first use.
    """
    found = resolver.locate(str(host) if host else None, port, broadcast)
    proxy = Proxy(found.uri)
    if found.channel is not None and found.reply is not None:
        proxy._pyroAdoptChannel(found.channel, found.reply)
    return proxy


def resolve(uri: str | URI, delay_time: float = 0.0) -> URI:
    """The PYRO uri that a PYRONAME or PYROMETA uri stands for (a PYRO uri is returned as is).

    It asks the name server at the uri's location, or the one ``locate_ns``
    finds.  A PYROMETA uri picks one of the registrations that have all its
    metadata, at random.  ``delay_time`` (default ``config.NS_LOOKUP_DELAY``) is
    how long to keep trying while the name is not registered yet.
    """
    return resolver.resolve(uri, delay_time)


def type_meta(class_or_object: Any, prefix: str = "class:") -> set[str] | frozenset[str]:
    """Name server metadata for a class (or an object's class): ``prefix`` + the dotted name of every
    class in its MRO, leaving out builtins.  Register with it to find objects by type (PYROMETA)."""
    if hasattr(class_or_object, "__mro__"):
        return {
            prefix + cls.__module__ + "." + cls.__name__
            for cls in class_or_object.__mro__
            if cls.__module__ not in ("builtins", "__builtin__")
        }
    if hasattr(class_or_object, "__class__"):
        return type_meta(class_or_object.__class__, prefix)
    return frozenset()
