"""Reading small serpent data without ``compile()``: ``parse(text, pos)``.

``compile()`` has a fixed cost of about 15 µs (tokenizer, parser, syntax tree)
that dominates small calls such as ``('obj','ping',(42,),{})``.  ``parse``
reads the plain subset of literal syntax that serpent writes for everyday
data, one regular-expression match per token: strings without backslashes,
ints, floats, ``True``/``False``/``None``, tuples, lists, dicts and sets, with
spaces or tabs between tokens.  For anything else (escapes, bytes, complex
numbers, comments, line breaks, adjacent literals, unhashable set members or
keys, deep nesting) it raises ``Unsupported`` and the caller compiles the text
as before, so both ways give the same value and the same errors.

Example::

    value, has_class = parse("('obj','ping',(42,),{})", 0)
    assert value == ("obj", "ping", (42,), {}) and not has_class
"""

from __future__ import annotations

import re
from typing import Any

# group 1/2: a string in single/double quotes; 3: a number; 4: a name; 5: punctuation.
# Numbers as repr() writes them: no leading zeros, no underscores, at most 18 digits
# before the point (larger ints, and any digit-like tail, are left to compile()).
_TOKEN = re.compile(
    r"""[ \t]*(?:'([^'\\\n\r]*)'|"([^"\\\n\r]*)"|"""
    r"""(-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,5})?)(?![\w.])|"""
    r"""(True|False|None)(?!\w)|([()\[\]{},:]))"""
)
_NAMES = {"True": True, "False": False, "None": None}
_MAX_DEPTH = 40  # compile() refuses deep nesting with its own error: let it


class Unsupported(Exception):
    """The text is not in the subset ``parse`` reads (which says nothing about its validity)."""


def parse(text: str, pos: int) -> tuple[Any, bool]:
    """The value of the literal in ``text[pos:]`` and whether a dict in it has a
    ``"__class__"`` key; raises ``Unsupported`` (see the module docstring)."""
    match = _TOKEN.match
    has_class = False

    def value(m: re.Match[str] | None, depth: int) -> tuple[Any, int]:
        if m is None:
            raise Unsupported
        kind = m.lastindex
        end = m.end()
        if kind == 1 or kind == 2:
            return m.group(kind), end
        if kind == 3:
            number = m.group(3)
            if "." in number or "e" in number or "E" in number:
                return float(number), end
            return int(number), end
        if kind == 4:
            return _NAMES[m.group(4)], end
        punct = m.group(5)
        if depth > _MAX_DEPTH:
            raise Unsupported
        if punct == "(":
            items, end, comma = sequence(end, ")", depth)
            if len(items) == 1 and not comma:
                return items[0], end  # "(x)" is x itself
            return tuple(items), end
        if punct == "[":
            return sequence(end, "]", depth)[:2]
        if punct == "{":
            return braces(end, depth)
        raise Unsupported

    def sequence(pos: int, closer: str, depth: int) -> tuple[list[Any], int, bool]:
        items: list[Any] = []
        comma = False
        while True:
            m = match(text, pos)
            if m is not None and m.group(5) == closer:
                return items, m.end(), comma
            item, pos = value(m, depth + 1)
            items.append(item)
            m = match(text, pos)
            if m is None:
                raise Unsupported
            punct = m.group(5)
            if punct == closer:
                return items, m.end(), comma
            if punct != ",":
                raise Unsupported
            comma = True
            pos = m.end()

    def braces(pos: int, depth: int) -> tuple[Any, int]:
        nonlocal has_class
        m = match(text, pos)
        if m is not None and m.group(5) == "}":
            return {}, m.end()
        first, pos = value(m, depth + 1)
        m = match(text, pos)
        if m is None:
            raise Unsupported
        punct = m.group(5)
        if punct == "}":
            return {first}, m.end()
        if punct == ",":
            members, pos, _ = sequence(m.end(), "}", depth)
            return {first, *members}, pos
        if punct != ":":
            raise Unsupported
        result: dict[Any, Any] = {}
        key = first
        while True:
            if key == "__class__" and type(key) is str:
                has_class = True
            item, pos = value(match(text, m.end()), depth + 1)
            result[key] = item
            m = match(text, pos)
            if m is None:
                raise Unsupported
            punct = m.group(5)
            if punct == "}":
                return result, m.end()
            if punct != ",":
                raise Unsupported
            m = match(text, m.end())
            if m is not None and m.group(5) == "}":
                return result, m.end()
            key, pos = value(m, depth + 1)
            m = match(text, pos)
            if m is None or m.group(5) != ":":
                raise Unsupported

    try:
        result, end = value(match(text, pos), 0)
    except (TypeError, RecursionError):
        raise Unsupported from None  # an unhashable key or set member: compile()'s way says so
    if end != len(text):
        raise Unsupported  # trailing text, e.g. "1, 2" (a tuple without parentheses) or junk
    return result, has_class
