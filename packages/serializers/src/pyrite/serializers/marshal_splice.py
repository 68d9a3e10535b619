"""Writing large ``bytes`` values into marshal output with one copy instead of three.

``marshal.dumps`` grows its output buffer to fit exactly what it has written so
far.  When a large value is followed by anything at all (the kwargs of a call,
the next item of a tuple), the next write reallocates the buffer to twice its
size, and the result is shrunk again at the end: for 10 MB of bytes that is
about 9 ms instead of 1 ms.  ``marshal_dumps`` avoids it: each large ``bytes``
value is replaced by a short, unique placeholder, the result is marshalled, and
the large values are joined in where their placeholders are, in one
``b"".join``.  A marshalled ``bytes`` value is a type byte, a 4-byte length and
the bytes, so the output is what marshal writes for the original (the type
byte, including its reference flag, is marshal's own).

Example::

    data = ("id", "echo", [b"x" * 100_000], {})
    assert marshal.loads(marshal_dumps(data, marshal.dumps)) == data
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

SPLICE_FROM = 64 * 1024  # smaller values are cheaper to let marshal copy
_MAX_STRING = 0x7FFFFFFF  # marshal's largest bytes value; larger ones are marshal's to refuse
_TOKEN = b"\x00pyrite-splice\x00" + os.urandom(16)  # unique per process: cannot be in the caller's data by chance
_STRING_CODES = (ord("s"), ord("s") | 0x80)  # bytes, without and with the reference flag
_MAX_DEPTH = 2  # the call tuple, then its argument list and kwargs


def _substitute(value: Any, found: dict[int, tuple[bytes, bytes]], depth: int) -> Any:
    """``value`` (a tuple, list or dict) with its large bytes items (dict values, never keys)
    replaced by placeholders, or ``value`` itself when it holds none; ``found`` maps
    id(large) -> (large, placeholder), so one object keeps one placeholder and marshal
    writes its later occurrences as references, as it would for the object itself."""
    changed: dict[Any, Any] = {}
    for key, item in value.items() if type(value) is dict else enumerate(value):
        t = type(item)
        new = item
        if t is bytes:
            if SPLICE_FROM <= len(item) <= _MAX_STRING:
                entry = found.get(id(item))
                if entry is None:
                    entry = found[id(item)] = (item, _TOKEN + len(found).to_bytes(4, "little"))
                new = entry[1]
        elif (t is list or t is tuple or t is dict) and depth < _MAX_DEPTH:
            new = _substitute(item, found, depth + 1)
        if new is not item:
            changed[key] = new
    if not changed:
        return value
    t = type(value)
    if t is dict:
        return {**value, **changed}
    items = list(value)
    for index, new in changed.items():
        items[index] = new
    return items if t is list else tuple(items)


def marshal_dumps(data: Any, dumps: Callable[[Any], bytes]) -> bytes:
    """``dumps(data)``, with the large ``bytes`` values in ``data`` (a tuple or list, and the
    tuples, lists and dicts directly in it) copied into the output once."""
    found: dict[int, tuple[bytes, bytes]] = {}
    substituted = _substitute(data, found, 1)
    if not found:
        return dumps(data)
    out = dumps(substituted)
    marks: list[tuple[int, bytes, bytes]] = []  # (where the length starts, placeholder, large value)
    for large, placeholder in found.values():
        encoded = len(placeholder).to_bytes(4, "little") + placeholder
        at = out.find(encoded)
        if at < 1 or out[at - 1] not in _STRING_CODES or out.find(encoded, at + 1) >= 0:
            return dumps(data)  # not where we expect it (a converter changed the data): no shortcut
        marks.append((at, placeholder, large))
    marks.sort(key=lambda mark: mark[0])
    parts: list[bytes | memoryview] = []
    view = memoryview(out)
    start = 0
    for at, placeholder, large in marks:
        parts.append(view[start:at])
        parts.append(len(large).to_bytes(4, "little"))
        parts.append(large)
        start = at + 4 + len(placeholder)
    parts.append(view[start:])
    return b"".join(parts)
