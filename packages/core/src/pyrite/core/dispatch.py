"""Where a call is dispatched: ``Dispatcher``, the daemon side of the engine seam.

``Dispatcher`` implements ``interfaces.DaemonHost``: an engine gives it each
complete message of a connection and sends back what it returns.  It is the
one place that builds a reply (through the connection's protocol session):

* ``serve_handshake``: the MSG_CONNECT that opens a connection -> MSG_CONNECTOK
  (the session's ``handshake_done`` is then set) or MSG_CONNECTFAIL;
* ``serve_request``: MSG_INVOKE / MSG_PING -> MSG_RESULT (None for oneways);
* ``refuse``: MSG_CONNECTFAIL with a reason chosen by the engine.

A failing request (bad payload, unknown object, unexposed method, an
exception in the called code, even SystemExit/KeyboardInterrupt/GeneratorExit
there, an unserializable result) gets an exception reply and the connection
stays usable.  Only when the connection itself cannot go on (a message type
that has no place here, an unknown or refused serializer) does
``serve_request`` raise a ``CommunicationError``.

The user-facing hooks (``validateHandshake``, ``clientDisconnect``,
``housekeeping``, ``annotations``, ``methodcall_error_handler``) are read
from ``hooks``, the ``Daemon``, by their public names.

This module is the hot path of every call, so it looks things up once per
class (``exposure.method_table``) and builds no dicts it does not need.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import plugins
from .callcontext import current_context
from .calls import (
    DICT_VIEW_ITERATORS,
    MARSHAL_ID,
    PLAIN_RESULTS,
    PendingCall,
    accepted_names,
    accepted_serializer_ids,
    as_exception,
    blob_call,
    check_batch_size,
    error_payload,
    log_wiredata,
    reachable_method,
    run_batch,
    serializer_name,
    set_context,
)
from .config import config
from .errors import (
    ProtocolError,
    PyroError,
    format_traceback,
)
from .exposure import (
    METHOD_CALLBACK,
    get_exposed_property_value,
    set_exposed_property_value,
)
from .handshakes import HandshakeReplies
from .interfaces import DaemonHooks, Serializer
from .objects import ObjectRegistry
from .protocol import (
    FLAGS_BATCH,
    FLAGS_EXCEPTION,
    FLAGS_ITEMSTREAMRESULT,
    FLAGS_KEEPSERIALIZED,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_PING,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
)
from .session import SERVER, Session
from .streams import StreamRegistry
from .workers import WorkerPool

log = logging.getLogger("pyrite.core.dispatch")

# builds replies to requests that came without a session (unit tests, hand-driven code);
# replying keeps no state in a session, so one shared instance is fine
_REPLIES = Session(SERVER)

__all__ = ["Dispatcher", "PendingCall", "default_methodcall_error_handler"]


class Dispatcher:
    """The daemon side of the engine seam (``interfaces.DaemonHost``); see the module docstring.

    ``hooks`` is the Daemon (its overridable methods), ``objects`` and
    ``streams`` its registries, ``workers`` the one pool for oneway calls and
    the thread engine.  ``housekeeping_hooks`` and ``shutdown_hooks`` are
    callables run by ``housekeeping()`` and ``close()`` (for daemon add-ons).
    """

    def __init__(self, hooks: DaemonHooks, objects: ObjectRegistry, streams: StreamRegistry, workers: WorkerPool):
        self.hooks = hooks
        self.objects = objects
        self.streams = streams
        self.workers = workers
        self.housekeeping_hooks: list[Callable[[], None]] = []
        self.shutdown_hooks: list[Callable[[], None]] = []
        self._shutting_down = threading.Event()
        self.housekeeper_lock = threading.Lock()
        self.disconnect_lock = threading.Lock()  # serializes the client-disconnect bookkeeping
        # a reply asks hooks.annotations() only when it is not the do-nothing default
        self._custom_annotations = not getattr(hooks.annotations, "_pyrite_default", False)
        self._handshakes = HandshakeReplies()

    # ----- state

    @property
    def custom_handshake(self) -> bool:
        """True when validateHandshake is user code (it may block): the asyncio engine then
        answers handshakes on a worker thread, else on its loop.  Asked per connection, so a
        validateHandshake set on the daemon after it started counts too."""
        return not getattr(self.hooks.validateHandshake, "_pyrite_default", False)

    @property
    def shutting_down(self) -> bool:
        """True once the daemon is shutting down (engines stop reading)."""
        return self._shutting_down.is_set()

    def begin_shutdown(self) -> None:
        """Mark the daemon as shutting down."""
        self._shutting_down.set()

    def close(self) -> None:
        """Run the shutdown hooks, forget the streams and stop the workers (bounded)."""
        self._shutting_down.set()
        hooks = list(self.shutdown_hooks)
        self.shutdown_hooks.clear()  # the list stays the one Daemon.shutdown_hooks shows
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.warning("error in daemon shutdown hook %r", hook, exc_info=True)
        self.streams.clear()
        self.workers.close(timeout=1.0)

    # ----- replies: the one place they are built

    def _response_annotations(self) -> dict[str, bytes] | None:
        annotations = current_context.response_annotations
        if self._custom_annotations:
            extra = self.hooks.annotations()
            if extra:
                annotations = {**annotations, **extra}
        return annotations or None

    def _reply(
        self,
        session: Any,
        request: ReceivingMessage,
        msgtype: int,
        payload: bytes,
        flags: int = 0,
        annotations: dict[str, bytes] | None = None,
        serializer_id: int | None = None,
        compress: bool | None = None,
    ) -> SendingMessage:
        if session is None:
            session = _REPLIES  # a request not read by a session of its own (tests, hand-driven code)
        reply: SendingMessage = session.reply(
            request, msgtype, payload, flags, annotations, serializer_id=serializer_id, compress=compress
        )
        if config.LOGWIRE:
            log_wiredata(log, "daemon wiredata sending", reply)
        return reply

    def _exception_reply(
        self, session: Any, request: ReceivingMessage, serializer: Serializer, exc: BaseException, flags: int = 0
    ) -> SendingMessage:
        tb_lines = format_traceback(type(exc), exc, exc.__traceback__, config.DETAILED_TRACEBACK)
        payload = error_payload(serializer, as_exception(exc), tb_lines)
        sid = serializer.serializer_id
        try:
            return self._reply(
                session, request, MSG_RESULT, payload, flags | FLAGS_EXCEPTION, self._response_annotations(), sid
            )
        except PyroError as too_large:
            # e.g. the exception text itself exceeds MAX_MESSAGE_SIZE: send a short one instead
            payload = error_payload(serializer, PyroError(f"error reply could not be sent: {too_large}"), None)
            return self._reply(session, request, MSG_RESULT, payload, FLAGS_EXCEPTION, None, sid)

    def refuse(self, conn: Any, session: Any, msg: ReceivingMessage, reason: str) -> SendingMessage:
        """MSG_CONNECTFAIL carrying ``reason`` (a string, in the request's serializer if usable)."""
        try:
            serializer: Serializer = plugins.get_serializer_by_id(msg.serializer_id)
            serializer_id = msg.serializer_id
        except PyroError:
            serializer = plugins.get_serializer_by_id(MARSHAL_ID)
            serializer_id = MARSHAL_ID
        try:
            payload = serializer.dumps(str(reason))
        except Exception:
            payload = serializer.dumps("handshake refused")
        try:
            annotations = self._response_annotations()
            return self._reply(session, msg, MSG_CONNECTFAIL, payload, 0, annotations, serializer_id, compress=False)
        except PyroError as exc:
            payload = serializer.dumps(str(exc))
            return self._reply(session, msg, MSG_CONNECTFAIL, payload, 0, None, serializer_id, compress=False)

    # ----- the handshake

    def serve_handshake(self, conn: Any, session: Any, msg: ReceivingMessage) -> SendingMessage:
        """Answer the MSG_CONNECT that opens a connection.

        The request payload is ``{"handshake": data, "object": object_id}``;
        the reply is MSG_CONNECTOK with ``{"handshake": validateHandshake's
        result, "meta": the object's metadata}`` (and ``session.handshake_done``
        and ``conn.handshaked`` are set), or MSG_CONNECTFAIL with the reason.
        """
        if config.LOGWIRE:  # before set_context, which may add a correlation id to msg
            log_wiredata(log, "daemon handshake received", msg)
        set_context(conn, msg)
        current_context.response_annotations = {}
        try:
            if msg.type != MSG_CONNECT:
                raise ProtocolError(f"invalid msg type {msg.type} received (expected: {MSG_CONNECT})")
            if msg.serializer_id not in accepted_serializer_ids():
                raise ProtocolError(
                    f"serializer {serializer_name(msg.serializer_id)} is not accepted by this daemon "
                    f"(SERIALIZERS_ACCEPTED: {accepted_names()})"
                )
            serializer: Serializer = plugins.get_serializer_by_id(msg.serializer_id)
            request = serializer.loads(msg.data)
            if not isinstance(request, dict) or "handshake" not in request or "object" not in request:
                raise ProtocolError("invalid handshake request")
            response = self.hooks.validateHandshake(conn, request["handshake"])
            meta = self.objects.daemon_object.get_metadata(request["object"])
            payload = self._handshakes.payload(serializer, response, meta)
            reply = self._reply(session, msg, MSG_CONNECTOK, payload, 0, self._response_annotations())
        except Exception as exc:
            log.debug("handshake refused: %s", exc)
            current_context.response_annotations = {}
            return self.refuse(conn, session, msg, str(exc))
        current_context.response_annotations = {}
        if session is not None:
            session.handshake_done = True
        conn.handshaked = True
        return reply

    # ----- requests

    def serve_request(self, conn: Any, session: Any, msg: ReceivingMessage) -> SendingMessage | None:
        """Serve one MSG_INVOKE or MSG_PING from ``conn``: its reply, or None (oneway calls).

        Raises CommunicationError only if the connection must be dropped.  When a
        ``@callback`` method failed, ``conn.callback_error`` holds its exception after the
        reply is built: engines log it and close the connection, as Pyro5 raises it there.
        """
        call = self.begin_request(conn, session, msg, here=True)
        if not isinstance(call, PendingCall):
            return call
        if call.oneway and call.method is not None:
            self.submit_oneway(call)
            return None
        try:
            data = self.run_call(call)
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in user code gets an error reply
            return self.fail_call(call, exc)
        return self.finish_call(call, data)

    def begin_request(
        self, conn: Any, session: Any, msg: ReceivingMessage, here: bool = False
    ) -> PendingCall | SendingMessage | None:
        """``serve_request`` up to the call itself, for an engine that makes calls elsewhere.

        Returns the reply when there is nothing to call (a ping, a request that fails
        before its call), None for such a oneway request, else a ``PendingCall``:
        the engine makes it with ``run_call`` on a thread of its choice (or awaits the
        coroutine of an ``async def`` method, ``call.is_coroutine``), then builds the
        reply with ``finish_call(call, result)`` or ``fail_call(call, exc)``; a oneway
        method call goes to ``submit_oneway(call)`` instead.  Raises CommunicationError
        only if the connection must be dropped.  ``here``: the call is made in this thread right
        after (``serve_request``), so the call context need not be captured for another.
        """
        if config.LOGWIRE:  # before set_context, which may add a correlation id to msg
            log_wiredata(log, "daemon wiredata received", msg)
        corr = set_context(conn, msg, request=True)
        flags = msg.flags
        msg_type = msg.type
        if msg_type != MSG_INVOKE:
            if msg_type == MSG_PING:
                # the payload is ignored: a ping is answered without deserializing anything
                return self._reply(session, msg, MSG_PING, b"pong", 0, self._response_annotations())
            raise ProtocolError(f"invalid msg type {msg_type} received (expected: {MSG_INVOKE},{MSG_PING})")
        serializer_id = msg.serializer_id
        if config.SERIALIZERS_ACCEPTED and serializer_id not in accepted_serializer_ids():
            raise ProtocolError(f"request in serializer {serializer_name(serializer_id)}, not accepted by this daemon")
        try:
            serializer: Serializer = plugins.get_serializer_by_id(serializer_id)
        except PyroError as exc:
            raise ProtocolError(f"request with unusable serializer id {serializer_id}: {exc}") from None
        call = PendingCall(conn, session, msg, serializer, corr, here)
        try:
            if flags & FLAGS_KEEPSERIALIZED:
                object_id, method_name, vargs, kwargs = blob_call(msg)
            else:
                if flags & FLAGS_BATCH:
                    check_batch_size(serializer, msg.data)  # before a costly parse of a huge one
                object_id, method_name, vargs, kwargs = serializer.loadsCall(msg.data)
                msg.data = None  # parsed: a large body (its buffer) is let go of now, not after the call
            call.target = self.objects.target(object_id, conn)
            call.name, call.vargs, call.kwargs = method_name, vargs, kwargs
            if not flags & FLAGS_BATCH and method_name not in ("__getattr__", "__setattr__"):
                call.method, call.bits = reachable_method(call.target, method_name)
        except BaseException as exc:  # noqa: BLE001
            return self.fail_call(call, exc)
        return call

    def run_call(self, call: PendingCall) -> Any:
        """Make the call in this thread; its result (an ``async def`` method's is a coroutine)."""
        call.enter()
        obj, vargs = call.target, call.vargs
        if call.flags & FLAGS_BATCH:
            return run_batch(obj, vargs, self._report_error, call.awaiter)
        method = call.method
        if method is None:
            if call.name == "__getattr__":
                return get_exposed_property_value(obj, vargs[0])
            return set_exposed_property_value(obj, vargs[0], vargs[1])
        try:
            return method(*vargs, **call.kwargs)
        except BaseException as exc:  # noqa: BLE001
            self.call_failed(call, exc)
            raise

    def call_failed(self, call: PendingCall, exc: BaseException) -> None:
        """The method of ``call`` raised ``exc`` (also when an awaited coroutine raised it)."""
        self._report_error(call.method, call.vargs, call.kwargs, exc, call.bits)  # type: ignore[arg-type]
        if call.bits & METHOD_CALLBACK:
            with contextlib.suppress(AttributeError):
                call.conn.callback_error = exc

    def finish_call(self, call: PendingCall, data: Any) -> SendingMessage | None:
        """The reply carrying ``data``, the call's result (None for a oneway request)."""
        if call.oneway:
            return None
        serializer, conn = call.serializer, call.conn
        reply_flags = FLAGS_BATCH if call.flags & FLAGS_BATCH else 0
        annotations: dict[str, bytes] | None = None
        try:
            if type(data) not in PLAIN_RESULTS and not reply_flags and isinstance(data, Iterator):
                # an iterator result is streamed: the client fetches the items one by one
                if type(data) in DICT_VIEW_ITERATORS:
                    raise PyroError(f"a {type(data).__name__} is a lazy view of a dict: return list(...) of it instead")
                stream_id = self.streams.open(data, conn) if config.ITER_STREAMING else None
                if stream_id:
                    annotations = {"STRM": stream_id.encode()}
                payload = error_payload(serializer, ProtocolError("the call returned an iterator"), None)
                reply_flags = FLAGS_ITEMSTREAMRESULT | FLAGS_EXCEPTION
            else:
                payload = serializer.dumps(data)
            extra = self._response_annotations()
            if extra:
                annotations = {**annotations, **extra} if annotations else extra
            reply = self._reply(call.session, call.msg, MSG_RESULT, payload, reply_flags, annotations)
        except BaseException as exc:  # noqa: BLE001
            return self.fail_call(call, exc)
        if current_context.response_annotations:
            current_context.response_annotations = {}
        return reply

    def fail_call(self, call: PendingCall, exc: BaseException) -> SendingMessage | None:
        """The exception reply for ``exc`` (None for a oneway request: it is only logged)."""
        if call.oneway:
            log.debug("oneway call failed: %r", exc)
            reply = None
        else:
            reply = self._exception_reply(call.session, call.msg, call.serializer, exc)
        if current_context.response_annotations:
            current_context.response_annotations = {}
        return reply

    def submit_oneway(self, call: PendingCall) -> None:
        """Hand a oneway method call to the workers (held back on the connection when full)."""
        self._submit_oneway(call.conn, call.method, call.vargs, call.kwargs, call.bits)  # type: ignore[arg-type]

    def _report_error(
        self, method: Callable[..., Any], vargs: Any, kwargs: Any, exc: BaseException, bits: int = 0
    ) -> None:
        if isinstance(exc, Exception):
            try:
                self.hooks.methodcall_error_handler(
                    self.hooks, current_context.client_sock_addr, method, vargs, kwargs, exc
                )
            except Exception:
                log.exception("methodcall_error_handler failed")
        if bits & METHOD_CALLBACK:
            log.warning("exception in callback method %s", getattr(method, "__name__", method), exc_info=exc)

    # ----- oneway calls

    def _submit_oneway(self, conn: Any, method: Callable[..., Any], vargs: Any, kwargs: Any, bits: int) -> None:
        job = (method, vargs, kwargs, bits, current_context.to_global())
        held = getattr(conn, "held_oneways", None)
        if held is None:  # a connection not made by an engine (Daemon.handleRequest): just queue
            self.workers.submit(self._run_oneway, job)
        elif held or not self.workers.try_submit(self._run_oneway, job):
            # the pool is full: the engine stops reading this connection until resume() empties this
            held.append(job)

    def resume(self, conn: Any) -> bool:
        """Hand the oneway calls held back for ``conn`` to the workers; True once none is left."""
        held = getattr(conn, "held_oneways", None)
        while held:
            if self.workers.closed:
                held.clear()
                break
            if not self.workers.try_submit(self._run_oneway, held[0]):
                return False
            held.popleft()
        return True

    def _run_oneway(self, method: Callable[..., Any], vargs: Any, kwargs: Any, bits: int, context: Any) -> None:
        saved = current_context.to_global()
        current_context.from_global(context)
        try:
            method(*vargs, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - a oneway's failure is only logged
            self._report_error(method, vargs, kwargs, exc, bits)
            log.debug("oneway call %s raised %r", getattr(method, "__name__", method), exc)
        finally:
            current_context.from_global(saved)

    # ----- connections and housekeeping

    def client_disconnected(self, conn: Any) -> None:
        """Forget what belonged to a client that went away, then call ``clientDisconnect``."""
        with self.disconnect_lock:
            self.streams.client_disconnected(conn)
            for resource in list(getattr(conn, "tracked_resources", ())):
                try:
                    resource.close()
                except Exception:
                    log.warning("error closing tracked resource %r", resource, exc_info=True)
            instances = getattr(conn, "pyroInstances", None)
            if instances:
                instances.clear()
        try:
            self.hooks.clientDisconnect(conn)
        except Exception:
            log.warning("error in clientDisconnect", exc_info=True)

    def protocol_error(self, conn: Any, exc: BaseException) -> None:
        """An engine closes ``conn`` after a protocol error: tell the daemon's ``protocol_error_seen``."""
        try:
            self.hooks.protocol_error_seen(exc)
        except Exception:
            log.warning("error in protocol_error_seen", exc_info=True)

    def housekeeping(self) -> None:
        """Expire item streams, run the housekeeping hooks, then the daemon's ``housekeeping``."""
        if self.shutting_down:
            return
        if not self.housekeeper_lock.acquire(blocking=False):
            return  # another thread is at it
        try:
            self.streams.expire()
            for hook in list(self.housekeeping_hooks):
                try:
                    hook()
                except Exception:
                    log.warning("error in housekeeping hook %r", hook, exc_info=True)
            self.hooks.housekeeping()
        finally:
            self.housekeeper_lock.release()


def default_methodcall_error_handler(
    daemon: Any, client_sock: Any, method: Callable[..., Any], vargs: Any, kwargs: Any, exception: Exception
) -> None:
    """What a daemon does by default with an exception from the called code: log it at debug level."""
    log.debug(
        "remote call raised: client=%s method=%s exception=%r",
        client_sock,
        getattr(method, "__qualname__", method),
        exception,
    )
