"""Leases and replica sets for the storages that live in one name server process.

A registration may carry a lease (``ttl`` seconds: it expires unless it is
registered again in time) and may be a *replica set*: several URIs under one
name, each with its own lease.  ``LocalLeases`` implements the storage
operations the ``NameServer`` calls for both, on top of four primitives that
``MemoryStorage`` and ``SqlStorage`` provide:

    _entry(name)                        -> Entry | None
    _store_entry(name, entry)           write one name (uris, metadata, replica flag)
    remove_items(names)                 forget names
    _purge(now)                         drop what expired at ``now`` (wall clock)

Expiry uses the wall clock (``time.time()``) so that an sqlite file keeps its
leases across a restart.  Every operation holds the storage's lock for its
whole read-modify-write, which makes it atomic for the one name server that
owns a memory or sqlite storage.  The Redis storage implements the same
operations itself, atomically in the Redis server (see ``redis_storage``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyrite.core.errors import NamingError

__all__ = ["Entry", "LocalLeases", "LeaseOperations"]

INFINITY = float("inf")


@dataclass
class Entry:
    """One name: its URIs (each with an expiry time or None for no lease), its tags, and
    whether it is a replica set (more URIs may join) or a single registration."""

    uris: dict[str, float | None]
    metadata: frozenset[str] = field(default_factory=frozenset)
    replica: bool = False

    def live(self, now: float) -> list[str]:
        """The URIs whose lease has not run out at ``now``, in registration order."""
        return [uri for uri, expires in self.uris.items() if expires is None or expires > now]

    @property
    def leased(self) -> bool:
        """True if any URI has a lease, or the entry is a replica set (both need the side table)."""
        return self.replica or any(expires is not None for expires in self.uris.values())


def taken_error(name: str) -> NamingError:
    """The error for a ``safe=True`` registration of a name that is in use."""
    return NamingError(f"name is taken: {name}")


class LeaseOperations:
    """What the name server asks of a storage beyond Pyro5's mapping interface.

    Documented here as a base with the method names; ``LocalLeases`` and the Redis
    storage implement them.  ``shared`` is True when several name servers may use
    one storage at once (then each name server registers itself as a replica of
    ``Pyro.NameServer`` under a lease)."""

    shared = False

    def register_entry(
        self,
        name: str,
        uri: str,
        metadata: frozenset[str] | None,
        safe: bool = False,
        ttl: float | None = None,
        replica: bool = False,
    ) -> None:
        """Register atomically.  ``metadata`` None keeps a replica set's tags (and means none
        for a new name).  ``safe`` refuses a name that holds a single registration, and a
        replica set when ``replica`` is false."""
        raise NotImplementedError

    def lookup_entry(self, name: str) -> tuple[list[str], frozenset[str]]:
        """The live URIs of a name (one unless it is a replica set) and its tags; KeyError if none."""
        raise NotImplementedError

    def set_entry_metadata(self, name: str, metadata: frozenset[str]) -> None:
        """Replace the tags of a name; KeyError if it is not registered."""
        raise NotImplementedError

    def remove_entry(self, name: str, uri: str | None = None) -> int:
        """Remove a name, or only ``uri`` from its replica set; returns how many names or URIs went."""
        raise NotImplementedError

    def replica_sets(self) -> dict[str, list[str]]:
        """Every replica-set name with its live URIs."""
        raise NotImplementedError

    def purge_expired(self) -> None:
        """Forget what has expired (cheap when nothing has)."""
        raise NotImplementedError


class LocalLeases(LeaseOperations):
    """``LeaseOperations`` for a storage owned by one process, under one lock."""

    _lock: threading.RLock
    _next_expiry: float

    # -- the primitives a storage provides -------------------------------------------------

    def _entry(self, name: str) -> Entry | None:
        raise NotImplementedError

    def _store_entry(self, name: str, entry: Entry) -> None:
        raise NotImplementedError

    def remove_items(self, items: Iterable[str]) -> None:
        raise NotImplementedError

    def _purge(self, now: float) -> None:
        raise NotImplementedError

    # -- the operations -----------------------------------------------------------------------

    def _note_expiry(self, entry: Entry) -> None:
        for expires in entry.uris.values():
            if expires is not None and expires < self._next_expiry:
                self._next_expiry = expires

    def purge_expired(self) -> None:
        """Drop expired URIs (and names left with none).  O(1) until the earliest lease is due."""
        now = time.time()
        if now < self._next_expiry:
            return
        with self._lock:
            self._purge(now)

    def register_entry(
        self,
        name: str,
        uri: str,
        metadata: frozenset[str] | None,
        safe: bool = False,
        ttl: float | None = None,
        replica: bool = False,
    ) -> None:
        """See ``LeaseOperations.register_entry``."""
        now = time.time()
        expires = None if ttl is None else now + ttl
        with self._lock:
            if now >= self._next_expiry:
                self._purge(now)
            current = self._entry(name)
            if current is not None and safe and not (replica and current.replica):
                raise taken_error(name)
            if replica and current is not None and current.replica:
                uris = {u: e for u, e in current.uris.items() if e is None or e > now}
                uris[uri] = expires
                entry = Entry(uris, current.metadata if metadata is None else metadata, True)
            else:
                entry = Entry({uri: expires}, metadata or frozenset(), replica)
            self._store_entry(name, entry)
            self._note_expiry(entry)

    def lookup_entry(self, name: str) -> tuple[list[str], frozenset[str]]:
        """See ``LeaseOperations.lookup_entry``."""
        with self._lock:
            entry = self._entry(name)
            if entry is None:
                raise KeyError(name)
            live = entry.live(time.time())
            if not live:
                raise KeyError(name)
            return live, entry.metadata

    def set_entry_metadata(self, name: str, metadata: frozenset[str]) -> None:
        """See ``LeaseOperations.set_entry_metadata``."""
        with self._lock:
            entry = self._entry(name)
            if entry is None or not entry.live(time.time()):
                raise KeyError(name)
            entry.metadata = metadata
            self._store_entry(name, entry)

    def remove_entry(self, name: str, uri: str | None = None) -> int:
        """See ``LeaseOperations.remove_entry``."""
        with self._lock:
            entry = self._entry(name)
            if entry is None:
                return 0
            if uri is None:
                self.remove_items([name])
                return 1
            if uri not in entry.uris:
                return 0
            del entry.uris[uri]
            if entry.uris:
                self._store_entry(name, entry)
            else:
                self.remove_items([name])
            return 1

    def replica_sets(self) -> dict[str, list[str]]:
        """See ``LeaseOperations.replica_sets``."""
        raise NotImplementedError
