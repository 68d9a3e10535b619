"""Name-server discovery and PYRONAME/PYROMETA lookup, on a bare ``Channel`` (no Proxy).

``naming`` wraps what this finds in proxies; ``client.Proxy`` uses ``resolve``
to turn a PYRONAME/PYROMETA uri into the PYRO uri to connect to.  Nothing here
imports ``client``, so a proxy can resolve names without an import cycle::

    from pyrite.core import resolver

    found = resolver.locate("localhost")          # a Located: uri, and an open channel
    resolver.resolve("PYRONAME:example.thing")    # -> URI("PYRO:...@host:port")

Calls to the name server go through ``NameServerChannel``, which speaks the
name server's remote methods directly (``lookup``, ``yplookup``, ...) with
``config.SERIALIZER``, ``config.COMMTIMEOUT`` and the calling thread's
annotations and correlation id, as a proxy would.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import plugins
from .callcontext import current_context
from .channel import Channel, decode_result, handshake_response
from .config import config
from .constants import NAMESERVER_NAME
from .errors import CommunicationError, NamingError, PyroError, TimeoutError
from .protocol import ReceivingMessage
from .uri import URI

__all__ = ["Located", "NameServerChannel", "locate", "broadcast_locate", "resolve"]

log = logging.getLogger("pyrite.core.naming")

BROADCAST_REQUEST = b"GET_NSURI"
BROADCAST_TIMEOUT = 0.7  # seconds to wait for an answer, per round
BROADCAST_ROUNDS = 3


@dataclass
class Located:
    """A name server that was found: its PYRO ``uri`` and, when it was reached directly, the
    ``channel`` that did the handshake and the daemon's handshake ``reply`` (else both None)."""

    uri: URI
    channel: Channel | None = None
    reply: ReceivingMessage | None = None


def _handshake(uri: URI) -> tuple[Channel, ReceivingMessage]:
    """Connect to a name server's daemon and do the handshake a proxy would do."""
    location = uri.location
    if location is None:
        raise CommunicationError(f"cannot connect to {uri}: it has no location")
    serializer = plugins.get_serializer(config.SERIALIZER)
    payload = serializer.dumps({"handshake": "hello", "object": uri.object})
    ctx = current_context
    channel, reply = Channel.connect(
        location, config.COMMTIMEOUT or None, serializer.serializer_id, payload, ctx.annotations, ctx.correlation_id
    )
    try:
        handshake_response(reply, location)
    except BaseException:
        channel.close()
        raise
    return channel, reply


class NameServerChannel:
    """Calls a name server's remote methods over a channel of its own, reconnecting after a failure.

    ``call("lookup", "name")`` returns what the name server returned, or raises
    what it raised (NamingError for an unknown name)."""

    def __init__(self, uri: URI, channel: Channel | None = None) -> None:
        self.uri = uri
        self.channel = channel

    def call(self, method: str, *args: Any) -> Any:
        """One remote call on the name server."""
        serializer = plugins.get_serializer(config.SERIALIZER)
        if self.channel is None:
            self.channel = _handshake(self.uri)[0]
        payload = serializer.dumpsCall(self.uri.object, method, args, {})
        ctx = current_context
        try:
            reply = self.channel.call(serializer.serializer_id, payload, 0, ctx.annotations, ctx.correlation_id)
            assert reply is not None  # not oneway
            return decode_result(serializer, reply)
        except (CommunicationError, KeyboardInterrupt):
            self.close()  # out of step: the next call connects afresh
            raise

    def close(self) -> None:
        """Close the channel (idempotent)."""
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.close()

    def __enter__(self) -> NameServerChannel:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


@lru_cache(maxsize=1)
def _has_127_0_1_1() -> bool:
    # Some systems map the host name to 127.0.1.1 in /etc/hosts, and a name server
    # bound to the host name then listens there instead of on 127.0.0.1.
    try:
        socket.gethostbyaddr("127.0.1.1")
    except OSError:
        return False
    return True


def _try(uri: URI) -> Located | None:
    try:
        channel, reply = _handshake(uri)
    except PyroError:
        return None
    return Located(uri, channel, reply)


def broadcast_locate(port: int) -> URI | None:
    """Ask for a name server with a UDP broadcast; the uri of the first valid answer, or None."""
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
                    return uri
        return None
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def locate(host: str | None = None, port: int | None = None, broadcast: bool = True) -> Located:
    """Find a name server, as ``naming.locate_ns`` documents (same arguments and order of tries).

    A name server reached directly comes with its open, handshaken channel; one
    found by broadcast comes as a uri only.  Raises NamingError if nothing answers."""
    plugins.get_serializer(config.SERIALIZER)  # a misconfigured serializer is not "no name server"
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
                found = _try(URI(f"PYRO:{NAMESERVER_NAME}@{candidate}:{port or config.NS_PORT}"))
                if found is not None:
                    log.debug("located NS on %s", candidate)
                    return found
        if config.PREFER_IP_VERSION == 6:
            broadcast = False  # IPv6 has no broadcast
        if broadcast:
            uri = broadcast_locate(port or config.NS_BCPORT)
            if uri is not None:
                return Located(uri)
            log.debug("no broadcast reply from a name server; connecting to NS_HOST directly")
        host = ns_host
        port = config.NS_PORT
    port = port or config.NS_PORT
    if URI.isUnixsockLocation(host):
        uristring = f"PYRO:{NAMESERVER_NAME}@{host}"
    else:
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        uristring = f"PYRO:{NAMESERVER_NAME}@{host}:{port}"
    uri = URI(uristring)
    try:
        channel, reply = _handshake(uri)
    except PyroError as exc:
        raise NamingError(f"no name server reachable at {uristring}") from exc
    log.debug("located NS at %s", uristring)
    return Located(uri, channel, reply)


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


def _name_server_for(uri: URI) -> NameServerChannel:
    found = locate(uri.host or uri.sockname and "./u:" + uri.sockname, uri.port)
    return NameServerChannel(found.uri, found.channel)


def resolve(uri: str | URI, delay_time: float = 0.0) -> URI:
    """The PYRO uri that a PYRONAME or PYROMETA uri stands for (a PYRO uri is returned as is);
    see ``naming.resolve``."""
    if isinstance(uri, str):
        uri = URI(uri)
    elif not isinstance(uri, URI):
        raise TypeError(f"resolve() takes a URI or a URI string, not {type(uri).__name__}")
    if uri.protocol == "PYRO":
        return uri
    delay_time = delay_time or config.NS_LOOKUP_DELAY or 0.0
    log.debug("looking up %s", uri)
    if uri.protocol == "PYRONAME":
        name = uri.object
        with _name_server_for(uri) as ns:
            result = _retrying(lambda: ns.call("lookup", name), delay_time, lambda r: True)
        if isinstance(result, str):
            result = URI(result)
        if not isinstance(result, URI):
            raise NamingError(f"name server returned an invalid uri for {uri.object!r}: {result!r:.100}")
        return result
    if uri.protocol == "PYROMETA":
        meta = sorted(uri.object)
        with _name_server_for(uri) as ns:
            candidates = _retrying(lambda: ns.call("yplookup", meta, None, False), delay_time, bool)
        if not candidates:
            raise NamingError(f"no registrations available with desired metadata properties {uri.object}")
        chosen = random.choice(tuple(candidates.values()))  # spread clients over the matching objects
        log.debug("metadata lookup %s picked %s", uri, chosen)
        return URI(chosen)
    raise PyroError(f"cannot resolve a {uri.protocol} URI")
