"""The thread pool engine (``config.SERVERTYPE = "thread"``, the default).

One selector thread (the one running ``loop()``) accepts clients and watches
the idle ones.  When an idle client has sent a complete message, the client
goes to a worker of the daemon's pool (``host.workers``: at most
``config.THREADPOOL_SIZE`` threads, ``THREADPOOL_SIZE_MIN`` kept alive; oneway
calls run there too), which handles it and then keeps
serving that client while it stays busy: it waits a short while
(``LINGER`` seconds) for the next request right on the socket, which is as
quick as a thread per connection.  A client that goes quiet, or whose next
message trickles in, is handed back to the selector, so idle and half-sent
connections never tie up a worker; and a lingering worker gives its client
back at once when other work is waiting.

Calls of one client run one after another on one worker at a time, so
session-scoped objects and a ``ClientConnection`` are never used by two
threads at once.  When every worker is busy, work waits in a queue.  A new
client arriving while ``THREADPOOL_SIZE`` new clients already wait is refused
with a message that names THREADPOOL_SIZE;
requests of connected clients are never refused (each client has at most
one request batch queued, so that queue is bounded by the connections
admitted).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..config import config
from ..interfaces import DaemonHost
from ..workers import WorkerPool
from .base import Client, Incoming, SelectorEngine, take_messages
from .common import read_into

LINGER = 0.1  # seconds a worker waits for a client's next request before handing it back
LINGER_SLICE = 0.025  # how often a lingering worker looks whether other work waits
REFUSAL = "server busy: no free worker thread for a new client (raise THREADPOOL_SIZE)"


class ThreadPoolEngine(SelectorEngine):
    """Server engine for SERVERTYPE "thread": a selector thread plus a bounded worker pool.

    Construct as ``ThreadPoolEngine(host, listener)``; see the module docstring.
    """

    servertype = "thread"

    def __init__(self, host: DaemonHost, listener: Any) -> None:
        self._pool: WorkerPool = host.workers
        super().__init__(host, listener)
        self._returned: deque[Client] = deque()
        self._wake_pending = False
        self._housekeeping_queued = False

    @property
    def pool(self) -> WorkerPool:
        """The worker pool (the daemon's, shared with oneway calls)."""
        return self._pool

    def __repr__(self) -> str:
        return (
            f"<ThreadPoolEngine on {self.location}; {len(self._clients)} connections, {self._pool.num_workers} workers>"
        )

    # ----- selector thread

    def _prepare(self, client: Client) -> None:
        try:
            if client.raw.timeout is None and config.SEND_TIMEOUT:
                # reads here never block (recv_some), so this bounds the sends of a reply:
                # a peer that does not read costs a worker SEND_TIMEOUT at most
                client.raw.timeout = float(config.SEND_TIMEOUT)
        except Exception:
            pass

    def _admit(self, client: Client) -> None:
        # A client sends its connect request right after connecting, so it has often arrived by
        # the time the connection is accepted: read it now (one read, where watching for it costs
        # a watch, a wait and an unwatch); only if it has not come yet, watch for it.
        self._on_readable(client)
        if not client.gone and not client.busy:
            self._register(client)

    def _on_readable(self, client: Client) -> None:
        try:
            framed = self._read_frames(client)
        except Exception as exc:
            self._log_failure(client, exc)
            self._drop(client)
            return
        if not framed:
            return  # only part of a message so far: keep watching
        self._unregister(client)
        client.busy = True
        handshaked = client.session.handshake_done
        # the worker parses the bodies (annotations, decompression): that work stays off this thread
        if not self._pool.submit(self._serve, (client, None), refusable=not handshaked):
            if self._closed:
                self._drop(client)
                return
            try:
                first = take_messages(client.session)[0]
            except Exception:
                self._drop(client)
                return
            if isinstance(first, Exception):
                self._drop(client)
            else:
                self._send_refusal(client, first, REFUSAL)

    def _after_wake(self) -> None:
        # clients that workers handed back go back under watch
        with self._lock:
            returned = list(self._returned)
            self._returned.clear()
            self._wake_pending = False
            closed = self._closed
            if not closed:
                for client in returned:
                    client.busy = False
        for client in returned:
            if closed:
                self._drop(client)
            elif not client.gone:
                self._register(client)

    def _housekeep(self) -> None:
        if self._housekeeping_queued:
            return  # the last round is still running
        self._housekeeping_queued = True
        if not self._pool.submit(self._housekeeping_job):
            self._housekeeping_queued = False

    def _housekeeping_job(self) -> None:
        try:
            self._run_housekeeping()
        finally:
            self._housekeeping_queued = False

    def _close_workers(self) -> None:
        for func, args in self._pool.close():
            if func == self._serve:
                self._drop(args[0])
        with self._lock:
            returned = list(self._returned)
            self._returned.clear()
        for client in returned:
            self._drop(client)

    # ----- workers

    def _serve(self, client: Client, messages: list[Incoming] | None) -> None:
        """Handle a client's messages (None: the complete ones its session holds, parsed here),
        and keep handling it while its requests keep coming."""
        if messages is None:
            try:
                messages = take_messages(client.session)
            except Exception as exc:
                self._log_failure(client, exc)
                self._drop(client)
                return
        while True:
            if not self._serve_messages(client, messages):
                return  # dropped, or parked until the pool has room for its oneway calls
            del messages  # don't keep a big request alive while waiting for the next
            if self._closed:
                self._drop(client)
                return
            try:
                next_messages = self._next_messages(client)
            except Exception as exc:
                self._log_failure(client, exc)
                self._drop(client)
                return
            if next_messages is None:
                self._hand_back(client)
                return
            messages = next_messages
            del next_messages  # one name for the list: the del above frees it (and its big bodies)

    def _unpark(self, client: Client, pending: list[Incoming]) -> None:
        if not self._pool.submit(self._serve, (client, pending)):
            self._drop(client)

    def _next_messages(self, client: Client) -> list[Incoming] | None:
        """Wait (briefly) for the client's next complete request.  None: hand it back."""
        raw = client.raw
        session = client.session
        pool = self._pool
        deadline = time.monotonic() + LINGER
        flowing = False  # mid-message and the last read brought data: read again before waiting
        while True:
            if not flowing and not raw.pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._shutting_down or pool.backlog():
                    return None
                if not client.wait_readable(remaining if remaining < LINGER_SLICE else LINGER_SLICE):
                    continue
            count = read_into(raw, session)
            if count is None:
                flowing = False
                continue
            if count:
                client.note_read()
            messages = take_messages(session)  # raises ConnectionClosedError at the end of the stream
            if messages:
                return messages
            flowing = session.partial

    def _hand_back(self, client: Client) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._returned.append(client)
                wake = not self._wake_pending
                self._wake_pending = True
        if closed:
            self._drop(client)
        elif wake:
            self.wakeup()


Engine = ThreadPoolEngine
