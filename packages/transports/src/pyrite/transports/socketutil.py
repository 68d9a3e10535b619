"""Low-level socket helpers: Pyro5's ``socketutil`` functions, and what pyrite's transports share.

The functions Pyro5 5.17 documents in ``Pyro5.socketutil`` are here with the
same signatures and behaviour, so a ported program changes only its import::

    from pyrite.transports import socketutil       # was: from Pyro5 import socketutil

    sock = socketutil.create_socket(bind=("127.0.0.1", 0))        # listening, free port
    port = sock.getsockname()[1]
    client = socketutil.create_socket(connect=("127.0.0.1", port), timeout=5)
    socketutil.send_data(client, b"hello")
    server_side, _ = sock.accept()
    assert socketutil.receive_data(server_side, 5) == b"hello"

Errors are pyrite's (``pyrite.core.errors``): ``TimeoutError`` when a socket
timeout runs out, ``ConnectionClosedError`` when the peer goes away; a
``receive_data`` cut short keeps what did arrive in the error's
``partialData``, as in Pyro5.

The TCP and Unix transports build on the same helpers (``set_nodelay``,
``set_keepalive``, ``set_reuseaddr``, ``normalize_timeout``,
``socket_error``), so each socket option and each error mapping is written
once.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import select
import socket
import ssl
import weakref
from typing import Any

from pyrite.core.config import config
from pyrite.core.errors import CommunicationError

from .sockopts import (
    ERRNO_BADF,
    ERRNO_EADDRINUSE,
    ERRNO_EADDRNOTAVAIL,
    ERRNO_ENOTSOCK,
    ERRNO_RETRIES,
    USE_MSG_WAITALL,
    decode_address,
    family_str,
    normalize_timeout,
    receive_data,
    send_data,
    set_keepalive,
    set_nodelay,
    set_noinherit,
    set_reuseaddr,
    set_stream_options,
    socket_error,
)

__all__ = [
    "get_ip_address",
    "get_interface",
    "create_socket",
    "create_bc_socket",
    "send_data",
    "receive_data",
    "set_reuseaddr",
    "set_nodelay",
    "set_keepalive",
    "set_noinherit",
    "set_stream_options",
    "find_probably_unused_port",
    "bind_unused_port",
    "interrupt_socket",
    "get_ssl_context",
    "family_str",
    "SocketConnection",
    "normalize_timeout",
    "socket_error",
    "decode_address",
    "ERRNO_RETRIES",
    "ERRNO_BADF",
    "ERRNO_ENOTSOCK",
    "ERRNO_EADDRNOTAVAIL",
    "ERRNO_EADDRINUSE",
    "USE_MSG_WAITALL",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- addresses -------------------------------------------------------------------------------


def _family_for(version: int) -> int:
    families = {6: socket.AF_INET6, 4: socket.AF_INET, 0: socket.AF_UNSPEC}
    if version not in families:
        raise ValueError(f"ip version must be 4, 6 or 0, not {version!r}")
    return families[version]


def get_ip_address(hostname: str, workaround127: bool = False, version: int | None = None) -> IPAddress:
    """The IP address of ``hostname`` as an ``ipaddress`` object.

    ``version`` 4 or 6 asks for that family, 0 lets the system choose, None uses
    ``config.PREFER_IP_VERSION`` (a host containing ``:`` then means "either").
    With ``workaround127`` a loopback answer is replaced by the address of the
    interface that would reach the outside world (IPv4 only), when there is one.
    An empty hostname means this machine's name.
    """
    if not workaround127:
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(hostname)

    def lookup(ip_version: int) -> IPAddress:
        family = _family_for(ip_version)
        info = socket.getaddrinfo(hostname or socket.gethostname(), 80, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        ip = str(info[0][4][0])
        if workaround127 and (ip.startswith("127.") or ip == "0.0.0.0"):
            # a connected UDP socket sends nothing: this only asks the routing table
            with contextlib.suppress(OSError):
                return get_interface("4.2.2.2").ip
        return ipaddress.ip_address(ip)

    if hostname and ":" in hostname and version is None:
        version = 0
    try:
        return lookup(config.PREFER_IP_VERSION if version is None else version)
    except socket.gaierror:
        if version == 6 or (version is None and config.PREFER_IP_VERSION == 6):
            raise OSError(f"no IPv6 address found for {hostname!r}") from None
        return lookup(0)


def get_interface(ip_address: str | IPAddress) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """The local interface (address) the system would use to reach ``ip_address``."""
    address = get_ip_address(ip_address) if isinstance(ip_address, str) else ip_address
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((str(address), 53))  # UDP: picks a route, sends no packet
        return ipaddress.ip_interface(sock.getsockname()[0])


# -- making sockets --------------------------------------------------------------------------


def _inet_family(address: tuple[Any, ...], force_ipv6: bool, what: str) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The family for a ``(host, port)`` bind/connect tuple, and the tuple in that family's shape."""
    if not address[0]:
        return (socket.AF_INET6 if force_ipv6 else socket.AF_INET), address
    ip = get_ip_address(address[0])
    if ip.version == 6:
        return socket.AF_INET6, (address[0], address[1], 0, 0)
    if force_ipv6:
        raise ValueError(f"{what} address {address[0]!r} is IPv4, but IPv6 was asked for")
    return socket.AF_INET, address


def create_socket(
    bind: tuple[Any, ...] | str | None = None,
    connect: tuple[Any, ...] | str | None = None,
    reuseaddr: bool = False,
    keepalive: bool = True,
    timeout: float | None = -1,
    noinherit: bool = False,
    ipv6: bool | None = False,
    nodelay: bool = True,
    sslContext: ssl.SSLContext | None = None,
) -> socket.socket:
    """A stream socket, bound and listening (``bind``) or connected (``connect``), or neither.

    A string address is a Unix-socket path; a tuple is ``(host, port)`` (port 0
    on ``bind``: a free port).  ``ipv6=True`` forces IPv6, ``None`` follows
    ``config.PREFER_IP_VERSION``.  ``timeout``: a positive number sets it, 0,
    None or negative leave the socket blocking.  ``sslContext`` wraps it in TLS
    (server side when binding).  ``keepalive``, ``nodelay`` (both on by
    default), ``reuseaddr`` and ``noinherit`` set those options.
    """
    if bind and connect:
        raise ValueError("give bind or connect, not both")
    force_ipv6 = bool(ipv6) or (ipv6 is None and config.PREFER_IP_VERSION == 6)
    if isinstance(bind, str) or isinstance(connect, str):
        family = socket.AF_UNIX
    elif not bind and not connect:
        family = socket.AF_INET6 if force_ipv6 else socket.AF_INET
    elif isinstance(bind, tuple):
        family, bind = _inet_family(bind, force_ipv6, "bind")
    elif isinstance(connect, tuple):
        family, connect = _inet_family(connect, force_ipv6, "connect")
    else:
        raise ValueError(f"bind/connect must be a (host, port) tuple or a path, not {bind or connect!r}")
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sslContext is not None:
        if bind:
            sock = sslContext.wrap_socket(sock, server_side=True)
        else:
            hostname = connect[0] if isinstance(connect, tuple) else None
            sock = sslContext.wrap_socket(sock, server_side=False, server_hostname=hostname)
    if nodelay:
        set_nodelay(sock)
    if reuseaddr:
        set_reuseaddr(sock)
    if noinherit:
        set_noinherit(sock)
    if timeout is not None and timeout > 0:
        sock.settimeout(timeout)
    try:
        if bind:
            if isinstance(bind, tuple) and bind[1] == 0:
                bind_unused_port(sock, bind[0])
            else:
                sock.bind(bind)
            with contextlib.suppress(OSError):
                sock.listen(100)
        if connect:
            _connect(sock, connect, timeout)
    except BaseException:
        sock.close()
        raise
    if keepalive:
        set_keepalive(sock)
    return sock


def _connect(sock: socket.socket, address: tuple[Any, ...] | str, timeout: float | None) -> None:
    try:
        sock.connect(address)
        return
    except OSError as exc:
        if exc.errno not in ERRNO_RETRIES:
            raise
    # a non-blocking connect in progress: wait until the socket is writable, then ask how it went
    wait = None if timeout is None or timeout < 0 else max(timeout, 0.1)
    while True:
        try:
            _, writable, failed = select.select([], [sock], [sock], wait)
        except InterruptedError:
            continue
        break
    problem = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if failed or not writable or problem:
        raise OSError(
            problem or errno.ETIMEDOUT, f"connect to {address!r} failed: {os.strerror(problem or errno.ETIMEDOUT)}"
        )


def create_bc_socket(
    bind: tuple[Any, ...] | None = None,
    reuseaddr: bool = False,
    timeout: float | None = -1,
    ipv6: bool | None = False,
) -> socket.socket:
    """A UDP socket for broadcasts (SO_BROADCAST on IPv4), optionally bound to ``(host, port)``.

    Port 0 binds a free port.  ``ipv6`` as for ``create_socket``; ``timeout``
    None makes it blocking, a number >= 0 sets it, negative leaves the default.
    """
    force_ipv6 = bool(ipv6) or (ipv6 is None and config.PREFER_IP_VERSION == 6)
    if not bind:
        family = socket.AF_INET6 if force_ipv6 else socket.AF_INET
    elif isinstance(bind, tuple):
        family, bind = _inet_family(bind, force_ipv6, "bind")
    else:
        raise ValueError(f"bind must be a (host, port) tuple, not {bind!r}")
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if reuseaddr:
            set_reuseaddr(sock)
        if timeout is None:
            sock.settimeout(None)
        elif timeout >= 0:
            sock.settimeout(timeout)
        if bind:
            host, port = bind[0] or "", bind[1]
            if port == 0:
                bind_unused_port(sock, host)
            elif len(bind) in (2, 4):
                sock.bind(bind if family == socket.AF_INET6 else (host, port))
            else:
                raise ValueError(f"bind must be a 2-tuple or a 4-tuple, not {bind!r}")
    except BaseException:
        sock.close()
        raise
    return sock


def bind_unused_port(sock: socket.socket, host: str | IPAddress = "localhost") -> int:
    """Bind ``sock`` (IPv4 or IPv6) to a free port on ``host`` and return the port.
    ``"localhost"`` means the loopback address of the socket's family."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)  # Windows: no port sharing
        if exclusive is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, exclusive, 1)
    host = str(host)
    if sock.family == socket.AF_INET:
        sock.bind(("127.0.0.1" if host == "localhost" else host, 0))
    elif sock.family == socket.AF_INET6:
        sock.bind(("::1" if host == "localhost" else host, 0, 0, 0))
    else:
        raise CommunicationError(f"cannot bind a free port on a socket of family {sock.family!r}")
    port: int = sock.getsockname()[1]
    return port


def find_probably_unused_port(family: int = socket.AF_INET, socktype: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago (another process may still take it before you do)."""
    with socket.socket(family, socktype) as sock:
        return bind_unused_port(sock)


def interrupt_socket(address: tuple[str, int]) -> None:
    """Wake a server blocked in ``accept()`` at ``address`` by connecting and sending a few bytes."""
    with contextlib.suppress(OSError):
        sock = create_socket(connect=address, keepalive=False, timeout=-1)
        with contextlib.suppress(OSError):
            sock.sendall(b"!" * 16)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


# -- TLS -------------------------------------------------------------------------------------

_ssl_contexts: dict[str, ssl.SSLContext] = {}


def _load_verify(context: ssl.SSLContext, cacerts: str) -> None:
    if os.path.isdir(cacerts):
        context.load_verify_locations(capath=cacerts)
    else:
        context.load_verify_locations(cafile=cacerts)


def get_ssl_context(
    servercert: str = "",
    serverkey: str = "",
    clientcert: str = "",
    clientkey: str = "",
    cacerts: str = "",
    keypassword: str = "",
) -> ssl.SSLContext:
    """A TLS context: a server one when ``servercert`` is given, else a client one.

    As in Pyro5 the first server context and the first client context are made
    once and then returned on every call, whatever the arguments (set them
    right the first time).  A server context verifies client certificates
    when ``config.SSL_REQUIRECLIENTCERT`` is on.  Missing files raise ``OSError``.
    """
    if servercert:
        if clientcert:
            raise ValueError("a TLS context is for a server or a client: give servercert or clientcert, not both")
        if "server" in _ssl_contexts:
            return _ssl_contexts["server"]
        if not os.path.isfile(servercert):
            raise FileNotFoundError(f"TLS server certificate not found: {servercert!r}")
        if serverkey and not os.path.isfile(serverkey):
            raise FileNotFoundError(f"TLS server key not found: {serverkey!r}")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(servercert, serverkey or None, keypassword or None)
        if cacerts:
            _load_verify(context, cacerts)
        context.verify_mode = ssl.CERT_REQUIRED if config.SSL_REQUIRECLIENTCERT else ssl.CERT_NONE
        return _ssl_contexts.setdefault("server", context)
    if "client" in _ssl_contexts:
        return _ssl_contexts["client"]
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if clientcert:
        if not os.path.isfile(clientcert):
            raise FileNotFoundError(f"TLS client certificate not found: {clientcert!r}")
        context.load_cert_chain(clientcert, clientkey or None, keypassword or None)
    if cacerts:
        _load_verify(context, cacerts)
    return _ssl_contexts.setdefault("client", context)


# -- Pyro5's plain socket wrapper ------------------------------------------------------------


class SocketConnection:
    """Pyro5's simple wrapper of a connected socket: ``send``/``recv`` through
    ``send_data``/``receive_data``, plus the per-connection state a Pyro5 daemon
    kept on it (``objectId``, ``pyroInstances``, ``tracked_resources``).

    With ``keep_open`` the wrapper's ``close()`` leaves the socket open.  (pyrite's
    transports use the buffered ``pyrite.transports.sockets.SocketConnection``.)
    """

    def __init__(self, sock: socket.socket, objectId: str | None = None, keep_open: bool = False) -> None:
        self.sock = sock
        self.objectId = objectId
        self.pyroInstances: dict[type, Any] = {}
        self.tracked_resources: weakref.WeakSet[Any] = weakref.WeakSet()
        self.keep_open = keep_open

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> SocketConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data`` (see ``send_data``)."""
        send_data(self.sock, data)

    def recv(self, size: int) -> bytes | bytearray:
        """Receive exactly ``size`` bytes (see ``receive_data``)."""
        return receive_data(self.sock, size)

    def close(self) -> None:
        """Close the socket (unless ``keep_open``), drop session instances, close tracked resources."""
        if self.keep_open:
            return
        with contextlib.suppress(Exception):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self.sock.close()
        self.pyroInstances = {}
        for resource in list(self.tracked_resources):
            with contextlib.suppress(Exception):
                resource.close()
        self.tracked_resources.clear()

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def family(self) -> str:
        """The address family as ``family_str`` names it."""
        return family_str(self.sock)

    def settimeout(self, timeout: float | None) -> None:
        """Set the socket's timeout."""
        self.sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        """The socket's timeout."""
        return self.sock.gettimeout()

    def getpeercert(self) -> dict[str, Any] | None:
        """The peer's TLS certificate, or None on a plain socket."""
        getter = getattr(self.sock, "getpeercert", None)
        return getter() if getter is not None else None

    timeout = property(gettimeout, settimeout, doc="The socket's timeout (seconds, None blocks).")
