"""``NameServer``: the registry object a name server daemon exposes as ``Pyro.NameServer``.

It maps logical names to URIs, with an optional set of metadata tags per
name (the "yellow pages").  The remote API is Pyro5's, method for method and
argument for argument, so Pyro5 clients use it unchanged::

    register(name, uri, safe=False, metadata=None, *, ttl=None, replica=False)
    lookup(name, return_metadata=False)
    list(prefix=None, regex=None, return_metadata=False)
    yplookup(meta_all=None, meta_any=None, return_metadata=True)
    set_metadata(name, metadata)
    remove(name=None, prefix=None, regex=None, everything=False)
    count()
    ping()

pyrite adds leases and replica sets (keyword-only arguments, so a Pyro5
client, which never sends them, gets Pyro5's behaviour) and three methods::

    replicas(name)                 every live URI of a name
    replica_sets(prefix=None)      {name: [uri, ...]} for the names that are replica sets
    remove(name, uri=URI)          take one URI out of a replica set

With ``ttl`` a registration expires unless it is registered again within
``ttl`` seconds.  With ``replica=True`` the URI joins the set of URIs under the
name (each with its own lease) instead of replacing it; ``lookup`` then hands
out the live URIs in turn.

Two deliberate differences from Pyro5, both about hostile or careless input:

* **Regexes are bounded in time** (see ``regexmatch``): they are matched on a
  copy of the names, outside the registry lock, and a pattern that may
  backtrack badly runs in a separate process that is killed after
  ``regexmatch.TIMEOUT`` seconds.
* **Removing everything must be asked for.**  A ``remove(prefix=...)`` or
  ``remove(regex=...)`` that would remove every name (``.+``, ``.*``, a prefix
  all names share...) is refused with a ``NamingError`` unless the caller also
  passes ``everything=True``.  ``remove(everything=True)`` alone removes every
  registration.  As in Pyro5, ``remove()`` with no arguments, or with an empty
  prefix or regex, removes nothing, and the name server's own entry is never
  removed.

* **An optional write policy.**  A name server started with a write token
  (``pyrite-ns --write-token``, ``config.NS_WRITE_TOKEN``) serves reads to
  anyone, but ``register``, ``remove`` and ``set_metadata`` only to clients
  whose handshake data carried the token (see ``server``).

Argument checks follow Pyro5: a wrong type is a ``TypeError``, an unknown
name or a refused request a ``NamingError``, an invalid URI a ``PyroError``.
Metadata tags must be strings.
"""

from __future__ import annotations

import builtins
import itertools
import math
import threading
from collections.abc import Iterable
from typing import Any

from pyrite.core.callcontext import current_context
from pyrite.core.errors import NamingError
from pyrite.core.exposure import expose
from pyrite.core.uri import NAMESERVER_NAME, URI

from . import regexmatch
from .leases import LeaseOperations, taken_error
from .storage import MemoryStorage

__all__ = ["NameServer", "is_protected", "MAX_TTL"]

MAX_TTL = 366 * 24 * 3600.0  # a lease longer than a year is a mistake (or an overflow waiting to happen)


def is_protected(name: str) -> bool:
    """True for the name servers' own names, which no remove() takes away."""
    return name == NAMESERVER_NAME or name.startswith(NAMESERVER_NAME + ".")


def _check_name(name: Any, what: str = "name") -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str")
    _check_text(name, what)


def _check_text(text: str, what: str) -> None:
    """NamingError for a str no storage can keep: one holding a lone surrogate (which JSON and
    serpent peers can send), so every storage refuses it alike instead of failing in its encoder."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NamingError(f"{what} is not valid text: lone surrogate at position {exc.start}") from None


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
        _check_text(tag, f"{what} tag")
    return tags


def _check_ttl(ttl: Any) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError("ttl must be a number of seconds or None")
    if not math.isfinite(ttl) or not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be more than 0 and at most {MAX_TTL:.0f} seconds")
    return float(ttl)


class _MappingLeases(LeaseOperations):
    """``LeaseOperations`` over a Pyro5-style mapping storage (no leases, no replica sets)."""

    def __init__(self, storage: Any, lock: threading.RLock) -> None:
        self.storage = storage
        self.lock = lock

    def register_entry(
        self,
        name: str,
        uri: str,
        metadata: frozenset[str] | None,
        safe: bool = False,
        ttl: float | None = None,
        replica: bool = False,
    ) -> None:
        if ttl is not None or replica:
            raise NamingError(f"storage {type(self.storage).__name__} supports neither leases nor replicas")
        with self.lock:
            if safe and name in self.storage:
                raise taken_error(name)
            self.storage[name] = uri, metadata

    def lookup_entry(self, name: str) -> tuple[list[str], frozenset[str]]:
        uri, metadata = self.storage[name]
        return [uri], frozenset(metadata or ())

    def set_entry_metadata(self, name: str, metadata: frozenset[str]) -> None:
        with self.lock:
            uri, _ = self.storage[name]
            self.storage[name] = uri, metadata

    def remove_entry(self, name: str, uri: str | None = None) -> int:
        with self.lock:
            try:
                current = self.storage[name][0]
                if uri is not None and current != uri:
                    return 0
                del self.storage[name]
            except KeyError:
                return 0
            return 1

    def replica_sets(self) -> dict[str, list[str]]:
        return {}

    def purge_expired(self) -> None:
        pass


@expose
class NameServer:
    """A flat name space: logical names mapped to URIs, each with a set of metadata tags.

    ``storageProvider`` is where the registrations live (``MemoryStorage`` by
    default; see ``storage`` and ``storages``).  ``write_token``, when given,
    turns on the write policy.  Every method may be called from many daemon
    threads at once.
    """

    def __init__(self, storageProvider: Any = None, write_token: str | None = None) -> None:
        self.storage = MemoryStorage() if storageProvider is None else storageProvider
        # one lock with a local storage's own, so a sequence under ``lock`` (the autocleaner's
        # check-then-remove) is atomic with every storage operation
        lock = getattr(self.storage, "_lock", None)
        self.lock = lock if isinstance(lock, type(threading.RLock())) else threading.RLock()
        self.write_token = write_token or None
        self._store: LeaseOperations = (
            self.storage if hasattr(self.storage, "register_entry") else _MappingLeases(self.storage, self.lock)
        )
        self._turns: dict[str, itertools.count[int]] = {}

    # -- helpers -------------------------------------------------------------------------------

    def _check_write(self, what: str) -> None:
        if self.write_token is None:
            return
        # Only connections of a name server daemon carry the flag (set at their handshake); a
        # call without one is in-process (the daemon registering itself, the autocleaner, a
        # test), even when the thread's call context still names some other connection.
        if getattr(current_context.client, "pyrite_ns_writer", True) is False:
            raise NamingError(f"{what} refused: this name server takes changes only from clients with its write token")

    def _pick(self, name: str, uris: list[str]) -> str:
        """One of a replica set's URIs, each in turn (per name server process)."""
        if len(uris) == 1:
            return uris[0]
        turn = self._turns.get(name)
        if turn is None:
            if len(self._turns) > 10000:
                self._turns.clear()  # a bound on memory; rotation restarts, nothing else changes
            turn = self._turns.setdefault(name, itertools.count())
        return uris[next(turn) % len(uris)]

    def _expire(self) -> None:
        self._store.purge_expired()

    # -- the API -------------------------------------------------------------------------------

    def count(self) -> int:
        """The number of registrations (the name server's own included)."""
        self._expire()
        return len(self.storage)

    def lookup(self, name: str, return_metadata: bool = False) -> Any:
        """The URI registered under ``name``; ``(uri, metadata set)`` if ``return_metadata``.
        For a replica set, one live URI, a different one each call.

        Raises NamingError for an unknown name."""
        _check_name(name)
        self._expire()
        try:
            uris, metadata = self._store.lookup_entry(name)
        except KeyError:
            raise NamingError(f"name not registered: {name}") from None
        uri = URI(self._pick(name, uris))
        if return_metadata:
            return uri, set(metadata)
        return uri

    def replicas(self, name: str) -> builtins.list[URI]:
        """Every live URI registered under ``name`` (one for a plain registration)."""
        _check_name(name)
        self._expire()
        try:
            uris, _ = self._store.lookup_entry(name)
        except KeyError:
            raise NamingError(f"name not registered: {name}") from None
        return [URI(uri) for uri in uris]

    def replica_sets(self, prefix: str | None = None) -> dict[str, builtins.list[str]]:
        """``{name: [uri string, ...]}`` for the names that are replica sets (optionally by prefix)."""
        if prefix is not None:
            _check_name(prefix, "prefix")
        self._expire()
        return {
            name: uris for name, uris in self._store.replica_sets().items() if not prefix or name.startswith(prefix)
        }

    def register(
        self,
        name: str,
        uri: Any,
        safe: bool = False,
        metadata: Iterable[str] | None = None,
        *,
        ttl: float | None = None,
        replica: bool = False,
    ) -> None:
        """Register ``name`` for ``uri`` (a URI or its string), replacing an existing entry
        unless ``safe`` is true (then an existing name is a NamingError).  ``metadata`` is
        None or a collection of str tags.

        ``ttl`` (seconds) makes it a lease: it expires unless registered again in time.
        ``replica=True`` adds ``uri`` to the name's replica set (``safe`` then refuses
        only a name held by a plain registration); registering a replica again renews its
        lease, and ``metadata`` None keeps the set's tags."""
        if isinstance(uri, URI):
            uri = str(uri)
        elif not isinstance(uri, str):
            raise TypeError(f"register() takes a URI or a URI string, not {type(uri).__name__}")
        else:
            URI(uri)  # raises PyroError if it is not a valid URI
        _check_text(uri, "uri")
        _check_name(name)
        tags = None if metadata is None else frozenset(_tag_set(metadata))
        lease = _check_ttl(ttl)
        self._check_write("register")
        self._store.register_entry(name, uri, tags, bool(safe), lease, bool(replica))

    def set_metadata(self, name: str, metadata: Iterable[str] | None) -> None:
        """Replace the metadata tags of an existing registration (None or empty clears them)."""
        _check_name(name)
        tags = frozenset() if metadata is None else frozenset(_tag_set(metadata))
        self._check_write("set_metadata")
        self._expire()
        try:
            self._store.set_entry_metadata(name, tags)
        except KeyError:
            raise NamingError(f"name not registered: {name}") from None

    def remove(
        self,
        name: str | None = None,
        prefix: str | None = None,
        regex: str | None = None,
        everything: bool = False,
        *,
        uri: Any = None,
    ) -> int:
        """Remove registrations; returns how many were removed.

        Give one of: an exact ``name`` (with ``uri``: only that URI of its replica set);
        a ``prefix``; a ``regex`` (``re.match``).  A prefix or regex that would remove
        every name needs ``everything=True`` as well; ``everything=True`` alone removes
        all registrations.  The name servers' own registrations are never removed."""
        if name:
            _check_name(name)
            if is_protected(name):
                return 0
            self._check_write("remove")
            return self._store.remove_entry(name, None if uri is None else str(uri))
        if prefix:
            _check_name(prefix, "prefix")
            self._check_write("remove")
            remove_prefix = getattr(self._store, "remove_prefix", None)
            if remove_prefix is not None:  # the whole step inside the storage (Redis: one script)
                return int(remove_prefix(prefix, everything))
            names = [n for n in self.list() if not is_protected(n)]
            victims = [n for n in names if n.startswith(prefix)]
            if victims and len(victims) == len(names) and not everything:
                raise NamingError(
                    f"prefix {prefix!r} matches every name; to remove all registrations pass everything=True"
                )
        elif regex:
            rx = regexmatch.compile_regex(regex)
            self._check_write("remove")
            names = [n for n in self.list() if not is_protected(n)]
            victims, matches_all = regexmatch.filter_names(rx, names)
            if (matches_all or (victims and len(victims) == len(names))) and not everything:
                raise NamingError(
                    f"regex {regex!r} matches every name; to remove all registrations "
                    f"call remove(regex=..., everything=True)"
                )
        elif everything:
            self._check_write("remove")
            victims = builtins.list(self.list())
        else:
            return 0
        with self.lock:
            present = [victim for victim in victims if not is_protected(victim) and victim in self.storage]
            if present:
                self.storage.remove_items(present)
        return len(present)

    def list(
        self, prefix: str | None = None, regex: str | None = None, return_metadata: bool = False
    ) -> dict[str, Any]:
        """The registrations as ``{name: uri string}`` (or ``{name: (uri, metadata set)}``),
        optionally only the names starting with ``prefix`` or matching ``regex``.
        A replica set shows its first live URI (``replicas(name)`` gives them all)."""
        if prefix and regex:
            raise ValueError("list() takes prefix or regex, not both")
        self._expire()
        if prefix:
            _check_name(prefix, "prefix")
            result = self.storage.optimized_prefix_list(prefix, return_metadata)
            if result is None:
                result = {
                    name: entry
                    for name, entry in self.storage.everything(return_metadata).items()
                    if name.startswith(prefix)
                }
        elif regex:
            rx = regexmatch.compile_regex(regex)
            result = self.storage.optimized_regex_list(regex, return_metadata)
            if result is None:
                snapshot = self.storage.everything(return_metadata)
                # matched on a copy: a slow pattern never holds up lookups or registrations
                matched, _ = regexmatch.filter_names(rx, builtins.list(snapshot))
                result = {name: snapshot[name] for name in matched}
        else:
            result = self.storage.everything(return_metadata)
        return self._fresh_sets(result) if return_metadata else result

    def yplookup(
        self, meta_all: Iterable[str] | None = None, meta_any: Iterable[str] | None = None, return_metadata: bool = True
    ) -> dict[str, Any]:
        """Yellow pages: the registrations having *all* tags of ``meta_all``, or *any* tag of
        ``meta_any`` (not both).  Values are ``(uri, metadata set)`` unless ``return_metadata``
        is false (then just the uri string).  A replica set gives one of its live URIs, in turn."""
        if meta_all and meta_any:
            raise ValueError("yplookup() takes meta_all or meta_any, not both")
        self._expire()
        if meta_all:
            tags = _tag_set(meta_all, "metadata_all")
            result = self.storage.optimized_metadata_search(metadata_all=tags, return_metadata=return_metadata)
            if result is None:
                result = {
                    name: (uri, meta) if return_metadata else uri
                    for name, (uri, meta) in self.storage.everything(return_metadata=True).items()
                    if tags.issubset(meta or ())
                }
        elif meta_any:
            tags = _tag_set(meta_any, "metadata_any")
            result = self.storage.optimized_metadata_search(metadata_any=tags, return_metadata=return_metadata)
            if result is None:
                result = {
                    name: (uri, meta) if return_metadata else uri
                    for name, (uri, meta) in self.storage.everything(return_metadata=True).items()
                    if not tags.isdisjoint(meta or ())
                }
        else:
            return {}
        if result:
            sets = self._store.replica_sets()
            for name in set(result) & set(sets):
                pick = self._pick(name, sets[name])
                result[name] = (pick, result[name][1]) if return_metadata else pick
        return self._fresh_sets(result) if return_metadata else result

    def ping(self) -> None:
        """Does nothing: a cheap call to check the name server is there."""

    @staticmethod
    def _fresh_sets(result: dict[str, Any]) -> dict[str, Any]:
        # plain sets, never the storage's own (frozen) objects: every serializer handles a set
        return {name: (uri, set(meta or ())) for name, (uri, meta) in result.items()}
