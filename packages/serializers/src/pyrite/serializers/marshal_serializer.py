"""The marshal serializer (wire id 2), compatible with Pyro5's.

A call is the tuple ``(object id, method, [vargs...], {kwargs})``.  marshal
writes ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``/``bytearray``, ``tuple``, ``list``, ``dict``, ``set`` and
``frozenset`` (exact types).  Anything else is converted first, at any depth
(Pyro5 converts only the top level): ``uuid.UUID`` and ``decimal.Decimal`` to
strings, ``datetime``/``date`` to ISO 8601 strings, ``array.array`` to a list
(a string for typecode ``'u'``), subclasses of the basic types to the basic
type, other objects to class dicts.  As with Pyro5, an ``array.array`` nested
inside a container that marshal could already write is sent as its raw bytes.

marshal can also load code objects and a few other non-data values; pyrite
refuses them (``SerializeError``): loaded data may only hold the types above.
Before loading, ``marshal_guard`` refuses data whose container headers declare
more items than the data could hold (marshal would reserve that memory first).
"""

from __future__ import annotations

import array
import datetime
import decimal
import marshal
import uuid
from collections.abc import Callable, Collection
from typing import Any

from pyrite.core.errors import PyroError, SerializeError

from . import marshal_guard, marshal_splice
from .base import SerializerBase

_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None), complex, bytes})
_BASICS = (str, int, float, complex, bytes)  # their subclasses become the base type
_SPLICE_FROM = marshal_splice.SPLICE_FROM  # bytes this large are joined into the output as they are
_SPLICE_ITEMS = 16  # only short argument lists and results are looked through for them


def _array(obj: array.array[Any]) -> Any:
    return obj.tounicode() if obj.typecode == "u" else obj.tolist()


def _has_large(items: Collection[Any]) -> bool:
    """True if one of a few ``items`` is a bytes value worth splicing (see ``marshal_splice``)."""
    if len(items) > _SPLICE_ITEMS:
        return False
    for item in items:
        if type(item) is bytes and len(item) >= _SPLICE_FROM:
            return True
    return False


def _isoformat(obj: datetime.date) -> str:
    return obj.isoformat()


class MarshalSerializer(SerializerBase):
    """marshal, as Pyro5 writes and reads it, with a check that loaded data is plain data."""

    name = "marshal"
    serializer_id = 2
    _native_types = _SCALARS | {tuple, list, dict, set, frozenset, bytearray}

    def _builtin_converter(self, t: type) -> Callable[[Any], Any] | None:
        if issubclass(t, (uuid.UUID, decimal.Decimal)):
            return str
        if issubclass(t, datetime.date):
            return _isoformat
        if issubclass(t, array.array):
            return _array
        for basic in _BASICS:
            if issubclass(t, basic) and not issubclass(t, BaseException):
                return basic
        if issubclass(t, (memoryview, bytearray)):
            return bytes
        return None

    @classmethod
    def class_to_dict(cls, obj: Any) -> Any:
        """As ``SerializerBase.class_to_dict``, but a ``uuid.UUID`` becomes its string (as Pyro5)."""
        if isinstance(obj, uuid.UUID):
            return str(obj)
        return super().class_to_dict(obj)

    def _marshallable(self, obj: Any) -> Any:
        """A copy of ``obj`` that marshal can write (the slow path, after marshal refused)."""
        t = type(obj)
        if t in _SCALARS:
            return obj
        convert = self._marshallable
        if t is list:
            return [convert(item) for item in obj]
        if t is tuple:
            return tuple(convert(item) for item in obj)
        if t is dict:
            return {convert(key): convert(value) for key, value in obj.items()}
        if t is set or t is frozenset:
            return t(convert(item) for item in obj)
        if t is bytearray:
            return obj
        converted = self._converter_for(t)(obj)
        if type(converted) is t:
            raise SerializeError(f"the marshal serializer cannot write {t.__name__} values")
        return convert(converted)

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        # Pyro5 sends the positional arguments as a list; a SerializedBlob's data goes as it is
        args = list(vargs) if type(vargs) is tuple else vargs
        call = (obj, method, args, kwargs)
        # marshal grows its buffer to fit exactly: a large value followed by anything (here
        # at least kwargs) costs a reallocation to twice the size and a shrink at the end,
        # three copies in all.  The loop is inline: small calls pay no extra function call.
        if type(args) is list:
            for item in args:
                if type(item) is bytes and len(item) >= _SPLICE_FROM and len(args) <= _SPLICE_ITEMS:
                    return marshal_splice.marshal_dumps(call, self._dumps)
        if kwargs and type(kwargs) is dict and _has_large(kwargs.values()):
            return marshal_splice.marshal_dumps(call, self._dumps)
        try:
            return marshal.dumps(call)
        except ValueError:
            return marshal.dumps(self._marshallable(call))

    def dumps(self, data: Any) -> bytes:
        t = type(data)
        if t is array.array:
            data = _array(data)  # as Pyro5: a top-level array travels as a list
        elif (t is tuple or t is list) and 1 < len(data) and _has_large(data[:-1]):
            return marshal_splice.marshal_dumps(data, self._dumps)  # (nothing follows the last item)
        elif t is dict and data and _has_large(data.values()):
            return marshal_splice.marshal_dumps(data, self._dumps)
        try:
            return marshal.dumps(data)
        except ValueError:
            return marshal.dumps(self._marshallable(data))

    def _dumps(self, data: Any) -> bytes:
        try:
            return marshal.dumps(data)
        except ValueError:
            return marshal.dumps(self._marshallable(data))

    def _check(self, value: Any) -> None:
        """Refuse anything in loaded data that is not plain data (code objects, Ellipsis, ...)."""
        t = type(value)
        if t is list or t is tuple or t is set or t is frozenset:
            check = self._check
            for item in value:
                if type(item) not in _SCALARS:
                    check(item)
        elif t is dict:
            check = self._check
            for key, item in value.items():
                if type(key) not in _SCALARS:
                    check(key)
                if type(item) not in _SCALARS:
                    check(item)
        elif t not in _SCALARS:
            raise SerializeError(f"refused to load a {t.__name__} from marshal data")

    def _walk(self, value: Any) -> Any:
        """Check loaded data (see ``_check``) and rebuild its class dicts top-down, in one pass."""
        t = type(value)
        walk = self._walk
        if t is list:
            for index, item in enumerate(value):
                if type(item) not in _SCALARS:
                    new = walk(item)
                    if new is not item:
                        value[index] = new
            return value
        if t is dict:
            if "__class__" in value:
                self._check(value)
                return self.dict_to_class(value)
            for key, item in value.items():
                if type(key) not in _SCALARS:
                    self._check(key)
                if type(item) not in _SCALARS:
                    new = walk(item)
                    if new is not item:
                        value[key] = new
            return value
        if t is tuple:
            items: list[Any] | None = None
            for index, item in enumerate(value):
                if type(item) not in _SCALARS:
                    new = walk(item)
                    if new is not item:
                        if items is None:
                            items = list(value)
                        items[index] = new
            return value if items is None else tuple(items)
        self._check(value)
        return value

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        try:
            marshal_guard.check(data)
            call = marshal.loads(data)
            if type(call) is not tuple or len(call) != 4:
                raise SerializeError("invalid call request: not a 4-item sequence")
            obj, method, vargs, kwargs = call
            if type(obj) is not str or type(method) is not str:
                self._check(obj)
                self._check(method)
            if type(vargs) is list:
                for item in vargs:  # mostly plain values: then there is nothing to walk
                    if type(item) not in _SCALARS:
                        vargs = self._walk(vargs)
                        break
            elif type(vargs) not in _SCALARS:
                vargs = self._walk(vargs)
            if kwargs is None:
                kwargs = {}  # Pyro5 proxies send None for __getattr__/__setattr__ calls and batches
            elif type(kwargs) is not dict:
                raise SerializeError("invalid call request: kwargs is not a dict")
            if kwargs:
                kwargs = self._walk(kwargs)
            return obj, method, vargs, kwargs
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            marshal_guard.check(data)
            value = marshal.loads(data)
            return value if type(value) in _SCALARS else self._walk(value)
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x
