"""An example third-party pyrite serializer: Python literals, read back with ``ast.literal_eval``.

It shows the whole path a plugin takes: subclass ``SerializerBase``, pick an
unused one-byte ``serializer_id``, and declare an entry point in the
``pyrite.serializers`` group (see this project's pyproject.toml).

Writing: values are first turned into plain literals (str, int, float, bool,
None, bytes, complex, list, tuple, dict, set); anything else goes through
``SerializerBase.to_serializable`` (type replacements such as autoproxies,
registered converters, URIs, proxies, exceptions).  Then ``repr()`` does the
rest.  Reading: ``ast.literal_eval`` (never ``eval``), so a peer cannot make
this side run code, then ``recreate_classes`` for the class dicts.

Both ends of a connection need this plugin installed: pyrite and Pyro5 peers
without it answer with an error for serializer id 42.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from pyrite.core.errors import SerializeError
from pyrite.serializers import SerializerBase

__all__ = ["ReprSerializer"]

_ATOMS = frozenset({str, int, bool, type(None), bytes})


class ReprSerializer(SerializerBase):
    """Python literal syntax as the wire format (serializer id 42)."""

    name = "example-repr"
    serializer_id = 42  # not used by pyrite (1-5) or Pyro5 (1-4)

    def _literal(self, obj: Any) -> Any:
        t = type(obj)
        if t in _ATOMS:
            return obj
        if t is float:
            # repr(nan) and repr(inf) are not literals: send them as a tiny class dict
            return obj if math.isfinite(obj) else {"__class__": "float", "value": repr(obj)}
        if t is complex:
            if math.isfinite(obj.real) and math.isfinite(obj.imag):
                return obj
            return {"__class__": "complex", "real": repr(obj.real), "imag": repr(obj.imag)}
        literal = self._literal
        if t is list:
            return [literal(item) for item in obj]
        if t is tuple:
            return tuple(literal(item) for item in obj)
        if t is dict:
            return {literal(key): literal(value) for key, value in obj.items()}
        if t is set or t is frozenset:
            return {literal(item) for item in obj}
        converted = self.to_serializable(obj)
        if type(converted) is t:
            raise SerializeError(f"the example-repr serializer cannot write {t.__name__} values")
        return literal(converted)

    def dumps(self, data: Any) -> bytes:
        """The value as Python literal source, UTF-8 encoded."""
        return repr(self._literal(data)).encode("utf-8")

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        """A call as the literal tuple ``(object id, method, vargs, kwargs)``."""
        return self.dumps((obj, method, vargs, kwargs))

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        """Parse with ``ast.literal_eval`` and rebuild the class dicts."""
        try:
            text = str(data, "utf-8")
            if "\x00" in text:
                raise SerializeError("0-bytes in example-repr data")
            return self.recreate_classes(ast.literal_eval(text))
        except SerializeError:
            raise
        except Exception as x:
            raise SerializeError(f"invalid example-repr data: {x}") from x

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        """A call request back as ``(object id, method, vargs, kwargs)``."""
        call = self.loads(data)
        # kwargs may be None: Pyro5-style proxies send that for attribute access and batches
        if type(call) is not tuple or len(call) != 4 or not (call[3] is None or type(call[3]) is dict):
            raise SerializeError("invalid example-repr call request")
        return call if call[3] is not None else (call[0], call[1], call[2], {})

    @classmethod
    def dict_to_class(cls, data: dict) -> Any:
        """Also rebuilds the non-finite floats and complex numbers written above."""
        classname = data.get("__class__")
        try:
            if classname == "float":
                return float(data["value"])
            if classname == "complex":
                return complex(float(data["real"]), float(data["imag"]))
        except (KeyError, TypeError, ValueError):
            raise SerializeError(f"invalid {classname} in example-repr data") from None
        return super().dict_to_class(data)
