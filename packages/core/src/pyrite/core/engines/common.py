"""The pieces of the server engines that are not the loop: the per-client record,
taking parsed messages out of a session, peer names, waiting on one descriptor,
and how a failed connection is logged.
"""

from __future__ import annotations

import concurrent.futures
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..connection import ClientConnection
from ..errors import ConnectionClosedError, MessageTooLargeError, ProtocolError, SecurityError
from ..errors import TimeoutError as PyroTimeoutError
from ..protocol import ReceivingMessage
from ..session import Closed, Session
from .guard import DeadlineClock

__all__ = [
    "INFLATE_ON_LOOP",
    "inflate_elsewhere",
    "Client",
    "Incoming",
    "allocator_for",
    "describe_peer",
    "log",
    "log_failure",
    "read_into",
    "take_messages",
    "wait_readable",
]

log = logging.getLogger("pyrite.core.engines")

INFLATE_ON_LOOP = 16 * 1024
"""Compressed body bytes an engine with one thread for every client (multiplex, asyncio) inflates
on that thread; more (a compression bomb inflates 500:1 within the limits) are inflated on the
inflater thread (``inflate_elsewhere``), so that no client waits while another's message is."""

_inflater: concurrent.futures.ThreadPoolExecutor | None = None
_inflater_lock = threading.Lock()


def inflate_elsewhere(job: Callable[[], None]) -> bool:
    """Run ``job`` (parsing a session's big compressed messages) on the process's one inflater
    thread; False if that cannot be (the interpreter is shutting down).  One thread, so that the
    memory a bomb took while it was inflated is reused by the next one, not kept per worker."""
    global _inflater
    with _inflater_lock:
        if _inflater is None:
            _inflater = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pyrite-inflater")
        try:
            _inflater.submit(job)
        except RuntimeError:
            return False
    return True


Incoming = ReceivingMessage | Exception
"""What a read yields: complete messages, in order, possibly ending with the error that followed them."""


class Client(DeadlineClock):
    """An engine's record of one accepted connection.

    ``busy`` is set while the client is out of the selector being served (by
    a worker, or inline by the multiplex loop); ``gone`` once it was dropped.
    For the deadlines (``guard.expired``): ``since`` (accept time),
    ``frame_start`` (first byte of an incomplete message, or None) and
    ``last_active`` (last read), all ``time.monotonic()``; ``refusing`` is the
    reason a client over MAX_CONNECTIONS gets in its CONNECTFAIL; ``out`` the
    multiplex engine's output buffer; ``note_read()`` (from ``guard.DeadlineClock``)
    after each read that brought data.
    """

    __slots__ = (
        "conn",
        "raw",
        "session",
        "fd",
        "registered",
        "busy",
        "gone",
        "pending",
        "refusing",
        "out",
        "poller",
    )

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.raw = conn.conn
        self.session: Session = conn.session
        self.fd = self.raw.fileno()
        self.registered = False
        self.busy = False
        self.gone = False
        self.pending: list[Incoming] = []  # messages read but not served while the client is parked
        self.since = self.last_active = time.monotonic()
        self.frame_start: float | None = None
        self.refusing: str | None = None
        self.out: Any = None
        self.poller: Any = None  # a worker's poll object on fd, made once (see wait_readable)
        self.session.allocator = allocator_for(self.raw)

    def wait_readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the connection to be readable (or broken)."""
        poller = self.poller
        if poller is None:
            if not hasattr(select, "poll"):  # pragma: no cover - Windows
                return wait_readable(self.fd, timeout)
            poller = self.poller = select.poll()
            poller.register(self.fd, _POLL_READ)
        return bool(poller.poll(timeout * 1000.0))

    def __repr__(self) -> str:
        return f"<Client fd={self.fd} {describe_peer(self.conn)}>"


def allocator_for(raw: Any) -> Any:
    """The buffer maker for a connection's large bodies (its ``large_buffer``), when it can also
    read into one without blocking (``recv_some_into``); else None."""
    if getattr(raw, "recv_some_into", None) is None:
        return None
    return getattr(raw, "large_buffer", None)


def read_into(raw: Any, session: Session) -> int | None:
    """One non-blocking read from ``raw`` into ``session``: how many bytes (0: the peer closed),
    None if nothing was ready.  The rest of a large body is read straight into its buffer
    (``Session.read_target``), everything else through ``recv_some``/``receive_data``."""
    target = session.read_target()
    if target is not None:
        count: int | None = raw.recv_some_into(target)
        del target
        if count is not None:
            session.received_into(count)
        return count
    data = raw.recv_some(session.want())
    if data is None:
        return None
    session.receive_data(data)
    return len(data)


def take_messages(session: Session) -> list[Incoming]:
    """Every complete message the session holds, parsed, in order.

    An error (bad bytes, a too large message) after complete messages ends the
    list, so those are still served; with none before it, it is raised, as is a
    ConnectionClosedError for a close."""
    out: list[Incoming] = []
    while True:
        try:
            event = session.next_event()
        except Exception as exc:
            if not out:
                raise
            out.append(exc)
            return out
        if isinstance(event, ReceivingMessage):
            out.append(event)
        elif isinstance(event, Closed):
            if not out:
                raise event.error()
            return out
        else:
            return out


def describe_peer(conn: Any) -> str:
    """The peer address of a connection as text, or '?' when it is gone."""
    try:
        return str(conn.peer_address)
    except Exception:
        return "?"


_POLL_READ = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP if hasattr(select, "poll") else 0

if hasattr(select, "poll"):

    def wait_readable(fd: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``fd`` to be readable (or broken)."""
        poller = select.poll()
        poller.register(fd, _POLL_READ)
        return bool(poller.poll(timeout * 1000.0))
else:  # pragma: no cover - Windows

    def wait_readable(fd: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``fd`` to be readable (or broken)."""
        readable, _, broken = select.select([fd], [], [fd], timeout)
        return bool(readable or broken)


def log_failure(engine: Any, conn: Any, exc: BaseException) -> None:
    """Log why a connection is being closed, at a level that fits the cause."""
    peer = describe_peer(conn)
    if isinstance(exc, (ConnectionClosedError, ConnectionError, EOFError)):
        log.debug("%s: client %s disconnected: %s", engine, peer, exc)
    elif isinstance(exc, (ProtocolError, MessageTooLargeError)):
        log.warning("%s: closing connection from %s after bad message: %s", engine, peer, exc)
    elif isinstance(exc, SecurityError):
        log.warning("%s: closing connection from %s after security error: %s", engine, peer, exc)
    elif isinstance(exc, (PyroTimeoutError, socket.timeout)):
        log.warning("%s: closing connection from %s after timeout: %s", engine, peer, exc)
    elif isinstance(exc, OSError):
        log.debug("%s: connection from %s failed: %s", engine, peer, exc)
    else:
        log.warning(
            "%s: closing connection from %s after error: %s",
            engine,
            peer,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
