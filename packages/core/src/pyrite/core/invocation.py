"""The call half of dispatching: a request resolved to its call, the call made, its reply built.

``begin_request(daemon, conn, msg)`` reads a MSG_INVOKE (or answers a
MSG_PING) up to the call itself and returns an ``Invocation``; whoever runs
the call decides where: ``dispatch.handle_message`` runs it at once in its
own thread, the asyncio engine awaits an ``async def`` method on its event
loop and runs the others on worker threads.  ``finish(result)`` and
``fail(exc)`` build the reply.  A failing request (bad payload, unknown
object, unexposed method, an exception in the called code, an
unserializable result) gets an exception reply (FLAGS_EXCEPTION).

This is the hot path of every call: it looks things up once per class
(``exposure.method_table``) and builds no dicts it does not need.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import marshal
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import plugins
from .blob import SerializedBlob
from .callcontext import current_context
from .config import config
from .errors import DaemonError, ExceptionWrapper, ProtocolError, PyroError, SecurityError, format_traceback
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
    MSG_INVOKE,
    MSG_PING,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
)

if TYPE_CHECKING:
    from .daemon import Daemon

log = logging.getLogger("pyrite.core.dispatch")

__all__ = ["begin_request", "Invocation"]

MARSHAL_ID = 2  # Pyro5 answers with marshal when a request's own serializer is unusable
_UUID = uuid.UUID
# Result types that are certainly not iterators to stream: skips an ABC check per call.
_PLAIN_RESULTS = frozenset((type(None), bool, int, float, str, bytes, list, tuple, dict, set, complex, bytearray))
_DICT_VIEW_ITERATORS = (type(iter({}.keys())), type(iter({}.values())), type(iter({}.items())))
_WEAKREF = weakref.ReferenceType
# function -> "is it async?": inspect's answer costs more than the rest of deciding where a call runs
_ASYNC_FUNCTIONS: dict[Any, bool] = {}
_ASYNC_CACHE_SIZE = 4096


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


def begin_request(daemon: Daemon, conn: Any, msg: ReceivingMessage) -> Invocation | SendingMessage | None:
    """The first half of serving a MSG_INVOKE or MSG_PING: everything up to the call itself.

    Returns the reply when there is nothing to call (a ping, a request that
    fails before its call: bad payload, unknown object, unexposed method), None
    for such a failed oneway request, else an ``Invocation``: the caller makes
    the call where it suits it (``run()`` on any thread; an ``async def``
    method's coroutine on an event loop) and builds the reply with
    ``finish(result)`` or ``fail(exc)``.  Raises CommunicationError only if the
    connection must be dropped.  Fills ``current_context`` of this thread.
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
            return SendingMessage(MSG_PING, 0, seq, serializer_id, b"pong", _response_annotations(daemon), corr_id=corr)
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
    call = Invocation(daemon, conn, serializer, seq, corr, flags)
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
        call.target, call.name, call.vargs, call.kwargs = obj, method_name, vargs, kwargs
        if not flags & FLAGS_BATCH and method_name not in ("__getattr__", "__setattr__"):
            call.method, call.bits = _reachable_method(obj, method_name)
    except Exception as exc:
        return call.fail(exc)
    return call


class Invocation:
    """A request resolved to its call, not made yet (see ``begin_request``).

    ``method`` is the bound method to call (None for a batch and for remote
    attribute access), ``is_coroutine`` tells an event loop to await it,
    ``oneway`` that nobody waits for a reply.  ``context()`` is what
    ``current_context`` held when the request was read: ``run()`` puts it
    in place on the thread that makes the call.
    """

    __slots__ = ("daemon", "conn", "serializer", "seq", "corr", "flags", "oneway")
    __slots__ += ("target", "name", "vargs", "kwargs", "method", "bits", "awaiter", "_context", "_thread")

    def __init__(self, daemon: Daemon, conn: Any, serializer: Any, seq: int, corr: Any, flags: int) -> None:
        self.daemon, self.conn, self.serializer, self.seq, self.corr, self.flags = (
            daemon,
            conn,
            serializer,
            seq,
            corr,
            flags,
        )
        self.oneway = bool(flags & FLAGS_ONEWAY)
        self.target: Any = None
        self.name: Any = None
        self.vargs: Any = ()
        self.kwargs: Any = {}
        self.method: Callable[..., Any] | None = None
        self.bits = 0
        #: set by an engine with an event loop: awaits a coroutine there (async methods in a batch)
        self.awaiter: Callable[[Any], Any] | None = None
        self._context = current_context.to_global()
        self._thread = threading.get_ident()

    @property
    def is_coroutine(self) -> bool:
        """True if the method is an ``async def`` (its call returns a coroutine to await, or an
        async generator to stream)."""
        method = self.method
        if method is None:
            return False
        func = getattr(method, "__func__", method)
        try:
            return _ASYNC_FUNCTIONS[func]
        except (KeyError, TypeError):
            found = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
            if len(_ASYNC_FUNCTIONS) > _ASYNC_CACHE_SIZE:
                _ASYNC_FUNCTIONS.clear()  # functions made on the fly must not pile up
            with contextlib.suppress(TypeError):
                _ASYNC_FUNCTIONS[func] = found
            return found

    def context(self) -> dict[str, Any]:
        """The ``current_context`` values of this request (``current_context.from_global`` takes them)."""
        return self._context

    def run(self) -> Any:
        """Make the call in this thread and return its result (raises what the call raises)."""
        ctx = current_context
        if ctx.seq != self.seq or ctx.client is not self.conn:
            ctx.from_global(self._context)
        if self._thread != threading.get_ident():
            # proxies among the arguments belong to the thread that deserialized them; the
            # thread making the call is the one that will use them (as when one thread does both)
            _adopt_proxies((self.vargs, self.kwargs), 4)
        obj, vargs = self.target, self.vargs
        if self.flags & FLAGS_BATCH:
            return _batch(self.daemon, obj, vargs, self.awaiter)
        method = self.method
        if method is None:
            if self.name == "__getattr__":
                return get_exposed_property_value(obj, vargs[0])
            return set_exposed_property_value(obj, vargs[0], vargs[1])
        try:
            return method(*vargs, **self.kwargs)
        except Exception as exc:
            self.call_failed(exc)
            raise

    def call_failed(self, exc: Exception) -> None:
        """Tell the daemon's ``methodcall_error_handler`` that the method raised ``exc``."""
        daemon = self.daemon
        daemon.methodcall_error_handler(
            daemon, self._context["client_sock_addr"], self.method, self.vargs, self.kwargs, exc
        )
        if self.bits & METHOD_CALLBACK:
            log.warning("exception in callback method %s", self.name, exc_info=True)

    def run_oneway(self) -> None:
        """A oneway request: a method call goes to the daemon's oneway threads, the rest runs here."""
        if self.method is not None:
            self.daemon._oneway_executor.submit(self.daemon, self.method, self.vargs, self.kwargs, self._context)
            return
        try:
            self.run()
        except Exception as exc:
            log.debug("oneway call failed: %r", exc)

    def finish(self, data: Any) -> SendingMessage | None:
        """The reply carrying ``data``, the call's result (None for a oneway request)."""
        if self.oneway:
            return None
        daemon, serializer = self.daemon, self.serializer
        reply_flags = FLAGS_BATCH if self.flags & FLAGS_BATCH else 0
        annotations: dict[str, bytes] | None = None
        try:
            if type(data) not in _PLAIN_RESULTS and not reply_flags and isinstance(data, Iterator):
                # an iterator result is streamed: the client fetches the items one by one
                if type(data) in _DICT_VIEW_ITERATORS:
                    raise PyroError(f"a {type(data).__name__} is a lazy view of a dict: return list(...) of it instead")
                stream_id = daemon._register_stream(data, self.conn) if config.ITER_STREAMING else None
                if stream_id:
                    annotations = {"STRM": stream_id.encode()}
                payload = _error_payload(serializer, ProtocolError("the call returned an iterator"), None)
                reply_flags = FLAGS_ITEMSTREAMRESULT | FLAGS_EXCEPTION
            else:
                payload = serializer.dumps(data)
            extra = _response_annotations(daemon)
            if extra:
                annotations = {**annotations, **extra} if annotations else extra
            reply = SendingMessage(
                MSG_RESULT, reply_flags, self.seq, serializer.serializer_id, payload, annotations, corr_id=self.corr
            )
        except Exception as exc:
            return self.fail(exc)
        if current_context.response_annotations:
            current_context.response_annotations = {}
        return reply

    def fail(self, exc: BaseException) -> SendingMessage | None:
        """The exception reply for ``exc`` (None for a oneway request: it is only logged)."""
        if self.oneway:
            log.debug("oneway call failed: %r", exc)
            return None
        reply = _exception_reply(self.daemon, self.serializer, self.seq, self.corr, exc)
        if current_context.response_annotations:
            current_context.response_annotations = {}
        return reply


def _adopt_proxies(value: Any, depth: int) -> None:
    """Make the calling thread the owner of every proxy in ``value`` (containers ``depth`` deep)."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind in (tuple, list, set, frozenset):
        if depth:
            for item in value:
                _adopt_proxies(item, depth - 1)
    elif kind is dict:
        if depth:
            for item in value.values():
                _adopt_proxies(item, depth - 1)
    else:
        claim = getattr(kind, "_pyroClaimOwnership", None)  # on the type: a proxy's own __getattr__ is remote
        if callable(claim):
            claim(value)


_SCALARS = frozenset((type(None), bool, int, float, str, bytes, bytearray, complex))


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


def _batch(daemon: Daemon, obj: Any, calls: Any, awaiter: Callable[[Any], Any] | None = None) -> list[Any]:
    """Run batched calls in order; the first failure ends the batch as an ExceptionWrapper result.

    ``awaiter`` (given by an engine with an event loop) turns the coroutine of an
    ``async def`` method into its result."""
    results: list[Any] = []
    ctx = current_context
    for call in calls:
        method: Any = None
        vargs: Any = ()
        kwargs: Any = {}
        try:
            method_name, vargs, kwargs = call
            method, _ = _reachable_method(obj, method_name)
            result = method(*vargs, **kwargs)
            if awaiter is not None and hasattr(result, "__await__"):
                result = awaiter(result)
            results.append(result)
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
