"""The mechanics of one call, for the dispatcher: finding an exposed method, unpacking a
KEEPSERIALIZED call, error payloads, the serializers a daemon accepts, reply building and
LOGWIRE output.  Functions only; ``dispatch.Dispatcher`` holds the state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from . import plugins, safemarshal
from .blob import SerializedBlob
from .callcontext import current_context
from .config import config
from .errors import ProtocolError, PyroError, SecurityError
from .exposure import _method_tables, method_table
from .interfaces import Serializer
from .protocol import FLAGS_CORR_ID, ReceivingMessage, SendingMessage

log = logging.getLogger("pyrite.core.dispatch")

__all__ = [
    "MARSHAL_ID",
    "PLAIN_RESULTS",
    "DICT_VIEW_ITERATORS",
    "accepted_names",
    "accepted_serializer_ids",
    "as_exception",
    "blob_call",
    "error_payload",
    "log_wiredata",
    "reachable_method",
    "serializer_name",
    "set_context",
]

MARSHAL_ID = 2  # Pyro5 answers with marshal when a request's own serializer is unusable
_UUID = uuid.UUID
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
    empty means every installed one), limited to those installed."""
    names = config.SERIALIZERS_ACCEPTED
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
    return ", ".join(sorted(name for name, ser in plugins.all_serializers().items() if ser.serializer_id in ids))


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


def set_context(conn: Any, msg: ReceivingMessage) -> Any:
    """Fill ``current_context`` for a request from ``conn``; the raw correlation id or None."""
    ctx = current_context
    corr = msg.corr_id if msg.flags & FLAGS_CORR_ID else None
    ctx.correlation_id = _UUID(bytes=bytes(corr)) if corr is not None else None
    if ctx.response_annotations:
        ctx.response_annotations = {}
    ctx.client = conn
    try:
        ctx.client_sock_addr = conn.peer_address
    except Exception:
        ctx.client_sock_addr = None
    ctx.annotations = msg.annotations
    return corr
