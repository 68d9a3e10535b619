r"""Reading small serpent data without ``compile()``: ``parse(text, pos)``.

``compile()`` has a fixed cost of about 15 µs (tokenizer, parser, syntax tree)
that dominates small calls such as ``('obj','ping',(42,),{})``.  ``parse``
reads the plain subset of literal syntax that serpent writes for everyday
data, from the tokens one ``findall()`` splits it into: strings (with the escapes
``repr()`` writes: ``\\ \' \" \n \r \t``, ``\xhh``, ``\uhhhh``, ``\Uhhhhhhhh``, and
``\a \b \f \v``), ints, floats, ``True``/``False``/``None``, tuples, lists, dicts
and sets, with spaces or tabs between tokens.  For anything else (other escapes,
bytes, complex numbers, comments, line breaks, adjacent literals, unhashable set
members or keys, deep nesting) it raises ``Unsupported`` and the caller compiles
the text as before, so both ways give the same value and the same errors.

Example::

    value, has_class = parse("('obj','ping',(42,),{})", 0)
    assert value == ("obj", "ping", (42,), {}) and not has_class
"""

from __future__ import annotations

import re
from typing import Any

# One findall() splits the text into tokens (C speed); each token is a tuple of the groups:
# 1/2: a string with its quotes (so that '' is told from no match), 3: a number, 4: a name,
# 5: punctuation, 6: any other character (which makes the text Unsupported).  Numbers as
# repr() writes them: no leading zeros, no underscores, at most 4,000 digits before the point
# (longer ints, and any digit-like tail, are left to compile()).
_ESCAPE = r"""\\(?:[\\'"abfnrtv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"""
_TOKENS = re.compile(
    r"""[ \t]*(?:('[^'\\\n\r]*(?:"""
    + _ESCAPE
    + r"""[^'\\\n\r]*)*')|("[^"\\\n\r]*(?:"""
    + _ESCAPE
    + r"""[^"\\\n\r]*)*")|"""
    r"""(-?(?:0|[1-9][0-9]{0,3999})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,5})?)(?![\w.])|"""
    r"""(True|False|None)(?!\w)|([()\[\]{},:])|(.))""",
    re.S,
)
_NAMES = {"True": True, "False": False, "None": None}
# The escapes a string token may hold (the ones repr() writes, and the other one-letter ones):
_UNESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))", re.S)
_SIMPLE_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_MAX_DEPTH = 40  # compile() refuses deep nesting with its own error: let it
_END = ("", "", "", "", "", "")  # what the token list ends with: no token at all


class Unsupported(Exception):
    """The text is not in the subset ``parse`` reads (which says nothing about its validity)."""


def parse(text: str, pos: int) -> tuple[Any, bool]:
    """The value of the literal in ``text[pos:]`` and whether a dict in it has a
    ``"__class__"`` key; raises ``Unsupported`` (see the module docstring)."""
    tokens = _TOKENS.findall(text, pos)
    tokens.append(_END)
    found: list[bool] = []  # gets an item when a class dict is seen
    try:
        value, at = _value(tokens, 0, 0, found)
    except (TypeError, RecursionError, IndexError):
        raise Unsupported from None  # e.g. an unhashable key or set member: compile()'s way says so
    if at != len(tokens) - 1:
        raise Unsupported  # more after the value, e.g. "1, 2" (a tuple without parentheses), or junk
    return value, bool(found)


def _unescaped(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2) or match.group(3)
    if code is None:
        return _SIMPLE_ESCAPES[match.group(4)]
    number = int(code, 16)
    if number > 0x10FFFF:
        raise Unsupported  # compile() refuses it, with its own error
    return chr(number)


def _value(tokens: list[tuple[str, ...]], at: int, depth: int, found: list[bool]) -> tuple[Any, int]:
    """The value whose first token is ``tokens[at]``, and the index of the token after it."""
    single, double, number, name, punct, other = tokens[at]
    if single or double:
        text = (single or double)[1:-1]
        if "\\" in text:
            text = _UNESCAPE.sub(_unescaped, text)
        return text, at + 1
    if number:
        if "." in number or "e" in number or "E" in number:
            return float(number), at + 1
        try:
            return int(number), at + 1
        except ValueError:  # longer than sys.get_int_max_str_digits() allows: compile() says so
            raise Unsupported from None
    if name:
        return _NAMES[name], at + 1
    if other or depth > _MAX_DEPTH or not punct:
        raise Unsupported
    if punct == "(":
        items, at, comma = _sequence(tokens, at + 1, ")", depth, found)
        if len(items) == 1 and not comma:
            return items[0], at  # "(x)" is x itself
        return tuple(items), at
    if punct == "[":
        items, at, _ = _sequence(tokens, at + 1, "]", depth, found)
        return items, at
    if punct == "{":
        return _braces(tokens, at + 1, depth, found)
    raise Unsupported


def _sequence(
    tokens: list[tuple[str, ...]], at: int, closer: str, depth: int, found: list[bool]
) -> tuple[list[Any], int, bool]:
    """Items up to ``closer`` (a trailing comma allowed); also says whether a comma was seen."""
    items: list[Any] = []
    comma = False
    while True:
        if tokens[at][4] == closer:
            return items, at + 1, comma
        item, at = _value(tokens, at, depth + 1, found)
        items.append(item)
        punct = tokens[at][4]
        if punct == closer:
            return items, at + 1, comma
        if punct != ",":
            raise Unsupported
        comma = True
        at += 1


def _braces(tokens: list[tuple[str, ...]], at: int, depth: int, found: list[bool]) -> tuple[Any, int]:
    """A dict or a set, from the token after its ``{``."""
    if tokens[at][4] == "}":
        return {}, at + 1
    first, at = _value(tokens, at, depth + 1, found)
    punct = tokens[at][4]
    if punct == "}":
        return {first}, at + 1
    if punct == ",":
        members, at, _ = _sequence(tokens, at + 1, "}", depth, found)
        return {first, *members}, at
    if punct != ":":
        raise Unsupported
    result: dict[Any, Any] = {}
    key = first
    while True:
        if key == "__class__" and type(key) is str:
            found.append(True)
        result[key], at = _value(tokens, at + 1, depth + 1, found)
        punct = tokens[at][4]
        if punct == "}":
            return result, at + 1
        if punct != ",":
            raise Unsupported
        if tokens[at + 1][4] == "}":
            return result, at + 2
        key, at = _value(tokens, at + 1, depth + 1, found)
        if tokens[at][4] != ":":
            raise Unsupported
