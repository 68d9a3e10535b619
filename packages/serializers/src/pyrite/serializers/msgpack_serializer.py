"""The msgpack serializer (wire id 4), compatible with Pyro5's.  Needs the ``msgpack`` extra.

A call is the array ``[object id, method, vargs, kwargs]``; strings are
msgpack str, bytes are bin (``use_bin_type``).  Types msgpack lacks are written
as Pyro5 writes them: sets and tuples as arrays, ``uuid.UUID`` and
``decimal.Decimal`` as strings, ``array.array`` as a list (or a string for
typecode ``'u'``), and these extension types:

=====  ==================================  =====================================
code   type                                payload
=====  ==================================  =====================================
0x30   ``complex``                         ``struct.pack("dd", real, imag)``
0x31   ``int`` beyond 64 bits              its decimal digits, ASCII
0x32   naive ``datetime.datetime``         ``struct.pack("d", obj.timestamp())``
0x33   ``datetime.date``                   ``struct.pack("l", obj.toordinal())``
=====  ==================================  =====================================

A timezone-aware datetime raises ``SerializeError``, as in Pyro5.  As in
Pyro5, map keys must be strings or bytes when loading (msgpack's
``strict_map_key``, which also guards against hash-flooding with int keys).
Subclasses may override ``default``, ``ext_hook`` and ``object_hook``.
"""

from __future__ import annotations

import array
import datetime
import decimal
import struct
import threading
import uuid
from collections.abc import Callable
from typing import Any

import msgpack  # a missing library is an ImportError: the plugin registry turns it into the pip hint
from pyrite.core.errors import PyroError, SerializeError

from .base import SerializerBase, has_classkey
from .msgpack_skim import skim

_unpackb: Callable[..., Any] = msgpack.unpackb

EXT_COMPLEX = 0x30
EXT_BIGINT = 0x31
EXT_DATETIME = 0x32
EXT_DATE = 0x33

_complex = struct.Struct("dd")
_double = struct.Struct("d")
_long = struct.Struct("l")


# From this size a bytes value is joined into the output as it is (see _spliced_call).
_SPLICE_FROM = 64 * 1024
_MAX_BIN = 0xFFFFFFFF  # msgpack's largest bin; packb itself refuses anything larger
# Below this size the object hook costs less than finding out whether it is needed.
_SCAN_FROM = 4096
_KEEP_PACKER_UPTO = 1 << 20  # a Packer's own buffer size: one that grew beyond it is not kept


def _bin_header(size: int) -> bytes:
    """The bin 32 header msgpack writes before ``size`` (>= 64 KiB) bytes."""
    return b"\xc6" + size.to_bytes(4, "big")


def _array(obj: array.array[Any]) -> Any:
    return obj.tounicode() if obj.typecode == "u" else obj.tolist()


def _ext_complex(obj: complex) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_COMPLEX, _complex.pack(obj.real, obj.imag))


def _ext_datetime(obj: datetime.datetime) -> msgpack.ExtType:
    if obj.tzinfo is not None:
        raise SerializeError(f"the msgpack serializer only takes naive datetimes; {obj!r} has a tzinfo")
    return msgpack.ExtType(EXT_DATETIME, _double.pack(obj.timestamp()))


def _ext_date(obj: datetime.date) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_DATE, _long.pack(obj.toordinal()))


def _ext_bigint(obj: int) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_BIGINT, str(int(obj)).encode("ascii"))


class MsgpackSerializer(SerializerBase):
    """msgpack, as Pyro5 writes and reads it."""

    name = "msgpack"
    serializer_id = 4
    _native_types = frozenset({str, int, float, bool, type(None), list, tuple, dict, bytes, bytearray, memoryview})

    def __init__(self) -> None:
        super().__init__()
        # bound once; a subclass' overrides of default/ext_hook/object_hook are still the ones bound
        self._pack_default = self.default
        self._ext_hook = self.ext_hook
        self._object_hook = self.object_hook
        # without a literal "__class__" in the data there is nothing for our object_hook to do
        self._hook_always = type(self).object_hook is not MsgpackSerializer.object_hook
        # packb() makes a Packer per call, and a Packer reserves 1 MiB up front: that is
        # most of what writing a small value costs.  Each thread keeps one Packer instead.
        self._packers = threading.local()

    def _pack(self, value: Any) -> bytes:
        """``packb(value)`` with this thread's Packer (the same bytes, without making one)."""
        local = self._packers
        packer = getattr(local, "packer", None)
        if packer is None:
            # none yet, or in use further up this thread's stack (a converter writing a value)
            packer = msgpack.Packer(use_bin_type=True, default=self._pack_default)
        local.packer = None
        out: bytes = packer.pack(value)  # on an error msgpack empties the Packer's buffer
        if len(out) <= _KEEP_PACKER_UPTO:
            local.packer = packer  # one that wrote a large value keeps its large buffer: drop it
        return out

    def default(self, obj: Any) -> Any:
        """Called by msgpack for a value it cannot pack: returns something it can."""
        return self._converter_for(type(obj))(obj)

    def _builtin_converter(self, t: type) -> Callable[[Any], Any] | None:
        if issubclass(t, (set, frozenset)):
            return tuple
        if issubclass(t, (uuid.UUID, decimal.Decimal)):
            return str
        if issubclass(t, complex):
            return _ext_complex
        if issubclass(t, datetime.datetime):
            return _ext_datetime
        if issubclass(t, datetime.date):
            return _ext_date
        if issubclass(t, int):  # only too large ints reach default
            return _ext_bigint
        if issubclass(t, array.array):
            return _array
        return None

    def ext_hook(self, code: int, data: bytes) -> Any:
        """Rebuild one of the extension types listed in the module docstring."""
        if code == EXT_COMPLEX:
            real, imag = _complex.unpack(data)
            return complex(real, imag)
        if code == EXT_BIGINT:
            return int(data)
        if code == EXT_DATETIME:
            return datetime.datetime.fromtimestamp(_double.unpack(data)[0])
        if code == EXT_DATE:
            return datetime.date.fromordinal(_long.unpack(data)[0])
        raise SerializeError(f"invalid ext code for msgpack: {code}")

    def object_hook(self, obj: dict[str, Any]) -> Any:
        """Rebuild class dicts (bottom-up, as msgpack calls it for every map)."""
        if "__class__" in obj:
            return self.dict_to_class(obj)
        return obj

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        if type(vargs) is tuple or type(vargs) is list:
            for item in vargs:
                if type(item) is bytes and len(item) >= _SPLICE_FROM and len(vargs) < 16:
                    return self._spliced_call(obj, method, vargs, kwargs)
        return self._pack((obj, method, vargs, kwargs))

    def dumps(self, data: Any) -> bytes:
        t = type(data)
        if t is bytes and _SPLICE_FROM <= len(data) <= _MAX_BIN:
            return b"".join((_bin_header(len(data)), data))  # what packb writes, with one copy instead of two
        if (t is tuple or t is list) and len(data) < 16:
            for item in data:
                if type(item) is bytes and len(item) >= _SPLICE_FROM:
                    parts = [bytes((0x90 | len(data),))]
                    self._pack_items(data, parts)
                    return b"".join(parts)
        return self._pack(data)

    def _pack_items(self, items: Any, parts: list[bytes]) -> None:
        """Append the msgpack form of each item; large bytes go in as they are, behind their header."""
        pack = self._pack
        for item in items:
            if type(item) is bytes and _SPLICE_FROM <= len(item) <= _MAX_BIN:
                parts.append(_bin_header(len(item)))
                parts.append(item)
            else:
                parts.append(pack(item))

    def _spliced_call(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        # msgpack has no back-references: an array is its header and then its items'
        # encodings, one after the other.  So the call can be written piece by piece and
        # the large bytes joined in once, where packb copies them into its buffer (growing
        # it) and then again into the bytes it returns.
        pack = self._pack
        parts = [
            b"\x94",  # fixarray of 4
            pack(obj),
            pack(method),
            bytes((0x90 | len(vargs),)),
        ]
        self._pack_items(vargs, parts)
        parts.append(pack(kwargs))
        return b"".join(parts)

    def _large_needs_hook(self, data: bytes | bytearray | memoryview) -> bool:
        """Whether loading ``data`` (large) needs the object hook: could it hold a class dict?"""
        found = skim(data)
        return has_classkey(data) if found is None else found

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        try:
            if self._hook_always or len(data) < _SCAN_FROM or self._large_needs_hook(data):
                call = _unpackb(data, raw=False, object_hook=self._object_hook, ext_hook=self._ext_hook)
            else:
                call = _unpackb(data, raw=False, ext_hook=self._ext_hook)
            # msgpack gives a list; like Pyro5, hand it back as it is once it has the call's shape
            if type(call) is list and len(call) == 4 and type(call[3]) is dict:
                return call  # type: ignore[return-value]
            return self._call_tuple(call)
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            if self._hook_always or len(data) < _SCAN_FROM or self._large_needs_hook(data):
                return _unpackb(data, raw=False, object_hook=self._object_hook, ext_hook=self._ext_hook)
            return _unpackb(data, raw=False, ext_hook=self._ext_hook)
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x
