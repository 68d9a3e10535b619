"""The engine of a daemon that serves one already connected socket (``Daemon(connected_socket=...)``).

It answers a MSG_CONNECT handshake if the client sends one (a Pyro5 proxy on
a connected socket does not, so a first MSG_INVOKE is served as if the
handshake had happened) and serves requests, one at a time, until the
connection ends.  The connection stays the caller's: closing the daemon
does not close it.  It has no listener, no selector to share and nothing
to combine.
"""

from __future__ import annotations

import logging
import selectors
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import plugins
from ..config import config
from ..connection import ClientConnection
from ..errors import CommunicationError, ConnectionClosedError, PyroError, SecurityError
from ..errors import TimeoutError as PyroTimeoutError
from ..interfaces import DaemonHost
from ..protocol import MSG_CONNECT, SendingMessage, send_message

__all__ = ["SingleConnectionEngine", "wrap_socket"]

log = logging.getLogger("pyrite.core.engines")

HELD_POLL = 0.02  # seconds between tries while oneway calls wait for room in the pool


def wrap_socket(sock: Any) -> Any:
    """A transport connection for a connected socket (the transport is chosen by its family)."""
    sock.getpeername()  # it must be connected
    if config.SSL:
        import ssl

        if not isinstance(sock, ssl.SSLSocket):
            raise CommunicationError("SSL configured but the existing socket is not an SSL socket")
    conn = plugins.adopt_socket(sock, owned=True)  # UnknownPluginError says what to install
    conn.timeout = config.COMMTIMEOUT or None
    return conn


def _location_of(connected: Any) -> str:
    try:
        address = connected.local_address
    except Exception:
        address = None
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "./u:" + (address or "<<not-bound>>") if isinstance(address, str) else "./u:<<not-bound>>"


class SingleConnectionEngine:
    """Serves the one given connection (a transport ``Connection`` or a connected socket)."""

    servertype = "single"

    def __init__(self, host: DaemonHost, connected: Any) -> None:
        if not hasattr(connected, "recv_some"):
            connected = wrap_socket(connected)
        self.host = host
        self.sock = connected
        self.conn: ClientConnection | None = ClientConnection(connected)
        self.shutting_down = False
        self._disconnected = False
        self.location = _location_of(connected)
        log.info("serving the single given connection %s", connected)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.location}>"

    @property
    def sockets(self) -> list[Any]:
        """The connection, while it is served."""
        return [self.sock] if self.conn is not None else []

    @property
    def clients(self) -> list[ClientConnection]:
        """The one connection, while it is served."""
        return [self.conn] if self.conn is not None else []

    @property
    def selector(self) -> Any:
        """There is none: TypeError."""
        raise TypeError("a daemon on one given connection has no selector")

    def combine_loop(self, other: Any) -> None:
        """Not possible here: PyroError."""
        raise PyroError("a daemon on one given connection cannot combine other daemons' loops")

    def events(self, ready: Iterable[Any]) -> None:
        """Not possible here: PyroError."""
        raise PyroError("a daemon on one given connection has no event sockets to combine")

    def wakeup(self) -> None:
        """Nothing to do: the loop looks at its condition every POLLTIMEOUT."""

    def shutdown(self) -> None:
        """Stop the loop (it notices within a second)."""
        self.shutting_down = True

    def close(self) -> None:
        """Stop serving; the connection itself stays open (it is the caller's)."""
        self.shutting_down = True
        self._disconnect()
        self.conn = None

    def _disconnect(self) -> None:
        if not self._disconnected and self.conn is not None:
            self._disconnected = True
            self.host.client_disconnected(self.conn)

    def loop(self, condition: Callable[[], bool]) -> None:
        """Serve the connection until it ends, ``condition()`` is false or shutdown."""
        conn = self.conn
        if conn is None:
            return
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.sock.fileno(), selectors.EVENT_READ)
            while not self.shutting_down and self.conn is not None and condition():
                ready = self.sock.pending() > 0 or bool(selector.select(min(config.POLLTIMEOUT or 1.0, 1.0)))
                if ready and not self.serve_one(conn):
                    break
                self.host.housekeeping()
        except (OSError, ValueError):
            pass  # the descriptor went away under us: the connection is over
        finally:
            selector.close()
        if self.conn is None or self._disconnected or not condition():
            return
        self._disconnect()

    def serve_one(self, conn: ClientConnection) -> bool:
        """Read one message, serve it and send the reply; False once the connection is over."""
        host = self.host
        try:
            session = conn.session
            msg = session.receive_from(conn.recv)
            reply: SendingMessage | None
            if msg.type == MSG_CONNECT:
                reply = host.serve_handshake(conn, session, msg)
            else:
                # a Pyro5 proxy on a connected socket sends no handshake: it is trusted as it is
                session.handshake_done = conn.handshaked = True
                reply = host.serve_request(conn, session, msg)
            del msg
            if reply is not None:
                send_message(conn, reply)
            while conn.held_oneways and not self.shutting_down and not host.resume(conn):
                time.sleep(HELD_POLL)  # back-pressure: this is the only connection, so just wait
            if not session.handshake_done:
                raise SecurityError("handshake refused")
            if conn.callback_error is not None:
                exc, conn.callback_error = conn.callback_error, None
                log.warning("callback method raised %r; closing the connection", exc, exc_info=exc)
                raise ConnectionClosedError("closed after a failed callback")
            return True
        except PyroTimeoutError as exc:
            log.warning("request timed out: %s", exc)
            return True
        except (ConnectionClosedError, SecurityError, CommunicationError) as exc:
            log.debug("connection ends: %s", exc)
            self._disconnect()
            self.conn = None
            return False
        except Exception:
            log.warning("handling a request failed", exc_info=True)
            return True
