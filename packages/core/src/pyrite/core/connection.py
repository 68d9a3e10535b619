"""``ClientConnection``: a daemon's state for one connected client.

It wraps a transport ``Connection`` and adds what Pyro5 keeps per client:
``pyroInstances`` (session-mode objects), ``tracked_resources`` (closed when
the client goes) and ``keep_open``.  This is what ``Daemon.validateHandshake``,
``Daemon.clientDisconnect`` and ``current_context.client`` see.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Any

from .interfaces import Connection
from .session import SERVER, Session


class ClientConnection:
    """Per-client state kept by a daemon; delegates I/O to the transport connection."""

    # No __slots__: Pyro5 servers set their own attributes on the connection
    # (e.g. ``conn.user = ...`` in validateHandshake).

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pyroInstances: dict[type, Any] = {}
        self.tracked_resources: weakref.WeakSet[Any] = weakref.WeakSet()
        self.keep_open = False
        self.handshaked = False
        #: the protocol session of this connection (server side): framing, limits, replies
        self.session = Session(SERVER)
        #: oneway calls waiting for room in the worker pool (the engine stops reading meanwhile)
        self.held_oneways: deque[Any] = deque()
        #: the exception of a failed ``@callback`` method: the engine closes the connection
        self.callback_error: BaseException | None = None
        self._peer: Any = None  # the peer address, once known: it never changes, and every call reads it

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data`` on the transport connection."""
        self.conn.send(data)

    def send_parts(self, parts: Any) -> None:
        """Send several buffers in order (one gathering write where the transport can)."""
        send_parts = getattr(self.conn, "send_parts", None)
        if send_parts is None:
            self.conn.send(b"".join(parts))
        else:
            send_parts(parts)

    def recv(self, size: int) -> bytes | memoryview:
        """Receive exactly ``size`` bytes."""
        return self.conn.recv(size)

    def fileno(self) -> int:
        """The OS file descriptor, for selectors."""
        return self.conn.fileno()

    def close(self) -> None:
        """Close the transport connection."""
        self.conn.close()

    @property
    def timeout(self) -> float | None:
        """The transport connection's timeout in seconds (None: blocking)."""
        return self.conn.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.conn.timeout = value

    @property
    def sock(self) -> Any:
        """The OS socket under the transport connection, if it has one (Pyro5 code reads
        ``conn.sock.getpeername()``); otherwise the transport connection itself."""
        return getattr(self.conn, "socket", self.conn)

    def getpeercert(self) -> dict[str, Any] | None:
        """The peer's TLS certificate, or None."""
        return self.conn.getpeercert()

    @property
    def peer_address(self) -> Any:
        """The client's address."""
        peer = self._peer
        if peer is None:
            peer = self._peer = self.conn.peer_address
        return peer

    def __repr__(self) -> str:
        return f"<ClientConnection {self.conn!r}>"
