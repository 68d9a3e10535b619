"""The serpent serializer (wire id 1, pyrite's default), compatible with Pyro5's.

Serpent writes Python literal syntax that ``ast.literal_eval`` reads back, so
loading never runs code.  A call is the tuple ``(object id, method, vargs,
kwargs)``.  Output is what ``serpent.dumps(..., module_in_classname=True)``
writes, with pyrite's protocol classes under their Pyro5 names.

Bytes: by default serpent writes ``bytes``/``bytearray``/``memoryview`` as
``{"data": <base64 text>, "encoding": "base64"}``, and, exactly as in Pyro5,
the receiver gets that dict (``serpent.tobytes(value)`` turns it back into
bytes, and passes real bytes through).  With ``config.SERPENT_BYTES_REPR``
true on the *sending* side, bytes are written as ``b'...'`` literals and arrive
as ``bytes``.

Other types follow serpent: ``uuid.UUID``, ``decimal.Decimal``, ``datetime``
values and ``datetime.time`` as strings, ``timedelta`` as seconds, sets and
frozensets as set literals (an empty one as ``()``), ``array.array`` as a
list, enums as their value, float NaN as ``{"__class__": "float", "value":
"nan"}`` (rebuilt on loading, as is serpent's complex-with-NaN dict).
"""

from __future__ import annotations

import ast
import binascii
import gc
import re
from collections.abc import Callable
from typing import Any

import serpent
from pyrite.core.config import config
from pyrite.core.errors import PyroError, SerializeError

from . import converters
from .base import SerializerBase
from .serpent_bulk import BULK_FROM, join_parts, plain_repr, reduce, restore_tree
from .serpent_small import Unsupported
from .serpent_small import parse as parse_small

HEADER = "# serpent utf-8 python3.2\n"

# counting a batch's calls without parsing it (batch_calls_at_least): string literals and comments go,
# then the innermost bracket groups, pass by pass, until the call list holds only commas
_STRINGS_AND_COMMENTS = re.compile(rb"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|#[^\n]*""", re.S)
_INNERMOST = re.compile(rb"[(\[{][^()\[\]{}]*[)\]}]")
_BATCH_SHAPE = re.compile(rb"[^()\[\]{}]*\([^()\[\]{}]*\[([^()\[\]{}]*)\][^()\[\]{}]*\)\s*")
_BATCH_PASSES = 8  # calls nested deeper than this are not counted (0: unknown; the parse decides)
_MIN_CALL_BYTES = 8  # no serialized call is shorter, with its comma

_REPR_TYPES = frozenset({str, int, bool, type(None)})
# Text is read without compile() when it can be (serpent_small): about 2x faster than compile()
# at every size measured and, for large data, a fifth of the memory (a 7 MB list of ints: 180 MB
# against 940 MB).  Above _SMALL_PLAIN, only text with no line break after the header is tried
# (serpent never writes one otherwise: such text is outside the subset, so tokenizing it is waste).
_SMALL_UPTO = 256 * 1024 * 1024
# What is left to compile() (data outside serpent_small's subset: complex numbers, comments, line
# breaks, ints of more than 4,000 digits) costs about 1 KB of memory per item: 10 MB of such text
# took 4 GB and 30 s.  Beyond this many items (commas and colons, counted) it is refused.
COMPILE_MAX_ITEMS = 200_000
_SMALL_PLAIN = 16 * 1024
_BLANKS = (" ", "\t")
_BYTES_TYPES = frozenset({bytes, bytearray, memoryview})
_SIMPLE_TYPES = frozenset({int, bool, type(None)})  # their repr() is what serpent writes
_translate_bytes = serpent._translate_byte_type
_b2a_base64 = binascii.b2a_base64  # what base64.b64encode calls

Hook = Callable[[serpent.Serializer, Any, list[str], int], None]


class _Writer(serpent.Serializer):
    """One serialization run.  Basic types are written here directly; pyrite's hooks come
    next; anything else goes through serpent's own rules (incl. ``serpent.register_class``)."""

    def __init__(self, hook_for: Callable[[type], Hook | None], bytes_repr: bool) -> None:
        # serpent's __init__ is skipped on purpose: it has nothing we need per call
        self.indent = False
        self.module_in_classname = True
        self.bytes_repr = bytes_repr
        self.serialized_obj_ids: set[int] = set()
        self.special_classes_registry_copy = None
        self.maximum_level = _MAX_LEVEL
        self._hook_for = hook_for
        self._bulk = False  # True once ``out`` holds a bytes part

    def serialize(self, obj: Any) -> bytes:
        out: list[Any] = [HEADER]  # str, and bytes for large values (see _bulk)
        self._bulk = False
        self._serialize(obj, out, 0)
        if self._bulk:
            return join_parts(out)
        return "".join(out).encode("utf-8")

    def _serialize(self, obj: Any, out: list[str], level: int) -> None:
        t = type(obj)
        if t in _REPR_TYPES:
            if t is str and len(obj) >= BULK_FROM:
                raw = plain_repr(obj)
                if raw is not None:
                    parts: list[Any] = out  # str and bytes parts: see serialize
                    parts += ("'", raw, "'")
                    self._bulk = True
                    return
            out.append(repr(obj))
            return
        container = _CONTAINERS.get(t)
        if container is not None:
            if level > self.maximum_level:
                raise ValueError("Object graph nesting too deep.")
            container(self, obj, out, level)
            return
        if t in _BYTES_TYPES:
            if self.bytes_repr:
                out.append(_translate_bytes(t, obj, True))
                return
            # what serpent writes (the repr of {"data": base64, "encoding": "base64"}),
            # without repr() going over the base64 text, which never needs escapes
            encoded = _b2a_base64(obj, newline=False)
            if len(encoded) >= BULK_FROM:
                bulk: list[Any] = out  # str and bytes parts: see serialize
                bulk += ("{'data': '", encoded, "', 'encoding': 'base64'}")
                self._bulk = True
            else:
                out += ("{'data': '", encoded.decode("ascii"), "', 'encoding': 'base64'}")
            return
        hook = self._hook_for(t)
        if hook is not None:
            if level > self.maximum_level:
                raise ValueError("Object graph nesting too deep.")
            hook(self, obj, out, level)
            return
        if self.special_classes_registry_copy is None:
            # serpent's own class registry, copied as serpent does, for thread safety
            self.special_classes_registry_copy = serpent._special_classes_registry.copy()
        serpent.Serializer._serialize(self, obj, out, level)

    # serpent's own container writers, with the items that need no more than repr() (the most
    # common ones) written right here instead of through _serialize: the same text, byte for byte.

    def ser_builtins_tuple(self, tuple_obj: tuple[Any, ...], out: list[str], level: int) -> None:  # noqa: D102
        append = out.append
        append("(")
        self._items(tuple_obj, out, level + 1)
        if len(tuple_obj) > 1:
            del out[-1]  # the last ","
        append(")")

    def ser_builtins_list(self, list_obj: list[Any], out: list[str], level: int) -> None:  # noqa: D102
        ids = self.serialized_obj_ids
        key = id(list_obj)
        if key in ids:
            raise ValueError("Circular reference detected (list)")
        ids.add(key)
        out.append("[")
        self._items(list_obj, out, level + 1)
        if list_obj:
            del out[-1]  # the last ","
        out.append("]")
        ids.discard(key)

    def ser_builtins_dict(self, dict_obj: dict[Any, Any], out: list[str], level: int) -> None:  # noqa: D102
        ids = self.serialized_obj_ids
        ident = id(dict_obj)
        if ident in ids:
            raise ValueError("Circular reference detected (dict)")
        ids.add(ident)
        append = out.append
        serialize = self._serialize
        inner = level + 1
        append("{")
        for key, value in dict_obj.items():
            t = type(key)
            if t is str and len(key) < BULK_FROM:
                append(repr(key))
            else:
                self._check_hashable_type(t)
                serialize(key, out, inner)
            append(":")
            t = type(value)
            if t in _SIMPLE_TYPES or (t is str and len(value) < BULK_FROM):
                append(repr(value))
            else:
                serialize(value, out, inner)
            append(",")
        if dict_obj:
            del out[-1]  # the last ","
        append("}")
        ids.discard(ident)

    def _items(self, items: Any, out: list[str], level: int) -> None:
        """Each of ``items`` followed by a comma."""
        append = out.append
        serialize = self._serialize
        for item in items:
            t = type(item)
            if t in _SIMPLE_TYPES or (t is str and len(item) < BULK_FROM):
                append(repr(item))
            else:
                serialize(item, out, level)
            append(",")


# the container types and their writers (serpent's, or _Writer's own where it has one)
_CONTAINERS = {
    t: getattr(_Writer, serpent.Serializer.dispatch[t].__name__)
    for t in (float, complex, tuple, list, dict, set, frozenset)
}


def _dict_hook(converter: Callable[[Any], dict[str, Any]]) -> Hook:
    def write(writer: serpent.Serializer, obj: Any, out: list[str], level: int) -> None:
        writer.ser_builtins_dict(converter(obj), out, level)

    return write


def _replacement_hook(replace: Callable[[Any], Any], same: Hook | None) -> Hook:
    def write(writer: serpent.Serializer, obj: Any, out: list[str], level: int) -> None:
        new = replace(obj)
        if new is not obj:
            writer._serialize(new, out, level)
        elif same is not None:
            same(writer, obj, out, level)
        else:
            writer.ser_default_class(obj, out, level)

    return write


class SerpentSerializer(SerializerBase):
    """serpent, as Pyro5 writes and reads it."""

    name = "serpent"
    serializer_id = 1

    def __init__(self) -> None:
        super().__init__()
        self._hooks: dict[type, Hook | None] = {}
        self._hooks_generation = -1

    def _hook_for(self, t: type) -> Hook | None:
        """pyrite's writer for a type serpent does not handle itself (cached per type)."""
        hooks = self._hooks
        if self._hooks_generation != converters.generation:
            hooks = self._hooks = {}
            self._hooks_generation = converters.generation
        try:
            return hooks[t]
        except KeyError:
            hook = hooks[t] = self._resolve_hook(t)
            return hook

    def _resolve_hook(self, t: type) -> Hook | None:
        converter = converters.custom_class_to_dict(t, serpent=True) or converters.protocol_class_to_dict(t)
        plain = _dict_hook(converter) if converter is not None else None
        replace = self._replacement_for(t)
        if replace is not None:
            return _replacement_hook(replace, plain)
        return plain

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        return _Writer(self._hook_for, config.SERPENT_BYTES_REPR).serialize((obj, method, vargs, kwargs))

    def dumps(self, data: Any) -> bytes:
        return _Writer(self._hook_for, config.SERPENT_BYTES_REPR).serialize(data)

    def batch_calls_at_least(self, data: bytes | bytearray | memoryview, limit: int) -> int:
        """How many calls a serialized batch call holds at least, found with a few regex passes
        instead of a parse (0 when unknown); for refusing one over MAX_BATCH_CALLS cheaply."""
        if len(data) < _MIN_CALL_BYTES * limit:
            return 0  # too short to hold more than ``limit`` calls
        text = _STRINGS_AND_COMMENTS.sub(b"", data)
        for _ in range(_BATCH_PASSES):
            shape = _BATCH_SHAPE.fullmatch(text)
            if shape is not None:
                return shape.group(1).count(b",")  # one fewer than the calls (as many if one trails)
            text = _INNERMOST.sub(b"", text)
        return 0

    def _parse(self, data: bytes | bytearray | memoryview) -> Any:
        if len(data) >= BULK_FROM:
            raw = data if type(data) is bytes else bytes(data)
            if b"\x00" not in raw:
                try:
                    reduced = reduce(raw)
                except UnicodeDecodeError:
                    reduced = None  # let the plain path report it
                if reduced is not None:
                    rest, strings = reduced
                    try:
                        tree = self._compile(rest)
                    except SyntaxError:
                        tree = None  # broken data: the plain path reports it (with its positions)
                    if tree is not None and restore_tree(tree, strings):
                        return _Reader(self.dict_to_class).value(tree.body, True)
        text = str(data, "utf-8")
        if "\x00" in text:
            raise SerializeError("serpent data contains 0-bytes")
        text = text.lstrip(" \t")
        size = len(text)
        if size <= _SMALL_UPTO:
            start = len(HEADER) if text.startswith(HEADER) else 0
            if text[start : start + 1] not in _BLANKS and (  # compile() refuses an indented value
                size <= _SMALL_PLAIN or text.find("\n", start) < 0
            ):
                try:
                    value, has_class = parse_small(text, start)
                except Unsupported:
                    pass  # not in the plain subset: compile() decides
                else:
                    return self._recreate(value) if has_class else value
        tree = self._compile(text)
        return _Reader(self.dict_to_class).value(tree.body, True)

    @staticmethod
    def _compile(text: str) -> Any:
        items = text.count(",") + text.count(":")  # an upper bound of the items (C speed)
        if items > COMPILE_MAX_ITEMS:
            raise SerializeError(
                f"serpent data with about {items} items outside the plain subset serpent_small reads: "
                f"too costly to parse (compile() takes about 1 KB per item; at most {COMPILE_MAX_ITEMS})"
            )
        # the parser makes many short-lived objects; pausing the collector (as serpent
        # does) makes loading much faster.  Leave it alone if the application turned it off.
        if gc.isenabled():
            gc.disable()
            try:
                return _compile(text, "<serpent>", "eval", _ONLY_AST)
            finally:
                gc.enable()
        return _compile(text, "<serpent>", "eval", _ONLY_AST)

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        try:
            return self._call_tuple(self._parse(data))
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            return self._parse(data)
        except PyroError:
            raise  # as it is: ``raise exc from exc`` would make it its own cause, a cycle
        except Exception as x:
            raise self._load_error(x) from x

    @classmethod
    def dict_to_class(cls, data: dict[str, Any]) -> Any:
        """Also rebuilds serpent's own NaN forms of float and complex."""
        classname = data.get("__class__")
        if classname == "float":
            value = data.get("value")
            if not isinstance(value, str):
                raise SerializeError("invalid serpent float")
            return float(value)
        if classname == "complex":
            return complex(_float_part(data.get("real")), _float_part(data.get("imag")))
        return super().dict_to_class(data)


def _float_part(value: Any) -> float:
    if type(value) is dict and value.get("__class__") == "float" and isinstance(value.get("value"), str):
        return float(value["value"])
    if type(value) in (int, float):
        return float(value)
    raise SerializeError("invalid serpent complex")


_MAX_LEVEL = serpent.Serializer().maximum_level

_compile = compile
_ONLY_AST = ast.PyCF_ONLY_AST
_Constant = ast.Constant
_Tuple = ast.Tuple
_List = ast.List
_Dict = ast.Dict
_Set = ast.Set
_NUMBERS = (int, float, complex)


class _Reader:
    """Turns the syntax tree of a Python literal into its value, exactly what
    ``ast.literal_eval`` accepts, and rebuilds class dicts top-down in the same pass
    (the contents of a class dict are handed to its converter as plain data, as Pyro5 does)."""

    __slots__ = ("to_object",)

    def __init__(self, to_object: Callable[[dict[str, Any]], Any]) -> None:
        self.to_object = to_object

    def value(self, node: Any, recreate: bool) -> Any:
        # ``node`` is an ast.AST; typed Any because it is told apart by ``type(node) is ...``
        # (quicker than isinstance on this hot path), which mypy does not narrow.
        t = type(node)
        if t is _Constant:
            return node.value
        value = self.value
        if t is _Tuple or t is _List:
            items = [n.value if type(n) is _Constant else value(n, recreate) for n in node.elts]
            return tuple(items) if t is _Tuple else items
        if t is _Dict:
            keys = node.keys
            is_class = recreate and any(type(k) is _Constant and k.value == "__class__" for k in keys)
            inner = recreate and not is_class
            result: dict[Any, Any] = {}
            for k, v in zip(keys, node.values):
                if k is None:
                    raise ValueError("malformed serpent data: dict unpacking")
                result[k.value if type(k) is _Constant else value(k, False)] = (
                    v.value if type(v) is _Constant else value(v, inner)
                )
            return self.to_object(result) if is_class else result
        if t is _Set:
            return {n.value if type(n) is _Constant else value(n, False) for n in node.elts}
        if t is ast.UnaryOp and type(node.op) in (ast.USub, ast.UAdd):
            operand = node.operand
            number: Any = operand.value if type(operand) is _Constant else None
            if type(number) in _NUMBERS:
                return -number if type(node.op) is ast.USub else +number
        elif t is ast.BinOp and type(node.op) in (ast.Add, ast.Sub):
            left = value(node.left, False)
            right = node.right
            if (
                type(left) in (int, float)
                and not isinstance(node.left, ast.BinOp)
                and type(right) is _Constant
                and type(right.value) is complex
            ):
                return left + right.value if type(node.op) is ast.Add else left - right.value
        elif (
            t is ast.Call
            and type(node.func) is ast.Name
            and node.func.id == "set"
            and not node.args
            and not node.keywords
        ):
            return set()
        raise ValueError(f"malformed serpent data: {type(node).__name__} is not a literal")
