"""``SocketConnection``: the ``pyrite.core.interfaces.Connection`` of the TCP and Unix transports.

``SocketConnection`` implements ``pyrite.core.interfaces.Connection`` over a
stream socket, plain or TLS (``ssl.SSLSocket``):

* ``recv(n)`` returns exactly ``n`` bytes.  Small reads go through a read-ahead
  buffer (one ``recv`` syscall usually brings in a whole small message, so the
  header and payload reads of ``protocol.recv_message`` cost one syscall, not
  three).  Reads of ``LARGE_READ_SIZE`` and more land in one buffer (an
  anonymous memory map, filled in place by ``recv_into``: no piece is joined),
  so memory grows only as data really arrives: a hostile header that declares
  1 GB reserves nothing up front.  The map is kept and reused for the next
  large read once nothing refers to it any more, so a steady stream of large
  replies does not pay for fresh pages every time.
* If a ``recv`` times out, the bytes it had already read are kept, so a later
  ``recv`` resumes an intact stream.
* ``pending()`` counts the read-ahead buffer plus decrypted TLS data: a
  selector on ``fileno()`` does not see those bytes, so check ``pending()``
  before waiting on the descriptor.
* ``timeout`` bounds each wait for the peer (not a whole message); ``None`` or ``0`` blocks.
* Errors are pyrite's: ``ConnectionClosedError`` when the peer is gone or the
  connection was closed, ``TimeoutError`` when ``timeout`` runs out,
  ``CommunicationError`` for the rest (such as a failed TLS handshake).

Import it from ``pyrite.transports.sockets`` (beside ``SocketListener``); timeouts and
the mapping of socket errors come from ``sockopts`` (public as ``socketutil``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyrite.core.errors import CommunicationError, ConnectionClosedError

from .sockopts import decode_address, normalize_timeout, socket_error

__all__ = ["SocketConnection", "READAHEAD_SIZE", "CHUNK_SIZE", "LARGE_READ_SIZE", "KEEP_MAP_SIZE"]

READAHEAD_SIZE = 16 * 1024
"""A small read on an empty buffer asks the socket for this much and keeps the surplus.
(Measured on loopback: 16-32 KiB gives small calls one syscall per message; 64 KiB made
100 KB messages markedly slower.)"""

CHUNK_SIZE = 1024 * 1024
"""The most memory a read reserves ahead of its data (reads below LARGE_READ_SIZE are smaller still)."""

LARGE_READ_SIZE = 64 * 1024
"""Reads this large and larger are received straight into one (reusable) memory map.
(Measured on loopback: a fresh map costs a page fault per 4 KiB, about 10x a copy, hence the reuse;
below this size reading pieces and joining them is cheaper than any map.)"""

KEEP_MAP_SIZE = 16 * 1024 * 1024
"""A connection keeps the buffer of its last large read for reuse only up to this size (what an
idle connection may hold on to: enough for the common multi-megabyte reply, no more)."""

# MSG_WAITALL lets one recv wait for a whole chunk; it is unreliable on Windows (Pyro5 avoids it too).
_WAITALL = getattr(socket, "MSG_WAITALL", 0) if sys.platform != "win32" else 0
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_POSIX = os.name == "posix"


def _closed_early(have: int, size: int, received: bytes) -> ConnectionClosedError:
    """The error for a peer that closed mid-read; like Pyro5's, it carries what did arrive."""
    error = ConnectionClosedError(f"receiving: connection closed by the peer after {have} of {size} bytes")
    error.partialData = received  # type: ignore[attr-defined]  # Pyro5's attribute, not on the class
    return error


class SocketConnection:
    """A ``Connection`` over a connected stream socket (plain or TLS).

    Extras beyond the protocol: ``socket`` (the wrapped socket object), ``is_tls``,
    context-manager support.  Made by the transports; not usually built directly.
    """

    __slots__ = (
        "_sock",
        "_rbuf",
        "_rpos",
        "_timeout",
        "_closed",
        "_flags",
        "_tls",
        "_local",
        "_peer",
        "_close_lock",
        "_map",
    )

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
        self._map: mmap.mmap | None = None  # the last large read's buffer, reused when free
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
            if self._timeout is not None and _POSIX and not self._tls:
                # with a timeout sendall() polls before every write, but the descriptor is
                # non-blocking: write what fits first, poll only for the rest (one syscall, not two)
                try:
                    sent = os.write(self._sock.fileno(), data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                if sent == len(data):
                    return
                data = memoryview(data).cast("B")[sent:]
            self._sock.sendall(data)
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

    def recv(self, size: int) -> bytes | memoryview:
        """Receive exactly ``size`` bytes: ``bytes``, or for a read of LARGE_READ_SIZE and more a
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

    def recv_some_into(self, view: memoryview) -> int | None:
        """Non-blocking ``recv_some`` into ``view``: how many bytes landed there (0 at end of
        stream), or None if nothing is ready.  Bytes already received come first.  Plain
        sockets only (a TLS connection offers no ``large_buffer``, so nobody asks)."""
        size = len(view)
        if size <= 0:
            return 0
        buf = self._rbuf
        pos = self._rpos
        if pos < len(buf):
            end = min(pos + size, len(buf))
            view[: end - pos] = memoryview(buf)[pos:end]
            self._rpos = end
            return end - pos
        if self._closed:
            raise ConnectionClosedError("receiving: connection is closed")
        sock = self._sock
        try:
            if self._timeout is None:
                if _DONTWAIT:
                    return sock.recv_into(view, size, _DONTWAIT)
            elif _POSIX:
                return os.readv(sock.fileno(), [view])  # non-blocking at the OS level (see recv_some)
            sock.settimeout(0.0)
            try:
                return sock.recv_into(view, size)
            finally:
                sock.settimeout(self._timeout)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return None
        except (OSError, ValueError) as exc:
            raise self._error("receiving", exc) from exc

    @property
    def large_buffer(self) -> Callable[[int], memoryview] | None:
        """For a large incoming body (a server engine's ``Session.allocator``): a function giving a
        writable buffer of exactly the size asked for, an anonymous memory map reused once
        nothing refers to the last one (see ``_free_map``); None on TLS (whose reads go through
        ``recv_some``)."""
        if self._tls:
            return None
        return self._large_buffer

    def _large_buffer(self, size: int) -> memoryview:
        return memoryview(self._free_map(size))[:size]

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
        self._map = None

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
        if size >= LARGE_READ_SIZE:
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
                    raise _closed_early(have, size, b"".join(parts))
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

        The kernel hands out a fresh map's pages only as they are first written, i.e. as
        the data arrives, so a hostile declared size still reserves no memory ahead of
        its bytes; and unlike reading pieces and joining them, every byte is copied
        once (by the kernel), with no zero-filling of a buffer in advance."""
        block = self._free_map(size)
        view = memoryview(block)[:size]
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
                    raise _closed_early(have, size, bytes(view[:have]))
                have += count
        except (OSError, ValueError) as exc:
            # keep what was read so a retry after a timeout resumes the stream intact
            if have and not self._closed:
                self._rbuf = bytes(view[:have])
                self._rpos = 0
            raise self._error("receiving", exc) from exc
        return view

    def _free_map(self, size: int) -> mmap.mmap:
        """A map of at least ``size`` bytes that nothing else refers to: the last large read's
        if it is free and fits (its pages are in place already), else a fresh one."""
        block = self._map
        if block is not None and size <= len(block) <= 4 * size:
            try:
                # resizing a map is refused (BufferError) while any view of it is alive, so
                # this succeeds exactly when the previous reply has been let go of entirely
                block.resize(len(block))
            except (BufferError, OSError, SystemError, ValueError):
                pass
            else:
                return block
        block = mmap.mmap(-1, size)
        # a map too big to be worth its memory while the connection idles is not kept
        self._map = block if size <= KEEP_MAP_SIZE else None
        return block

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

    def known_addresses(self, local: Any, peer: Any) -> None:
        """Take this end's and the other end's address (None: unknown) from a listener's
        ``accept``, which knows them already: asking for them then costs no syscall."""
        self._local, self._peer = local or self._local, peer or self._peer

    def _remember_addresses(self) -> None:
        sock = self._sock
        if self._local is None:
            with contextlib.suppress(OSError, ValueError):
                self._local = decode_address(sock.getsockname())
        if self._peer is None:
            with contextlib.suppress(OSError, ValueError):
                self._peer = decode_address(sock.getpeername())

    def _error(self, what: str, exc: BaseException) -> CommunicationError:
        """Map a socket/ssl exception to pyrite's error family."""
        if self._closed:
            return ConnectionClosedError(f"{what}: connection is closed")
        return socket_error(what, exc, self._timeout)
