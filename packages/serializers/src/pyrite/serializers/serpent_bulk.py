"""Large strings in serpent data without ``repr()`` and ``compile()`` going over them.

Serpent text is Python literal syntax.  For 10 MB of bytes (13 MB of base64
text) ``compile()`` spends about 140 ms tokenizing the one string literal and
``repr()`` 20 ms writing it, where a copy takes 1 ms.  The helpers here do the
same with C-level passes over the bytes, and only where the result is exactly
what the slow way gives:

* writing: ``plain_repr(text)`` is the UTF-8 of ``repr(text)`` minus its quotes
  for printable ASCII text without ``'`` or ``\\`` (then repr() adds nothing);
  ``join_parts`` joins the writer's mix of str and such bytes parts.
* reading: ``reduce(raw)``, for serpent data without any backslash, cuts the
  large string literals out (each is replaced by a short placeholder literal)
  so that ``compile()`` only sees the rest; ``restore_tree`` then puts the
  strings into the syntax tree, and the serializer reads it as always.  Without
  backslashes no literal has an escape, so each one's value is its text; data
  with comments, triple quotes, string prefixes or line breaks in a large
  literal is left to ``compile()`` as it is.

Example::

    text, strings = reduce(b"# serpent utf-8 python3.2\\n('" + b"x" * 100_000 + b"',)")
    tree = compile(text, "<serpent>", "eval", ast.PyCF_ONLY_AST)
    assert restore_tree(tree, strings) and tree.body.elts[0].value == "x" * 100_000
"""

from __future__ import annotations

import ast
from typing import Any

BULK_FROM = 64 * 1024  # smaller data and values take the ordinary way
HEADER = b"# serpent utf-8 python3.2\n"
_CUT_FROM = 1024  # string literals this long are cut out of large data
_MAX_LITERALS = 256  # more string literals than this: compile() is the quicker way

# printable ASCII other than the quote and the backslash: what repr() writes as it is
_REPR_AS_IS = bytes(b for b in range(0x20, 0x7F) if b not in (0x27, 0x5C))
_QUOTES = (0x22, 0x27)
# what may come before a string literal that is cut out (not a prefix such as b or f)
_BEFORE_LITERAL = frozenset(b"([{,: ")


def plain_repr(text: str) -> bytes | None:
    """The ASCII of ``text`` if ``repr(text)`` is exactly it in single quotes, else None."""
    if not text.isascii():
        return None  # repr() keeps printable non-ASCII characters too, but telling costs more
    raw = text.encode("ascii")
    if raw.translate(None, _REPR_AS_IS):
        return None
    return raw


def join_parts(parts: list[Any]) -> bytes:
    """The UTF-8 of a list of str and bytes parts, each large bytes part copied once."""
    out: list[bytes] = []
    texts: list[str] = []
    for part in parts:
        if type(part) is str:
            texts.append(part)
        else:
            if texts:
                out.append("".join(texts).encode("utf-8"))
                texts = []
            out.append(part)
    if texts:
        out.append("".join(texts).encode("utf-8"))
    return b"".join(out)


def reduce(raw: bytes) -> tuple[str, list[str]] | None:
    """``(rest, strings)``: the serpent text with its large string literals replaced by
    placeholders and their values, or None if there is nothing to cut out safely."""
    if not raw.startswith(HEADER) or b"\\" in raw:
        return None
    find = raw.find
    view = memoryview(raw)
    rest: list[bytes | memoryview] = []
    strings: list[str] = []
    start = 0  # of the part of ``raw`` not yet in ``rest``
    pos = len(HEADER)
    for _ in range(_MAX_LITERALS):
        single, double = find(b"'", pos), find(b'"', pos)
        opening = double if single < 0 or 0 <= double < single else single
        if find(b"#", pos, opening if opening >= 0 else len(raw)) >= 0:
            return None  # a comment: its quotes would not be literals
        if opening < 0:
            break
        quote = raw[opening]
        if raw[opening + 1 : opening + 3] == bytes((quote, quote)):
            return None  # a triple-quoted literal
        closing = find(bytes((quote,)), opening + 1)
        if closing < 0:
            return None  # unterminated: compile() reports it
        if closing - opening > _CUT_FROM and raw[opening - 1] in _BEFORE_LITERAL:
            if find(b"\n", opening, closing) >= 0 or find(b"\r", opening, closing) >= 0:
                return None  # a line break ends a literal: compile() reports it
            rest.append(view[start:opening])
            rest.append(b"'\\x00%d\\x00'" % len(strings))
            strings.append(str(view[opening + 1 : closing], "utf-8"))
            start = closing + 1
        pos = closing + 1
    else:
        return None  # too many literals
    if not strings:
        return None
    rest.append(view[start:])
    return str(b"".join(rest), "utf-8"), strings


def restore_tree(tree: ast.AST, strings: list[str]) -> bool:
    """Put the strings cut out by ``reduce`` into the tree compiled from the rest; False if
    a placeholder is not a literal of its own (adjacent literals were joined)."""
    for node in ast.walk(tree):
        if type(node) is ast.Constant and type(node.value) is str and "\x00" in node.value:
            value = node.value
            # the data had no backslash: a NUL in a literal comes from a placeholder
            if value[0] != "\x00" or value[-1] != "\x00" or value.count("\x00") != 2:
                return False
            node.value = strings[int(value[1:-1])]
    return True
