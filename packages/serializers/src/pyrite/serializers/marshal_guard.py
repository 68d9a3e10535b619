"""A guard that runs before ``marshal.loads`` on data from a peer.

``marshal.loads`` reserves room for a tuple or list as large as its header
declares before reading any item, so a few hostile bytes (``(`` and a size of
two billion) make it write gigabytes or spin for seconds.  ``check(data)``
refuses such data without loading it:

1. A regular expression looks for a tuple/list header byte followed by a size
   of 2**24 items or more (and more than the data holds).  Ordinary data has
   none, and is loaded as it is.
2. Such bytes may just be the inside of a string or a float.  To tell, a copy
   is made in which each of those header bytes is swapped for an invalid type
   code that keeps UTF-8 text valid, and marshal parses the copy (it cannot
   over-allocate any more).  If the bytes were inside strings or floats, the
   structure is unchanged and the copy parses: the original is safe.
3. If the copy does not parse (a swapped byte was structural: a real header,
   or a length or count byte), a walk over the marshal stream in Python
   decides exactly, refusing containers that declare more items than the
   bytes left.
"""

from __future__ import annotations

import marshal
import re

from pyrite.core.errors import SerializeError

_HEADER = rb"[(\[l\xa8\xdb\xec]"
_SUSPECT = re.compile(_HEADER + rb"[\x00-\xff]{3}[\x01-\xff]", re.S)

# '(' and '[' become 0x01; 0xa8 ('(' | FLAG_REF, a UTF-8 continuation byte) becomes
# 0x81 (another continuation byte); 0xdb ('[' | FLAG_REF, a UTF-8 lead byte of a
# two-byte sequence) becomes 0xc2 (another).  0x01 and 0x42 are not marshal type codes.
# 'l' (a long: its size says how many 15-bit digits marshal reserves) becomes 0x01 and
# 0xec (its FLAG_REF form, a three-byte UTF-8 lead) becomes 0xe2 (another; 'b' is no type code).
_SWAP = {0x28: 0x01, 0x5B: 0x01, 0x6C: 0x01, 0xA8: 0x81, 0xDB: 0xC2, 0xEC: 0xE2}

# One substitution per header byte; the lookahead keeps the size bytes in place.  Swaps
# never turn a nonzero byte into zero, so applying them one after another finds the
# same candidates as a single pass would.
_SWAPPERS = [
    (re.compile(re.escape(bytes([code])) + rb"(?=[\x00-\xff]{3}[\x01-\xff])", re.S), bytes([swap]))
    for code, swap in _SWAP.items()
]
_SUB_LIMIT = 1 << 24

# Large data is walked first, exactly, with a bound on the steps: a few big strings or
# bytes (a file, an image) take a handful of steps, where the regex would read every byte.
_WALK_FIRST = 64 * 1024
_WALK_BUDGET = 2000


def check(data: bytes | bytearray | memoryview) -> None:
    """Raise ``SerializeError`` if ``data`` holds a tuple or list header that declares far
    more items than the data could hold."""
    size = len(data)
    if size >= _WALK_FIRST and _scan(data, size, _WALK_BUDGET):
        return
    search = _SUSPECT.search
    match = search(data)
    if match is None:
        return
    if size < _SUB_LIMIT:
        # every suspect declares 2**24 items or more, more than data this short holds: swap
        # them all with C-level substitutions instead of a Python loop over the matches
        copy = data if isinstance(data, bytes) else bytes(data)
        for pattern, replacement in _SWAPPERS:
            copy = pattern.sub(replacement, copy)
        _check_copy(copy, data, size)
        return
    patched: bytearray | None = None
    while match is not None:
        pos = match.start()
        declared = int.from_bytes(data[pos + 1 : pos + 5], "little")
        if declared > size - pos:
            if patched is None:
                patched = bytearray(data)
            patched[pos] = _SWAP[patched[pos]]
        match = search(data, pos + 1)  # one byte on: header candidates may overlap
    if patched is not None:
        _check_copy(patched, data, size)


def _check_copy(copy: bytes | bytearray, data: bytes | bytearray | memoryview, size: int) -> None:
    try:
        marshal.loads(copy)
    except Exception:
        # a swapped byte was structural (a header, or e.g. a length byte): decide exactly
        _scan(data, size)


_FLAG_REF = 0x80
_MAX_DEPTH = 2000


def _scan(data: bytes | bytearray | memoryview, size: int, budget: int = -1) -> bool:
    """Walk the marshal stream without building anything; refuse a container that declares
    more items than the bytes left, and any type code that is not plain data.

    Returns True when the whole stream was walked; False if ``budget`` (when not
    negative) ran out first, which decides nothing."""
    if isinstance(data, memoryview):
        data = data.cast("B")
    pos = 0
    refs = 0
    stack: list[int] = [1]  # values still expected per level; -1: a dict, until '0'

    def length(at: int) -> int:
        if at + 4 > size:
            raise SerializeError("truncated marshal data")
        return int.from_bytes(bytes(data[at : at + 4]), "little", signed=True)

    while stack:
        if budget == 0:
            return False
        budget -= 1
        if stack[-1] == 0:
            stack.pop()
            continue
        if pos >= size:
            raise SerializeError("truncated marshal data")
        code = data[pos]
        pos += 1
        if code & _FLAG_REF:
            refs += 1
            code &= ~_FLAG_REF
        kind = chr(code)
        if stack[-1] > 0:
            stack[-1] -= 1
        elif kind == "0":
            stack.pop()
            continue
        if kind in "NFTS.":
            continue
        if kind == "i":
            pos += 4
        elif kind == "g":
            pos += 8
        elif kind == "y":
            pos += 16
        elif kind in "fx":
            for _ in range(1 if kind == "f" else 2):
                if pos >= size:
                    raise SerializeError("truncated marshal data")
                pos += 1 + data[pos]
        elif kind in "stuaA":
            n = length(pos)
            if n < 0:
                raise SerializeError("invalid marshal data")
            pos += 4 + n
        elif kind in "zZ":
            if pos >= size:
                raise SerializeError("truncated marshal data")
            pos += 1 + data[pos]
        elif kind == "l":
            pos += 4 + 2 * abs(length(pos))
        elif kind == "r":
            if not 0 <= length(pos) < refs:
                raise SerializeError("invalid marshal reference")
            pos += 4
        elif kind == ")":
            if pos >= size:
                raise SerializeError("truncated marshal data")
            stack.append(data[pos])
            pos += 1
        elif kind in "([<>":
            n = length(pos)
            pos += 4
            if n < 0 or n > size - pos:
                raise SerializeError("marshal data declares more items than it holds")
            stack.append(n)
        elif kind == "{":
            stack.append(-1)
        else:
            raise SerializeError(f"refused marshal type code {kind!r}")
        if pos > size:
            raise SerializeError("truncated marshal data")
        if len(stack) > _MAX_DEPTH:
            raise SerializeError("marshal data nested too deeply")
    return True
