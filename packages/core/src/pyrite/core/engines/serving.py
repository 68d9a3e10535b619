"""The per-connection half of a selector engine: reading a client into its session,
handing each message to the daemon (``interfaces.DaemonHost``) and sending the reply,
parking a client whose oneway calls wait for room in the worker pool, dropping.

``ConnectionServing`` is a mixin of ``base.SelectorEngine``; it declares what it
uses of the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .. import protocol
from ..errors import ProtocolError
from ..interfaces import DaemonHost
from ..protocol import ReceivingMessage
from .common import Client, Incoming, describe_peer, log, log_failure, read_into, take_messages

__all__ = ["ConnectionServing", "MAX_READ_PER_TURN"]

MAX_READ_PER_TURN = 4 * 1024 * 1024  # bytes one client may read per turn of the selector loop
# Replies to pipelined requests read together are written together (see _serve_messages):
GATHER_DELAY = 0.001  # seconds after which gathered replies are written (checked after each call)
GATHER_PARTS = 128  # small replies gathered at most before a write
GATHER_JOIN = 256 * 1024  # gathered bytes up to this are joined into one buffer before the write


class ConnectionServing:
    """Reading, dispatching, back-pressure and dropping, for one client at a time."""

    host: DaemonHost
    _lock: threading.Lock
    _clients: set[Client]
    _closed: bool
    _parked: list[Client]
    _loop_thread: int | None

    def wakeup(self) -> None:
        """Provided by the engine: make its loop look up now."""
        raise NotImplementedError

    def _unregister(self, client: Client) -> None:
        raise NotImplementedError

    # ----- reading, dispatching, dropping

    def _read_frames(self, client: Client) -> int:
        """Read what has arrived on an idle client without blocking into its session; how many
        complete messages it now holds (framed, bodies not parsed yet; ``take_messages`` parses them).
        Raises ConnectionClosedError at end of stream and ProtocolError for garbage when no
        complete message came before them (else they end the list, see ``take_messages``)."""
        raw = client.raw
        session = client.session
        budget = MAX_READ_PER_TURN
        while True:
            count = read_into(raw, session)
            if not count:
                break  # nothing ready (None), or the peer closed (0)
            client.note_read()
            budget -= count
            # TLS may hold decrypted bytes the selector can't see: those must be read now.  And while
            # a big message streams in, read on (up to a fair share) rather than select per piece.
            if not raw.pending() and (not session.partial or budget <= 0):
                break
        framed = session.framed
        if not framed:
            take_messages(session)  # raises the close or the bad bytes; else nothing is complete yet
        return framed

    def _dispatch(self, client: Client, msg: ReceivingMessage, gathered: list[Any] | None = None) -> bool:
        """Give one complete message to the daemon and send its reply (or, with ``gathered``,
        add the reply's parts to it for ``_send_gathered``).  False if the client was dropped
        (refused, broken, or after a failed ``@callback``): replies gathered before were sent."""
        conn = client.conn
        session = client.session
        host = self.host
        try:
            if session.handshake_done:
                reply = host.serve_request(conn, session, msg)
            else:
                reply = host.serve_handshake(conn, session, msg)
            del msg
            if reply is not None:
                if gathered is None:
                    protocol.send_message(conn, reply)
                else:
                    parts = reply.parts
                    gathered.extend(parts)
                    if len(parts) > 1 and not self._send_gathered(client, gathered):
                        return False  # a large payload (its own part) goes out at once, with those before it
                del reply
            if not session.handshake_done:
                log.debug("%s: handshake refused for %s", self, describe_peer(conn))
            elif conn.callback_error is not None:
                # Pyro5 raises a failed @callback's error in the callback's daemon too: log it, end the link
                exc, conn.callback_error = conn.callback_error, None
                log.warning(
                    "%s: callback method raised %r; closing connection from %s",
                    self,
                    exc,
                    describe_peer(conn),
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
            else:
                return True
        except Exception as exc:
            self._log_failure(client, exc)
        if gathered:
            self._send_gathered(client, gathered, last=True)
        self._drop(client)
        return False

    def _send_gathered(self, client: Client, gathered: list[Any], last: bool = False) -> bool:
        """Write the reply parts gathered from one read's requests in one go, and empty the list.
        False if that failed (the client is dropped then, unless ``last``: the caller drops it)."""
        parts = gathered[:]
        gathered.clear()
        size = 0
        for part in parts:
            size += len(part)
        try:
            if size <= GATHER_JOIN:
                client.conn.send(b"".join(parts))  # small replies: one buffer, one write
            else:
                client.conn.send_parts(parts)
        except Exception as exc:
            if not last:
                self._log_failure(client, exc)
                self._drop(client)
            return False
        return True

    def _serve_messages(self, client: Client, messages: list[Incoming]) -> bool:
        """Dispatch ``messages`` in order.  False if the client was dropped or parked (the rest
        kept in ``client.pending``): the caller must leave it alone then.

        Replies to several requests that arrived together (a pipelining client) are gathered
        and written together, so the peer gets one write, not one per reply; a reply waits
        at most ``GATHER_DELAY`` seconds (a slow call after it); a large reply goes out at once."""
        if len(messages) == 1:
            gathered: list[Any] | None = None
        else:
            gathered = []
            first = 0.0
        for index, msg in enumerate(messages):
            if client.refusing is not None and not isinstance(msg, Exception):
                self._send_refusal(client, msg, client.refusing)  # over MAX_CONNECTIONS
                return False
            if isinstance(msg, Exception):  # bad bytes after the messages before it
                if gathered:
                    self._send_gathered(client, gathered, last=True)
                self._log_failure(client, msg)
                self._drop(client)
                return False
            if not self._dispatch(client, msg, gathered):
                return False
            if gathered:
                now = time.monotonic()
                if not first:
                    first = now
                elif now - first >= GATHER_DELAY or len(gathered) >= GATHER_PARTS:
                    if not self._send_gathered(client, gathered):
                        return False
                    first = 0.0
            if client.conn.held_oneways:
                if gathered and not self._send_gathered(client, gathered):
                    return False
                self._park(client, messages[index + 1 :])
                return False
        if gathered:
            return self._send_gathered(client, gathered)
        return True

    # ----- back-pressure: parked clients wait for room in the worker pool

    def _park(self, client: Client, pending: list[Incoming]) -> None:
        """Stop reading ``client`` until its held-back oneway calls are submitted."""
        self._unregister(client)
        client.pending = pending
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                client.busy = True
                self._parked.append(client)
        if closed:
            self._drop(client)
            return
        log.debug("%s: worker pool full, %r parked", self, client)
        if threading.get_ident() != self._loop_thread:
            self.wakeup()

    def _resume_parked(self) -> None:
        """Loop thread: go on with parked clients whose oneway calls found room."""
        with self._lock:
            parked = list(self._parked)
        for client in parked:
            if not client.gone and not self.host.resume(client.conn):
                continue
            with self._lock:
                self._parked.remove(client)
            if client.gone:
                continue
            if self._closed:
                self._drop(client)
                continue
            pending, client.pending = client.pending, []
            self._unpark(client, pending)

    def _unpark(self, client: Client, pending: list[Incoming]) -> None:
        """Hook: serve a resumed client's pending frames, then watch it again."""
        raise NotImplementedError

    def _drop_parked(self) -> None:
        with self._lock:
            parked, self._parked = self._parked, []
        for client in parked:
            client.conn.held_oneways.clear()
            self._drop(client)

    def _log_failure(self, client: Client, exc: BaseException) -> None:
        log_failure(self, client.conn, exc)
        if isinstance(exc, ProtocolError):  # MessageTooLargeError is one too
            self.host.protocol_error(client.conn, exc)

    def _drop(self, client: Client) -> None:
        """Forget a client: unwatch, tell the daemon (once, if it got past the handshake), close."""
        with self._lock:
            if client.gone:
                return
            client.gone = True
            self._clients.discard(client)
        self._unregister(client)
        if client.conn.handshaked:
            try:
                self.host.client_disconnected(client.conn)
            except Exception:
                log.exception("%s: error in client disconnect handling", self)
        try:
            client.conn.close()
        except Exception:
            pass
        log.debug("%s: dropped %r", self, client)

    def _send_refusal(self, client: Client, msg: ReceivingMessage, reason: str) -> None:
        """Answer a new client's first message with MSG_CONNECTFAIL carrying ``reason``, as Pyro5 does."""
        # over MAX_CONNECTIONS this happens per connection of a flood: not worth a warning each
        level = logging.DEBUG if client.refusing is not None else logging.WARNING
        log.log(level, "%s: client connection from %s was denied: %s", self, describe_peer(client.conn), reason)
        try:
            protocol.send_message(client.conn, self.host.refuse(client.conn, client.session, msg, reason))
        except Exception as exc:
            log.debug("%s: could not send refusal: %s", self, exc)
        self._drop(client)
