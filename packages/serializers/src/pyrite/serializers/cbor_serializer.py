"""The CBOR serializer (wire id 5), pyrite's own: Pyro5 has no CBOR.  Needs the ``cbor`` extra.

A call is the array ``[object id, method, vargs, kwargs]``.  The encoding:

* CBOR's own types for ``None``, ``bool``, ``int`` (bignums beyond 64 bits),
  ``float``, ``str``, ``bytes``/``bytearray``, ``list``/``tuple`` (arrays,
  loaded as lists), ``dict`` (maps, any hashable key);
* cbor2's standard semantic tags, both ways: timezone-aware ``datetime`` (tag
  0), ``date`` (1004), ``decimal.Decimal`` (4), ``fractions.Fraction`` (30),
  ``uuid.UUID`` (37), ``ipaddress`` values (52/54), ``set``/``frozenset``
  (258, loaded as ``set``), ``complex`` (43000);
* pyrite's tags for what CBOR has no tag for: a naive ``datetime`` is tag
  1886024192 holding its ISO 8601 string; ``datetime.time`` is tag
  1886024193 (ISO string), ``datetime.timedelta`` is tag 1886024194
  (``[days, seconds, microseconds]``).  These numbers (0x706B7200..02, in the
  first-come-first-served range) are private to pyrite;
* ``array.array`` as a list (a string for typecode ``'u'``);
* everything else as a class dict (``{"__class__": ...}``), exactly like the
  other serializers, so protocol classes keep their Pyro5 names and
  ``register_class_to_dict`` / ``register_dict_to_class`` apply.

Loading refuses tags that could build surprising objects or shapes: value
sharing (28/29, i.e. cyclic data), regular expressions (35) and MIME messages
(36); any tag not listed above raises ``SerializeError`` too.
"""

from __future__ import annotations

import array
import datetime
import fractions  # noqa: F401  (cbor2 decodes tag 30 to a Fraction: imported here, not by a payload)
from collections.abc import Callable
from typing import Any

import cbor2  # a missing library is an ImportError: the plugin registry turns it into the pip hint
from pyrite.core.errors import PyroError, SerializeError

from .base import SerializerBase, has_classkey

TAG_NAIVE_DATETIME = 0x706B7200
TAG_TIME = 0x706B7201
TAG_TIMEDELTA = 0x706B7202


def _array(obj: array.array[Any]) -> Any:
    return obj.tounicode() if obj.typecode == "u" else obj.tolist()


def _encode_datetime(encoder: Any, obj: datetime.datetime) -> None:
    if obj.tzinfo is None:
        encoder.encode_semantic(TAG_NAIVE_DATETIME, obj.isoformat())
    else:
        encoder.encode_datetime(obj)


def _time(obj: datetime.time) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_TIME, obj.isoformat())


def _timedelta(obj: datetime.timedelta) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_TIMEDELTA, [obj.days, obj.seconds, obj.microseconds])


def _refuse(tag: int) -> Callable[[Any, bool], Any]:
    def refuse(value: Any, immutable: bool) -> Any:
        raise SerializeError(f"refused CBOR tag {tag}")

    return refuse


def _decode_naive_datetime(value: Any, immutable: bool) -> datetime.datetime:
    if not isinstance(value, str):
        raise SerializeError("invalid pyrite datetime tag")
    result = datetime.datetime.fromisoformat(value)
    if result.tzinfo is not None:
        raise SerializeError("invalid pyrite datetime tag")
    return result


def _decode_time(value: Any, immutable: bool) -> datetime.time:
    if not isinstance(value, str):
        raise SerializeError("invalid pyrite time tag")
    return datetime.time.fromisoformat(value)


def _decode_timedelta(value: Any, immutable: bool) -> datetime.timedelta:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(type(v) is int for v in value):
        raise SerializeError("invalid pyrite timedelta tag")
    return datetime.timedelta(days=value[0], seconds=value[1], microseconds=value[2])


def _encode_array(encoder: Any, obj: array.array[Any]) -> None:
    encoder.encode(_array(obj))


# cbor2 writes these by itself, but not the way pyrite wants: these take precedence
_ENCODERS: dict[type, Callable[[Any, Any], None]] = {datetime.datetime: _encode_datetime, array.array: _encode_array}
_SEMANTIC_DECODERS = {
    28: _refuse(28),
    29: _refuse(29),
    35: _refuse(35),
    36: _refuse(36),
    TAG_NAIVE_DATETIME: _decode_naive_datetime,
    TAG_TIME: _decode_time,
    TAG_TIMEDELTA: _decode_timedelta,
}


def _unknown_tag(tag: cbor2.CBORTag, immutable: bool) -> Any:
    raise SerializeError(f"unsupported CBOR tag {tag.tag}")


def _pyrite_cause(exc: BaseException) -> PyroError | None:
    """The PyroError one of our hooks raised inside cbor2, found in the chain cbor2 wrapped it in."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, PyroError):
            return cause
        cause = cause.__cause__
    return None


def _detach_pyrite_cause(exc: BaseException) -> PyroError:
    """``_pyrite_cause(exc)`` (which must not be None), with cbor2's wrapper cut loose from it.

    Re-raising the inner error while the wrapper is handled makes the wrapper its
    ``__context__``; if the wrapper still pointed at the inner error the two would
    form a cycle that keeps both tracebacks (and the data in their frames) alive
    until the cyclic collector runs.  Callers raise the result straight away, never
    through a local variable: a frame holding the error it raised is a cycle too.
    """
    cause = _pyrite_cause(exc)
    if cause is None:
        raise ValueError("no pyrite error among the causes")
    exc.__cause__ = exc.__context__ = None
    return cause


class CborSerializer(SerializerBase):
    """CBOR through cbor2, with class dicts for everything CBOR cannot say."""

    name = "cbor2"
    serializer_id = 5
    _native_types = frozenset(
        {str, int, float, bool, type(None), list, tuple, dict, bytes, bytearray, set, frozenset, complex, cbor2.CBORTag}
    )

    def __init__(self) -> None:
        super().__init__()
        self._object_hook = self.object_hook

    def _default(self, encoder: Any, obj: Any) -> None:
        encoder.encode(self._converter_for(type(obj))(obj))

    def _builtin_converter(self, t: type) -> Callable[[Any], Any] | None:
        if issubclass(t, array.array):
            return _array
        if issubclass(t, datetime.time):
            return _time
        if issubclass(t, datetime.timedelta):
            return _timedelta
        if issubclass(t, memoryview):
            return bytes
        return None

    def object_hook(self, obj: Any, immutable: bool) -> Any:
        """Rebuild class dicts (cbor2 calls this bottom-up for every map)."""
        if "__class__" in obj:
            return self.dict_to_class(dict(obj))
        return obj

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        return self.dumps((obj, method, vargs, kwargs))

    def dumps(self, data: Any) -> bytes:
        try:
            return cbor2.dumps(data, default=self._default, encoders=_ENCODERS)
        except cbor2.CBOREncodeError as x:
            if _pyrite_cause(x) is not None:
                raise _detach_pyrite_cause(x) from None
            raise SerializeError(f"cbor2 cannot write this value: {x}") from x

    def _decode(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            if has_classkey(data):
                return cbor2.loads(
                    data, object_hook=self._object_hook, tag_hook=_unknown_tag, semantic_decoders=_SEMANTIC_DECODERS
                )
            return cbor2.loads(data, tag_hook=_unknown_tag, semantic_decoders=_SEMANTIC_DECODERS)
        except cbor2.CBORDecodeError as x:
            # cbor2 wraps what our hooks raise; give back pyrite's own error (e.g. SecurityError)
            if _pyrite_cause(x) is None:
                raise
            raise _detach_pyrite_cause(x) from None

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        try:
            return self._call_tuple(self._decode(data))
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            return self._decode(data)
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x


class _Unknown:
    """A type cbor2 has no encoder for."""


def _encode_nothing(encoder: Any, obj: Any) -> None:
    encoder.encode(None)


# cbor2 imports the modules of its optional types (decimal, fractions, ipaddress,
# email.mime, ...) the first time it meets a type without a built-in encoder.  One
# such write now moves those imports to import time, so that no peer's data (an
# error to echo, say) decides when a module is imported.
cbor2.dumps(_Unknown(), default=_encode_nothing)
