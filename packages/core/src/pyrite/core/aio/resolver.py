"""Name-server discovery and PYRONAME/PYROMETA lookup on a bare channel, for asyncio.

``find_ns`` does what the sync ``locate_ns`` does (loopback ``NS_HOST`` first,
then a UDP broadcast, then ``NS_HOST:NS_PORT``; or straight to a given host)
and returns a connected, handshaken channel; ``resolve`` looks a name up
through it.  No proxy is involved, so ``aio.Proxy`` can resolve its own uri.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from typing import Any

from .. import plugins, resolver
from ..config import config
from ..errors import NamingError, PyroError, TimeoutError
from ..uri import NAMESERVER_NAME, URI
from .calls import call, handshake
from .channel import PipelineChannel
from .connect import open_channel

__all__ = ["find_ns", "resolve", "ns_location"]

log = logging.getLogger("pyrite.core.aio")


def ns_location(host: str, port: int | None) -> str:
    """The uri location of a name server at ``host`` (a name, an address or ``./u:path``)."""
    if URI.isUnixsockLocation(host):
        return host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port or config.NS_PORT}"


async def _connect(location: str) -> tuple[PipelineChannel, dict[str, Any]]:
    """A channel to the name server object at ``location``, handshake done."""
    channel = await open_channel(location, config.COMMTIMEOUT or None)
    try:
        serializer = plugins.get_serializer(config.SERIALIZER)
        response, _ = await handshake(channel, serializer, NAMESERVER_NAME, "hello", timeout=config.COMMTIMEOUT)
    except BaseException:
        channel.close()
        raise
    return channel, response


async def find_ns(
    host: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    port: int | None = None,
    broadcast: bool = True,
) -> tuple[PipelineChannel, URI, dict[str, Any]]:
    """A connected channel to a name server, its PYRO uri and its handshake response.

    Same search order and arguments as the sync ``locate_ns``; NamingError if none answers."""
    plugins.get_serializer(config.SERIALIZER)  # a misconfigured serializer is not "no name server"
    candidates: list[str] = []
    if not host:
        ns_host = str(config.NS_HOST)
        if ns_host in ("localhost", "::1") or ns_host.startswith("127."):
            candidates.append(ns_location(ns_host, port))
            if ":" not in ns_host and ns_host != "127.0.1.1" and resolver._has_127_0_1_1():
                candidates.append(ns_location("127.0.1.1", port))
        for location in candidates:
            try:
                channel, response = await _connect(location)
            except PyroError:
                continue
            return channel, URI(f"PYRO:{NAMESERVER_NAME}@{location}"), response
        if broadcast and config.PREFER_IP_VERSION != 6:
            # the UDP exchange is short and bounded (3 rounds of 0.7 s): a worker thread does it
            uri = await asyncio.get_running_loop().run_in_executor(
                None, resolver.broadcast_locate, port or config.NS_BCPORT
            )
            if uri is not None and uri.location is not None:
                try:
                    channel, response = await _connect(uri.location)
                    return channel, uri, response
                except PyroError:
                    log.debug("name server at %s answered the broadcast but refused a connection", uri)
        location = ns_location(ns_host, config.NS_PORT)
    else:
        location = ns_location(str(host), port)
    try:
        channel, response = await _connect(location)
    except PyroError as exc:
        raise NamingError(f"no name server reachable at {location}") from exc
    return channel, URI(f"PYRO:{NAMESERVER_NAME}@{location}"), response


async def _retrying(lookup: Any, delay_time: float, accept: Any) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay_time
    pause = max(0.2, delay_time / 5)
    while True:
        try:
            result = await lookup()
            if accept(result) or loop.time() >= deadline:
                return result
        except (NamingError, TimeoutError):
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))


async def resolve(uri: str | URI, delay_time: float = 0.0) -> URI:
    """The PYRO uri a PYRONAME or PYROMETA uri stands for (a PYRO uri comes back as is).

    As the sync ``resolve``: the name server at the uri's location or the one
    ``find_ns`` finds; PYROMETA picks a matching registration at random;
    ``delay_time`` (default ``config.NS_LOOKUP_DELAY``) keeps trying while the name is missing."""
    if isinstance(uri, str):
        uri = URI(uri)
    elif not isinstance(uri, URI):
        raise TypeError(f"resolve() takes a URI or a URI string, not {type(uri).__name__}")
    if uri.protocol == "PYRO":
        return uri
    if uri.protocol not in ("PYRONAME", "PYROMETA"):
        raise PyroError(f"cannot resolve a {uri.protocol} URI")
    delay_time = delay_time or config.NS_LOOKUP_DELAY or 0.0
    host = uri.host or (uri.sockname and "./u:" + uri.sockname)
    channel, _, _ = await find_ns(host, uri.port)
    serializer = plugins.get_serializer(config.SERIALIZER)
    timeout = config.COMMTIMEOUT

    async def ask(method: str, *args: Any) -> Any:
        return await call(channel, serializer, NAMESERVER_NAME, method, args, {}, timeout)

    try:
        if uri.protocol == "PYRONAME":
            name = uri.object
            result = await _retrying(lambda: ask("lookup", name), delay_time, lambda r: True)
            if isinstance(result, str):
                result = URI(result)
            if not isinstance(result, URI):
                raise NamingError(f"name server returned an invalid uri for {uri.object!r}: {result!r:.100}")
            return result
        meta = sorted(uri.object)
        candidates = await _retrying(lambda: ask("yplookup", meta, None, False), delay_time, bool)
        if not candidates:
            raise NamingError(f"no registrations available with desired metadata properties {uri.object}")
        return URI(random.choice(tuple(candidates.values())))  # spread clients over the matches
    finally:
        channel.close()
