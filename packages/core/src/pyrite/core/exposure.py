"""What a daemon lets clients reach: ``expose``, ``oneway``, ``behavior``, ``callback``
and the inspection of exposed members.

Nothing is remotely reachable unless it is marked with ``@expose`` (a method,
a property, or a whole class, which marks the class's own public methods and
properties).  Private names (leading underscore) are never reachable, nor is
the short list of dunder names a proxy needs for itself (``__init__``,
``__getattr__``, ``__repr__``...); other dunder names such as ``__len__`` can
be exposed, as in Pyro5, so that ``len(proxy)`` works.

Example::

    @expose
    @behavior(instance_mode="single")
    class Counter:
        def __init__(self):
            self._n = 0

        def increment(self):          # exposed with the class
            self._n += 1

        @oneway
        def reset(self):              # the client does not wait for it
            self._n = 0

        @property
        def value(self):              # a remote attribute: proxy.value
            return self._n

The inspection results are cached per class; call ``reset_exposed_members``
(or ``Daemon.resetMetadataCache``) after changing a class at run time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "expose",
    "oneway",
    "behavior",
    "callback",
    "is_private_attribute",
    "get_exposed_members",
    "reset_exposed_members",
    "get_exposed_property_value",
    "set_exposed_property_value",
]

# Dunder names that are never remotely reachable: the machinery of objects and proxies.
_PRIVATE_DUNDERS = frozenset(
    (
        "__init__",
        "__init_subclass__",
        "__class__",
        "__module__",
        "__weakref__",
        "__call__",
        "__new__",
        "__del__",
        "__repr__",
        "__str__",
        "__format__",
        "__nonzero__",
        "__bool__",
        "__coerce__",
        "__cmp__",
        "__eq__",
        "__ne__",
        "__hash__",
        "__ge__",
        "__gt__",
        "__le__",
        "__lt__",
        "__dir__",
        "__enter__",
        "__exit__",
        "__copy__",
        "__deepcopy__",
        "__sizeof__",
        "__getattr__",
        "__setattr__",
        "__hasattr__",
        "__getattribute__",
        "__delattr__",
        "__instancecheck__",
        "__subclasscheck__",
        "__getinitargs__",
        "__getnewargs__",
        "__getstate__",
        "__setstate__",
        "__reduce__",
        "__reduce_ex__",
        "__subclasshook__",
        "__dict__",
        "__slots__",
        "__globals__",
        "__code__",
        "__closure__",
        "__builtins__",
    )
)

INSTANCE_MODES = ("session", "single", "percall")

# Bits of a method's entry in a dispatch table (see method_table).
METHOD_ONEWAY = 1
METHOD_CALLBACK = 2

_T = TypeVar("_T")


def is_private_attribute(attr_name: str) -> bool:
    """True if a name must never be remotely reachable.

    That is every name starting with an underscore, except ``__dunder__``
    names (longer than four characters) that are not in the protected list.
    """
    if attr_name in _PRIVATE_DUNDERS:
        return True
    if not attr_name.startswith("_"):
        return False
    if len(attr_name) > 4 and attr_name.startswith("__") and attr_name.endswith("__"):
        return False
    return True


def callback(method: _T) -> _T:
    """Mark a method as a callback: an exception it raises while a daemon serves
    it is also logged on this side (with its traceback), not only sent back to
    the caller."""
    method._pyroCallback = True  # type: ignore[attr-defined]
    return method


def oneway(method: _T) -> _T:
    """Mark a method as one-way: clients do not wait for it to finish, and it
    has no result.  The daemon runs it on its bounded oneway executor."""
    method._pyroOneway = True  # type: ignore[attr-defined]
    return method


def _mark_property(prop: Any) -> None:
    for func in (getattr(prop, "fget", None), getattr(prop, "fset", None), getattr(prop, "fdel", None)):
        if func is not None:
            func._pyroExposed = True


def expose(method_or_class: _T) -> _T:
    """Make a method, property or whole class remotely reachable.

    On a class it marks the class's own public methods and properties (not
    those it inherits).  Put ``@expose`` below ``@classmethod`` and
    ``@staticmethod``.  Exposing a private name raises AttributeError.
    """
    thing: Any = method_or_class
    if inspect.isdatadescriptor(thing):
        func = getattr(thing, "fget", None) or getattr(thing, "fset", None) or getattr(thing, "fdel", None)
        if func is None:
            raise AttributeError(f"@expose cannot determine what this is: {thing!r}")
        if is_private_attribute(func.__name__):
            raise AttributeError(f"@expose refuses private name {func.__name__!r} (it starts with an underscore)")
        func._pyroExposed = True
        return method_or_class
    name = getattr(thing, "__name__", None)
    if not name or isinstance(thing, (classmethod, staticmethod)):
        if isinstance(thing, (classmethod, staticmethod)) or inspect.ismethoddescriptor(thing):
            inner = getattr(thing, "__func__", None)
            inner_name = getattr(inner, "__name__", repr(thing))
            raise AttributeError(f"put @expose above @classmethod/@staticmethod, not below it (on {inner_name})")
        raise AttributeError(f"@expose cannot determine what this is: {thing!r}")
    if is_private_attribute(name):
        raise AttributeError(f"@expose refuses private name {name!r} (it starts with an underscore)")
    if inspect.isclass(thing):
        for member_name, member in list(vars(thing).items()):
            if is_private_attribute(member_name):
                continue
            # setattr: functions and classes take the mark at run time, but their types
            # declare no such attribute
            if isinstance(member, (classmethod, staticmethod)):
                setattr(member.__func__, "_pyroExposed", True)
            elif inspect.isfunction(member) or inspect.ismethoddescriptor(member):
                try:
                    setattr(member, "_pyroExposed", True)
                except (AttributeError, TypeError):
                    pass  # a builtin descriptor: cannot carry the mark
            elif inspect.isdatadescriptor(member):
                _mark_property(member)
        setattr(thing, "_pyroExposed", True)
        _forget(thing)
        return method_or_class
    setattr(thing, "_pyroExposed", True)
    return method_or_class


def behavior(
    instance_mode: str = "session", instance_creator: Callable[[type], Any] | None = None
) -> Callable[[type], type]:
    """Class decorator: how a daemon makes instances of a *registered class*.

    ``instance_mode`` is ``"session"`` (one instance per client connection,
    the default), ``"single"`` (one per daemon) or ``"percall"`` (a new one
    per call).  ``instance_creator(cls)`` makes an instance instead of
    ``cls()``.
    """
    if not isinstance(instance_mode, str):
        raise SyntaxError("use @behavior(...) with its arguments, not bare @behavior")
    if instance_mode not in INSTANCE_MODES:
        raise ValueError(f"instance_mode must be one of {sorted(INSTANCE_MODES)}, not {instance_mode!r}")
    if instance_creator is not None and not callable(instance_creator):
        raise TypeError(f"instance_creator must be callable, not {type(instance_creator).__name__}")

    def decorate(clazz: type) -> type:
        if not inspect.isclass(clazz):
            raise TypeError(f"@behavior applies to classes only, not to {clazz!r}")
        clazz._pyroInstancing = (instance_mode, instance_creator)  # type: ignore[attr-defined]
        return clazz

    return decorate


# (class, only_exposed) -> (methods, oneway, attrs) as frozensets
_members_cache: dict[tuple[type, bool], tuple[frozenset[str], frozenset[str], frozenset[str]]] = {}
# class -> {exposed method name: METHOD_* bits}; the daemon's per-call lookup
_method_tables: dict[type, dict[str, int]] = {}


def _forget(cls: type) -> None:
    _members_cache.pop((cls, True), None)
    _members_cache.pop((cls, False), None)
    _method_tables.pop(cls, None)


def reset_exposed_members(obj: Any = None) -> None:
    """Forget the cached inspection of ``obj``'s class (or of every class, with no argument)."""
    if obj is None:
        _members_cache.clear()
        _method_tables.clear()
        return
    _forget(obj if inspect.isclass(obj) else type(obj))


def _inspect(cls: type, only_exposed: bool) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    methods: set[str] = set()
    oneways: set[str] = set()
    attrs: set[str] = set()
    for name in dir(cls):  # includes inherited names
        if is_private_attribute(name):
            continue
        try:
            value = getattr(cls, name)
        except AttributeError:
            continue
        if inspect.ismethod(value) or inspect.isfunction(value) or inspect.ismethoddescriptor(value):
            if getattr(value, "_pyroExposed", not only_exposed):
                methods.add(name)
                if getattr(value, "_pyroOneway", False):
                    oneways.add(name)
        elif inspect.isdatadescriptor(value):
            func = getattr(value, "fget", None) or getattr(value, "fset", None) or getattr(value, "fdel", None)
            if func is not None and getattr(func, "_pyroExposed", not only_exposed):
                attrs.add(name)
        # plain class attributes are never exposed: make a property to publish a value
    return frozenset(methods), frozenset(oneways), frozenset(attrs)


def get_exposed_members(
    obj: Any, only_exposed: bool = True, as_lists: bool = False, use_cache: bool = True
) -> dict[str, Any]:
    """The remotely reachable members of an object's class (or of a class):
    ``{"methods": ..., "oneway": ..., "attrs": ...}``, sets of names (lists
    with ``as_lists``).  This is the metadata a proxy receives.

    ``only_exposed=False`` lists every public member instead.  The result of
    the inspection is cached per class unless ``use_cache`` is false; the
    returned containers are fresh and may be changed by the caller.
    """
    cls = obj if inspect.isclass(obj) else type(obj)
    key = (cls, only_exposed)
    found = _members_cache.get(key) if use_cache else None
    if found is None:
        found = _inspect(cls, only_exposed)
        if use_cache:
            _members_cache[key] = found
    kind: Callable[[Any], Any] = list if as_lists else set
    return {"methods": kind(found[0]), "oneway": kind(found[1]), "attrs": kind(found[2])}


def method_table(cls: type) -> dict[str, int]:
    """For dispatch: each exposed method name of ``cls`` mapped to its METHOD_* bits (cached)."""
    table = _method_tables.get(cls)
    if table is None:
        methods, oneways, _ = _members_cache.get((cls, True)) or _inspect(cls, True)
        table = {}
        for name in methods:
            bits = METHOD_ONEWAY if name in oneways else 0
            if getattr(getattr(cls, name, None), "_pyroCallback", False):
                bits |= METHOD_CALLBACK
            table[name] = bits
        _method_tables[cls] = table
    return table


def _exposed_property(obj: Any, propname: str, only_exposed: bool) -> Any:
    if not isinstance(propname, str) or is_private_attribute(propname):
        raise AttributeError(f"attempt to access private or invalid remote attribute {propname!r}")
    prop = getattr(type(obj), propname, None)
    if prop is None or not inspect.isdatadescriptor(prop):
        return None
    func = getattr(prop, "fget", None) or getattr(prop, "fset", None) or getattr(prop, "fdel", None)
    if func is None or not getattr(func, "_pyroExposed", not only_exposed):
        return None
    return prop


def get_exposed_property_value(obj: Any, propname: str, only_exposed: bool = True) -> Any:
    """The value of an exposed property of ``obj``; AttributeError for anything else."""
    prop = _exposed_property(obj, propname, only_exposed)
    if prop is not None and getattr(prop, "fget", None) is not None:
        return prop.fget(obj)
    raise AttributeError(f"attempt to access unexposed or unknown remote attribute '{propname}'")


def set_exposed_property_value(obj: Any, propname: str, value: Any, only_exposed: bool = True) -> Any:
    """Set an exposed, writable property of ``obj``; AttributeError for anything else."""
    prop = _exposed_property(obj, propname, only_exposed)
    if prop is not None and getattr(prop, "fset", None) is not None:
        return prop.fset(obj, value)
    raise AttributeError(f"attempt to access unexposed or unknown remote attribute '{propname}'")
