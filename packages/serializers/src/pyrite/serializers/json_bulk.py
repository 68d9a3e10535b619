"""Large JSON strings without the per-character work of the ``json`` module.

``json`` escapes (when writing) and scans (when reading) strings one character
at a time: about 45 ms to write and 10 ms to read 10 MB of text, where a copy
takes 1 ms.  Most large strings need no escape at all, and for those the JSON
form is the UTF-8 text between two quotes.  Both directions here check that
with one C-level pass over the bytes (``bytes.translate`` deleting every byte
that may appear unescaped) and otherwise leave the work to ``json``:

* ``plain_string(text)``: the JSON bytes of ``text``, or None if it needs escapes.
* ``reduce(data)``: for a large JSON document without any backslash or control
  character, the document with each large string value cut out (a placeholder
  takes its place) and the strings themselves, or None.  The small rest is
  decoded by ``json`` and ``restore`` puts the strings back.  Only values are
  cut out, never object keys, so duplicate keys behave as in ``json``.

Example::

    reduced = reduce(b'["' + b"x" * 100_000 + b'", 1]')
    text, strings = reduced
    assert restore(json.loads(text), strings) == ["x" * 100_000, 1]
"""

from __future__ import annotations

from typing import Any

BULK_FROM = 64 * 1024  # documents (and strings) smaller than this go through json as they are
_CUT_FROM = 1024  # string values this long are cut out of a large document
_MAX_QUOTES = 256  # more strings than this: json's own scanner is the quicker way
_MAX_REST = 16 * 1024  # the decoded rest is walked in Python: keep it small

# Bytes that JSON writes as they are inside a string (ensure_ascii off): all but the
# control characters, the quote and the backslash.  UTF-8 continuation and lead bytes
# are all >= 0x80, so a multi-byte character never contains one of the others.
_AS_IS = bytes(b for b in range(256) if b >= 0x20 and b not in (0x22, 0x5C))


def plain_string(text: str) -> bytes | None:
    """``text`` as JSON (``"..."``, UTF-8) if it needs no escape, else None (also for text
    that UTF-8 cannot encode: ``json`` then reports it)."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if raw.translate(None, _AS_IS):
        return None
    return b"".join((b'"', raw, b'"'))


def reduce(data: bytes | bytearray | memoryview) -> tuple[str, list[str]] | None:
    """``(rest, strings)``: the JSON text with its large string values replaced by
    ``"\\u0000<index>"``, and those strings; None when there is nothing to gain or the
    document has an escape or a control character anywhere (then ``json`` decides)."""
    raw = data if type(data) is bytes else bytes(data)
    if b"\\" in raw:
        return None  # no escape anywhere: every quote opens or closes a string
    others = raw.translate(None, _AS_IS)  # what is left: the quotes, and any control bytes
    quotes = len(others)
    if quotes > _MAX_QUOTES or others.count(b'"') != quotes or quotes % 2:
        return None  # many strings, or whitespace such as newlines (pretty-printed), or malformed
    view = memoryview(raw)
    rest: list[bytes | memoryview] = []
    strings: list[str] = []
    start = 0  # of the part of ``raw`` not yet copied to ``rest``
    find = raw.find
    opening = find(b'"')
    while opening >= 0:
        closing = find(b'"', opening + 1)
        if closing - opening > _CUT_FROM and not _is_key(raw, closing + 1):
            rest.append(view[start:opening])
            rest.append(b'"\\u0000%d"' % len(strings))
            strings.append(str(view[opening + 1 : closing], "utf-8"))
            start = closing + 1
        opening = find(b'"', closing + 1)
    if not strings:
        return None
    rest.append(view[start:])
    text = b"".join(rest)
    if len(text) > _MAX_REST:
        return None
    return str(text, "utf-8"), strings


def _is_key(raw: bytes, at: int) -> bool:
    """True if the string that ended just before ``at`` is an object key (a ``:`` follows)."""
    while raw[at : at + 1] == b" ":
        at += 1
    return raw[at : at + 1] == b":"


def restore(value: Any, strings: list[str]) -> Any:
    """Put the strings cut out by ``reduce`` back in ``value`` (decoded from the rest)."""
    t = type(value)
    if t is str:
        # the document had no backslash, so "\x00" can only come from a placeholder
        return strings[int(value[1:])] if value[:1] == "\x00" else value
    if t is list:
        for index, item in enumerate(value):
            if type(item) in _WALKED:
                value[index] = restore(item, strings)
    elif t is dict:
        for key, item in value.items():
            if type(item) in _WALKED:
                value[key] = restore(item, strings)
    return value


_WALKED = frozenset({str, list, dict})
