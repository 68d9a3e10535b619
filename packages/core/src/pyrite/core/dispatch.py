"""Where a call is dispatched: one request message in, at most one response out.

``handle_message(daemon, conn, msg)`` serves a MSG_INVOKE or MSG_PING that an
engine has read from a client connection; ``handshake(daemon, conn, msg)``
serves the MSG_CONNECT that opens a connection.  Both write their reply to
``conn`` themselves, with the serializer id, sequence number and correlation
id of the request.

A failing request (bad payload, unknown object, unexposed method, an
exception in the called code, an unserializable result) gets an exception
reply (FLAGS_EXCEPTION) and the connection stays usable.  Only when the
connection itself cannot go on (a message type that has no place here, a
serializer id nobody knows, a reply that cannot be written) does
``handle_message`` raise a ``CommunicationError``: the engine then drops that
one client.

The call itself (``begin_request``, ``Invocation``) is in ``invocation``;
``handle_message`` makes it in the calling thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import invocation, plugins
from .callcontext import current_context
from .config import config
from .errors import CommunicationError, DaemonError, ProtocolError, PyroError
from .invocation import Invocation, _response_annotations, begin_request
from .protocol import (
    FLAGS_CORR_ID,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    ReceivingMessage,
    SendingMessage,
    send_message,
)
from .uri import DAEMON_NAME

if TYPE_CHECKING:
    from .daemon import Daemon

log = logging.getLogger("pyrite.core.dispatch")

__all__ = ["handle_message", "begin_request", "Invocation", "handshake", "OnewayExecutor"]

# the call half lives in .invocation; these names stay reachable here (daemon.py uses them)
_unpack, _unpack_quiet = invocation._unpack, invocation._unpack_quiet
_UUID = uuid.UUID
MARSHAL_ID = invocation.MARSHAL_ID


def handle_message(daemon: Daemon, conn: Any, msg: ReceivingMessage) -> None:
    """Serve one MSG_INVOKE or MSG_PING from ``conn`` and write the reply (none for oneway calls).

    Raises CommunicationError only if the connection must be dropped.
    """
    step = begin_request(daemon, conn, msg)
    del msg
    if type(step) is Invocation:
        if step.oneway:
            step.run_oneway()
            return
        try:
            data = step.run()
        except Exception as exc:
            step = step.fail(exc)
        else:
            step = step.finish(data)
    if step is not None:
        send_message(conn, step)


def handshake(daemon: Daemon, conn: Any, msg: ReceivingMessage, denied_reason: str | None = None) -> bool:
    """Answer the MSG_CONNECT that opens a connection; True if the client may go on.

    The request payload is ``{"handshake": data, "object": object_id}``; the
    reply is MSG_CONNECTOK with ``{"handshake": validateHandshake's result,
    "meta": the object's metadata}``, or MSG_CONNECTFAIL with the reason as a
    string (a refusing ``validateHandshake``, an unknown object, a wrong
    message, or ``denied_reason``).
    """
    ctx = current_context
    seq = msg.seq
    serializer_id = msg.serializer_id
    corr = msg.corr_id if msg.flags & FLAGS_CORR_ID else None
    ctx.correlation_id = _UUID(bytes=bytes(corr)) if corr is not None else None
    ctx.response_annotations = {}
    ctx.client = conn
    try:
        ctx.client_sock_addr = conn.peer_address
    except Exception:
        ctx.client_sock_addr = None
    ctx.annotations = msg.annotations
    try:
        serializer = plugins.get_serializer_by_id(serializer_id)
    except PyroError:
        serializer_id = MARSHAL_ID
        serializer = None
    try:
        if denied_reason:
            raise DaemonError(denied_reason)
        if msg.type != MSG_CONNECT:
            raise ProtocolError(f"invalid msg type {msg.type} received (expected: {MSG_CONNECT})")
        if serializer is None:
            raise ProtocolError(f"unknown serializer id {msg.serializer_id}")
        request = serializer.loads(msg.data)
        if not isinstance(request, dict) or "handshake" not in request or "object" not in request:
            raise ProtocolError("invalid handshake request")
        response = daemon.validateHandshake(conn, request["handshake"])
        meta = daemon.objectsById[DAEMON_NAME].get_metadata(request["object"])
        payload = serializer.dumps({"handshake": response, "meta": meta})
        msg_type = MSG_CONNECTOK
    except Exception as exc:
        log.debug("handshake refused: %s", exc)
        if serializer is None:
            serializer = plugins.get_serializer_by_id(MARSHAL_ID)
        try:
            payload = serializer.dumps(str(exc))
        except Exception:
            payload = serializer.dumps("handshake refused")
        msg_type = MSG_CONNECTFAIL
    try:
        reply = SendingMessage(msg_type, 0, seq, serializer_id, payload, _response_annotations(daemon), corr_id=corr)
    except PyroError as exc:
        msg_type = MSG_CONNECTFAIL
        reply = SendingMessage(msg_type, 0, seq, serializer_id, serializer.dumps(str(exc)), corr_id=corr)
    ctx.response_annotations = {}
    try:
        send_message(conn, reply)
    except CommunicationError:
        return False
    ok = msg_type == MSG_CONNECTOK
    if ok:
        conn.handshaked = True
    return ok


class OnewayExecutor:
    """Runs oneway calls on at most ``config.ONEWAY_THREADS`` threads.

    Calls wait in a bounded queue (64 per thread).  When it is full the call
    runs in the submitting thread instead: that slows down the client that
    floods the daemon (back-pressure) and never starts more threads.
    Threads start on first need and stop when the executor shuts down.
    """

    QUEUE_PER_THREAD = 64

    def __init__(self, max_threads: int | None = None) -> None:
        self.max_threads = max(1, int(config.ONEWAY_THREADS if max_threads is None else max_threads))
        self._queue: queue.Queue[Any] = queue.Queue(self.max_threads * self.QUEUE_PER_THREAD)
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self, daemon: Daemon, method: Callable[..., Any], vargs: Any, kwargs: Any, context: dict[str, Any]
    ) -> None:
        """Queue a oneway call; ``context`` is the caller's ``current_context.to_global()``."""
        job = (daemon, method, vargs, kwargs, context)
        if self._closed:
            raise DaemonError("daemon is shutting down")
        with self._lock:
            if self._queue.qsize() >= self._idle and len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"pyrite-oneway-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                self._idle += 1
                thread.start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._run(job)

    @staticmethod
    def _run(job: tuple[Any, ...]) -> None:
        daemon, method, vargs, kwargs, context = job
        saved = current_context.to_global()
        current_context.from_global(context)
        try:
            method(*vargs, **kwargs)
        except Exception as exc:
            try:
                daemon.methodcall_error_handler(daemon, context.get("client_sock_addr"), method, vargs, kwargs, exc)
            except Exception:
                log.exception("methodcall_error_handler failed")
            if getattr(method, "_pyroCallback", False):
                log.warning(
                    "exception in oneway callback method %s", getattr(method, "__name__", method), exc_info=True
                )
        finally:
            current_context.from_global(saved)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._idle -= 1
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._idle += 1

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the threads after the calls already queued; waits at most ``timeout`` seconds in all."""
        import time

        if self._closed:
            return
        self._closed = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            try:
                self._queue.put(None, timeout=0.1)
            except queue.Full:
                break
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def thread_count(self) -> int:
        """How many worker threads exist now."""
        return len(self._threads)
