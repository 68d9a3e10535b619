"""The JSON serializer (wire id 3), byte-compatible with Pyro5's.

A call is the object ``{"object": id, "method": name, "params": [...],
"kwargs": {...}}``, UTF-8 encoded without ASCII escaping.  Types JSON lacks
are written as Pyro5 writes them: sets and tuples as arrays, ``uuid.UUID`` and
``decimal.Decimal`` as strings, ``datetime``/``date`` as ISO 8601 strings,
``array.array`` as a list (or a string for typecode ``'u'``), everything else
as a class dict.  pyrite also writes ``frozenset`` as an array (Pyro5 cannot).
``bytes`` and ``complex`` have no JSON form: writing them raises
``SerializeError``.
"""

from __future__ import annotations

import array
import datetime
import decimal
import json
import json.encoder
import uuid
from collections.abc import Callable
from typing import Any

from pyrite.core.errors import PyroError, SerializeError

from .base import SerializerBase
from .json_bulk import BULK_FROM, plain_string, reduce, restore

_CONTAINERS = (dict, list)
_SPLICE_ITEMS = 16  # only short argument lists are looked through for large strings


def _array(obj: array.array[Any]) -> Any:
    return obj.tounicode() if obj.typecode == "u" else obj.tolist()


def _no_json(obj: Any) -> Any:
    raise SerializeError(f"the json serializer cannot write {type(obj).__name__} values")


class JsonSerializer(SerializerBase):
    """JSON, as Pyro5 writes and reads it."""

    name = "json"
    serializer_id = 3
    _native_types = frozenset({str, int, float, bool, type(None), list, tuple, dict})

    def __init__(self) -> None:
        super().__init__()
        # one encoder/decoder pair, reused: both keep no state between calls.
        # no circular-reference bookkeeping (it costs ~15%): a cycle ends in RecursionError,
        # which dumps reports as the ValueError json itself would raise.
        encoder = json.JSONEncoder(ensure_ascii=False, default=self._default, check_circular=False)
        decoder = json.JSONDecoder()
        self._encode: Callable[[Any], str] = encoder.encode
        self._decode: Callable[[str], Any] = decoder.decode
        self._scan: Callable[[str, int], tuple[Any, int]] | None = None
        make_encoder = getattr(json.encoder, "c_make_encoder", None)
        scan = getattr(decoder, "scan_once", None)  # set in __init__, but not in the type stubs
        if make_encoder is not None and scan is not None:
            # JSONEncoder.encode builds a new C encoder on every call and JSONDecoder.decode
            # wraps the C scanner in two regex matches: that is most of a small value's cost.
            # Keep one C encoder (no markers: it holds no state between calls) and call the
            # scanner directly; what they write and read is what encode()/decode() do.
            chunks = make_encoder(
                None,  # markers: no circular-reference bookkeeping, as above
                encoder.default,
                json.encoder.encode_basestring,
                None,  # indent
                encoder.key_separator,
                encoder.item_separator,
                False,  # sort_keys
                False,  # skipkeys
                True,  # allow_nan
            )
            self._encode = lambda value: "".join(chunks(value, 0))
            self._scan = scan

    def _decode_small(self, text: str) -> Any:
        """``json.loads(text)``: the C scanner alone when the text is one value with no
        whitespace around it, else the decoder (which also gives json's own errors)."""
        scan = self._scan
        if scan is not None:
            try:
                value, end = scan(text, 0)
            except StopIteration:
                pass  # no value where one must start (leading whitespace, or broken): decode() says
            else:
                if end == len(text):
                    return value
        return self._decode(text)

    def _default(self, obj: Any) -> Any:
        return self._converter_for(type(obj))(obj)

    def _builtin_converter(self, t: type) -> Callable[[Any], Any] | None:
        if issubclass(t, (set, frozenset)):
            return tuple
        if issubclass(t, (uuid.UUID, decimal.Decimal)):
            return str
        if issubclass(t, datetime.date):  # datetime.datetime is a date too
            return t.isoformat
        if issubclass(t, array.array):
            return _array
        if issubclass(t, (bytes, bytearray, memoryview, complex)):
            return _no_json
        return None

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        if type(vargs) is tuple or type(vargs) is list:
            for item in vargs:
                if type(item) is str and len(item) >= BULK_FROM and len(vargs) <= _SPLICE_ITEMS:
                    spliced = self._spliced_call(obj, method, vargs, kwargs)
                    if spliced is not None:
                        return spliced
                    break
        try:
            return self._encode({"object": obj, "method": method, "params": vargs, "kwargs": kwargs}).encode("utf-8")
        except RecursionError:
            raise ValueError("circular reference detected (or data nested too deeply)") from None

    def _spliced_call(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes | None:
        # json writes an object as '{"key": value, ...}' and an array as '[item, ...]' (the
        # default separators), so the call can be written piece by piece, with each large
        # string as its own bytes; None if one of them needs escapes after all.
        encode = self._encode
        parts = [b'{"object": ', encode(obj).encode("utf-8"), b', "method": ', encode(method).encode("utf-8")]
        parts.append(b', "params": [')
        for index, item in enumerate(vargs):
            if index:
                parts.append(b", ")
            if type(item) is str and len(item) >= BULK_FROM:
                plain = plain_string(item)
                if plain is None:
                    return None
                parts.append(plain)
            else:
                parts.append(encode(item).encode("utf-8"))
        parts.append(b'], "kwargs": ')
        parts.append(encode(kwargs).encode("utf-8"))
        parts.append(b"}")
        return b"".join(parts)

    def dumps(self, data: Any) -> bytes:
        if type(data) is str and len(data) >= BULK_FROM:
            plain = plain_string(data)
            if plain is not None:
                return plain
        try:
            return self._encode(data).encode("utf-8")
        except RecursionError:
            raise ValueError("circular reference detected (or data nested too deeply)") from None

    def _decode_large(self, data: bytes | bytearray | memoryview) -> tuple[Any, str]:
        """The decoded value and the text that tells whether it may hold class dicts."""
        try:
            reduced = reduce(data)
        except UnicodeDecodeError:
            reduced = None  # let the plain path report it
        if reduced is not None:
            rest, strings = reduced
            return restore(self._decode(rest), strings), rest
        text = str(data, "utf-8")
        return self._decode(text), text

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        try:
            if len(data) >= BULK_FROM:
                call, text = self._decode_large(data)
            else:
                text = str(data, "utf-8")
                call = self._decode_small(text)
            if type(call) is not dict:
                raise SerializeError("invalid call request: not a JSON object")
            vargs = call["params"]
            kwargs = call["kwargs"]
            if kwargs is None:
                kwargs = {}  # Pyro5 proxies send None for __getattr__/__setattr__ calls and batches
            elif type(kwargs) is not dict:
                raise SerializeError("invalid call request: kwargs is not an object")
            # A class dict needs the literal key (never cut out: keys stay in ``text``).
            if "__class__" in text:
                vargs = self._recreate(vargs)
                if kwargs:
                    kwargs = self._recreate(kwargs)
            return call["object"], call["method"], vargs, kwargs
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            if len(data) >= BULK_FROM:
                value, text = self._decode_large(data)
            else:
                text = str(data, "utf-8")
                value = self._decode_small(text)
            # A class dict needs the literal key; an escaped spelling only yields a plain dict.
            if "__class__" in text and type(value) in _CONTAINERS:
                value = self._recreate(value)
            return value
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x
