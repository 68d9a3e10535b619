"""``NameServer``: the registry object a name server daemon exposes as ``Pyro.NameServer``.

It maps logical names to URIs, with an optional set of metadata tags per
name (the "yellow pages").  The remote API is Pyro5's, method for method and
argument for argument, so Pyro5 clients use it unchanged::

    register(name, uri, safe=False, metadata=None)
    lookup(name, return_metadata=False)
    list(prefix=None, regex=None, return_metadata=False)
    yplookup(meta_all=None, meta_any=None, return_metadata=True)
    set_metadata(name, metadata)
    remove(name=None, prefix=None, regex=None, everything=False)
    count()
    ping()

Two deliberate differences from Pyro5, both about hostile or careless input:

* **Regexes are bounded in time** (see ``regexmatch``): they are matched on a
  copy of the names, outside the registry lock, and a pattern that may
  backtrack badly runs in a separate process that is killed after
  ``regexmatch.TIMEOUT`` seconds.
* **Removing everything must be asked for.**  ``remove(regex=...)`` with a
  pattern that matches the empty string (``.*``, ``a*``, ``(x)?``...) matches
  every name, and is refused with a ``NamingError`` unless the caller also
  passes ``everything=True``.  ``remove(everything=True)`` alone removes every
  registration.  As in Pyro5, ``remove()`` with no arguments, or with an empty
  prefix or regex, removes nothing, and the name server's own entry is never
  removed.

Argument checks follow Pyro5: a wrong type is a ``TypeError``, an unknown
name or a refused request a ``NamingError``, an invalid URI a ``PyroError``.
Metadata tags must be strings.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from typing import Any

from pyrite.core.errors import NamingError
from pyrite.core.exposure import expose
from pyrite.core.uri import NAMESERVER_NAME, URI

from . import regexmatch
from .storage import MemoryStorage

__all__ = ["NameServer"]


def _check_name(name: Any, what: str = "name") -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str")


def _tag_set(metadata: Any, what: str = "metadata") -> set[str]:
    """A client's collection of tags as a set of str (TypeError for a str or a non-iterable)."""
    if isinstance(metadata, (str, bytes)):
        raise TypeError(
            f"{what} must be a collection of strings such as a set or list, not a single {type(metadata).__name__}"
        )
    try:
        tags = set(metadata)
    except TypeError:
        raise TypeError(f"{what} must be an iterable of str (set, list, etc)") from None
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"{what} tags must be str, not {type(tag).__name__}")
    return tags


@expose
class NameServer:
    """A flat name space: logical names mapped to URIs, each with a set of metadata tags.

    ``storageProvider`` is where the registrations live (``MemoryStorage`` by
    default; see ``storage``).  Every method may be called from many daemon
    threads at once.
    """

    def __init__(self, storageProvider: Any = None) -> None:
        self.storage = MemoryStorage() if storageProvider is None else storageProvider
        self.lock = threading.RLock()

    def count(self) -> int:
        """The number of registrations (the name server's own included)."""
        return len(self.storage)

    def lookup(self, name: str, return_metadata: bool = False) -> Any:
        """The URI registered under ``name``; ``(uri, metadata set)`` if ``return_metadata``.

        Raises NamingError for an unknown name."""
        _check_name(name)
        try:
            uri, metadata = self.storage[name]
        except KeyError:
            raise NamingError(f"name not registered: {name}") from None
        if return_metadata:
            return URI(uri), set(metadata or ())
        return URI(uri)

    def register(self, name: str, uri: Any, safe: bool = False, metadata: Iterable[str] | None = None) -> None:
        """Register ``name`` for ``uri`` (a URI or its string), replacing an existing entry
        unless ``safe`` is true (then an existing name is a NamingError).  ``metadata`` is
        None or a collection of str tags."""
        if isinstance(uri, URI):
            uri = str(uri)
        elif not isinstance(uri, str):
            raise TypeError(f"register() takes a URI or a URI string, not {type(uri).__name__}")
        else:
            URI(uri)  # raises PyroError if it is not a valid URI
        _check_name(name)
        tags = None if metadata is None else _tag_set(metadata)
        with self.lock:
            taken = safe and name in self.storage
            if taken:
                raise NamingError(f"name is taken: {name}")
            self.storage[name] = uri, tags

    def set_metadata(self, name: str, metadata: Iterable[str] | None) -> None:
        """Replace the metadata tags of an existing registration (None or empty clears them)."""
        _check_name(name)
        tags = None if metadata is None else _tag_set(metadata)
        with self.lock:
            try:
                uri, _ = self.storage[name]
            except KeyError:
                raise NamingError(f"name not registered: {name}") from None
            self.storage[name] = uri, tags

    def remove(
        self, name: str | None = None, prefix: str | None = None, regex: str | None = None, everything: bool = False
    ) -> int:
        """Remove registrations; returns how many were removed.

        Give one of: an exact ``name``; a ``prefix``; a ``regex`` (``re.match``).
        A regex that matches every name needs ``everything=True`` as well;
        ``everything=True`` alone removes all registrations.  The name server's
        own registration is never removed."""
        if name:
            _check_name(name)
            if name == NAMESERVER_NAME:
                return 0
            with self.lock:
                try:
                    del self.storage[name]
                except KeyError:
                    return 0
                return 1
        if prefix:
            _check_name(prefix, "prefix")
            victims = builtins.list(self.list(prefix=prefix))
        elif regex:
            rx = regexmatch.compile_regex(regex)
            with self.lock:
                names = builtins.list(self.storage)
            victims, matches_all = regexmatch.filter_names(rx, names)
            if matches_all and not everything:
                raise NamingError(
                    f"regex {regex!r} matches every name; to remove all registrations "
                    f"call remove(regex=..., everything=True)"
                )
        elif everything:
            with self.lock:
                victims = builtins.list(self.storage)
        else:
            return 0
        with self.lock:
            present = [victim for victim in victims if victim != NAMESERVER_NAME and victim in self.storage]
            if present:
                self.storage.remove_items(present)
        return len(present)

    def list(
        self, prefix: str | None = None, regex: str | None = None, return_metadata: bool = False
    ) -> dict[str, Any]:
        """The registrations as ``{name: uri string}`` (or ``{name: (uri, metadata set)}``),
        optionally only the names starting with ``prefix`` or matching ``regex``."""
        if prefix and regex:
            raise ValueError("list() takes prefix or regex, not both")
        if prefix:
            _check_name(prefix, "prefix")
            with self.lock:
                result = self.storage.optimized_prefix_list(prefix, return_metadata)
                if result is None:
                    result = {
                        name: entry
                        for name, entry in self.storage.everything(return_metadata).items()
                        if name.startswith(prefix)
                    }
        elif regex:
            rx = regexmatch.compile_regex(regex)
            with self.lock:
                result = self.storage.optimized_regex_list(regex, return_metadata)
                if result is None:
                    snapshot = self.storage.everything(return_metadata)
            if result is None:
                # matched outside the lock: a slow pattern never holds up lookups or registrations
                matched, _ = regexmatch.filter_names(rx, builtins.list(snapshot))
                result = {name: snapshot[name] for name in matched}
        else:
            with self.lock:
                result = self.storage.everything(return_metadata)
        return self._fresh_sets(result) if return_metadata else result

    def yplookup(
        self, meta_all: Iterable[str] | None = None, meta_any: Iterable[str] | None = None, return_metadata: bool = True
    ) -> dict[str, Any]:
        """Yellow pages: the registrations having *all* tags of ``meta_all``, or *any* tag of
        ``meta_any`` (not both).  Values are ``(uri, metadata set)`` unless ``return_metadata``
        is false (then just the uri string)."""
        if meta_all and meta_any:
            raise ValueError("yplookup() takes meta_all or meta_any, not both")
        if meta_all:
            tags = _tag_set(meta_all, "metadata_all")
            with self.lock:
                result = self.storage.optimized_metadata_search(metadata_all=tags, return_metadata=return_metadata)
                if result is None:
                    result = {
                        name: (uri, meta) if return_metadata else uri
                        for name, (uri, meta) in self.storage.everything(return_metadata=True).items()
                        if tags.issubset(meta or ())
                    }
        elif meta_any:
            tags = _tag_set(meta_any, "metadata_any")
            with self.lock:
                result = self.storage.optimized_metadata_search(metadata_any=tags, return_metadata=return_metadata)
                if result is None:
                    result = {
                        name: (uri, meta) if return_metadata else uri
                        for name, (uri, meta) in self.storage.everything(return_metadata=True).items()
                        if not tags.isdisjoint(meta or ())
                    }
        else:
            return {}
        return self._fresh_sets(result) if return_metadata else result

    def ping(self) -> None:
        """Does nothing: a cheap call to check the name server is there."""

    @staticmethod
    def _fresh_sets(result: dict[str, Any]) -> dict[str, Any]:
        # plain sets, never the storage's own (frozen) objects: every serializer handles a set
        return {name: (uri, set(meta or ())) for name, (uri, meta) in result.items()}
