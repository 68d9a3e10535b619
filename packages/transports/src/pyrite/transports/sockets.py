"""What the TCP and Unix transports share: a socket ``Connection`` and a socket ``Listener``.

``SocketConnection`` implements ``pyrite.core.interfaces.Connection`` over a
stream socket, plain or TLS (``ssl.SSLSocket``):

* ``recv(n)`` returns exactly ``n`` bytes.  Small reads go through a read-ahead
  buffer (one ``recv`` syscall usually brings in a whole small message, so the
  header and payload reads of ``protocol.recv_message`` cost one syscall, not
  three).  Large reads are done in chunks of at most ``CHUNK_SIZE`` bytes, so
  memory grows only as data really arrives: a hostile header that declares
  1 GB reserves nothing up front.
* If a ``recv`` times out, the bytes it had already read are kept, so a later
  ``recv`` resumes an intact stream.
* ``pending()`` counts the read-ahead buffer plus decrypted TLS data: a
  selector on ``fileno()`` does not see those bytes, so check ``pending()``
  before waiting on the descriptor.
* ``timeout`` bounds each wait for the peer (an inactivity timeout, not a
  deadline for a whole message); ``None`` or ``0`` means block.
* Errors are pyrite's: ``ConnectionClosedError`` when the peer is gone or the
  connection was closed, ``TimeoutError`` when ``timeout`` runs out,
  ``CommunicationError`` for the rest (such as a failed TLS handshake).

``SocketListener`` implements ``interfaces.Listener``.  Beyond the protocol it
has ``timeout`` / ``setblocking()`` (blocking by default; ``setblocking(False)``
makes ``accept()`` return None when nobody is waiting).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, ConnectionClosedError, TimeoutError

__all__ = ["SocketConnection", "SocketListener", "READAHEAD_SIZE", "CHUNK_SIZE", "set_stream_options"]

READAHEAD_SIZE = 16 * 1024
"""A small read on an empty buffer asks the socket for this much and keeps the surplus.
(Measured on loopback: 16-32 KiB gives small calls one syscall per message; 64 KiB made
100 KB messages markedly slower.)"""

CHUNK_SIZE = 1024 * 1024
"""Larger reads are received in pieces of at most this size (the most memory reserved ahead of data)."""

# MSG_WAITALL lets one recv wait for a whole chunk; it is unreliable on Windows (Pyro5 avoids it too).
_WAITALL = getattr(socket, "MSG_WAITALL", 0) if sys.platform != "win32" else 0
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_POSIX = os.name == "posix"

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


def normalize_timeout(value: float | None) -> float | None:
    """``None`` and ``0`` mean "block"; a positive number is seconds.  Negative is refused."""
    if value is None:
        return None
    value = float(value)
    if value < 0:
        raise ValueError(f"timeout must be None or >= 0, not {value}")
    return value or None


def set_stream_options(sock: socket.socket, nodelay: bool = True, keepalive: bool = True) -> None:
    """Set TCP_NODELAY and SO_KEEPALIVE where the socket supports them (no-ops on Unix sockets)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if nodelay:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _address(value: Any) -> Any:
    # Linux reports abstract Unix socket names as bytes; keep every address a str or a tuple.
    return os.fsdecode(value) if isinstance(value, bytes) else value


class SocketConnection:
    """A ``Connection`` over a connected stream socket (plain or TLS).

    Extras beyond the protocol: ``socket`` (the wrapped socket object), ``is_tls``,
    context-manager support.  Made by the transports; not usually built directly.
    """

    __slots__ = ("_sock", "_rbuf", "_rpos", "_timeout", "_closed", "_flags", "_tls", "_local", "_peer", "_close_lock")

    def __init__(self, sock: socket.socket, timeout: float | None = None) -> None:
        self._sock = sock
        self._rbuf = b""  # read-ahead bytes; the unread part starts at _rpos
        self._rpos = 0
        self._closed = False
        self._tls = isinstance(sock, ssl.SSLSocket)
        # TLS sockets take no recv flags; plain ones wait for whole chunks in one syscall.
        self._flags = 0 if self._tls else _WAITALL
        self._local: Any = None
        self._peer: Any = None
        self._close_lock = threading.Lock()
        self._timeout = normalize_timeout(timeout)
        if sock.gettimeout() != self._timeout:
            # settimeout() is a syscall that also releases the GIL: skip it when nothing
            # changes (an accepted or freshly connected socket is usually blocking already)
            sock.settimeout(self._timeout)

    # -- the Connection protocol --------------------------------------------------------

    @property
    def timeout(self) -> float | None:
        """Seconds each wait for the peer may take; None blocks.  Setting 0 also means block."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        value = normalize_timeout(value)
        if value != self._timeout:
            self._timeout = value
            if not self._closed:
                with contextlib.suppress(OSError):
                    self._sock.settimeout(value)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``; ``timeout`` bounds the whole send."""
        try:
            self._sock.sendall(data)
        except (OSError, ValueError) as exc:
            raise self._error("sending", exc) from exc

    def send_parts(self, parts: Any) -> None:
        """Send several buffers in order as one stream (a gathering ``sendmsg`` on plain
        sockets, so a large payload is not copied behind its header first)."""
        if self._tls:
            for part in parts:
                self.send(part)
            return
        views = [memoryview(part).cast("B") for part in parts]
        try:
            while views:
                sent = self._sock.sendmsg(views)
                while views and sent >= len(views[0]):
                    sent -= len(views.pop(0))
                if sent:
                    views[0] = views[0][sent:]
        except (OSError, ValueError) as exc:
            raise self._error("sending", exc) from exc

    def send_some(self, data: bytes | bytearray | memoryview) -> int:
        """Non-blocking write for the multiplex engine: send what the socket takes now and
        return how many bytes that was (0 if it would block).  Raises ConnectionClosedError
        if the connection broke.  On TLS, a write that returned 0 must be retried with the
        same bytes (the engine's output buffer does so)."""
        if self._closed:
            raise ConnectionClosedError("sending: connection is closed")
        sock = self._sock
        try:
            if not self._tls:
                if self._timeout is None:
                    if _DONTWAIT:
                        return sock.send(data, _DONTWAIT)
                elif _POSIX:
                    # with a timeout, socket.send() first waits up to that long for room; the
                    # descriptor is non-blocking then (see recv_some), so write(2) never waits
                    return os.write(sock.fileno(), data)
            sock.settimeout(0.0)
            try:
                return sock.send(data)
            finally:
                sock.settimeout(self._timeout)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0
        except (OSError, ValueError) as exc:
            raise self._error("sending", exc) from exc

    def recv(self, size: int) -> bytes | memoryview:
        """Receive exactly ``size`` bytes: ``bytes``, or for a read larger than CHUNK_SIZE a
        read-only-in-practice ``memoryview`` over an anonymous memory map (see _recv_large)."""
        buf = self._rbuf
        pos = self._rpos
        end = pos + size
        if end <= len(buf) and size >= 0:
            self._rpos = end
            return buf[pos:end]
        return self._recv_more(size)

    def recv_some(self, max_size: int) -> bytes | None:
        """Up to ``max_size`` bytes available now without blocking; ``b""`` at end of stream;
        None if nothing is ready.  Raises ConnectionClosedError if the connection broke."""
        if max_size <= 0:
            return b""
        buf = self._rbuf
        pos = self._rpos
        if pos < len(buf):
            end = min(pos + max_size, len(buf))
            self._rpos = end
            return buf[pos:end]
        if self._closed:
            raise ConnectionClosedError("receiving: connection is closed")
        sock = self._sock
        try:
            if self._tls:
                return self._recv_some_tls(max_size)
            if self._timeout is None:
                if _DONTWAIT:
                    return sock.recv(max_size, _DONTWAIT)
            elif _POSIX:
                # A socket with a timeout is non-blocking at the OS level (documented for the
                # socket module), so a plain read(2) cannot block, and costs one syscall where
                # switching the timeout off and on again would cost three.
                return os.read(sock.fileno(), max_size)
            sock.settimeout(0.0)
            try:
                return sock.recv(max_size)
            finally:
                sock.settimeout(self._timeout)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except (OSError, ValueError) as exc:
            raise self._error("receiving", exc) from exc

    def pending(self) -> int:
        """Bytes received but not yet returned, that a selector on ``fileno()`` cannot see."""
        count = len(self._rbuf) - self._rpos
        if self._tls and not self._closed:
            with contextlib.suppress(OSError, ValueError):
                count += self._sock.pending()  # type: ignore[attr-defined]
        return count

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed)."""
        return self._sock.fileno()

    def close(self) -> None:
        """Shut down and close the socket.  Wakes a thread blocked in ``recv`` on it.  Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._remember_addresses()
        sock = self._sock
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, ValueError):
            sock.close()
        self._rbuf = b""
        self._rpos = 0

    @property
    def local_address(self) -> Any:
        """This end's address: ``(host, port, ...)`` for TCP, a path (or '') for Unix sockets."""
        if self._local is None:
            self._remember_addresses()
        return self._local

    @property
    def peer_address(self) -> Any:
        """The other end's address, as ``local_address``."""
        if self._peer is None:
            self._remember_addresses()
        return self._peer

    def getpeercert(self) -> dict[str, Any] | None:
        """The peer's verified TLS certificate as a dict (see ``ssl.SSLSocket.getpeercert``).

        None on plain connections, before the TLS handshake has completed (on the
        server side it completes within the first ``recv``/``recv_some``), and
        when the peer sent no certificate.
        """
        if not self._tls or self._closed:
            return None
        try:
            return self._sock.getpeercert() or None  # type: ignore[attr-defined]
        except (ValueError, OSError):
            return None

    # -- extras ---------------------------------------------------------------------------

    @property
    def socket(self) -> socket.socket:
        """The wrapped socket (an ``ssl.SSLSocket`` for TLS).  Reading from it directly
        bypasses the read-ahead buffer: mind ``pending()``."""
        return self._sock

    @property
    def is_tls(self) -> bool:
        """True if this connection is TLS-encrypted."""
        return self._tls

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def __enter__(self) -> SocketConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._sock.fileno()}"
        kind = "TLS" if self._tls else "plain"
        return f"<{type(self).__name__} {kind} {state} peer={self._peer!r}>"

    # -- internals ------------------------------------------------------------------------

    def _recv_more(self, size: int) -> bytes | memoryview:
        if size < 0:
            raise ValueError(f"recv size must be >= 0, not {size}")
        if self._closed:
            raise ConnectionClosedError("receiving: connection is closed")
        if size > CHUNK_SIZE:
            return self._recv_large(size)
        buf = self._rbuf
        pos = self._rpos
        parts: list[bytes] = [buf[pos:]] if pos < len(buf) else []
        have = len(buf) - pos
        self._rbuf = b""
        self._rpos = 0
        sock = self._sock
        # Read ahead only for a small request that starts on an empty buffer, and only in its
        # first syscall (a header, typically; the surplus usually is the rest of the message).
        # Everything else asks for exactly what is missing and lets the kernel wait for all of
        # it (MSG_WAITALL): one wakeup per chunk instead of one per arriving segment.
        readahead = not have and size <= READAHEAD_SIZE
        try:
            while have < size:
                need = size - have
                if readahead:
                    readahead = False
                    chunk = sock.recv(READAHEAD_SIZE)
                    if len(chunk) > need:
                        # the surplus belongs to what comes next: keep it for the next call
                        parts.append(chunk[:need])
                        self._rbuf = chunk
                        self._rpos = need
                        break
                else:
                    # Never ask for more than CHUNK_SIZE at once: memory follows the data.
                    chunk = sock.recv(need if need < CHUNK_SIZE else CHUNK_SIZE, self._flags)
                if not chunk:
                    if self._closed:
                        raise ConnectionClosedError("receiving: connection is closed")
                    closed = ConnectionClosedError(
                        f"receiving: connection closed by the peer after {have} of {size} bytes"
                    )
                    closed.partialData = b"".join(parts)  # type: ignore[attr-defined]  # as Pyro5's receive_data
                    raise closed
                parts.append(chunk)
                have += len(chunk)
        except (OSError, ValueError) as exc:
            # Keep what was read so a retry after a timeout resumes the stream intact.
            if parts and not self._closed:
                self._rbuf = b"".join(parts)
                self._rpos = 0
            raise self._error("receiving", exc) from exc
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _recv_large(self, size: int) -> memoryview:
        """Receive ``size`` bytes straight into one anonymous memory map.

        The kernel hands out the map's pages only as they are first written, i.e. as
        the data arrives, so a hostile declared size still reserves no memory ahead of
        its bytes; and unlike reading pieces and joining them, every byte is copied
        once (by the kernel), with no zero-filling of a buffer in advance."""
        block = mmap.mmap(-1, size)
        view = memoryview(block)
        have = len(self._rbuf) - self._rpos
        if have > 0:
            view[:have] = memoryview(self._rbuf)[self._rpos :]
        self._rbuf = b""
        self._rpos = 0
        sock = self._sock
        flags = self._flags
        try:
            while have < size:
                count = sock.recv_into(view[have:], size - have, flags)
                if not count:
                    if self._closed:
                        raise ConnectionClosedError("receiving: connection is closed")
                    closed = ConnectionClosedError(
                        f"receiving: connection closed by the peer after {have} of {size} bytes"
                    )
                    closed.partialData = bytes(view[:have])  # type: ignore[attr-defined]  # as Pyro5's receive_data
                    raise closed
                have += count
        except (OSError, ValueError) as exc:
            # keep what was read so a retry after a timeout resumes the stream intact
            if have and not self._closed:
                self._rbuf = bytes(view[:have])
                self._rpos = 0
            raise self._error("receiving", exc) from exc
        return view

    def _recv_some_tls(self, max_size: int) -> bytes | None:
        sock = self._sock
        if sock.pending():  # type: ignore[attr-defined]
            # decrypted bytes are waiting: reading them cannot block
            return sock.recv(max_size)
        sock.settimeout(0.0)
        try:
            return sock.recv(max_size)
        finally:
            sock.settimeout(self._timeout)

    def _remember_addresses(self) -> None:
        sock = self._sock
        if self._local is None:
            with contextlib.suppress(OSError, ValueError):
                self._local = _address(sock.getsockname())
        if self._peer is None:
            with contextlib.suppress(OSError, ValueError):
                self._peer = _address(sock.getpeername())

    def _error(self, what: str, exc: BaseException) -> CommunicationError:
        """Map a socket/ssl exception to pyrite's error family."""
        if self._closed:
            return ConnectionClosedError(f"{what}: connection is closed")
        if isinstance(exc, socket.timeout):
            return TimeoutError(f"{what}: timeout ({self._timeout} s)")
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return ConnectionClosedError(f"{what}: connection closed by the peer (TLS: {exc})")
        if isinstance(exc, ssl.SSLError):
            return CommunicationError(f"{what}: TLS error: {exc}")
        if isinstance(exc, OSError):
            return ConnectionClosedError(f"{what}: connection lost: {exc}")
        return ConnectionClosedError(f"{what}: connection lost: {exc!r}")


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
        self._address = _address(sock.getsockname())
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
            csock, _ = self._sock.accept()
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
            return SocketConnection(csock, config.COMMTIMEOUT or None)
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
