"""``SerializerBase``: what every pyrite serializer shares, with Pyro5's API.

A serializer instance is shared by all threads of a process (the plugin
registry hands out one per class), so instances keep no per-call state.

Subclasses implement ``dumps``/``dumpsCall``/``loads``/``loadsCall`` and use:

* ``_converter_for(type)``: how to turn an object that the underlying library
  cannot write into something it can (type replacements first, then the
  subclass' own ``_convert_builtin`` rules, then ``class_to_dict``), cached per
  type;
* ``_recreate(value)``: turn the class dicts in freshly loaded data back into
  objects, top-down as Pyro5 does, without copying containers that hold none.

Example, a round trip with any serializer::

    from pyrite.core import plugins
    ser = plugins.get_serializer("json")
    assert ser.loads(ser.dumps({"a": [1, 2]})) == {"a": [1, 2]}
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from pyrite.core.errors import PyroError, SerializeError

from . import converters


class SerializerBase:
    """Base class of pyrite's serializers; subclasses must be thread safe.

    The class-dict registries are global to the process and shared by every
    serializer (``register_class_to_dict`` and friends are classmethods, as in
    Pyro5).  Type replacements are per serializer class.
    """

    name: ClassVar[str] = ""
    serializer_id: ClassVar[int] = 0
    _type_replacements: ClassVar[dict[type, Callable[[Any], Any]]] = {}
    # types the underlying library writes by itself (a replacement may return one as is)
    _native_types: ClassVar[frozenset[type]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._type_replacements = {}

    def __init__(self) -> None:
        self._converters: dict[type, Callable[[Any], Any]] = {}
        self._converters_generation = -1

    # ------------------------------------------------------------ the API

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        """Serialize a call request: object id, method name, positional and keyword arguments."""
        raise NotImplementedError(f"{type(self).__name__} must override this method")

    def loadsCall(self, data: bytes | bytearray | memoryview) -> tuple[str, str, Any, dict[str, Any]]:
        """Deserialize a call request into ``(object id, method, vargs, kwargs)``."""
        raise NotImplementedError(f"{type(self).__name__} must override this method")

    def dumps(self, data: Any) -> bytes:
        """Serialize any supported value."""
        raise NotImplementedError(f"{type(self).__name__} must override this method")

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        """Deserialize a value; malformed data raises ``SerializeError``."""
        raise NotImplementedError(f"{type(self).__name__} must override this method")

    @classmethod
    def register_type_replacement(cls, object_type: type, replacement_function: Callable[[Any], Any]) -> None:
        """Serialize instances of ``object_type`` (and subclasses) as ``replacement_function(obj)``.

        The daemon uses this to send registered objects as proxies (autoproxy).
        """
        if object_type is type or not inspect.isclass(object_type):
            raise ValueError(f"a type replacement needs a class other than 'type' itself, got {object_type!r}")
        with _replacement_lock:
            new = dict(cls._type_replacements)
            new[object_type] = replacement_function
            cls._type_replacements = new
            converters._bump()

    @classmethod
    def unregister_type_replacement(cls, object_type: type) -> None:
        """Forget a replacement registered with ``register_type_replacement`` (pyrite addition)."""
        with _replacement_lock:
            if object_type in cls._type_replacements:
                new = dict(cls._type_replacements)
                del new[object_type]
                cls._type_replacements = new
                converters._bump()

    @classmethod
    def register_class_to_dict(
        cls, clazz: type, converter: Callable[[Any], dict[str, Any]], serpent_too: bool = True
    ) -> None:
        """Serialize instances of ``clazz`` as the dict ``converter(obj)`` returns (all serializers)."""
        converters.register_class_to_dict(clazz, converter, serpent_too)

    @classmethod
    def unregister_class_to_dict(cls, clazz: type) -> None:
        """Forget the to-dict converter of ``clazz``."""
        converters.unregister_class_to_dict(clazz)

    @classmethod
    def register_dict_to_class(cls, classname: str, converter: Callable[[str, dict[str, Any]], Any]) -> None:
        """Rebuild dicts tagged ``"__class__": classname`` with ``converter(classname, data)``."""
        converters.register_dict_to_class(classname, converter)

    @classmethod
    def unregister_dict_to_class(cls, classname: str) -> None:
        """Forget the from-dict converter of ``classname``."""
        converters.unregister_dict_to_class(classname)

    @classmethod
    def class_to_dict(cls, obj: Any) -> dict[str, Any]:
        """``obj`` as a dict with ``"__class__"``: a registered converter, a protocol class,
        an exception, or the object's state."""
        return converters.class_to_dict(obj)

    @classmethod
    def dict_to_class(cls, data: dict[str, Any]) -> Any:
        """Rebuild an object from a class dict; only registered and protocol classes are accepted."""
        return converters.dict_to_class(data)

    @staticmethod
    def make_exception(exception_type: type[BaseException], data: dict[str, Any]) -> BaseException:
        """Rebuild an exception of a known type from its class dict (args and attributes)."""
        return converters.make_exception(exception_type, data)

    def to_serializable(self, obj: Any) -> Any:
        """What to write instead of ``obj``, a value this serializer cannot write by itself.

        Applies, in order: a type replacement (e.g. autoproxy), a registered
        class-to-dict converter, the serializer's own rules for types such as
        ``uuid.UUID``, the protocol classes (URI, Proxy, errors) and finally the
        object's state as a class dict.  Third-party serializers call this from
        their "default" hook.
        """
        return self._converter_for(type(obj))(obj)

    def recreate_classes(self, literal: Any) -> Any:
        """Turn every class dict inside ``literal`` back into its object (Pyro5's name)."""
        return self._recreate(literal)

    # ------------------------------------------------------------ for subclasses

    def _builtin_converter(self, t: type) -> Callable[[Any], Any] | None:
        """Hook: this serializer's own conversion for a type its library cannot write, or None."""
        return None

    def _converter_for(self, t: type) -> Callable[[Any], Any]:
        """How to make an instance of ``t`` writable, cached per type."""
        cache = self._converters
        if self._converters_generation != converters.generation:
            cache = self._converters = {}
            self._converters_generation = converters.generation
        fn = cache.get(t)
        if fn is None:
            fn = cache[t] = self._resolve_converter(t)
        return fn

    def _replacement_for(self, t: type) -> Callable[[Any], Any] | None:
        replacements = self._type_replacements
        if replacements:
            for base in t.__mro__:
                fn = replacements.get(base)
                if fn is not None:
                    return fn
        return None

    def _plain_converter_for(self, t: type) -> Callable[[Any], Any]:
        """The conversion of ``t`` ignoring type replacements: a user converter, this
        serializer's own rule, a protocol class, or the object's state."""
        return (
            converters.custom_class_to_dict(t)
            or self._builtin_converter(t)
            or converters.protocol_class_to_dict(t)
            or converters.generic_to_dict
        )

    def _resolve_converter(self, t: type) -> Callable[[Any], Any]:
        plain = self._plain_converter_for(t)
        replace = self._replacement_for(t)
        if replace is None:
            return plain
        native = self._native_types
        plain_for = self._plain_converter_for

        def replaced(obj: Any) -> Any:
            new = replace(obj)
            if new is obj:
                return plain(obj)
            if type(new) in native:
                return new
            return plain_for(type(new))(new)

        return replaced

    def _recreate(self, value: Any) -> Any:
        """Rebuild class dicts top-down, in place: loaded data is ours to change."""
        t = type(value)
        if t is dict:
            if "__class__" in value:
                return self.dict_to_class(value)
            recreate = self._recreate
            for key, item in value.items():
                ti = type(item)
                if ti is dict or ti is list or ti is tuple:
                    new = recreate(item)
                    if new is not item:
                        value[key] = new
            return value
        if t is list:
            recreate = self._recreate
            for index, item in enumerate(value):
                ti = type(item)
                if ti is dict or ti is list or ti is tuple:
                    new = recreate(item)
                    if new is not item:
                        value[index] = new
            return value
        if t is tuple:
            recreate = self._recreate
            items: list[Any] | None = None
            for index, item in enumerate(value):
                ti = type(item)
                if ti is dict or ti is list or ti is tuple:
                    new = recreate(item)
                    if new is not item:
                        if items is None:
                            items = list(value)
                        items[index] = new
            return value if items is None else tuple(items)
        return value

    def _load_error(self, exc: Exception) -> PyroError:
        if isinstance(exc, PyroError):
            return exc
        return SerializeError(f"invalid {self.name or type(self).__name__} data: {type(exc).__name__}: {exc}")

    @staticmethod
    def _call_tuple(call: Any) -> tuple[str, str, Any, dict[str, Any]]:
        if type(call) not in (tuple, list) or len(call) != 4:
            raise SerializeError("invalid call request: not a 4-item sequence")
        obj, method, vargs, kwargs = call
        if kwargs is None:
            kwargs = {}  # Pyro5 proxies send None for __getattr__/__setattr__ calls and batches
        elif type(kwargs) is not dict:
            raise SerializeError("invalid call request: kwargs is not a dict")
        return obj, method, vargs, kwargs

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} {self.name!r} id={self.serializer_id}>"


_replacement_lock = threading.Lock()


_find_classkey = re.compile(rb"__class__").search


def has_classkey(data: bytes | bytearray | memoryview) -> bool:
    """True if ``__class__`` occurs in the raw data: without it no class dict can be in there."""
    if isinstance(data, (bytes, bytearray)):
        return data.find(b"__class__") >= 0  # find() is much quicker than the "in" operator here
    return _find_classkey(data) is not None  # searches a memoryview without copying it
