"""Where an asyncio connection is opened: ``open_channel`` gives a connected ``PipelineChannel``.

Connections are made by asyncio itself: TCP (IPv4/IPv6, ``config.PREFER_IP_VERSION``,
TLS when ``config.SSL`` with the SSL context the TCP transport plugin builds from
``SSL_*``), Unix sockets (``./u:path``), or a socket the caller connected.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any

from .. import plugins
from ..config import config
from ..errors import CommunicationError, TimeoutError
from .channel import BufferedChannel, PipelineChannel

__all__ = ["open_channel"]

_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


def _channel_class(loop: asyncio.AbstractEventLoop) -> type[PipelineChannel]:
    return PipelineChannel if type(loop).__module__.startswith("uvloop") else BufferedChannel


def _family(host: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host.partition("%")[0]).version == 6 else socket.AF_INET
    except ValueError:
        return _FAMILIES.get(config.PREFER_IP_VERSION, socket.AF_UNSPEC)


def _tls_context(location: str) -> ssl.SSLContext:
    # The SSL_* items are turned into a context by the TCP transport plugin; asking it keeps one
    # definition of what those items mean (and keeps pyrite-core free of pyrite-transports imports).
    transport = plugins.get_transport(location)
    make = getattr(transport, "client_ssl_context", None)
    if make is None:
        raise CommunicationError(
            f"config.SSL is on, but the {getattr(transport, 'name', '?')} transport for {location} "
            "offers no client_ssl_context() for asyncio connections"
        )
    context = make()
    assert isinstance(context, ssl.SSLContext)
    return context


async def open_channel(location: str, timeout: float | None = None, connected_socket: Any = None) -> PipelineChannel:
    """Connect to ``location`` (``host:port``, ``[ipv6]:port`` or ``./u:path``) on the running loop.

    ``connected_socket`` (a connected ``socket.socket``) is used instead of connecting; the
    channel works on a duplicate, so closing the channel leaves the caller's socket open."""
    loop = asyncio.get_running_loop()

    channel_class = _channel_class(loop)

    def factory() -> PipelineChannel:
        return channel_class(location)

    try:
        if connected_socket is not None:
            coro: Any = loop.create_connection(factory, sock=connected_socket.dup())
        elif location.startswith("./u:"):
            coro = loop.create_unix_connection(factory, location[4:])
        else:
            host, sep, port = location.rpartition(":")
            if not sep or not port.isdigit():
                raise CommunicationError(f"cannot connect to {location}: not a host:port location")
            host = host[1:-1] if host.startswith("[") else host
            tls = _tls_context(location) if config.SSL else None
            coro = loop.create_connection(
                factory,
                host,
                int(port),
                family=_family(host),
                ssl=tls,
                server_hostname=(host.partition("%")[0] or None) if tls else None,
            )
        _, channel = await asyncio.wait_for(coro, timeout or None)
    except asyncio.TimeoutError:
        raise TimeoutError(f"cannot connect to {location}: timeout ({timeout} s)") from None
    except ssl.SSLError as exc:
        raise CommunicationError(f"cannot connect to {location}: TLS handshake failed: {exc}") from exc
    except OSError as exc:
        raise CommunicationError(f"cannot connect to {location}: {exc}") from exc
    assert isinstance(channel, PipelineChannel)
    return channel
