"""Where a name server keeps its registrations: in memory, or in an sqlite file.

Both storages are mutable mappings ``name -> (uri string, metadata set)`` with
the extra query methods Pyro5's name server calls (so a Pyro5-style custom
storage plugs in as well)::

    optimized_prefix_list(prefix, return_metadata=False)   -> dict or None
    optimized_regex_list(regex, return_metadata=False)     -> dict or None
    optimized_metadata_search(metadata_all=None, metadata_any=None,
                              return_metadata=False)       -> dict or None
    everything(return_metadata=False)                      -> dict
    remove_items(names)
    close()

An ``optimized_*`` method returning None means "not optimized here": the name
server then filters ``everything()`` itself.

``SqlStorage`` uses Pyro5's table layout (``pyro_names``, ``pyro_metadata``),
so a file written by a Pyro5 name server opens here and the other way round.
Every change is committed (and, in WAL mode with ``synchronous=FULL``, on
disk) before the method returns, so a registration the name server has
acknowledged survives a ``kill -9`` of the server process.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from pyrite.core.errors import NamingError

from .leases import INFINITY, Entry, LocalLeases
from .memory import MemoryStorage

__all__ = ["MemoryStorage", "SqlStorage", "make_storage"]


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS pyro_names (
           id integer PRIMARY KEY,
           name nvarchar NOT NULL UNIQUE,
           uri nvarchar NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS pyro_metadata (
           object integer NOT NULL,
           metadata nvarchar NOT NULL,
           FOREIGN KEY(object) REFERENCES pyro_names(id))""",
    # not in Pyro5's schema; harmless to it, and keeps metadata reads off a full scan
    "CREATE INDEX IF NOT EXISTS pyro_metadata_object ON pyro_metadata(object)",
    # pyrite's leases and replica sets; a Pyro5 name server ignores this table and sees each
    # name with its first URI (pyro_names.uri)
    """CREATE TABLE IF NOT EXISTS pyrite_leases (
           name nvarchar NOT NULL,
           uri nvarchar NOT NULL,
           expires real,
           replica integer NOT NULL,
           seq integer NOT NULL,
           PRIMARY KEY(name, uri))""",
)


class SqlStorage(LocalLeases, MutableMapping):  # type: ignore[type-arg]
    """Registrations in an sqlite database file; they survive a restart (and a crash).

    One connection, shared by all threads behind a lock: sqlite serializes
    writers anyway, and a single connection avoids reopening the file on every
    call.  Every write is one transaction, committed before the method returns.
    """

    def __init__(self, dbfile: str) -> None:
        if not dbfile or dbfile == ":memory:" or dbfile.startswith("file::memory:"):
            raise ValueError("the sqlite storage needs a file; for a volatile store use the memory storage")
        self.dbfile = dbfile
        self._lock = threading.RLock()
        # autocommit mode (isolation_level=None): transactions are opened explicitly below
        self._db: sqlite3.Connection | None = sqlite3.connect(
            dbfile, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._transaction() as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if "pyro_names" in tables and "pyro_metadata" not in tables:
                    # an old Pyro schema without metadata: move the names into the new layout
                    db.execute("ALTER TABLE pyro_names RENAME TO pyro_names_old")
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute("INSERT INTO pyro_names(name, uri) SELECT name, uri FROM pyro_names_old")
                    db.execute("DROP TABLE pyro_names_old")
                else:
                    for statement in _SCHEMA:
                        db.execute(statement)
            self._next_expiry = INFINITY
            self._recompute_next_expiry(self._db)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            self._db = None
            raise NamingError(f"cannot use sqlite storage {dbfile!r}: {exc}") from exc

    @classmethod
    def from_spec(cls, spec: str) -> SqlStorage:
        """The storage for the spec ``"sql:FILE"`` (the ``pyrite.nameserver.storages`` plugin hook)."""
        if not spec.startswith("sql:") or len(spec) <= 4:
            raise ValueError(f"unknown storage {spec!r}: use 'sql:<path to file>'")
        return cls(spec[4:])

    # -- plumbing ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise NamingError("sqlite storage is closed")
        return self._db

    class _Tx:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error) under the storage lock."""

        def __init__(self, storage: SqlStorage) -> None:
            self.storage = storage

        def __enter__(self) -> sqlite3.Connection:
            self.storage._lock.acquire()
            try:
                db = self.storage._conn()
                db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.storage._lock.release()
                raise
            self.db = db
            return db

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                if exc_type is None:
                    self.db.execute("COMMIT")
                else:
                    self.db.execute("ROLLBACK")
            finally:
                self.storage._lock.release()

    def _transaction(self) -> SqlStorage._Tx:
        return SqlStorage._Tx(self)

    def _read(self, what: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"name server database failed during {what}: {exc}") from exc

    def _with_metadata(self, rows: list[tuple[Any, ...]], return_metadata: bool) -> dict[str, Any]:
        """Turn ``(id, name, uri)`` rows into the result dict, adding metadata if asked.

        Callers hold ``_lock`` across the read of the rows and this call, so both see one state."""
        if not return_metadata:
            return {name: uri for _, name, uri in rows}
        if not rows:
            return {}
        meta: dict[int, set[str]] = {dbid: set() for dbid, _, _ in rows}
        if len(rows) > 500:
            found = self._read("metadata", "SELECT object, metadata FROM pyro_metadata")
        else:
            marks = ",".join("?" * len(rows))
            found = self._read(
                "metadata",
                f"SELECT object, metadata FROM pyro_metadata WHERE object IN ({marks})",
                [dbid for dbid, _, _ in rows],
            )
        for dbid, tag in found:
            if dbid in meta:
                meta[dbid].add(tag)
        return {name: (uri, meta[dbid]) for dbid, name, uri in rows}

    @staticmethod
    def _delete(db: sqlite3.Connection, name: str) -> None:
        db.execute("DELETE FROM pyrite_leases WHERE name=?", (name,))
        row = db.execute("SELECT id FROM pyro_names WHERE name=?", (name,)).fetchone()
        if row:
            db.execute("DELETE FROM pyro_metadata WHERE object=?", (row[0],))
            db.execute("DELETE FROM pyro_names WHERE id=?", (row[0],))

    def _recompute_next_expiry(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT min(expires) FROM pyrite_leases WHERE expires IS NOT NULL").fetchone()
        self._next_expiry = INFINITY if row is None or row[0] is None else float(row[0])

    # -- LocalLeases primitives ----------------------------------------------------------------

    def _entry(self, name: str) -> Entry | None:
        with self._lock:
            rows = self._read("lookup", "SELECT id, name, uri FROM pyro_names WHERE name=?", (name,))
            if not rows:
                return None
            uri, metadata = self._with_metadata(rows, True)[name]
            leases = self._read(
                "lookup", "SELECT uri, expires, replica FROM pyrite_leases WHERE name=? ORDER BY seq", (name,)
            )
        if not leases:
            return Entry({uri: None}, frozenset(metadata), False)
        return Entry({row[0]: row[1] for row in leases}, frozenset(metadata), bool(leases[0][2]))

    def _store_entry(self, name: str, entry: Entry) -> None:
        try:
            with self._transaction() as db:
                self._delete(db, name)
                cursor = db.execute("INSERT INTO pyro_names(name, uri) VALUES(?,?)", (name, next(iter(entry.uris))))
                db.executemany(
                    "INSERT INTO pyro_metadata(object, metadata) VALUES(?,?)",
                    [(cursor.lastrowid, tag) for tag in entry.metadata],
                )
                if entry.leased:
                    db.executemany(
                        "INSERT INTO pyrite_leases(name, uri, expires, replica, seq) VALUES(?,?,?,?,?)",
                        [
                            (name, uri, expires, int(entry.replica), seq)
                            for seq, (uri, expires) in enumerate(entry.uris.items())
                        ],
                    )
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"sqlite error in register: {exc}") from exc

    def _purge(self, now: float) -> None:
        try:
            with self._transaction() as db:
                names = [
                    row[0]
                    for row in db.execute(
                        "SELECT DISTINCT name FROM pyrite_leases WHERE expires IS NOT NULL AND expires <= ?", (now,)
                    )
                ]
                db.execute("DELETE FROM pyrite_leases WHERE expires IS NOT NULL AND expires <= ?", (now,))
                for name in names:
                    first = db.execute(
                        "SELECT uri FROM pyrite_leases WHERE name=? ORDER BY seq LIMIT 1", (name,)
                    ).fetchone()
                    if first is None:
                        self._delete(db, name)
                    else:
                        db.execute("UPDATE pyro_names SET uri=? WHERE name=?", (first[0], name))
                self._recompute_next_expiry(db)
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"sqlite error while expiring leases: {exc}") from exc

    def replica_sets(self) -> dict[str, list[str]]:
        """Every replica-set name with its live URIs."""
        now = time.time()
        rows = self._read(
            "replicas",
            "SELECT name, uri FROM pyrite_leases WHERE replica=1 AND (expires IS NULL OR expires > ?) ORDER BY seq",
            (now,),
        )
        result: dict[str, list[str]] = {}
        for name, uri in rows:
            result.setdefault(name, []).append(uri)
        return result

    # -- the mapping ------------------------------------------------------------------------

    def __getitem__(self, name: str) -> tuple[str, set[str]]:
        with self._lock:
            rows = self._read("getitem", "SELECT id, name, uri FROM pyro_names WHERE name=?", (name,))
            if not rows:
                raise KeyError(name)
            uri, metadata = self._with_metadata(rows, True)[name]
            return str(uri), set(metadata)

    def __setitem__(self, name: str, value: tuple[str, Any]) -> None:
        uri, metadata = value
        try:
            with self._transaction() as db:
                self._delete(db, name)
                cursor = db.execute("INSERT INTO pyro_names(name, uri) VALUES(?,?)", (name, uri))
                if metadata:
                    db.executemany(
                        "INSERT INTO pyro_metadata(object, metadata) VALUES(?,?)",
                        [(cursor.lastrowid, tag) for tag in set(metadata)],
                    )
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"sqlite error in setitem: {exc}") from exc

    def __delitem__(self, name: str) -> None:
        try:
            with self._transaction() as db:
                if not db.execute("SELECT 1 FROM pyro_names WHERE name=?", (name,)).fetchone():
                    raise KeyError(name)
                self._delete(db, name)
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"sqlite error in delitem: {exc}") from exc

    def __len__(self) -> int:
        return int(self._read("len", "SELECT count(*) FROM pyro_names")[0][0])

    def __contains__(self, name: object) -> bool:
        return bool(self._read("contains", "SELECT 1 FROM pyro_names WHERE name=? LIMIT 1", (name,)))

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._read("iter", "SELECT name FROM pyro_names")])

    def clear(self) -> None:
        """Remove every registration."""
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM pyrite_leases")
                db.execute("DELETE FROM pyro_metadata")
                db.execute("DELETE FROM pyro_names")
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"sqlite error in clear: {exc}") from exc

    # -- the queries ------------------------------------------------------------------------

    def optimized_prefix_list(self, prefix: str, return_metadata: bool = False) -> dict[str, Any]:
        """Registrations whose name starts with ``prefix`` (case-sensitive, no wildcards)."""
        with self._lock:
            rows = self._read(
                "prefix list",
                "SELECT id, name, uri FROM pyro_names WHERE substr(name, 1, ?) = ?",
                (len(prefix), prefix),
            )
            return self._with_metadata(rows, return_metadata)

    def optimized_regex_list(self, regex: str, return_metadata: bool = False) -> dict[str, Any] | None:
        """Not optimized: the name server matches regexes itself (with a time bound)."""
        return None

    def optimized_metadata_search(
        self,
        metadata_all: Iterable[str] | None = None,
        metadata_any: Iterable[str] | None = None,
        return_metadata: bool = False,
    ) -> dict[str, Any]:
        """Registrations having all of ``metadata_all``, or any of ``metadata_any``."""
        if metadata_any:
            tags = sorted(set(metadata_any))
            marks = ",".join("?" * len(tags))
            sql = (
                f"SELECT id, name, uri FROM pyro_names WHERE id IN "
                f"(SELECT object FROM pyro_metadata WHERE metadata IN ({marks}))"
            )
            params: list[Any] = list(tags)
        else:
            tags = sorted(set(metadata_all or ()))
            if not tags:
                return {}
            marks = ",".join("?" * len(tags))
            sql = (
                f"SELECT id, name, uri FROM pyro_names WHERE id IN "
                f"(SELECT object FROM pyro_metadata WHERE metadata IN ({marks}) "
                f"GROUP BY object HAVING COUNT(DISTINCT metadata)=?)"
            )
            params = [*tags, len(tags)]
        with self._lock:
            return self._with_metadata(self._read("metadata search", sql, params), return_metadata)

    def everything(self, return_metadata: bool = False) -> dict[str, Any]:
        """Every registration: ``name -> uri`` or ``name -> (uri, metadata)``."""
        with self._lock:
            return self._with_metadata(
                self._read("everything", "SELECT id, name, uri FROM pyro_names"), return_metadata
            )

    def remove_items(self, items: Iterable[str]) -> None:
        """Remove the given names in one transaction; names that are not there are ignored."""
        try:
            with self._transaction() as db:
                for name in items:
                    self._delete(db, name)
        except sqlite3.DatabaseError as exc:
            raise NamingError(f"sqlite error in remove_items: {exc}") from exc

    def close(self) -> None:
        """Close the database; later calls raise NamingError."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def make_storage(spec: str | None) -> MemoryStorage | SqlStorage:
    """The storage named by a ``-s`` option: ``memory`` (default) or ``sql:path/to/file``."""
    spec = spec or "memory"
    if spec == "memory":
        return MemoryStorage()
    if spec.startswith("sql:") and len(spec) > 4:
        return SqlStorage(spec[4:])
    raise ValueError(f"unknown storage {spec!r}: use 'memory' or 'sql:<path to file>'")
