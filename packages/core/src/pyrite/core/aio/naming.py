"""Async name-server access: ``await aio.locate_ns()`` and ``await aio.resolve(uri)``::

ns = await aio.locate_ns()              # an aio.Proxy for the name server
uri = await ns.lookup("example.thing")
await aio.resolve("PYRONAME:example.thing")   # -> URI("PYRO:...")
"""

from __future__ import annotations

import ipaddress

from ..uri import URI
from . import resolver
from .proxy import Proxy

__all__ = ["locate_ns", "resolve"]


async def locate_ns(
    host: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    port: int | None = None,
    broadcast: bool = True,
) -> Proxy:
    """A connected ``aio.Proxy`` for a name server; same search and arguments as the sync ``locate_ns``
    (NamingError if none answers)."""
    channel, uri, response = await resolver.find_ns(host, port, broadcast)
    proxy = Proxy(uri)
    try:
        proxy._pyroAttach(channel, response, uri)
    except BaseException:
        channel.close()
        raise
    return proxy


async def resolve(uri: str | URI, delay_time: float = 0.0) -> URI:
    """The PYRO uri a PYRONAME or PYROMETA uri stands for (see the sync ``resolve``)."""
    return await resolver.resolve(uri, delay_time)
