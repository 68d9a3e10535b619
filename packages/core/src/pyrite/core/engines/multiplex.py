"""The multiplex engine (``config.SERVERTYPE = "multiplex"``): one thread serves everyone.

The thread running ``loop()`` waits on the listener and every client with a
``selectors`` selector.  A readable client is read without blocking
(``recv_some``) into its own protocol ``Session``, so a message that arrives in
pieces, or never completes, costs nothing but its buffer; a complete message
is handled right there, one at a time.  Calls therefore never run
concurrently: the objects served need no locking, but a slow call delays
every other client.

Replies never block the loop: each connection writes through an
``output.BufferedOutput``.  What the socket does not take at once waits in
that buffer; meanwhile the connection is watched for writing only, so no
further request of that peer is read, and a peer that lets more than
``config.MAX_OUTPUT_BUFFER`` bytes pile up, or reads nothing for
``config.SEND_TIMEOUT`` seconds, loses its connection.  A oneway call never
runs on this thread: when the daemon's oneway queue is full the connection
that sent it is parked until the worker pool has room (``base.SelectorEngine._park``).
Nor is a big compressed message inflated here (``common.INFLATE_ON_LOOP``): the
inflater thread parses it while its connection waits, then this thread serves it.
"""

from __future__ import annotations

import select
import selectors
import time
from typing import Any

from ..config import config
from ..errors import ConnectionClosedError
from ..interfaces import DaemonHost
from .base import Client, Incoming, SelectorEngine
from .common import INFLATE_ON_LOOP, inflate_elsewhere, take_messages
from .output import BufferedOutput


class MultiplexEngine(SelectorEngine):
    """Server engine for SERVERTYPE "multiplex": single-threaded, selector based.

    Construct as ``MultiplexEngine(host, listener)``; see the module docstring.
    """

    servertype = "multiplex"

    def __init__(self, host: DaemonHost, listener: Any) -> None:
        super().__init__(host, listener)
        self._writing: set[Client] = set()
        self._inflated: list[tuple[Client, list[Incoming]]] = []  # parsed by the inflater, to be served

    def _wrap_accepted(self, raw: Any) -> Any:
        return BufferedOutput(raw)

    def _prepare(self, client: Client) -> None:
        client.out = client.raw
        try:
            if client.raw.timeout is None and config.SEND_TIMEOUT:
                # only a transport without non-blocking writes ever waits on this
                client.raw.timeout = float(config.SEND_TIMEOUT)
        except Exception:
            pass

    def _on_readable(self, client: Client) -> None:
        if client in self._writing:
            self._flush(client)
            return
        try:
            if self._read_frames(client) and client.session.compressed_waiting > INFLATE_ON_LOOP:
                self._inflate_elsewhere(client)
                return
            messages = take_messages(client.session)
        except Exception as exc:
            self._log_failure(client, exc)
            self._drop(client)
            return
        if not messages:
            return
        # busy: a shutdown from inside this call must leave the connection open for the reply
        client.busy = True
        self._unpark(client, messages, registered=True)

    def _inflate_elsewhere(self, client: Client) -> None:
        """Parse a client's messages (big compressed bodies) on the inflater thread; the loop serves them after.
        The client is not read meanwhile (its session is the inflater's until then)."""
        self._unregister(client)
        client.busy = True

        def parse() -> None:
            try:
                messages: list[Incoming] = take_messages(client.session)
            except Exception as exc:  # the first message is bad: served as the error it is
                messages = [exc]
            with self._lock:
                closed = self._closed
                if not closed:
                    self._inflated.append((client, messages))
            if closed:
                self._drop(client)  # no loop will serve it any more
            else:
                self.wakeup()

        if not inflate_elsewhere(parse):
            self._drop(client)  # the interpreter is shutting down

    def _after_wake(self) -> None:
        with self._lock:
            inflated, self._inflated = self._inflated, []
        for client, messages in inflated:
            if client.gone:
                continue
            if self._closed:
                self._drop(client)
                continue
            self._unpark(client, messages)

    def _unpark(self, client: Client, pending: list[Incoming], registered: bool = False) -> None:
        if not self._serve_messages(client, pending):
            return  # dropped or parked
        del pending
        client.busy = False
        if self._closed:
            self._drop(client)
        elif client.out is not None and client.out.queued:
            if self._own_loop():
                self._want_write(client)
            else:
                self._flush_waiting(client, registered)
        elif not registered:
            self._register(client)

    def _own_loop(self) -> bool:
        """True when this engine's (or its parent's) ``loop()`` runs, so write readiness is watched.
        An external event loop driving ``events()`` waits for reading only."""
        owner = self._parent or self
        return owner._loop_thread is not None

    def _flush_waiting(self, client: Client, registered: bool) -> None:
        """For an external event loop: write what waits, waiting up to SEND_TIMEOUT for room."""
        deadline = time.monotonic() + float(config.SEND_TIMEOUT or 60.0)
        try:
            while client.out.queued:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConnectionClosedError("sending: the peer did not read its replies (SEND_TIMEOUT)")
                select.select([], [client.fd], [], min(remaining, 0.5))
                client.out.flush()
        except Exception as exc:
            self._log_failure(client, exc)
            self._drop(client)
            return
        if not registered:
            self._register(client)

    def _want_write(self, client: Client) -> None:
        """Watch the client for writing only: its output waits, its requests must too."""
        try:
            if client.registered:
                self._selector.modify(client.conn, selectors.EVENT_WRITE, (self, client))
            else:
                self._selector.register(client.conn, selectors.EVENT_WRITE, (self, client))
                client.registered = True
        except (OSError, ValueError, KeyError, RuntimeError):
            self._drop(client)
            return
        self._writing.add(client)

    def _flush(self, client: Client) -> None:
        try:
            client.out.flush()
        except Exception as exc:
            self._log_failure(client, exc)
            self._drop(client)
            return
        if client.out.queued:
            return
        self._writing.discard(client)
        try:
            self._selector.modify(client.conn, selectors.EVENT_READ, (self, client))
        except (OSError, ValueError, KeyError, RuntimeError):
            self._drop(client)
            return
        if client.raw.pending():
            self._on_readable(client)  # requests already buffered inside the connection

    def _drop(self, client: Client) -> None:
        self._writing.discard(client)
        super()._drop(client)

    def _housekeep(self) -> None:
        self._run_housekeeping()


Engine = MultiplexEngine
