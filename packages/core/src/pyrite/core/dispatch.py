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

This module is the hot path of every call, so it looks things up once per
class (``exposure.method_table``) and builds no dicts it does not need.
"""

from __future__ import annotations

import logging
import marshal
import queue
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import plugins
from .blob import SerializedBlob
from .callcontext import current_context
from .config import config
from .errors import (
    CommunicationError,
    DaemonError,
    ExceptionWrapper,
    ProtocolError,
    PyroError,
    SecurityError,
    format_traceback,
)
from .exposure import (
    METHOD_CALLBACK,
    _method_tables,
    get_exposed_property_value,
    method_table,
    set_exposed_property_value,
)
from .protocol import (
    FLAGS_BATCH,
    FLAGS_CORR_ID,
    FLAGS_EXCEPTION,
    FLAGS_ITEMSTREAMRESULT,
    FLAGS_KEEPSERIALIZED,
    FLAGS_ONEWAY,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_PING,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
    send_message,
)
from .uri import DAEMON_NAME

if TYPE_CHECKING:
    from .daemon import Daemon

log = logging.getLogger("pyrite.core.dispatch")

__all__ = ["handle_message", "handshake", "OnewayExecutor"]

MARSHAL_ID = 2  # Pyro5 answers with marshal when a request's own serializer is unusable
_UUID = uuid.UUID
# Result types that are certainly not iterators to stream: skips an ABC check per call.
_PLAIN_RESULTS = frozenset((type(None), bool, int, float, str, bytes, list, tuple, dict, set, complex, bytearray))
_DICT_VIEW_ITERATORS = (type(iter({}.keys())), type(iter({}.values())), type(iter({}.items())))
_WEAKREF = weakref.ReferenceType


def _unpack(obj: Any) -> Any:
    """A registered object, through its weak reference if it was registered weakly."""
    if type(obj) is _WEAKREF:
        target = obj()
        if target is None:
            raise DaemonError("weakly registered object was deleted meanwhile")
        return target
    return obj


def _unpack_quiet(obj: Any) -> Any:
    """As _unpack, but None for a dead weak reference."""
    return obj() if type(obj) is _WEAKREF else obj


def _error_payload(serializer: Any, exc: BaseException, tb_lines: list[str] | None) -> bytes:
    """The serialized exception for an error reply; an unserializable one becomes a PyroError."""
    try:
        exc._pyroTraceback = tb_lines  # type: ignore[attr-defined]
    except Exception:
        pass
    try:
        return serializer.dumps(exc)
    except Exception as ser_exc:
        text = f"Error serializing exception: {ser_exc}. Original exception: {type(exc)}: {exc}"
        replacement = PyroError(text)
        replacement._pyroTraceback = tb_lines  # type: ignore[attr-defined]
        return serializer.dumps(replacement)


def _response_annotations(daemon: Daemon) -> dict[str, bytes] | None:
    """What a reply carries as annotations: the call's response_annotations plus the daemon's own."""
    annotations = current_context.response_annotations
    if daemon._custom_annotations:
        extra = daemon.annotations()
        if extra:
            annotations = {**annotations, **extra}
    return annotations or None


def _blob_call(msg: Any) -> tuple[Any, Any, tuple[Any, ...], dict[str, Any]]:
    """The call of a FLAGS_KEEPSERIALIZED request: its only argument stays a serialized blob."""
    raw = msg.annotations.get("BLBI")
    if raw is None:
        raise ProtocolError("serialized blob call without BLBI annotation")
    try:
        info, object_id, method = marshal.loads(raw)
    except Exception as exc:
        raise ProtocolError(f"invalid BLBI annotation: {exc}") from None
    return object_id, method, (SerializedBlob(info, msg, is_blob=True),), {}


def _reachable_method(obj: Any, name: Any) -> tuple[Callable[..., Any], int]:
    """The bound method ``name`` of ``obj`` and its METHOD_* bits, if it is exposed."""
    cls = type(obj)
    table = _method_tables.get(cls)
    if table is None:
        table = method_table(cls)
    try:
        bits = table.get(name)
    except TypeError:  # an unhashable "name" from a hostile peer
        bits = None
    if bits is None:
        raise SecurityError(f"attempt to access unexposed, private or unknown attribute {name!r}"[:300])
    return getattr(obj, name), bits


def handle_message(daemon: Daemon, conn: Any, msg: ReceivingMessage) -> None:
    """Serve one MSG_INVOKE or MSG_PING from ``conn`` and write the reply (none for oneway calls).

    Raises CommunicationError only if the connection must be dropped.
    """
    flags = msg.flags
    seq = msg.seq
    serializer_id = msg.serializer_id
    ctx = current_context
    corr = msg.corr_id if flags & FLAGS_CORR_ID else None
    ctx.correlation_id = _UUID(bytes=bytes(corr)) if corr is not None else None
    if ctx.response_annotations:
        ctx.response_annotations = {}
    msg_type = msg.type
    if msg_type != MSG_INVOKE:
        if msg_type == MSG_PING:
            # the payload is ignored: a ping is answered without deserializing anything
            reply = SendingMessage(
                MSG_PING, 0, seq, serializer_id, b"pong", _response_annotations(daemon), corr_id=corr
            )
            send_message(conn, reply)
            return
        raise ProtocolError(f"invalid msg type {msg_type} received (expected: {MSG_INVOKE},{MSG_PING})")
    try:
        serializer = plugins.get_serializer_by_id(serializer_id)
    except PyroError as exc:
        raise ProtocolError(f"request with unusable serializer id {serializer_id}: {exc}") from None
    ctx.client = conn
    try:
        ctx.client_sock_addr = conn.peer_address
    except Exception:
        ctx.client_sock_addr = None
    ctx.seq = seq
    ctx.msg_flags = flags
    ctx.serializer_id = serializer_id
    ctx.annotations = msg.annotations
    oneway = flags & FLAGS_ONEWAY
    reply_flags = 0
    annotations: dict[str, bytes] | None = None
    try:
        if flags & FLAGS_KEEPSERIALIZED:
            object_id, method_name, vargs, kwargs = _blob_call(msg)
        else:
            object_id, method_name, vargs, kwargs = serializer.loadsCall(msg.data)
        del msg
        try:
            obj = daemon.objectsById.get(object_id)
        except TypeError:  # unhashable id
            obj = None
        if obj is None:
            raise DaemonError(f"no object registered with id {object_id!r:.100}")
        if type(obj) is _WEAKREF:
            obj = _unpack(obj)
        if isinstance(obj, type):
            obj = daemon._getInstance(obj, conn)
        if flags & FLAGS_BATCH:
            data = _batch(daemon, obj, vargs)
            reply_flags = FLAGS_BATCH
        elif method_name == "__getattr__":
            data = get_exposed_property_value(obj, vargs[0])
        elif method_name == "__setattr__":
            data = set_exposed_property_value(obj, vargs[0], vargs[1])
        else:
            method, bits = _reachable_method(obj, method_name)
            if oneway:
                daemon._oneway_executor.submit(daemon, method, vargs, kwargs, ctx.to_global())
                return
            try:
                data = method(*vargs, **kwargs)
            except Exception as exc:
                daemon.methodcall_error_handler(daemon, ctx.client_sock_addr, method, vargs, kwargs, exc)
                if bits & METHOD_CALLBACK:
                    log.warning("exception in callback method %s", method_name, exc_info=True)
                raise
        if oneway:
            return
        if type(data) not in _PLAIN_RESULTS and not reply_flags and isinstance(data, Iterator):
            # an iterator result is streamed: the client fetches the items one by one
            if type(data) in _DICT_VIEW_ITERATORS:
                raise PyroError(f"a {type(data).__name__} is a lazy view of a dict: return list(...) of it instead")
            stream_id = daemon._register_stream(data, conn) if config.ITER_STREAMING else None
            if stream_id:
                annotations = {"STRM": stream_id.encode()}
            payload = _error_payload(serializer, ProtocolError("the call returned an iterator"), None)
            reply_flags = FLAGS_ITEMSTREAMRESULT | FLAGS_EXCEPTION
        else:
            payload = serializer.dumps(data)
        extra = _response_annotations(daemon)
        if extra:
            annotations = {**annotations, **extra} if annotations else extra
        reply = SendingMessage(MSG_RESULT, reply_flags, seq, serializer_id, payload, annotations, corr_id=corr)
    except Exception as exc:
        if oneway:
            log.debug("oneway call failed: %r", exc)
            return
        reply = _exception_reply(daemon, serializer, seq, corr, exc)
    if ctx.response_annotations:
        ctx.response_annotations = {}
    send_message(conn, reply)


def _exception_reply(daemon: Daemon, serializer: Any, seq: int, corr: Any, exc: BaseException) -> SendingMessage:
    tb_lines = format_traceback(type(exc), exc, exc.__traceback__, config.DETAILED_TRACEBACK)
    payload = _error_payload(serializer, exc, tb_lines)
    try:
        return SendingMessage(
            MSG_RESULT,
            FLAGS_EXCEPTION,
            seq,
            serializer.serializer_id,
            payload,
            _response_annotations(daemon),
            corr_id=corr,
        )
    except PyroError as too_large:
        # e.g. the exception text itself exceeds MAX_MESSAGE_SIZE: send a short one instead
        payload = _error_payload(serializer, PyroError(f"error reply could not be sent: {too_large}"), None)
        return SendingMessage(MSG_RESULT, FLAGS_EXCEPTION, seq, serializer.serializer_id, payload, corr_id=corr)


def _batch(daemon: Daemon, obj: Any, calls: Any) -> list[Any]:
    """Run batched calls in order; the first failure ends the batch as an ExceptionWrapper result."""
    results: list[Any] = []
    ctx = current_context
    for call in calls:
        method: Any = None
        vargs: Any = ()
        kwargs: Any = {}
        try:
            method_name, vargs, kwargs = call
            method, _ = _reachable_method(obj, method_name)
            results.append(method(*vargs, **kwargs))
        except Exception as exc:
            if method is not None:
                daemon.methodcall_error_handler(daemon, ctx.client_sock_addr, method, vargs, kwargs, exc)
            exc._pyroTraceback = format_traceback(
                type(exc),
                exc,
                exc.__traceback__,  # type: ignore[attr-defined]
                config.DETAILED_TRACEBACK,
            )
            results.append(ExceptionWrapper(exc))
            break
    return results


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

    def has_room(self) -> bool:
        """True if another call fits in the queue now (the engines park a connection otherwise,
        so overflow never runs on an engine's loop thread)."""
        return self._closed or not self._queue.full()

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
