"""The TCP transport: locations ``host:port`` and ``[ipv6]:port``, IPv4 and IPv6, optional TLS.

Entry point ``tcp`` in group ``pyrite.transports``.  Found by
``pyrite.core.plugins.get_transport("host:port")``::

    transport = plugins.get_transport("localhost:0")
    listener = transport.listen("localhost:0")      # listener.location == "localhost:<real port>"
    conn = transport.connect(listener.location, timeout=5.0)

Host names resolve as Pyro5 resolves them: ``config.PREFER_IP_VERSION`` 4 or 6
picks that family, 0 lets the system choose.  A numeric address always uses
its own family.  A listener on host ``""`` binds every interface.  With
``config.SSL`` on, connections and listeners use TLS (see ``tls.py``).

Socket options: ``SO_REUSEADDR`` on listeners when ``config.SOCK_REUSE`` (or
the ``reuse`` argument) says so; ``SO_KEEPALIVE`` on every connection, as
Pyro5; ``TCP_NODELAY`` on every connection (``config.SOCK_NODELAY`` is
accepted but cannot switch it off: pyrite writes each message with one send,
so Nagle's algorithm only ever adds delay, up to 40 ms when a peer's delayed
ACK meets back-to-back messages).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from typing import Any, ClassVar

from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, TimeoutError

from . import tls
from .adopted import adopt_connected
from .sockets import SocketConnection, SocketListener, normalize_timeout, set_stream_options

__all__ = ["TcpTransport", "parse_location", "format_location"]

_LOCATION_RE = re.compile(r"(?:\[(?P<ipv6>[0-9A-Za-z:.%_-]+)]|(?P<host>[^\s\[\]/:]*)):(?P<port>[0-9]{1,5})")
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
LISTEN_BACKLOG = 128


def parse_location(location: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[ipv6]:port`` into ``(host, port)`` (no brackets).  ValueError if malformed."""
    match = _LOCATION_RE.fullmatch(location) if isinstance(location, str) else None
    if not match:
        raise ValueError(f"not a TCP location (host:port or [ipv6]:port): {location!r}")
    port = int(match.group("port"))
    if port > 65535:
        raise ValueError(f"invalid port in TCP location {location!r}")
    host = match.group("ipv6")
    if host is None:
        host = match.group("host")
    return host, port


def format_location(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _numeric(host: str, port: int) -> list[tuple[Any, ...]] | None:
    """getaddrinfo()'s answer for an IP address literal without a scope id, made without calling
    it (a connect to ``127.0.0.1`` is common and the lookup is a good part of its cost); None for
    anything else (names, scoped IPv6 addresses)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        text = socket.inet_ntop(family, packed)
        address: tuple[Any, ...] = (text, port) if family == socket.AF_INET else (text, port, 0, 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return None


def _resolve(host: str, port: int, passive: bool) -> list[tuple[Any, ...]]:
    """getaddrinfo() results for a host, honouring config.PREFER_IP_VERSION as Pyro5 does."""
    if host and 0 <= port <= 0xFFFF:
        found = _numeric(host, port)
        if found is not None:
            return found
    literal = _numeric(host.partition("%")[0], 0) if host else None  # e.g. a scoped IPv6 address
    family = literal[0][0] if literal else None
    prefer = config.PREFER_IP_VERSION
    if family is None:
        family = _FAMILIES.get(prefer, socket.AF_UNSPEC)
    flags = socket.AI_PASSIVE if passive else 0
    try:
        return socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP, flags)
    except socket.gaierror as exc:
        if family == socket.AF_INET and prefer == 4:
            with contextlib.suppress(socket.gaierror):
                # no IPv4 address for this name: Pyro5 then takes whatever the system offers
                return socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, flags)
        raise CommunicationError(f"cannot resolve host {host!r}: {exc}") from exc


def _configure_accepted(sock: socket.socket) -> None:
    set_stream_options(sock, nodelay=True, keepalive=True)


class TcpTransport:
    """TCP over IPv4/IPv6, with TLS when ``config.SSL`` is on.  One shared, stateless instance."""

    name: ClassVar[str] = "tcp"
    priority: ClassVar[int] = 0
    socket_families: ClassVar[tuple[int, ...]] = (socket.AF_INET, socket.AF_INET6)

    @classmethod
    def serves(cls, location: str) -> bool:
        """True for ``host:port`` and ``[ipv6]:port`` (not ``./u:path``)."""
        try:
            parse_location(location)
        except ValueError:
            return False
        return True

    def adopt(self, sock: socket.socket, *, owned: bool = False) -> SocketConnection:
        """Wrap an already connected TCP (IPv4 or IPv6) socket, plain or TLS; with ``owned=False``
        closing the connection leaves the socket open (see ``adopted``)."""
        return adopt_connected(sock, self.socket_families, owned)

    def connect(self, location: str, timeout: float | None = None) -> SocketConnection:
        """Connect to ``location``.  ``timeout`` (None or 0: block) bounds the connect, the TLS
        handshake, and then each wait of the connection.  Raises TimeoutError or CommunicationError."""
        host, port = parse_location(location)
        timeout = normalize_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        last_error: BaseException | None = None
        sock: socket.socket | None = None
        for family, socktype, proto, _, address in _resolve(host, port, passive=False):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            candidate = socket.socket(family, socktype, proto)
            try:
                set_stream_options(candidate, nodelay=True, keepalive=True)
                candidate.settimeout(remaining)
                candidate.connect(address)
            except OSError as exc:
                candidate.close()
                last_error = exc
                continue
            sock = candidate
            break
        if sock is None:
            if last_error is None or isinstance(last_error, socket.timeout):
                raise TimeoutError(f"cannot connect to {location}: timeout ({timeout} s)") from last_error
            raise CommunicationError(f"cannot connect to {location}: {last_error}") from last_error
        if config.SSL:
            sock = self._tls_handshake(sock, host, location, deadline)
        try:
            return SocketConnection(sock, timeout)
        except OSError as exc:
            sock.close()
            raise CommunicationError(f"cannot connect to {location}: {exc}") from exc

    @staticmethod
    def client_ssl_context() -> ssl.SSLContext:
        """The TLS context for client connections, from ``config``'s ``SSL_*`` items; the asyncio
        client (``pyrite.core.aio``) connects with it, so both clients read those items alike."""
        return tls.client_context()

    @staticmethod
    def _tls_handshake(sock: socket.socket, host: str, location: str, deadline: float | None) -> ssl.SSLSocket:
        try:
            context = tls.client_context()
            if deadline is not None:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
            return context.wrap_socket(sock, server_hostname=host.partition("%")[0] or None)
        except socket.timeout as exc:
            sock.close()
            raise TimeoutError(f"cannot connect to {location}: TLS handshake timeout") from exc
        except (OSError, ValueError) as exc:
            sock.close()
            raise CommunicationError(f"cannot connect to {location}: TLS handshake failed: {exc}") from exc
        except BaseException:
            sock.close()
            raise

    def listen(self, location: str, *, reuse: bool | None = None) -> SocketListener:
        """Listen at ``location`` (port 0: a free port; host "": every interface).

        The listener's ``location`` keeps the host as given (Pyro5 does too) with the
        real port; for host "" it shows the bound address.  A busy address raises
        ``OSError`` (EADDRINUSE) naming the location, as a Pyro5 daemon would.
        """
        host, port = parse_location(location)
        context = tls.server_context() if config.SSL else None  # config errors before binding
        family, _, proto, _, address = _resolve(host, port, passive=True)[0]
        if not host and config.PREFER_IP_VERSION != 6 and family == socket.AF_INET6:
            family, address = socket.AF_INET, ("", port)
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            if config.SOCK_REUSE if reuse is None else reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {location}: {exc.strerror or exc}") from exc
        bound = sock.getsockname()
        real = format_location(host or bound[0], bound[1])
        wrap = None
        if context is not None:

            def wrap(client: socket.socket, _context: ssl.SSLContext = context) -> socket.socket:
                # no handshake here: it completes in the connection's first read, under its timeout
                return _context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)

        return SocketListener(sock, real, wrap=wrap, configure=_configure_accepted)
