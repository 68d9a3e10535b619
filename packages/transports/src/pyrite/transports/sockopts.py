"""The socket basics under ``socketutil`` and the transports: options, byte moving, error mapping.

A leaf of pyrite-transports (imports no sibling module).  Everything here is
public through ``pyrite.transports.socketutil``, Pyro5's module name; the
transports' own ``SocketConnection`` and ``SocketListener`` use it directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from typing import Any

from pyrite.core.errors import CommunicationError, ConnectionClosedError, TimeoutError

__all__ = [
    "ERRNO_RETRIES",
    "ERRNO_BADF",
    "ERRNO_ENOTSOCK",
    "ERRNO_EADDRNOTAVAIL",
    "ERRNO_EADDRINUSE",
    "USE_MSG_WAITALL",
    "normalize_timeout",
    "socket_error",
    "decode_address",
    "set_stream_options",
    "family_str",
    "receive_data",
    "send_data",
    "set_reuseaddr",
    "set_nodelay",
    "set_keepalive",
    "set_noinherit",
]


def _errnos(*names: str) -> list[int]:
    # the WSA* spellings exist only on Windows: one list for every platform
    return [getattr(errno, name) for name in names if hasattr(errno, name)]


ERRNO_RETRIES = _errnos("EINTR", "EAGAIN", "EWOULDBLOCK", "EINPROGRESS", "WSAEINTR", "WSAEWOULDBLOCK", "WSAEINPROGRESS")
"""errno values after which a socket operation is simply tried again."""
ERRNO_BADF = _errnos("EBADF", "WSAEBADF")
ERRNO_ENOTSOCK = _errnos("ENOTSOCK", "WSAENOTSOCK")
ERRNO_EADDRNOTAVAIL = _errnos("EADDRNOTAVAIL", "WSAEADDRNOTAVAIL")
ERRNO_EADDRINUSE = _errnos("EADDRINUSE", "WSAEADDRINUSE")

USE_MSG_WAITALL = hasattr(socket, "MSG_WAITALL") and sys.platform != "win32"
"""Whether ``receive_data`` lets one recv wait for everything (unreliable on Windows)."""

_BIG_RECV = 60000  # the piece size of the plain recv loop (some systems dislike larger reads)

# -- pyrite's shared helpers ---------------------------------------------------------------


def normalize_timeout(value: float | None) -> float | None:
    """``None`` and ``0`` mean "block"; a positive number is seconds.  Negative is refused."""
    if value is None:
        return None
    value = float(value)
    if value < 0:
        raise ValueError(f"timeout must be None or >= 0, not {value}")
    return value or None


def socket_error(what: str, exc: BaseException, timeout: float | None = None) -> CommunicationError:
    """Map a socket/ssl exception raised while ``what`` ("sending", "receiving") to pyrite's errors."""
    if isinstance(exc, socket.timeout):
        return TimeoutError(f"{what}: timeout" + (f" ({timeout} s)" if timeout else ""))
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return ConnectionClosedError(f"{what}: connection closed by the peer (TLS: {exc})")
    if isinstance(exc, ssl.SSLError):
        return CommunicationError(f"{what}: TLS error: {exc}")
    if isinstance(exc, OSError):
        return ConnectionClosedError(f"{what}: connection lost: {exc}")
    return ConnectionClosedError(f"{what}: connection lost: {exc!r}")


def decode_address(value: Any) -> Any:
    """A socket address as a str or tuple (Linux reports abstract Unix names as bytes)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def set_stream_options(sock: socket.socket, nodelay: bool = True, keepalive: bool = True) -> None:
    """TCP_NODELAY and SO_KEEPALIVE on a TCP socket; Unix sockets have neither and are left alone."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if nodelay:
        set_nodelay(sock)
    if keepalive:
        set_keepalive(sock)


def family_str(sock: socket.socket) -> str:
    """``"IPv4"``, ``"IPv6"``, ``"Unix"`` or ``"???"`` for a socket's address family."""
    names = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}
    if hasattr(socket, "AF_UNIX"):
        names[socket.AF_UNIX] = "Unix"
    return names.get(sock.family, "???")


# -- moving bytes ----------------------------------------------------------------------------


def _retry_delays() -> Iterator[float]:
    # a busy non-blocking socket: retry almost at once, then back off by 0.1 s per attempt
    yield from (0.0001, 0.001, 0.01)
    delay = 0.1
    while True:
        yield delay
        delay += 0.1


def receive_data(sock: socket.socket, size: int) -> bytes | bytearray:
    """Receive exactly ``size`` bytes from ``sock``.

    Never returns less: if the peer closes first, ``ConnectionClosedError`` is
    raised with the bytes that did arrive in its ``partialData`` attribute.  A
    socket timeout raises ``TimeoutError``; EINTR/EAGAIN are retried.
    """
    data = bytearray()
    # TLS sockets take no recv flags
    waitall = USE_MSG_WAITALL and not isinstance(sock, ssl.SSLSocket)
    delays = _retry_delays()
    while len(data) < size:
        missing = size - len(data)
        try:
            chunk = sock.recv(missing, socket.MSG_WAITALL) if waitall else sock.recv(min(missing, _BIG_RECV))
        except socket.timeout as exc:
            raise TimeoutError("receiving: timeout") from exc
        except OSError as exc:
            if exc.errno in ERRNO_RETRIES:
                time.sleep(next(delays))
                continue
            raise socket_error("receiving", exc) from exc
        if not chunk:
            error = ConnectionClosedError(f"receiving: connection closed after {len(data)} of {size} bytes")
            error.partialData = data  # type: ignore[attr-defined]  # Pyro5's attribute, not on the class
            raise error
        if len(chunk) == size:
            return chunk  # the common case: everything in one piece, no copy
        data += chunk
    return data


def send_data(sock: socket.socket, data: bytes | bytearray | memoryview) -> None:
    """Send all of ``data``.  A blocking socket uses ``sendall``; one with a timeout is
    sent in a loop that retries EAGAIN (some systems raise it even with a timeout set)."""
    if sock.gettimeout() is None:
        try:
            sock.sendall(data)
        except OSError as exc:
            raise socket_error("sending", exc) from exc
        return
    view = memoryview(data).cast("B")
    delays = _retry_delays()
    while view:
        try:
            sent = sock.send(view)
        except socket.timeout as exc:
            raise TimeoutError("sending: timeout") from exc
        except OSError as exc:
            if exc.errno in ERRNO_RETRIES:
                time.sleep(next(delays))
                continue
            raise socket_error("sending", exc) from exc
        view = view[sent:]


# -- socket options --------------------------------------------------------------------------


def set_reuseaddr(sock: socket.socket) -> None:
    """Set SO_REUSEADDR, where the socket supports it."""
    with contextlib.suppress(Exception):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def set_nodelay(sock: socket.socket) -> None:
    """Set TCP_NODELAY (Nagle's algorithm off), where the socket supports it."""
    with contextlib.suppress(Exception):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_keepalive(sock: socket.socket) -> None:
    """Set SO_KEEPALIVE, where the socket supports it."""
    with contextlib.suppress(Exception):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def set_noinherit(sock: socket.socket) -> None:
    """Keep the socket's descriptor out of child processes (close-on-exec / not inheritable)."""
    sock.set_inheritable(False)
