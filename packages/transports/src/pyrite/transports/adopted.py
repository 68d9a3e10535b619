"""Connections over sockets someone else connected: what ``Transport.adopt`` returns.

Both transports wrap an adopted socket in the one ``SocketConnection``
(``sockets.py``).  A borrowed socket (``owned=False``, as for
``Proxy(uri, connected_socket=sock)``) stays its owner's: closing the
connection only stops this connection from using it, so the owner can hand
the socket to another proxy afterwards, as Pyro5 allows.
"""

from __future__ import annotations

import socket

from pyrite.core.errors import CommunicationError

from .sockets import SocketConnection

__all__ = ["BorrowedSocketConnection", "adopt_connected"]


class BorrowedSocketConnection(SocketConnection):
    """A ``SocketConnection`` whose ``close()`` leaves the socket open for its owner."""

    __slots__ = ()

    def close(self) -> None:
        """Stop using the socket (later sends and receives fail); the socket itself stays open."""
        # SocketConnection.close() would shut the socket down for everyone
        self._closed = True


def adopt_connected(sock: socket.socket, families: tuple[int, ...], owned: bool) -> SocketConnection:
    """Wrap a connected stream socket of one of ``families``, keeping its current timeout.

    Raises CommunicationError for another family, a non-stream socket, or one
    that is not connected."""
    if sock.family not in families:
        raise CommunicationError(f"cannot adopt a socket of family {sock.family!r} (expected one of {families})")
    if sock.type != socket.SOCK_STREAM:
        raise CommunicationError(
            f"cannot adopt a socket of type {sock.type!r}: only stream sockets carry Pyro messages"
        )
    try:
        sock.getpeername()  # it must be connected
    except OSError as exc:
        raise CommunicationError(f"cannot adopt a socket that is not connected: {exc}") from exc
    cls = SocketConnection if owned else BorrowedSocketConnection
    return cls(sock, sock.gettimeout())
