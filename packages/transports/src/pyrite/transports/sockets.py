"""What the TCP and Unix transports share: a socket ``Connection`` and a socket ``Listener``.

* ``SocketConnection`` (defined in ``connection.py``) implements
  ``pyrite.core.interfaces.Connection`` over a connected stream socket, plain
  or TLS; see that module for its buffering, timeouts and errors.
* ``SocketListener`` implements ``interfaces.Listener`` over a bound,
  listening stream socket; ``accept()`` hands out ``SocketConnection``
  objects.  Beyond the protocol it has ``timeout`` / ``setblocking()``
  (blocking by default; ``setblocking(False)`` makes ``accept()`` return None
  when nobody is waiting).

Socket options and helpers (``normalize_timeout``, ``set_stream_options``)
come from ``socketutil``, Pyro5's module, and are importable from here as before.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Callable
from typing import Any

from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, ConnectionClosedError

from .connection import CHUNK_SIZE, READAHEAD_SIZE, SocketConnection
from .sockopts import decode_address, normalize_timeout, set_stream_options

__all__ = [
    "SocketConnection",
    "SocketListener",
    "READAHEAD_SIZE",
    "CHUNK_SIZE",
    "set_stream_options",
    "normalize_timeout",
]

# accept() failures that concern one incoming connection only (it died before we took it).
_ACCEPT_TRANSIENT = {
    errno.ECONNABORTED,
    errno.EPROTO,
    errno.EPERM,
    errno.EAGAIN,
    errno.EWOULDBLOCK,
    errno.EINTR,
    getattr(errno, "ENETDOWN", -1),
    getattr(errno, "ENOPROTOOPT", -1),
    getattr(errno, "EHOSTDOWN", -1),
    getattr(errno, "ENONET", -1),
    getattr(errno, "EHOSTUNREACH", -1),
    getattr(errno, "EOPNOTSUPP", -1),
    getattr(errno, "ENETUNREACH", -1),
}
# accept() failures that mean the listening socket itself is gone.
_LISTENER_GONE = {errno.EBADF, errno.EINVAL, errno.ENOTSOCK}


class SocketListener:
    """A ``Listener`` over a bound, listening stream socket.

    ``accept()`` wraps each client socket (in TLS when the transport asked for it,
    without doing the handshake: that completes in the connection's first
    ``recv``/``recv_some``/``send``, under its timeout, so a silent or slow
    client never holds up the accept loop).  It returns None when nobody is
    waiting (non-blocking or timed-out listener) or the client vanished before
    it was taken; it raises ``ConnectionClosedError`` once the listener is
    closed and ``CommunicationError`` when the process is out of descriptors or
    memory (worth a log line and a short pause in an accept loop).

    Extras beyond the protocol: ``timeout`` (None blocks, 0 never waits, else
    seconds), ``setblocking(flag)``, ``address`` (the bound socket address),
    ``socket``, context-manager support.
    """

    def __init__(
        self,
        sock: socket.socket,
        location: str,
        wrap: Callable[[socket.socket], socket.socket] | None = None,
        on_close: Callable[[], None] | None = None,
        configure: Callable[[socket.socket], None] | None = None,
    ) -> None:
        self._sock = sock
        self._location = location
        self._wrap = wrap
        self._on_close = on_close
        self._configure = configure
        self._closed = False
        self._close_lock = threading.Lock()
        self._address = decode_address(sock.getsockname())
        # what an accepted socket's getsockname() would say, where that is the bound address
        # itself (not a wildcard one): so accepting costs no syscall for it
        family = sock.family
        specific = family == socket.AF_INET and self._address[0] != "0.0.0.0"
        self._accepted_local: Any = self._address if specific or family == getattr(socket, "AF_UNIX", None) else None
        self._timeout: float | None = None
        sock.settimeout(None)

    @property
    def location(self) -> str:
        """Where clients connect: ``host:port``, ``[ipv6]:port`` or ``./u:path``, with the real port."""
        return self._location

    @property
    def address(self) -> Any:
        """The bound socket address (``(host, port, ...)`` or a path)."""
        return self._address

    @property
    def socket(self) -> socket.socket:
        """The listening socket."""
        return self._sock

    @property
    def timeout(self) -> float | None:
        """How long ``accept()`` waits: None forever, 0 not at all, else seconds."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError(f"timeout must be None or >= 0, not {value}")
        self._timeout = value
        if not self._closed:
            self._sock.settimeout(value)

    def setblocking(self, flag: bool) -> None:
        """``setblocking(False)`` is ``timeout = 0``; ``setblocking(True)`` is ``timeout = None``."""
        self.timeout = None if flag else 0.0

    def accept(self) -> SocketConnection | None:
        """Take one waiting client (see the class docstring for None and errors)."""
        if self._closed:
            raise ConnectionClosedError(f"listener at {self._location} is closed")
        try:
            csock, peer = self._sock.accept()
        except (BlockingIOError, InterruptedError, socket.timeout):
            return None
        except OSError as exc:
            if self._closed or exc.errno in _LISTENER_GONE:
                raise ConnectionClosedError(f"listener at {self._location} is closed") from exc
            if exc.errno in _ACCEPT_TRANSIENT:
                return None
            raise CommunicationError(f"accept on {self._location} failed: {exc}") from exc
        try:
            if self._configure is not None:
                self._configure(csock)
            if self._wrap is not None:
                csock = self._wrap(csock)
            conn = SocketConnection(csock, config.COMMTIMEOUT or None)
            conn.known_addresses(self._accepted_local, decode_address(peer))
            return conn
        except (OSError, ValueError):
            # e.g. the client reset the connection before we could set it up: only it is lost
            with contextlib.suppress(OSError):
                csock.close()
            return None

    def fileno(self) -> int:
        """The listening socket's descriptor (-1 once closed)."""
        return self._sock.fileno()

    def close(self) -> None:
        """Stop listening, wake a thread blocked in ``accept()``, release the address.  Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        sock = self._sock
        # shutdown() makes a blocked accept() in another thread return (close() alone does not on Linux)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        if self._on_close is not None:
            self._on_close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def __enter__(self) -> SocketListener:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._location}{' closed' if self._closed else ''}>"
