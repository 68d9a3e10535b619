"""``marshal`` data from a peer, checked before it is loaded.

``marshal.loads`` builds code objects and other non-data values, and
reserves room for a tuple, list or long as large as its header declares
before reading any item (a few bytes can ask for gigabytes).  ``check(data)``
walks the marshal stream without building anything and refuses:

* any type that is not plain data (code objects, Ellipsis, StopIteration,
  unknown type codes, a stray NULL);
* a container, long or string that declares more than the bytes left could hold;
* truncated data.

The walk takes one step per value, so it costs at most one step per byte.
``loads(data)`` is ``check`` then ``marshal.loads``.  Core uses it for the
``BLBI`` annotation of a KEEPSERIALIZED call; a marshal serializer may use it
too.

Example::

    safemarshal.loads(marshal.dumps(("info", "objid", "method")))   # fine
    safemarshal.loads(marshal.dumps(compile("1", "", "eval")))      # SerializeError
"""

from __future__ import annotations

import marshal
from typing import Any

from .errors import SerializeError

__all__ = ["check", "loads"]

_FLAG_REF = 0x80
_NULL = ord("0")
_DICT_OPEN = -1  # stack marker: a dict, which ends with a NULL rather than a count

# type code -> bytes that follow it, for values of a fixed size
_FIXED = {
    ord("N"): 0,
    ord("F"): 0,
    ord("T"): 0,
    ord("i"): 4,
    ord("I"): 8,
    ord("g"): 8,
    ord("y"): 16,
    ord("r"): 4,
}
_SIZED32 = frozenset(map(ord, "stuaA"))  # 4-byte length, then that many bytes
_SIZED8 = frozenset(map(ord, "zZf"))  # 1-byte length, then that many bytes
_COUNTED32 = frozenset(map(ord, "([<>"))  # tuple, list, set, frozenset with a 4-byte count
_SMALL_TUPLE = ord(")")
_COMPLEX_TEXT = ord("x")
_LONG = ord("l")
_DICT = ord("{")


def _int32(data: Any, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little", signed=True)


def check(data: bytes | bytearray | memoryview) -> None:
    """Raise ``SerializeError`` unless ``data`` is a marshal stream of plain data that holds
    what its headers declare."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    size = len(view)
    pos = 0
    # remaining items per open container (the outermost pseudo-container holds the one value)
    stack = [1]
    while True:
        while stack and stack[-1] == 0:
            stack.pop()
            if stack and stack[-1] > 0:
                stack[-1] -= 1  # the finished container was one item of its parent
        if not stack:
            return
        if pos >= size:
            raise SerializeError("marshal data is truncated")
        code = view[pos] & ~_FLAG_REF
        pos += 1
        if code == _NULL:
            if stack[-1] != _DICT_OPEN:
                raise SerializeError("marshal data holds a NULL outside a dict")
            stack.pop()
            if stack and stack[-1] > 0:
                stack[-1] -= 1
            continue
        fixed = _FIXED.get(code)
        if fixed is not None:
            pos += fixed
        elif code in _SIZED32:
            if pos + 4 > size:
                raise SerializeError("marshal data is truncated")
            length = _int32(view, pos)
            pos += 4
            if length < 0 or length > size - pos:
                raise SerializeError(f"marshal string declares {length} bytes, more than the data holds")
            pos += length
        elif code in _SIZED8 or code == _COMPLEX_TEXT:
            for _ in range(2 if code == _COMPLEX_TEXT else 1):
                if pos >= size:
                    raise SerializeError("marshal data is truncated")
                pos += 1 + view[pos]
        elif code == _LONG:
            if pos + 4 > size:
                raise SerializeError("marshal data is truncated")
            digits = abs(_int32(view, pos))
            pos += 4
            if digits * 2 > size - pos:
                raise SerializeError(f"marshal long declares {digits} digits, more than the data holds")
            pos += digits * 2
        elif code in _COUNTED32 or code == _SMALL_TUPLE:
            if code == _SMALL_TUPLE:
                if pos >= size:
                    raise SerializeError("marshal data is truncated")
                count = view[pos]
                pos += 1
            else:
                if pos + 4 > size:
                    raise SerializeError("marshal data is truncated")
                count = _int32(view, pos)
                pos += 4
            if count < 0 or count > size - pos:
                # every item takes at least one byte
                raise SerializeError(f"marshal container declares {count} items, more than the data holds")
            if count:
                stack.append(count)
                continue
        elif code == _DICT:
            stack.append(_DICT_OPEN)
            continue
        else:
            raise SerializeError(f"refused to load marshal type code {chr(code)!r} (not plain data)")
        if pos > size:
            raise SerializeError("marshal data is truncated")
        if stack[-1] > 0:
            stack[-1] -= 1


def loads(data: bytes | bytearray | memoryview) -> Any:
    """``check(data)``, then ``marshal.loads``; ``SerializeError`` for refused or broken data."""
    check(data)
    try:
        return marshal.loads(data)
    except (ValueError, EOFError, TypeError) as exc:
        raise SerializeError(f"invalid marshal data: {exc}") from None
