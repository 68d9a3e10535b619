"""The class <-> dict registries and the codec for pyrite's protocol classes and exceptions.

Every serializer turns objects it cannot write natively into a "class dict"
(``{"__class__": "module.Name", ...}``) and, when loading, turns class dicts
back into objects.  This module holds what all serializers share:

* the user registries (``register_class_to_dict`` / ``register_dict_to_class``),
  global to the process as in Pyro5;
* the protocol classes, which keep Pyro5's names on the wire:
  ``Pyro5.core.URI``, ``Pyro5.client.Proxy``, ``Pyro5.server.Daemon``,
  ``Pyro5.core._ExceptionWrapper`` and ``Pyro5.errors.<Name>``;
* exceptions: ``{"__class__", "__exception__": True, "args", "attributes"}``,
  where ``attributes`` carries the remote traceback as ``_pyroTraceback``.

Loading is closed by default: only registered names and the protocol classes
above are ever instantiated.  Exceptions are rebuilt only for builtin
``Exception`` subclasses, pyrite's errors, ``struct.error`` and sqlite3
errors.  Anything else raises ``SerializeError`` ("unsupported serialized
class"), as Pyro5 does.  Loading never imports a module: a sqlite3 error is
rebuilt as such only in a process that has imported sqlite3 (elsewhere it
arrives as a ``PyroError`` naming it, with the remote traceback).  A ``BaseException`` that is not an ``Exception``
(``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, ...) is never
rebuilt: it arrives as a plain ``PyroError`` whose message names the original
class and arguments and which keeps the remote traceback.
"""

from __future__ import annotations

import builtins
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyrite.core import errors
from pyrite.core.client import Proxy  # at import time: loading a proxy must not import a module
from pyrite.core.errors import ERROR_CLASSES, ExceptionWrapper, PyroError, SecurityError, SerializeError
from pyrite.core.uri import URI

ClassToDict = Callable[[Any], dict[str, Any]]
DictToClass = Callable[[str, dict[str, Any]], Any]

URI_CLASSNAME = "Pyro5.core.URI"
PROXY_CLASSNAME = "Pyro5.client.Proxy"
DAEMON_CLASSNAME = "Pyro5.server.Daemon"
WRAPPER_CLASSNAME = "Pyro5.core._ExceptionWrapper"
ERRORS_PREFIX = "Pyro5.errors."

# The registries are replaced, never mutated, so readers need no lock and can
# iterate them while another thread registers something (copy-on-write).
_write_lock = threading.Lock()
_class_to_dict: dict[type, tuple[ClassToDict, bool]] = {}  # class -> (converter, serpent_too)
_dict_to_class: dict[str, DictToClass] = {}

# Bumped on every registry change; serializers drop their per-type caches when it moves.
generation = 0


def _bump() -> None:
    global generation
    generation += 1


def register_class_to_dict(clazz: type, converter: ClassToDict, serpent_too: bool = True) -> None:
    """Serialize instances of ``clazz`` (and subclasses) as ``converter(obj)``, a dict.

    The dict should hold ``"__class__"`` so that the receiving side can find a
    matching ``register_dict_to_class`` converter.  With ``serpent_too=False``
    the serpent serializer ignores this converter (as in Pyro5).
    """
    global _class_to_dict
    with _write_lock:
        new = dict(_class_to_dict)
        new[clazz] = (converter, serpent_too)
        _class_to_dict = new
        _bump()


def unregister_class_to_dict(clazz: type) -> None:
    """Forget the converter registered for ``clazz``; unknown classes are ignored."""
    global _class_to_dict
    with _write_lock:
        if clazz in _class_to_dict:
            new = dict(_class_to_dict)
            del new[clazz]
            _class_to_dict = new
            _bump()


def register_dict_to_class(classname: str, converter: DictToClass) -> None:
    """Rebuild class dicts whose ``"__class__"`` is ``classname`` with ``converter(classname, data)``.

    This is the only way a class that is not one of pyrite's protocol classes
    is ever instantiated while loading.
    """
    global _dict_to_class
    with _write_lock:
        new = dict(_dict_to_class)
        new[classname] = converter
        _dict_to_class = new
        _bump()


def unregister_dict_to_class(classname: str) -> None:
    """Forget the converter registered for ``classname``; unknown names are ignored."""
    global _dict_to_class
    with _write_lock:
        if classname in _dict_to_class:
            new = dict(_dict_to_class)
            del new[classname]
            _dict_to_class = new
            _bump()


def custom_class_to_dict(t: type, serpent: bool = False) -> ClassToDict | None:
    """The user converter that applies to type ``t`` (first registered match wins), or None."""
    for clazz, (converter, serpent_too) in _class_to_dict.items():
        if issubclass(t, clazz) and (serpent_too or not serpent):
            return converter
    return None


# ---------------------------------------------------------------- writing


def exception_classname(t: type) -> str:
    """The wire name of an exception class: Pyro5's names for pyrite errors, ``module.Name`` otherwise."""
    module = t.__module__
    if module == "pyrite.core.errors" and ERROR_CLASSES.get(t.__name__) is t:
        return ERRORS_PREFIX + t.__name__
    if module.startswith("pyrite.") and issubclass(t, PyroError):
        # pyrite's internal PyroError subclasses (e.g. plugin errors) travel as their
        # nearest public ancestor, so that any Pyro5 peer can rebuild them.
        for base in t.__mro__:
            if ERROR_CLASSES.get(base.__name__) is base:
                return ERRORS_PREFIX + base.__name__
    return f"{module}.{t.__name__}"


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """An exception as Pyro5 writes it, with its custom attributes (e.g. ``_pyroTraceback``)."""
    return {
        "__class__": exception_classname(type(exc)),
        "__exception__": True,
        "args": exc.args,
        "attributes": dict(vars(exc)),
    }


def uri_to_dict(uri: URI) -> dict[str, Any]:
    return {"__class__": URI_CLASSNAME, "state": uri.__getstate__()}


def proxy_to_dict(proxy: Any) -> dict[str, Any]:
    return {"__class__": PROXY_CLASSNAME, "state": proxy.__getstate__()}


def daemon_to_dict(daemon: Any) -> dict[str, Any]:
    # A daemon is never sent for real: this marker only lets an object that refers
    # to its daemon be serialized (Pyro5 writes the same empty state).
    return {"__class__": DAEMON_CLASSNAME, "state": ()}


def wrapper_to_dict(wrapper: ExceptionWrapper) -> dict[str, Any]:
    # as Pyro5: the wrapped exception goes through class_to_dict, so a user converter applies
    return {"__class__": WRAPPER_CLASSNAME, "exception": class_to_dict(wrapper.exception)}


_PROXY_CLASSES = (
    ("pyrite.core.client", "Proxy"),
    ("pyrite.core.aio.proxy", "Proxy"),
    ("pyrite.core.shared", "SharedProxy"),
)


def protocol_class_to_dict(t: type) -> ClassToDict | None:
    """The writer for one of pyrite's protocol classes, or None if ``t`` is not one."""
    if issubclass(t, URI):
        return uri_to_dict
    if issubclass(t, ExceptionWrapper):
        return wrapper_to_dict
    if issubclass(t, BaseException):
        return exception_to_dict
    # client and daemon are imported by whoever makes proxies and daemons; if the
    # module is not loaded yet, no instance of its classes can exist.
    # the sync, asyncio and thread-shared proxies all travel as Pyro5's proxy
    for module_name, class_name in _PROXY_CLASSES:
        module = sys.modules.get(module_name)
        if module is not None:
            proxy_class = getattr(module, class_name, None)
            if proxy_class is not None and issubclass(t, proxy_class):
                return proxy_to_dict
    daemon = sys.modules.get("pyrite.core.daemon")
    if daemon is not None:
        daemon_class = getattr(daemon, "Daemon", None)
        if daemon_class is not None and issubclass(t, daemon_class):
            return daemon_to_dict
    return None


def _classname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__name__}"


def generic_to_dict(obj: Any) -> dict[str, Any]:
    """Any other object as Pyro5 writes it: its ``__getstate__`` dict, ``vars()`` or ``__slots__``.

    The receiver refuses it unless it registered a converter for the class name.
    """
    t = type(obj)
    if t in (set, dict, tuple, list):
        raise ValueError(f"can't serialize type {t} into a dict")
    getstate = getattr(t, "__getstate__", None)
    if getstate is not None and getstate is not getattr(object, "__getstate__", None):
        value = obj.__getstate__()
        if isinstance(value, dict):
            return value
    try:
        value = dict(vars(obj))
    except TypeError:
        slots = getattr(obj, "__slots__", None)
        if slots is None:
            raise SerializeError(
                f"don't know how to serialize class {t}: give it vars() or an appropriate __getstate__"
            ) from None
        value = {slot: getattr(obj, slot) for slot in ((slots,) if isinstance(slots, str) else slots)}
    if "_pyroDaemon" in value:
        value["_pyroDaemon"] = None  # as Pyro5: a registered object is sent without its daemon
    value["__class__"] = _classname(obj)
    return value


def class_to_dict(obj: Any) -> dict[str, Any]:
    """``obj`` as a class dict: a user converter, a protocol class, an exception, or its state."""
    t = type(obj)
    converter = custom_class_to_dict(t) or protocol_class_to_dict(t) or generic_to_dict
    return converter(obj)


# ---------------------------------------------------------------- reading


def make_exception(exception_type: type[BaseException], data: dict[str, Any]) -> BaseException:
    """Rebuild an exception of a known, safe type from its class dict."""
    args = data.get("args", ())
    if not isinstance(args, (list, tuple)):
        raise SerializeError("invalid serialized exception: args is not a sequence")
    try:
        exc = exception_type(*args)
    except Exception as x:
        raise SerializeError(f"cannot rebuild exception {exception_type.__name__}: {x}") from None
    _set_attributes(exc, data.get("attributes"))
    return exc


def _set_attributes(exc: BaseException, attributes: Any) -> None:
    if not attributes:
        return
    if not isinstance(attributes, dict):
        raise SerializeError("invalid serialized exception: attributes is not a dict")
    for name, value in attributes.items():
        # only plain attribute names: a peer must not reach __class__, __dict__, __traceback__, ...
        if not isinstance(name, str) or (name.startswith("__") and name != "__notes__"):
            continue
        try:
            setattr(exc, name, value)
        except Exception:
            continue


def _unrebuilt_exception(classname: str, data: dict[str, Any], reason: str) -> PyroError:
    """A ``PyroError`` standing in for a remote exception that is not rebuilt: it names the
    class and arguments, says why, and keeps the remote traceback."""
    args = data.get("args", ())
    exc = PyroError(f"the peer raised {classname}{tuple(args) if isinstance(args, (list, tuple)) else ()!r}; {reason}")
    attributes = data.get("attributes")
    if isinstance(attributes, dict) and isinstance(attributes.get("_pyroTraceback"), list):
        exc._pyroTraceback = attributes["_pyroTraceback"]  # type: ignore[attr-defined]
    return exc


def _builtin_exception(name: str) -> type[BaseException] | None:
    t = getattr(builtins, name, None)
    if isinstance(t, type) and issubclass(t, BaseException):
        return t
    return None


def _exception_from_dict(classname: str, data: dict[str, Any]) -> BaseException:
    namespace, _, short = classname.rpartition(".")
    if namespace in ("builtins", "exceptions", ""):
        t = _builtin_exception(short)
        if t is None and not namespace:
            t = ERROR_CLASSES.get(short)
        if t is not None:
            if not issubclass(t, Exception):
                return _unrebuilt_exception(
                    classname, data, "pyrite does not rebuild exceptions that are not Exception subclasses"
                )
            return make_exception(t, data)
    elif namespace == "sqlite3" and short.endswith("Error"):
        # Loading never imports a module (a peer must not choose what this process
        # loads).  A program that can catch sqlite3's errors has imported sqlite3.
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is None:
            return _unrebuilt_exception(classname, data, "sqlite3 is not imported in this process")
        t = getattr(sqlite3, short, None)
        if isinstance(t, type) and issubclass(t, Exception):
            return make_exception(t, data)
    raise SerializeError(f"no converter for serialized class {classname}")


def _check_uri_state(state: Any) -> tuple[Any, ...]:
    if not isinstance(state, (list, tuple)) or len(state) != 5:
        raise SerializeError("invalid serialized URI state")
    protocol, obj, sockname, host, port = state
    if protocol not in ("PYRO", "PYRONAME", "PYROMETA"):
        raise SerializeError("invalid serialized URI protocol")
    if protocol == "PYROMETA" and isinstance(obj, (list, tuple, set, frozenset)):
        obj = set(obj)
        if not all(isinstance(m, str) for m in obj):
            raise SerializeError("invalid serialized URI metadata")
    elif not isinstance(obj, str):
        raise SerializeError("invalid serialized URI object id")
    if not (sockname is None or isinstance(sockname, str)) or not (host is None or isinstance(host, str)):
        raise SerializeError("invalid serialized URI location")
    if not (port is None or (type(port) is int and 0 <= port <= 65535)):
        raise SerializeError("invalid serialized URI port")
    return protocol, obj, sockname, host, port


def uri_from_dict(classname: str, data: dict[str, Any]) -> URI:
    uri = URI.__new__(URI)
    uri.__setstate__(_check_uri_state(data.get("state")))
    return uri


def proxy_from_dict(classname: str, data: dict[str, Any]) -> Any:
    state = data.get("state")
    if not isinstance(state, (list, tuple)) or len(state) != 6 or not isinstance(state[0], str):
        raise SerializeError("invalid serialized proxy state")
    if not (state[5] is None or isinstance(state[5], str)):
        raise SerializeError("invalid serialized proxy state")
    for names in state[1:4]:
        if not isinstance(names, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in names):
            raise SerializeError("invalid serialized proxy state")
    proxy = Proxy.__new__(Proxy)
    proxy.__setstate__(tuple(state))
    return proxy


def daemon_from_dict(classname: str, data: dict[str, Any]) -> None:
    # Pyro5 rebuilds an empty, unusable Daemon here.  pyrite gives None instead:
    # what Pyro5's own class_to_dict puts in an object's _pyroDaemon attribute.
    return None


def wrapper_from_dict(
    classname: str, data: dict[str, Any], to_object: Callable[[dict[str, Any]], Any]
) -> ExceptionWrapper:
    exc = data.get("exception")
    if type(exc) is dict and "__class__" in exc:
        exc = to_object(exc)
    if not isinstance(exc, BaseException):
        raise SerializeError("invalid serialized exception wrapper")
    return ExceptionWrapper(exc)


_PROTOCOL_READERS: dict[str, Callable[[str, dict[str, Any]], Any]] = {
    URI_CLASSNAME: uri_from_dict,
    PROXY_CLASSNAME: proxy_from_dict,
    DAEMON_CLASSNAME: daemon_from_dict,
}


def dict_to_class(data: dict[str, Any]) -> Any:
    """Rebuild an object from a class dict, or raise ``SerializeError`` / ``SecurityError``.

    Only registered names, the protocol classes and safe exceptions are accepted.
    """
    classname = data.get("__class__", "<unknown>")
    if isinstance(classname, bytes):
        try:
            classname = classname.decode("utf-8")
        except UnicodeDecodeError:
            raise SerializeError("invalid class name in serialized data") from None
    if not isinstance(classname, str):
        raise SerializeError("invalid class name in serialized data")
    converter = _dict_to_class.get(classname)
    if converter is not None:
        return converter(classname, data)
    if "__" in classname:
        raise SecurityError(f"will not deserialize {classname!r}: double underscores in a class name are refused")
    reader = _PROTOCOL_READERS.get(classname)
    if reader is not None:
        return reader(classname, data)
    if classname == WRAPPER_CLASSNAME:
        return wrapper_from_dict(classname, data, dict_to_class)
    if classname.startswith(ERRORS_PREFIX):
        error_type = ERROR_CLASSES.get(classname[len(ERRORS_PREFIX) :])
        if error_type is None:
            raise SerializeError(f"no converter for serialized class {classname}")
        return make_exception(error_type, data)
    if classname == "struct.error":
        return make_exception(struct.error, data)
    if data.get("__exception__", False):
        return _exception_from_dict(classname, data)
    raise SerializeError(f"no converter for serialized class {classname}")


__all__ = [
    "register_class_to_dict",
    "unregister_class_to_dict",
    "register_dict_to_class",
    "unregister_dict_to_class",
    "class_to_dict",
    "dict_to_class",
    "exception_to_dict",
    "exception_classname",
    "make_exception",
    "errors",
]
