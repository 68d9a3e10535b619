"""``MemoryStorage``: registrations in a dict, with leases and replica sets in a side table.

Fast, and gone when the name server stops.  ``storage`` re-exports it, and the
``memory`` entry of ``pyrite.nameserver.storages`` names it there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from .leases import INFINITY, Entry, LocalLeases

__all__ = ["MemoryStorage"]


class MemoryStorage(LocalLeases, dict):  # type: ignore[type-arg]
    """Registrations in a plain dict: fast, and gone when the name server stops.

    A value stored with metadata None is kept with an empty frozenset.  Leases
    and replica sets live in a side table (``name -> {uri: expiry}``) that only
    holds the names that have either; the dict value of a replica set shows its
    first URI, so Pyro5-style readers of the mapping still see one URI per name.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._leases: dict[str, Entry] = {}
        self._next_expiry = INFINITY

    @classmethod
    def from_spec(cls, spec: str) -> MemoryStorage:
        """The storage for the spec ``"memory"`` (the ``pyrite.nameserver.storages`` plugin hook)."""
        if spec != "memory":
            raise ValueError(f"unknown storage {spec!r}: the memory storage takes no argument")
        return cls()

    def __setitem__(self, key: str, value: tuple[str, Any]) -> None:
        uri, metadata = value
        with self._lock:
            self._leases.pop(key, None)
            dict.__setitem__(self, key, (uri, frozenset() if metadata is None else frozenset(metadata)))

    def __delitem__(self, key: str) -> None:
        with self._lock:
            self._leases.pop(key, None)
            dict.__delitem__(self, key)

    def clear(self) -> None:
        """Remove every registration."""
        with self._lock:
            self._leases.clear()
            dict.clear(self)

    # -- LocalLeases primitives ----------------------------------------------------------------

    def _entry(self, name: str) -> Entry | None:
        leased = self._leases.get(name)
        if leased is not None:
            return Entry(dict(leased.uris), leased.metadata, leased.replica)
        value = dict.get(self, name)
        if value is None:
            return None
        return Entry({value[0]: None}, frozenset(value[1]), False)

    def _store_entry(self, name: str, entry: Entry) -> None:
        dict.__setitem__(self, name, (next(iter(entry.uris)), entry.metadata))
        if entry.leased:
            self._leases[name] = Entry(dict(entry.uris), entry.metadata, entry.replica)
        else:
            self._leases.pop(name, None)

    def _purge(self, now: float) -> None:
        self._next_expiry = INFINITY
        for name, entry in list(self._leases.items()):
            live = entry.live(now)
            if not live:
                self._leases.pop(name, None)
                dict.pop(self, name, None)
                continue
            if len(live) != len(entry.uris):
                entry.uris = {uri: entry.uris[uri] for uri in live}
                dict.__setitem__(self, name, (live[0], entry.metadata))
            self._note_expiry(entry)

    def replica_sets(self) -> dict[str, list[str]]:
        """Every replica-set name with its live URIs."""
        now = time.time()
        with self._lock:
            return {name: entry.live(now) for name, entry in self._leases.items() if entry.replica and entry.live(now)}

    def lookup_entry(self, name: str) -> tuple[list[str], frozenset[str]]:
        """A plain name straight from the dict (one atomic read); leased ones via LocalLeases."""
        if name not in self._leases:
            value = dict.get(self, name)
            if value is None:
                raise KeyError(name)
            return [value[0]], value[1]
        return LocalLeases.lookup_entry(self, name)

    # -- the queries -----------------------------------------------------------------------------

    def optimized_prefix_list(self, prefix: str, return_metadata: bool = False) -> dict[str, Any] | None:
        """Not optimized: the name server filters ``everything()``."""
        return None

    def optimized_regex_list(self, regex: str, return_metadata: bool = False) -> dict[str, Any] | None:
        """Not optimized: the name server filters ``everything()``."""
        return None

    def optimized_metadata_search(
        self,
        metadata_all: Iterable[str] | None = None,
        metadata_any: Iterable[str] | None = None,
        return_metadata: bool = False,
    ) -> dict[str, Any] | None:
        """Not optimized: the name server filters ``everything()``."""
        return None

    def everything(self, return_metadata: bool = False) -> dict[str, Any]:
        """A copy of every registration: ``name -> uri`` or ``name -> (uri, metadata)``."""
        with self._lock:
            snapshot = dict(self.items())
        if return_metadata:
            return snapshot
        return {name: entry[0] for name, entry in snapshot.items()}

    def remove_items(self, items: Iterable[str]) -> None:
        """Remove the given names; names that are not there are ignored."""
        with self._lock:
            for item in items:
                self._leases.pop(item, None)
                dict.pop(self, item, None)

    def close(self) -> None:
        """Nothing to release."""
