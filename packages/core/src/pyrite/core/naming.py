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

import contextlib
import errno
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .config import config
from .errors import NamingError, PyroError, TimeoutError
from .uri import NAMESERVER_NAME, URI

if TYPE_CHECKING:
    from .client import Proxy

__all__ = ["locate_ns", "resolve", "type_meta"]

log = logging.getLogger("pyrite.core.naming")

BROADCAST_REQUEST = b"GET_NSURI"
BROADCAST_TIMEOUT = 0.7  # seconds to wait for an answer, per round
BROADCAST_ROUNDS = 3


@lru_cache(maxsize=1)
def _has_127_0_1_1() -> bool:
    # Some systems map the host name to 127.0.1.1 in /etc/hosts, and a name server
    # bound to the host name then listens there instead of on 127.0.0.1.
    try:
        socket.gethostbyaddr("127.0.1.1")
    except OSError:
        return False
    return True


def _bind(uri: str) -> Proxy | None:
    from .client import Proxy

    proxy = Proxy(uri)
    try:
        proxy._pyroBind()
    except PyroError:
        proxy._pyroRelease()
        return None
    return proxy


def _broadcast_locate(port: int) -> Proxy | None:
    """Ask for a name server with a UDP broadcast; a Proxy for the first valid answer, or None."""
    from .client import Proxy

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if config.SOCK_REUSE:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.settimeout(BROADCAST_TIMEOUT)
        for _ in range(BROADCAST_ROUNDS):
            sent = False
            for address in config.BROADCAST_ADDRS:
                try:
                    sock.sendto(BROADCAST_REQUEST, 0, (address, port))
                    sent = True
                except OSError as exc:
                    # an address that is not usable here (no such interface, no network) is skipped
                    if getattr(exc, "errno", None) not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                        log.debug("broadcast to %s:%d failed: %s", address, port, exc)
            if not sent:
                return None
            deadline = time.monotonic() + BROADCAST_TIMEOUT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                try:
                    data, _ = sock.recvfrom(256)
                except (socket.timeout, BlockingIOError):
                    break
                except OSError as exc:
                    log.debug("broadcast answer failed: %s", exc)
                    break
                try:
                    uri = URI(data.decode("iso-8859-1"))
                except (PyroError, ValueError):
                    continue  # not an answer to us: keep listening until the round's deadline
                if uri.protocol == "PYRO":
                    log.debug("located NS by broadcast: %s", uri)
                    return Proxy(uri)
        return None
    finally:
        with contextlib.suppress(OSError):
            sock.close()


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
    """
    if not host:
        ns_host = str(config.NS_HOST)
        if ns_host in ("localhost", "::1") or ns_host.startswith("127."):
            if ":" in ns_host:
                hosts = [f"[{ns_host}]"]
            elif ns_host != "127.0.1.1" and _has_127_0_1_1():
                hosts = [ns_host, "127.0.1.1"]
            else:
                hosts = [ns_host]
            for candidate in hosts:
                proxy = _bind(f"PYRO:{NAMESERVER_NAME}@{candidate}:{port or config.NS_PORT}")
                if proxy is not None:
                    log.debug("located NS on %s", candidate)
                    return proxy
        if config.PREFER_IP_VERSION == 6:
            broadcast = False  # IPv6 has no broadcast
        if broadcast:
            proxy = _broadcast_locate(port or config.NS_BCPORT)
            if proxy is not None:
                return proxy
            log.debug("no broadcast reply from a name server; connecting to NS_HOST directly")
        host = ns_host
        port = config.NS_PORT
    else:
        host = str(host)
    port = port or config.NS_PORT
    if URI.isUnixsockLocation(host):
        uristring = f"PYRO:{NAMESERVER_NAME}@{host}"
    else:
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        uristring = f"PYRO:{NAMESERVER_NAME}@{host}:{port}"
    from .client import Proxy

    proxy = Proxy(uristring)
    try:
        proxy._pyroBind()
    except PyroError as exc:
        proxy._pyroRelease()
        raise NamingError(f"no name server reachable at {uristring}") from exc
    log.debug("located NS at %s", uristring)
    return proxy


def _retrying(call: Callable[[], Any], delay_time: float, accept: Callable[[Any], bool]) -> Any:
    """``call()`` until ``accept(result)``, retrying on NamingError/TimeoutError for up to ``delay_time`` s."""
    deadline = time.monotonic() + delay_time
    pause = max(0.2, delay_time / 5)
    while True:
        try:
            result = call()
            if accept(result) or time.monotonic() >= deadline:
                return result
        except (NamingError, TimeoutError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))


def resolve(uri: str | URI, delay_time: float = 0.0) -> URI:
    """The PYRO uri that a PYRONAME or PYROMETA uri stands for (a PYRO uri is returned as is).

    It asks the name server at the uri's location, or the one ``locate_ns``
    finds.  A PYROMETA uri picks one of the registrations that have all its
    metadata, at random.  ``delay_time`` (default ``config.NS_LOOKUP_DELAY``) is
    how long to keep trying while the name is not registered yet.
    """
    if isinstance(uri, str):
        uri = URI(uri)
    elif not isinstance(uri, URI):
        raise TypeError(f"resolve() takes a URI or a URI string, not {type(uri).__name__}")
    if uri.protocol == "PYRO":
        return uri
    delay_time = delay_time or config.NS_LOOKUP_DELAY or 0.0
    log.debug("looking up %s", uri)
    if uri.protocol == "PYRONAME":
        with locate_ns(uri.host or uri.sockname and "./u:" + uri.sockname, uri.port) as ns:
            result = _retrying(lambda: ns.lookup(uri.object), delay_time, lambda r: True)
        if isinstance(result, str):
            result = URI(result)
        if not isinstance(result, URI):
            raise NamingError(f"name server returned an invalid uri for {uri.object!r}: {result!r:.100}")
        return result
    if uri.protocol == "PYROMETA":
        meta = sorted(uri.object)
        with locate_ns(uri.host or uri.sockname and "./u:" + uri.sockname, uri.port) as ns:
            candidates = _retrying(lambda: ns.yplookup(meta, None, False), delay_time, bool)
        if not candidates:
            raise NamingError(f"no registrations available with desired metadata properties {uri.object}")
        chosen = random.choice(tuple(candidates.values()))  # spread clients over the matching objects
        log.debug("metadata lookup %s picked %s", uri, chosen)
        return URI(chosen)
    raise PyroError(f"cannot resolve a {uri.protocol} URI")


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
