"""``skim(data)``: can msgpack data hold a class dict?  Decided from its structure, cheaply.

Loading msgpack with an object hook costs a Python call per map; without it,
class dicts stay dicts.  For large data the serializer used to search the
bytes for ``__class__`` first, which reads every byte (about 4 ms for 10 MB
of random bytes, three times what unpacking them costs).  Large payloads are
mostly a few large bin or str values, so walking the msgpack structure and
jumping over their contents decides in a handful of steps: ``True`` if some
string in there is ``"__class__"``, ``False`` if none is, and ``None`` (the
caller searches the bytes as before) if the walk ran out of steps or met data
it does not understand; then ``unpackb`` has the last word on what is valid.

Example::

    >>> skim(msgpack.packb([b"x" * 100_000, {"a": 1}]))
    False
    >>> skim(msgpack.packb({"__class__": "x"}))
    True
"""

from __future__ import annotations

_CLASSKEY = b"__class__"
_STEPS = 64

# Type byte -> (how many bytes hold the length, how many bytes follow beyond the length).
# A length of -1 means a fixed size: skip the extra bytes only.
_SIZED: dict[int, tuple[int, int]] = {
    0xC0: (-1, 0),  # nil
    0xC2: (-1, 0),  # false
    0xC3: (-1, 0),  # true
    0xC4: (1, 0),  # bin 8
    0xC5: (2, 0),  # bin 16
    0xC6: (4, 0),  # bin 32
    0xC7: (1, 1),  # ext 8 (length, then the type byte)
    0xC8: (2, 1),  # ext 16
    0xC9: (4, 1),  # ext 32
    0xCA: (-1, 4),  # float 32
    0xCB: (-1, 8),  # float 64
    0xCC: (-1, 1),  # uint 8
    0xCD: (-1, 2),
    0xCE: (-1, 4),
    0xCF: (-1, 8),
    0xD0: (-1, 1),  # int 8
    0xD1: (-1, 2),
    0xD2: (-1, 4),
    0xD3: (-1, 8),
    0xD4: (-1, 2),  # fixext 1 (type byte + data)
    0xD5: (-1, 3),
    0xD6: (-1, 5),
    0xD7: (-1, 9),
    0xD8: (-1, 17),
}
_STR = {0xD9: 1, 0xDA: 2, 0xDB: 4}  # str 8/16/32: bytes of length
_ARRAY = {0xDC: 2, 0xDD: 4}
_MAP = {0xDE: 2, 0xDF: 4}


def skim(data: bytes | bytearray | memoryview, steps: int = _STEPS) -> bool | None:
    """True if the msgpack value in ``data`` has a string ``"__class__"``, False if it has
    none, None if that could not be decided in ``steps`` values (or the data is malformed)."""
    if isinstance(data, memoryview) and (data.ndim != 1 or data.format != "B"):
        return None  # items that are not plain unsigned bytes: leave it to the search
    size = len(data)
    pos = 0
    pending = 1  # values still to read
    while pending:
        if steps == 0 or pos >= size:
            return None
        steps -= 1
        pending -= 1
        code = data[pos]
        pos += 1
        if code <= 0x7F or code >= 0xE0:  # fixint
            continue
        if code <= 0x8F:  # fixmap: keys and values
            pending += 2 * (code & 0x0F)
            continue
        if code <= 0x9F:  # fixarray
            pending += code & 0x0F
            continue
        if code <= 0xBF:  # fixstr
            length = code & 0x1F
            if length == 9 and data[pos : pos + 9] == _CLASSKEY:
                return True
            pos += length
            continue
        sized = _SIZED.get(code)
        if sized is not None:
            width, extra = sized
            if width > 0:
                pos += width + int.from_bytes(data[pos : pos + width], "big")
            pos += extra
            continue
        width = _STR.get(code, 0)
        if width:
            length = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if length == 9 and data[pos : pos + 9] == _CLASSKEY:
                return True
            pos += length
            continue
        width = _ARRAY.get(code, 0) or _MAP.get(code, 0)
        if not width:
            return None  # 0xc1 (never used): leave it to unpackb
        count = int.from_bytes(data[pos : pos + width], "big")
        pos += width
        pending += 2 * count if code in _MAP else count
    # all values read; anything left over (or a length pointing past the end) is unpackb's to refuse
    return False if pos == size else None
