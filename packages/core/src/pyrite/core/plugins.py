"""Where plugins are found: the serializer and transport registries.

Both read an entry-point group once, on first use, and cache the result:

* ``pyrite.serializers``: name -> serializer class.  The class carries
  ``name`` and a one-byte ``serializer_id`` (Pyro5's: serpent 1, marshal 2,
  json 3, msgpack 4; pyrite's cbor2 is 5).  One instance per class is made
  and shared; serializers must be thread safe.
* ``pyrite.transports``: name -> transport class.  ``serves(location)`` says
  whether it handles a URI location (``host:port``, ``[ipv6]:port``,
  ``./u:path``); the highest ``priority`` wins.  ``adopt_socket(sock)`` wraps
  an already connected socket with the transport whose ``socket_families``
  holds the socket's family.

A name nobody provides raises ``UnknownPluginError`` with the pip command to
run.  Two distributions claiming one name, one serializer id, or one location
at the same priority raise ``PluginConflictError`` naming both.  Plugins
installed after the first lookup are not seen by a running process; tests call
``reset()``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import PyroError

if TYPE_CHECKING:
    from .interfaces import Connection, Serializer, Transport

T = TypeVar("T")

SERIALIZER_GROUP = "pyrite.serializers"
TRANSPORT_GROUP = "pyrite.transports"

# What to install for the names pyrite itself provides.
SERIALIZER_HINTS = {
    "serpent": "pip install pyrite-serializers",
    "marshal": "pip install pyrite-serializers",
    "json": "pip install pyrite-serializers",
    "msgpack": "pip install pyrite-serializers[msgpack]",
    "cbor2": "pip install pyrite-serializers[cbor]",
}
BUILTIN_SERIALIZER_IDS = {1: "serpent", 2: "marshal", 3: "json", 4: "msgpack", 5: "cbor2"}
TRANSPORT_HINT = "pip install pyrite-transports"


class PluginError(PyroError):
    """A plugin could not be found or loaded, or two plugins conflict."""


class UnknownPluginError(PluginError, LookupError):
    """No installed plugin provides the requested name, id or location."""


class UnknownSerializerError(UnknownPluginError, KeyError):
    """No installed serializer has the requested name or id.

    Also a ``KeyError``, which is what Pyro5 raises for an unknown serializer
    name; the message stays readable (a plain KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PluginConflictError(PluginError):
    """Two plugins claim the same name, serializer id or location."""


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _group(group: str) -> dict[str, EntryPoint]:
    """The entry points of a group by name; a name from two distributions is a conflict."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise PluginConflictError(
                f"{group} plugin name {ep.name!r} is claimed twice: by {other.value} from distribution "
                f"{_dist_name(other)!r} and by {ep.value} from distribution {_dist_name(ep)!r}; uninstall one"
            )
        found[ep.name] = ep
    return found


@dataclass
class _Serializers:
    by_name: dict[str, Serializer] = field(default_factory=dict)
    by_id: dict[int, Serializer] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # name -> why it failed to load
    dist: dict[str, str] = field(default_factory=dict)  # name -> distribution


@dataclass
class _Transports:
    classes: list[tuple[Any, str]] = field(default_factory=list)  # (class, distribution)
    instances: dict[type, Transport] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)


_lock = threading.RLock()
_location_cache: dict[str, Transport] = {}


class _Once(Generic[T]):
    """A registry built on first use, once, under the lock; ``clear()`` forgets it."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with _lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def clear(self) -> None:
        self._value = None


def _load_serializers() -> _Serializers:
    reg = _Serializers()
    for name, ep in sorted(_group(SERIALIZER_GROUP).items()):
        dist = _dist_name(ep)
        try:
            cls = ep.load()
        except ImportError as exc:
            hint = SERIALIZER_HINTS.get(name, f"reinstall the distribution {dist!r}")
            reg.broken[name] = f"it could not be imported ({exc}); {hint}"
            continue
        except Exception as exc:
            # one broken third-party plugin must not make every other serializer unusable
            reg.broken[name] = (
                f"loading {ep.value} from distribution {dist!r} failed "
                f"({type(exc).__name__}: {exc}); fix or uninstall {dist!r}"
            )
            continue
        sid = getattr(cls, "serializer_id", None)
        if not isinstance(sid, int) or not 0 < sid < 256:
            raise PluginError(f"serializer plugin {name!r} from {dist!r} has no valid one-byte serializer_id")
        if sid in reg.by_id:
            other = reg.by_id[sid]
            raise PluginConflictError(
                f"serializer id {sid} is claimed by {other.name!r} from distribution {reg.dist[other.name]!r} "
                f"and by {name!r} from distribution {dist!r}; a serializer id must be unique"
            )
        try:
            instance = cls()
        except Exception as exc:
            reg.broken[name] = (
                f"creating {ep.value} from distribution {dist!r} failed "
                f"({type(exc).__name__}: {exc}); fix or uninstall {dist!r}"
            )
            continue
        if getattr(instance, "name", None) != name:
            instance.name = name
        reg.by_name[name] = instance
        reg.by_id[sid] = instance
        reg.dist[name] = dist
    return reg


_serializer_registry = _Once(_load_serializers)


def get_serializer(name: str) -> Serializer:
    """The serializer instance registered under ``name`` (e.g. ``"serpent"``)."""
    reg = _serializer_registry()
    try:
        return reg.by_name[name]
    except KeyError:
        pass
    if name in reg.broken:
        raise UnknownSerializerError(f"serializer {name!r} is installed but unusable: {reg.broken[name]}")
    hint = SERIALIZER_HINTS.get(name)
    if hint:
        raise UnknownSerializerError(f"no serializer {name!r}: {hint}")
    known = ", ".join(sorted(reg.by_name)) or "none"
    raise UnknownSerializerError(
        f"no serializer {name!r}: it is either misspelled or not installed (installed: {known})"
    )


def get_serializer_by_id(serializer_id: int) -> Serializer:
    """The serializer instance with this wire id."""
    reg = _serializer_registry()
    try:
        return reg.by_id[serializer_id]
    except KeyError:
        pass
    name = BUILTIN_SERIALIZER_IDS.get(serializer_id)
    if name:
        get_serializer(name)  # raises with the install hint
    raise UnknownSerializerError(f"no serializer with id {serializer_id} is installed")


def all_serializers() -> dict[str, Serializer]:
    """Every usable serializer, by name."""
    return dict(_serializer_registry().by_name)


def _load_transports() -> _Transports:
    reg = _Transports()
    for name, ep in sorted(_group(TRANSPORT_GROUP).items()):
        try:
            cls = ep.load()
        except ImportError as exc:
            reg.broken[name] = f"{exc} (reinstall {_dist_name(ep)!r})"
            continue
        except Exception as exc:
            reg.broken[name] = f"{type(exc).__name__}: {exc} (fix or uninstall {_dist_name(ep)!r})"
            continue
        reg.classes.append((cls, _dist_name(ep)))
    reg.classes.sort(key=lambda pair: -getattr(pair[0], "priority", 0))
    return reg


_transport_registry = _Once(_load_transports)


def get_transport(location: str) -> Transport:
    """The transport instance that serves a URI location (``host:port``, ``[::1]:port``, ``./u:path``)."""
    cached = _location_cache.get(location)
    if cached is not None:
        return cached
    reg = _transport_registry()
    matches = [(cls, dist) for cls, dist in reg.classes if cls.serves(location)]
    if not matches:
        broken = f" (unusable transports: {reg.broken})" if reg.broken else ""
        raise UnknownPluginError(f"no transport serves location {location!r}: {TRANSPORT_HINT}{broken}")
    best, dist = matches[0]
    for other, other_dist in matches[1:]:
        if getattr(other, "priority", 0) == getattr(best, "priority", 0) and other_dist != dist:
            raise PluginConflictError(
                f"location {location!r} is served by {best.__name__} from distribution {dist!r} and by "
                f"{other.__name__} from distribution {other_dist!r} at the same priority"
            )
    with _lock:
        instance = reg.instances.get(best)
        if instance is None:
            instance = reg.instances[best] = best()
        if len(_location_cache) < 1024:
            _location_cache[location] = instance
    return instance


def adopt_socket(sock: socket.socket, *, owned: bool = False) -> Connection:
    """Wrap an already connected socket in a ``Connection`` of the transport for its family.

    A transport says which families it takes in its ``socket_families`` class
    attribute (TCP: AF_INET, AF_INET6; Unix: AF_UNIX).  With ``owned=False``
    (``Proxy(uri, connected_socket=...)``) closing the connection leaves the
    socket open for its owner; ``owned=True`` (a daemon serving the socket)
    closes it too.  Raises UnknownPluginError if no transport takes the family.
    """
    family = sock.family
    reg = _transport_registry()
    for cls, _ in reg.classes:
        if family in getattr(cls, "socket_families", ()):
            with _lock:
                instance = reg.instances.get(cls)
                if instance is None:
                    instance = reg.instances[cls] = cls()
            conn: Connection = instance.adopt(sock, owned=owned)
            return conn
    broken = f" (unusable transports: {reg.broken})" if reg.broken else ""
    raise UnknownPluginError(f"no transport takes sockets of family {family!r}: {TRANSPORT_HINT}{broken}")


def reset() -> None:
    """Forget what was discovered, so the next lookup reads the entry points again (for tests)."""
    with _lock:
        _serializer_registry.clear()
        _transport_registry.clear()
        _location_cache.clear()
