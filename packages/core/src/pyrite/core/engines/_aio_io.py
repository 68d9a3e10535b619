"""The I/O pieces of the asyncio engine: non-blocking sends per transport and the failure log line."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from ..config import config
from ..errors import ConnectionClosedError, MessageTooLargeError, ProtocolError, SecurityError
from ..errors import TimeoutError as PyroTimeoutError
from ..protocol import ReceivingMessage
from ..session import Closed, Session
from .common import describe_peer

log = logging.getLogger("pyrite.core.engines.aio")

DEFAULT_POLL = 2.0
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

__all__ = ["log_failure", "poll_interval", "sender_for", "try_send"]


def poll_interval() -> float:
    """Seconds between housekeeping rounds and loop-condition checks (``config.POLLTIMEOUT``)."""
    value = config.POLLTIMEOUT
    return max(float(value), 0.01) if value else DEFAULT_POLL


def try_send(sender: Callable[[Any], int], parts: Sequence[Any]) -> list[memoryview]:
    """Send ``parts`` with the non-blocking ``sender``; return what the socket did not take."""
    if len(parts) == 1 and type(parts[0]) is bytes:
        data = parts[0]
        sent = sender(data)  # the usual case: one small reply that the socket takes whole
        return [] if sent == len(data) else [memoryview(data)[max(sent, 0) :]]
    left: list[memoryview] = []
    blocked = False
    for part in parts:
        view = memoryview(part).cast("B")
        while not blocked and len(view):
            sent = sender(view)
            if sent <= 0:
                blocked = True
                break
            view = view[sent:]
        if len(view):
            left.append(view)
    return left


def sender_for(raw: Any) -> tuple[Callable[[Any], int], bool]:
    """A non-blocking send for this connection, and whether a worker may call it while the loop reads."""
    send_some = getattr(raw, "send_some", None)
    if callable(send_some):
        return send_some, False
    sock = getattr(raw, "socket", None)
    if isinstance(sock, ssl.SSLSocket):
        return _tls_sender(raw, sock), False
    if isinstance(sock, socket.socket) and _DONTWAIT:
        return _plain_sender(sock), True

    def blocking(data: Any) -> int:  # an unknown transport: its own send, bounded by its timeout
        raw.send(data)
        return len(data)

    return blocking, False


def _plain_sender(sock: socket.socket) -> Callable[[Any], int]:
    fd = sock.fileno()

    def send(data: Any) -> int:
        try:
            if sock.gettimeout() is None:
                return sock.send(data, _DONTWAIT)
            # a socket with a timeout is non-blocking at the OS level: write(2) cannot wait
            # (sock.send would wait for writability first, up to the timeout)
            return os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except (OSError, ValueError) as exc:
            raise ConnectionClosedError(f"sending: connection lost: {exc}") from exc

    return send


def _tls_sender(raw: Any, sock: ssl.SSLSocket) -> Callable[[Any], int]:
    def send(data: Any) -> int:
        sock.settimeout(0.0)
        try:
            return sock.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return 0
        except (OSError, ValueError) as exc:
            raise ConnectionClosedError(f"sending: connection lost: {exc}") from exc
        finally:
            sock.settimeout(raw.timeout)

    return send


def log_failure(client: Any, exc: BaseException) -> None:
    """Log why a connection is closed, at a level that fits the cause."""
    peer = describe_peer(client.conn)
    if isinstance(exc, (ConnectionClosedError, ConnectionError, EOFError, OSError)):
        log.debug("client %s disconnected: %s", peer, exc)
    elif isinstance(exc, (ProtocolError, MessageTooLargeError, SecurityError, PyroTimeoutError)):
        log.warning("closing connection from %s after bad message: %s", peer, exc)
        if isinstance(exc, ProtocolError):
            client.host.protocol_error(client.conn, exc)
    else:
        log.warning("closing connection from %s after error: %s", peer, exc, exc_info=exc)


LAST_SEND_TIMEOUT = 5.0  # a worker's blocking send of a last reply, once the loop is gone (at most SEND_TIMEOUT)


def send_blocking(client: Any, raw: Any, parts: Sequence[Any]) -> None:
    """Send ``parts`` with the connection's blocking ``send`` (a worker's last reply once no
    loop watches the connection), bounded by SEND_TIMEOUT or LAST_SEND_TIMEOUT."""
    try:
        if raw.timeout is None:
            limit = float(config.SEND_TIMEOUT or 0)
            raw.timeout = min(limit, LAST_SEND_TIMEOUT) if limit > 0 else LAST_SEND_TIMEOUT
        for part in parts:
            raw.send(part)
    except Exception as exc:
        log_failure(client, exc)


def parse_frames(
    session: Session, conn: Any, failure: BaseException | None
) -> tuple[list[ReceivingMessage], BaseException | None]:
    """The complete messages of ``session``, parsed, in order, and the failure that ended them
    (``failure`` from reading, else the first bad message's; the messages before it are served)."""
    frames: list[ReceivingMessage] = []
    try:
        while True:
            event = session.next_event()
            if not isinstance(event, ReceivingMessage):
                if isinstance(event, Closed) and event.partial:
                    log.debug("client %s closed in the middle of a message", describe_peer(conn))
                return frames, failure
            frames.append(event)
    except Exception as exc:
        return frames, failure or exc


def loop_running() -> bool:
    """True on a thread running an event loop (the engine's loop thread, also once it let go)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def quiet(func: Callable[..., Any], *args: Any) -> None:
    """``func(*args)``, any exception ignored (tearing down)."""
    try:
        func(*args)
    except Exception:
        pass
