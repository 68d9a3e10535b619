"""The mechanics of one call, for the dispatcher: finding an exposed method, unpacking a
KEEPSERIALIZED call, error payloads, the serializers a daemon accepts, batches, reply
building and LOGWIRE output, and ``PendingCall`` (a request read up to its call).
``dispatch.Dispatcher`` holds the state.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

from . import plugins, safemarshal
from .blob import SerializedBlob
from .callcontext import current_context
from .config import config
from .errors import ExceptionWrapper, ProtocolError, PyroError, SecurityError, format_traceback
from .exposure import _method_tables, method_table
from .interfaces import Serializer
from .protocol import FLAGS_CORR_ID, FLAGS_ONEWAY, ReceivingMessage, SendingMessage

log = logging.getLogger("pyrite.core.dispatch")

__all__ = [
    "MARSHAL_ID",
    "PLAIN_RESULTS",
    "DICT_VIEW_ITERATORS",
    "accepted_names",
    "accepted_serializer_ids",
    "as_exception",
    "blob_call",
    "check_batch_size",
    "fresh_correlation_id",
    "error_payload",
    "log_wiredata",
    "reachable_method",
    "serializer_name",
    "set_context",
    "run_batch",
    "loop_call_when",
    "PendingCall",
]

MARSHAL_ID = 2  # Pyro5 answers with marshal when a request's own serializer is unusable
_UUID = uuid.UUID
# Fresh correlation ids: version-4 UUIDs from a generator of this module's own (reseeded in
# a forked child, so parent and child never share ids).  uuid.uuid4() reads os.urandom,
# one getrandom syscall per request, which costs tens of microseconds on a busy VM; these
# ids tag calls for tracing and are no secret.
_corr_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_corr_random.seed)
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def fresh_correlation_id() -> uuid.UUID:
    """A random version-4 UUID, as ``uuid.uuid4()`` gives, without a syscall."""
    return _UUID(int=(_corr_random.getrandbits(128) & _UUID4_KEEP) | _UUID4_SET)


# Result types that are certainly not iterators to stream: skips an ABC check per call.
PLAIN_RESULTS = frozenset((type(None), bool, int, float, str, bytes, list, tuple, dict, set, complex, bytearray))
DICT_VIEW_ITERATORS: tuple[type, ...] = (type(iter({}.keys())), type(iter({}.values())), type(iter({}.items())))


def error_payload(serializer: Serializer, exc: BaseException, tb_lines: list[str] | None) -> bytes:
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


def as_exception(exc: BaseException) -> Exception:
    """What the caller gets for a BaseException from the called code: a PyroError naming it,
    so SystemExit, KeyboardInterrupt or GeneratorExit in a method never travel as themselves."""
    if isinstance(exc, Exception):
        return exc
    replacement = PyroError(f"the remote code raised {type(exc).__name__}: {exc}"[:1000])
    replacement.__cause__ = None
    log.warning("remote call raised %s; the caller gets a PyroError instead", type(exc).__name__)
    return replacement


def accepted_serializer_ids() -> frozenset[int]:
    """The ids of the serializers this daemon accepts: ``config.SERIALIZERS_ACCEPTED`` (names;
    empty means every installed one), limited to those installed.  A string assigned in code
    is read as the environment variable is, comma-separated (never letter by letter)."""
    names: Any = config.SERIALIZERS_ACCEPTED
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    key = tuple(names)
    cached = _accepted_cache.get(key)
    if cached is None:
        installed = plugins.all_serializers()
        chosen = installed.values() if not names else [installed[n] for n in names if n in installed]
        cached = _accepted_cache[key] = frozenset(ser.serializer_id for ser in chosen)
    return cached


_accepted_cache: dict[tuple[str, ...], frozenset[int]] = {}


def accepted_names() -> str:
    """The names of the serializers this daemon accepts, comma-separated (for error messages)."""
    ids = accepted_serializer_ids()
    names = sorted(name for name, ser in plugins.all_serializers().items() if ser.serializer_id in ids)
    return ", ".join(names) or "none installed"


def serializer_name(serializer_id: int) -> str:
    """``'name' (id N)`` for an installed serializer, ``id N`` for an unknown one."""
    for name, ser in plugins.all_serializers().items():
        if ser.serializer_id == serializer_id:
            return f"{name!r} (id {serializer_id})"
    return f"id {serializer_id}"


def log_wiredata(logger: logging.Logger, text: str, msg: ReceivingMessage | SendingMessage) -> None:
    """Log a message's header fields and payload at debug level (``config.LOGWIRE``)."""
    annotations = getattr(msg, "annotations", None)
    payload = msg.data if isinstance(msg, ReceivingMessage) else bytes(msg.payload)
    logger.debug(
        "%s: msgtype=%d flags=0x%x ser=%d seq=%d num_annotations=%d corr_id=%s\ndata=%r",
        text,
        msg.type,
        msg.flags,
        msg.serializer_id,
        msg.seq,
        len(annotations) if annotations else 0,
        _UUID(bytes=bytes(msg.corr_id)),
        bytes(payload) if payload is not None else b"",
    )


def reachable_method(obj: Any, name: Any) -> tuple[Callable[..., Any], int]:
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


def blob_call(msg: ReceivingMessage) -> tuple[Any, Any, tuple[Any, ...], dict[str, Any]]:
    """The call of a FLAGS_KEEPSERIALIZED request: its only argument stays a serialized blob."""
    raw = msg.annotations.get("BLBI")
    if raw is None:
        raise ProtocolError("serialized blob call without BLBI annotation")
    try:
        info, object_id, method = safemarshal.loads(raw)
    except Exception as exc:
        raise ProtocolError(f"invalid BLBI annotation: {exc}") from None
    return object_id, method, (SerializedBlob(info, msg, is_blob=True),), {}


def set_context(conn: Any, msg: ReceivingMessage, request: bool = False) -> Any:
    """Fill ``current_context`` for a message from ``conn`` (for a ``request`` also its seq,
    flags and serializer id); the raw correlation id.

    As in Pyro5, a message without a correlation id gets a fresh random one: the call
    sees it (and passes it on to the calls it makes), and ``msg`` is marked to carry it,
    so the reply does too."""
    flags = msg.flags
    if flags & FLAGS_CORR_ID:
        corr = msg.corr_id
        corr_uuid = _UUID(bytes=bytes(corr))
    else:
        corr_uuid = fresh_correlation_id()
        corr = msg.corr_id = corr_uuid.bytes
        msg.flags = flags | FLAGS_CORR_ID
    try:
        addr = conn.peer_address
    except Exception:
        addr = None
    current_context.serve(
        conn,
        addr,
        msg.annotations,
        corr_uuid,
        (msg.seq, flags, msg.serializer_id) if request else None,
    )
    return corr


def check_batch_size(serializer: Any, data: Any) -> None:
    """Refuse a batch over MAX_BATCH_CALLS before it is deserialized (which is where a huge
    one costs), if the serializer can count its calls cheaply: its optional method
    ``batch_calls_at_least(data, limit)`` gives a lower bound (0: unknown).  ``run_batch``
    checks the exact count after loading in any case."""
    limit = int(config.MAX_BATCH_CALLS)
    count_calls = getattr(serializer, "batch_calls_at_least", None)
    if limit > 0 and count_calls is not None:
        count = int(count_calls(data, limit))
        if count > limit:
            raise PyroError(f"batch of at least {count} calls exceeds MAX_BATCH_CALLS ({limit})")


def run_batch(
    obj: Any,
    calls: Any,
    report_error: Callable[[Any, Any, Any, BaseException], None],
    awaiter: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Run batched calls on ``obj`` in order; the first failure ends the batch as an
    ExceptionWrapper result.  ``awaiter`` (from an engine with an event loop) turns the
    coroutine of an ``async def`` method into its result."""
    limit = int(config.MAX_BATCH_CALLS)
    if limit > 0:
        try:
            count = len(calls)
        except TypeError:
            raise ProtocolError("a batch call needs a list of calls") from None
        if count > limit:
            raise PyroError(f"batch of {count} calls exceeds MAX_BATCH_CALLS ({limit})")
    results: list[Any] = []
    for call in calls:
        method: Any = None
        vargs: Any = ()
        kwargs: Any = {}
        try:
            method_name, vargs, kwargs = call
            method, _ = reachable_method(obj, method_name)
            result = method(*vargs, **kwargs)
            if awaiter is not None and hasattr(result, "__await__"):
                result = awaiter(result)
            results.append(result)
        except BaseException as exc:  # noqa: BLE001
            if method is not None:
                report_error(method, vargs, kwargs, exc)
            wrapped = as_exception(exc)
            wrapped._pyroTraceback = format_traceback(  # type: ignore[attr-defined]
                type(exc), exc, exc.__traceback__, config.DETAILED_TRACEBACK
            )
            results.append(ExceptionWrapper(wrapped))
            break
    return results


# function -> "is it async?" (a bool, or the predicate of loop_call_when): inspect's answer
# costs more than the rest of deciding where a call runs
_ASYNC_FUNCTIONS: dict[Any, Any] = {}
LOOP_CALL_WHEN = "_pyrite_loop_call_when"


def loop_call_when(predicate: Callable[[PendingCall], bool]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a plain method that an engine with an event loop makes on its loop, as an ``async
    def`` method, for each call for which ``predicate(call)`` (a ``PendingCall``) is true.
    Made on the loop's thread, such a call must not block: it returns an awaitable there."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, LOOP_CALL_WHEN, predicate)
        return func

    return mark


_ASYNC_CACHE_SIZE = 4096
_SCALARS = frozenset((type(None), bool, int, float, str, bytes, bytearray, complex))


class PendingCall:
    """A request read up to its call (``Dispatcher.begin_request``): what to call, and with what.

    ``method`` is the bound method (None for a batch and for remote attribute
    access), ``target`` the object, ``oneway`` whether anybody waits for the
    reply, ``is_coroutine`` whether the method is an ``async def`` (or async
    generator) to run on an event loop.  ``awaiter`` may be set by an engine with
    an event loop: it awaits a coroutine there (``async def`` methods in a batch).
    """

    __slots__ = (
        "conn",
        "session",
        "msg",
        "serializer",
        "corr",
        "flags",
        "oneway",
        "target",
        "name",
        "vargs",
        "kwargs",
        "method",
        "bits",
        "awaiter",
        "context",
        "thread",
    )

    def __init__(
        self, conn: Any, session: Any, msg: ReceivingMessage, serializer: Serializer, corr: Any, here: bool = False
    ) -> None:
        self.conn, self.session, self.msg, self.serializer, self.corr = conn, session, msg, serializer, corr
        self.flags = msg.flags
        self.oneway = bool(self.flags & FLAGS_ONEWAY)
        self.target: Any = None
        self.name: Any = None
        self.vargs: Any = ()
        self.kwargs: Any = {}
        self.method: Callable[..., Any] | None = None
        self.bits = 0
        self.awaiter: Callable[[Any], Any] | None = None
        # carried to the thread or task that makes the call; None: it is made ``here``, right after
        # this, in the thread whose current_context holds the request already
        self.context: dict[str, Any] | None = None if here else current_context.to_global()
        self.thread = 0 if here else threading.get_ident()

    @property
    def is_coroutine(self) -> bool:
        """True if the method is an ``async def`` (or an async generator function), or a plain
        method marked with ``loop_call_when`` whose predicate holds for this call."""
        method = self.method
        if method is None:
            return False
        func = getattr(method, "__func__", method)
        try:
            found = _ASYNC_FUNCTIONS[func]
        except (KeyError, TypeError):
            found = (
                inspect.iscoroutinefunction(func)
                or inspect.isasyncgenfunction(func)
                or getattr(func, LOOP_CALL_WHEN, None)
                or False
            )
            if len(_ASYNC_FUNCTIONS) > _ASYNC_CACHE_SIZE:
                _ASYNC_FUNCTIONS.clear()  # functions made on the fly must not pile up
            with contextlib.suppress(TypeError):
                _ASYNC_FUNCTIONS[func] = found
        if found is True or found is False:
            return found
        try:
            return bool(found(self))
        except Exception:
            return False  # e.g. arguments a hostile peer chose: the call is made on a worker as usual

    def capture(self) -> None:
        """A call begun ``here`` that goes to another thread or task after all: carry the
        request's ``current_context`` (as this thread holds it now) along to it."""
        if self.context is None:
            self.context = current_context.to_global()
            self.thread = threading.get_ident()

    def enter(self) -> None:
        """Prepare this thread to make the call: ``current_context`` of the request and, on
        another thread than the one that read it, ownership of the proxies among its arguments."""
        if self.context is None:
            return  # made where it was read (see __init__)
        if not current_context.serving(self.conn, self.msg.seq):
            current_context.from_global(self.context)
        if self.thread != threading.get_ident():
            # deserialized proxies belong to the reading thread; the calling thread will use them
            _adopt_proxies((self.vargs, self.kwargs), 4)


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
