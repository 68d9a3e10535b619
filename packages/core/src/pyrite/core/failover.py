"""Failing over between the replicas of a name.

A pyrite name server may hold several URIs under one name (a replica set,
``register(..., replica=True)``).  ``lookup`` hands out one of them; when
connecting to it fails, the client asks the name server for the others
(``replicas(name)``; for PYROMETA the other matches of ``yplookup``) and tries
each in turn before it gives up with the first error.  Against a name server
without replica sets (Pyro5's) there are no others, and the first error stands,
as in Pyro5.

``connect_any`` serves ``Proxy`` (it binds to the first URI that accepts the
connection and handshake); ``reachable`` serves ``resolve()`` (it returns the
first URI whose location accepts a connection, or the name server's pick when
none does, so ``resolve()`` never fails where Pyro5's would not).  Both cost
nothing extra while the first URI works.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from . import plugins, resolver
from .config import config
from .errors import CommunicationError, PyroError
from .uri import URI

__all__ = ["alternatives", "connect_any", "reachable", "PROBE_TIMEOUT"]

log = logging.getLogger("pyrite.core.failover")

PROBE_TIMEOUT = 2.0  # seconds for resolve()'s connect check when COMMTIMEOUT is 0


def _as_uri(value: Any) -> URI | None:
    try:
        return value if isinstance(value, URI) else URI(str(value))
    except PyroError:
        return None


def alternatives(name_uri: URI, tried: URI) -> list[URI]:
    """The other URIs ``name_uri`` (PYRONAME or PYROMETA) stands for, in the order to try;
    empty when the name server has none or cannot say (a Pyro5 name server)."""
    where = name_uri.host or (name_uri.sockname and "./u:" + name_uri.sockname)
    try:
        found = resolver.locate(where or None, name_uri.port)
        with resolver.NameServerChannel(found.uri, found.channel) as ns:
            if name_uri.protocol == "PYRONAME":
                values = list(ns.call("replicas", name_uri.object))
            else:
                values = list(ns.call("yplookup", sorted(name_uri.object), None, False).values())
                random.shuffle(values)  # as resolve() spreads clients over the matches
    except (PyroError, AttributeError, TypeError) as exc:  # no replicas() there, or no name server
        log.debug("no alternatives for %s: %s", name_uri, exc)
        return []
    others = []
    for value in values:
        uri = _as_uri(value)
        if uri is not None and str(uri) != str(tried) and uri not in others:
            others.append(uri)
    return others


def connect_any(name_uri: URI, first: URI, connect: Callable[[URI], None]) -> URI:
    """``connect(first)``; if that raises CommunicationError, ``connect`` each alternative
    until one succeeds.  Returns the URI connected to; raises the first error if none did."""
    try:
        connect(first)
        return first
    except CommunicationError as exc:
        failure = exc
    for other in alternatives(name_uri, first):
        try:
            connect(other)
        except CommunicationError as exc:
            log.debug("replica %s of %s failed too: %s", other, name_uri, exc)
            continue
        log.info("%s: %s failed (%s); using replica %s", name_uri, first, failure, other)
        return other
    raise failure


def _accepts(uri: URI, timeout: float) -> bool:
    location = uri.location
    if location is None:
        return False
    try:
        conn = plugins.get_transport(location).connect(location, timeout)
    except (OSError, PyroError):
        return False
    try:
        conn.close()
    except (OSError, PyroError):
        pass
    return True


def reachable(name_uri: URI, first: URI) -> URI:
    """``first`` if its location accepts a connection, else the first alternative that does,
    else ``first`` (whoever connects to it gets the error, as without replicas)."""
    timeout = config.COMMTIMEOUT or PROBE_TIMEOUT
    if _accepts(first, timeout):
        return first
    for other in alternatives(name_uri, first):
        if _accepts(other, timeout):
            log.info("%s: %s does not answer; resolved to replica %s", name_uri, first, other)
            return other
    return first
