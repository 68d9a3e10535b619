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

# One findall() splits the text into tokens (C speed), each a string: punctuation, a string with
# its quotes, a number or a name.  Any other character is matched outside the group, so it comes
# out as "" (which makes the text Unsupported).  Punctuation is tried first (the most common
# token) and there is one group, so findall() builds no tuples.  Numbers as repr() writes them:
# no leading zeros, no underscores, at most 4,000 digits before the point (longer ints, and any
# digit-like tail, are left to compile()).
_ESCAPE = r"""\\(?:[\\'"abfnrtv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"""
_TOKENS = re.compile(
    r"""[ \t]*(?:([()\[\]{},:]|'[^'\\\n\r]*(?:"""
    + _ESCAPE
    + r"""[^'\\\n\r]*)*'|"[^"\\\n\r]*(?:"""
    + _ESCAPE
    + r"""[^"\\\n\r]*)*"|"""
    r"""-?(?:0|[1-9][0-9]{0,3999})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,5})?(?![\w.])|"""
    r"""(?:True|False|None)(?!\w))|.)""",
    re.S,
)
_NAMES = {"True": True, "False": False, "None": None}
# what a token's first character says it is: 1 string, 2 number, 3 name, 4-6 an opening bracket
_KINDS = {"'": 1, '"': 1, "-": 2, "T": 3, "F": 3, "N": 3, "(": 4, "[": 5, "{": 6}
_KINDS.update(dict.fromkeys("0123456789", 2))
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
_END = ""  # what the token list ends with: no token at all (like any character no token matched)


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


def _value(tokens: list[str], at: int, depth: int, found: list[bool]) -> tuple[Any, int]:
    """The value whose first token is ``tokens[at]``, and the index of the token after it."""
    token = tokens[at]
    kind = _KINDS.get(token[:1])
    if kind == 1:
        text = token[1:-1]
        if "\\" in text:
            text = _UNESCAPE.sub(_unescaped, text)
        return text, at + 1
    if kind == 2:
        if "." in token or "e" in token or "E" in token:
            return float(token), at + 1
        try:
            return int(token), at + 1
        except ValueError:  # longer than sys.get_int_max_str_digits() allows: compile() says so
            raise Unsupported from None
    if kind == 3:
        return _NAMES[token], at + 1
    if kind is None or depth > _MAX_DEPTH:
        raise Unsupported  # a closing bracket, a comma or a colon where a value must be, or junk
    if kind == 4:
        items, at, comma = _sequence(tokens, at + 1, ")", depth, found)
        if len(items) == 1 and not comma:
            return items[0], at  # "(x)" is x itself
        return tuple(items), at
    if kind == 5:
        items, at, _ = _sequence(tokens, at + 1, "]", depth, found)
        return items, at
    return _braces(tokens, at + 1, depth, found)


def _sequence(tokens: list[str], at: int, closer: str, depth: int, found: list[bool]) -> tuple[list[Any], int, bool]:
    """Items up to ``closer`` (a trailing comma allowed); also says whether a comma was seen."""
    items: list[Any] = []
    comma = False
    while True:
        token = tokens[at]
        if token == closer:
            return items, at + 1, comma
        first = token[:1]
        if (first == "'" or first == '"') and "\\" not in token:
            items.append(token[1:-1])  # a plain string, the most common item: read right here
            at += 1
        else:
            item, at = _value(tokens, at, depth + 1, found)
            items.append(item)
        punct = tokens[at]
        if punct == closer:
            return items, at + 1, comma
        if punct != ",":
            raise Unsupported
        comma = True
        at += 1


def _braces(tokens: list[str], at: int, depth: int, found: list[bool]) -> tuple[Any, int]:
    """A dict or a set, from the token after its ``{``."""
    if tokens[at] == "}":
        return {}, at + 1
    first, at = _value(tokens, at, depth + 1, found)
    punct = tokens[at]
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
        punct = tokens[at]
        if punct == "}":
            return result, at + 1
        if punct != ",":
            raise Unsupported
        if tokens[at + 1] == "}":
            return result, at + 2
        key, at = _value(tokens, at + 1, depth + 1, found)
        if tokens[at] != ":":
            raise Unsupported
