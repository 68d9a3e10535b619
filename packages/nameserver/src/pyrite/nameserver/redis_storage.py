"""``RedisStorage``: registrations in Redis or Valkey, shared by any number of name servers.

Specs (``pyrite-ns -s SPEC``), the URL forms of redis-py's ``from_url``::

    redis://[user:password@]host:port/db      plain TCP
    rediss://[user:password@]host:port/db     TLS
    unix:///path/to/redis.sock?db=0           Unix-domain socket

plus one pyrite query parameter, ``prefix=`` (default ``pyrite:ns:``): the key
prefix that keeps several registries apart in one database.  Needs the extra
``pip install pyrite-nameserver[redis]``.

Every operation is one Lua script (``redis_lua``), so concurrent name servers
never see or leave a half-written entry, and of two racing ``safe=True``
registrations exactly one wins.  Lease times are the Redis server's clock.
When Redis cannot be reached a call fails within about two seconds with a
``NamingError`` that says so; the next call reconnects by itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from pyrite.core.errors import NamingError
from pyrite.core.uri import NAMESERVER_NAME
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from . import redis_lua
from .leases import LeaseOperations, taken_error

__all__ = ["RedisStorage", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "pyrite:ns:"
CONNECT_TIMEOUT = 0.5  # seconds; with the retries below a dead Redis costs a caller ~2 s at most
SOCKET_TIMEOUT = 2.0
PURGE_INTERVAL = 1.0

Row = tuple[list[str], frozenset[str], bool]  # live uris, tags, replica set?


def _split_prefix(url: str) -> tuple[str, str]:
    """Take pyrite's ``prefix=`` out of the URL's query (redis-py would refuse it)."""
    base, sep, query = url.partition("?")
    prefix = DEFAULT_PREFIX
    kept = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        else:
            kept.append((key, value))
    # rebuilt by hand: urlunsplit would turn "unix:///path" into "unix:/path"
    return (base + "?" + urlencode(kept) if kept else base), prefix


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedisStorage(LeaseOperations, MutableMapping):  # type: ignore[type-arg]
    """A name-server storage in a Redis (or Valkey) database; see the module docstring.

    ``client`` may be a ready ``redis.Redis`` (then ``url`` only names it in messages)."""

    shared = True

    def __init__(self, url: str, prefix: str | None = None, client: Any = None) -> None:
        url, url_prefix = _split_prefix(url)
        self.prefix = url_prefix if prefix is None else prefix
        self.location = _redacted(url)
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url,
                    decode_responses=True,
                    socket_connect_timeout=CONNECT_TIMEOUT,
                    socket_timeout=SOCKET_TIMEOUT,
                    # retried: a refused or dropped connection (the command never ran); not
                    # retried: a timeout, where a hung server would cost 4x the socket timeout
                    # and a slow one could run a write twice (a safe register then seeing TAKEN)
                    retry=Retry(ExponentialBackoff(cap=0.4, base=0.05), 3, supported_errors=(RedisConnectionError,)),
                    retry_on_error=[RedisConnectionError],
                )
            except ValueError as exc:
                raise ValueError(f"invalid redis storage url {self.location!r}: {exc}") from None
        self._client = client
        self._scripts = {
            name: client.register_script(getattr(redis_lua, name))
            for name in ("REGISTER", "LOOKUP", "SET_META", "REMOVE", "QUERY", "COUNT", "PURGE")
        }
        self._closed = threading.Event()
        self._next_purge = 0.0
        self._run("COUNT")  # fail now, with a clear message, if the server is not there

    @classmethod
    def from_spec(cls, spec: str) -> RedisStorage:
        """The storage for a ``redis://``, ``rediss://`` or ``unix://`` spec (the plugin hook)."""
        return cls(spec)

    def __repr__(self) -> str:
        return f"<RedisStorage {self.location} prefix={self.prefix!r}>"

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, script: str, *args: Any) -> Any:
        if self._closed.is_set():
            raise NamingError("redis storage is closed")
        try:
            return self._scripts[script](args=[self.prefix, *args])
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("TAKEN"):
                raise taken_error(str(args[0])) from None
            if text.startswith("ALL"):
                raise NamingError(
                    f"prefix {args[1]!r} matches every name; to remove all registrations pass everything=True"
                ) from None
            raise NamingError(f"redis storage {self.location} refused {script}: {text}") from None
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise NamingError(f"name server storage unreachable: redis at {self.location}: {exc}") from None
        except RedisError as exc:
            raise NamingError(f"redis storage {self.location} failed in {script}: {exc}") from None

    @staticmethod
    def _tags_json(metadata: Iterable[str] | None) -> str:
        return json.dumps(sorted(set(metadata or ())))

    def _query(self, mode: str, *args: str) -> dict[str, Row]:
        if mode in ("all", "prefix"):
            return self._scan(args[0] if args else "")
        return self._rows(self._run("QUERY", mode, *args), {})

    def _scan(self, prefix: str) -> dict[str, Row]:
        """Every live name starting with ``prefix``, read in bounded steps (ZSCAN): one script
        over a large registry would block Redis for seconds and outlast the socket timeout."""
        rows: dict[str, Row] = {}
        cursor = "0"
        while True:
            flat = self._run("QUERY", "scan", cursor, prefix)
            cursor = str(flat[0])
            self._rows(flat[1:], rows)
            if cursor == "0":
                return rows

    @staticmethod
    def _rows(flat: list[Any], rows: dict[str, Row]) -> dict[str, Row]:
        i = 0
        while i < len(flat):
            name, meta, replica, count = flat[i], flat[i + 1], flat[i + 2], int(flat[i + 3])
            uris = flat[i + 4 : i + 4 + count]
            rows[name] = (list(uris), frozenset(json.loads(meta)), replica == "1")
            i += 4 + count
        return rows

    @staticmethod
    def _shape(rows: dict[str, Row], return_metadata: bool) -> dict[str, Any]:
        if return_metadata:
            return {name: (uris[0], set(meta)) for name, (uris, meta, _) in rows.items()}
        return {name: uris[0] for name, (uris, _, _) in rows.items()}

    # -- LeaseOperations ------------------------------------------------------------------------

    def register_entry(
        self,
        name: str,
        uri: str,
        metadata: frozenset[str] | None,
        safe: bool = False,
        ttl: float | None = None,
        replica: bool = False,
    ) -> None:
        """Register atomically in Redis (see ``LeaseOperations.register_entry``)."""
        meta = "" if metadata is None else self._tags_json(metadata)
        ttl_ms = "" if ttl is None else str(max(1, int(ttl * 1000)))
        self._run("REGISTER", name, uri, meta, "1" if safe else "0", ttl_ms, "1" if replica else "0")

    def lookup_entry(self, name: str) -> tuple[list[str], frozenset[str]]:
        """The live URIs and tags of a name; KeyError if it has none."""
        found = self._run("LOOKUP", name)
        if not found:
            raise KeyError(name)
        return list(found[2:]), frozenset(json.loads(found[0]))

    def set_entry_metadata(self, name: str, metadata: frozenset[str]) -> None:
        """Replace a name's tags atomically; KeyError if it is not registered."""
        if not self._run("SET_META", name, self._tags_json(metadata)):
            raise KeyError(name)

    def remove_entry(self, name: str, uri: str | None = None) -> int:
        """Remove a name, or one URI of it."""
        if uri is None:
            return int(self._run("REMOVE", "names", name))
        return int(self._run("REMOVE", "uri", uri, name))

    def remove_prefix(self, prefix: str, everything: bool = False) -> int:
        """Remove every name starting with ``prefix`` in one atomic step; refuses a prefix
        that would take every name unless ``everything`` (the name servers' own entries stay)."""
        return int(self._run("REMOVE", "prefix", prefix, "1" if everything else "0", NAMESERVER_NAME))

    def replica_sets(self) -> dict[str, list[str]]:
        """Every replica-set name with its live URIs."""
        return {name: uris for name, (uris, _, replica) in self._query("all").items() if replica}

    def purge_expired(self) -> None:
        """Drop names whose leases all ran out, at most once per ``PURGE_INTERVAL`` seconds.

        Readers already skip expired URIs and every write purges first, so this only
        frees the keys of a registry nobody writes to; it need not run per call."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        self._run("PURGE")

    # -- the mapping and Pyro5's query methods ---------------------------------------------------

    def __getitem__(self, name: str) -> tuple[str, set[str]]:
        uris, meta = self.lookup_entry(name)
        return uris[0], set(meta)

    def __setitem__(self, name: str, value: tuple[str, Any]) -> None:
        uri, metadata = value
        self.register_entry(name, uri, frozenset(metadata or ()))

    def __delitem__(self, name: str) -> None:
        if not self.remove_entry(name):
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._run("LOOKUP", name))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._query("all")))

    def __len__(self) -> int:
        return int(self._run("COUNT"))

    def everything(self, return_metadata: bool = False) -> dict[str, Any]:
        """Every live registration: ``name -> uri`` or ``name -> (uri, metadata)``."""
        return self._shape(self._query("all"), return_metadata)

    def everything_rows(self) -> dict[str, Row]:
        """Every live registration with all its URIs: ``name -> (uris, tags, replica?)``."""
        return self._query("all")

    def optimized_prefix_list(self, prefix: str, return_metadata: bool = False) -> dict[str, Any]:
        """The names starting with ``prefix``, filtered inside Redis."""
        return self._shape(self._query("prefix", prefix), return_metadata)

    def optimized_regex_list(self, regex: str, return_metadata: bool = False) -> dict[str, Any] | None:
        """Not optimized: the name server matches regexes itself (with a time bound)."""
        return None

    def optimized_metadata_search(
        self,
        metadata_all: Iterable[str] | None = None,
        metadata_any: Iterable[str] | None = None,
        return_metadata: bool = False,
    ) -> dict[str, Any]:
        """Names having all of ``metadata_all`` (or any of ``metadata_any``), from the tag index."""
        if metadata_any:
            return self._shape(self._query("tags_any", *sorted(set(metadata_any))), return_metadata)
        tags = sorted(set(metadata_all or ()))
        if not tags:
            return {}
        return self._shape(self._query("tags_all", *tags), return_metadata)

    def remove_items(self, items: Iterable[str]) -> None:
        """Remove the given names in one atomic step; names that are not there are ignored."""
        names = list(items)
        if names:
            self._run("REMOVE", "names", *names)

    def clear(self) -> None:
        """Remove every key under this storage's prefix (tests; the name server never calls it)."""
        pattern = "".join("\\" + c if c in "*?[]\\^-" else c for c in self.prefix) + "*"
        try:
            keys = list(self._client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                self._client.delete(*keys[start : start + 500])
        except RedisError as exc:
            raise NamingError(f"redis storage {self.location} failed in clear: {exc}") from None

    def close(self) -> None:
        """Release the connection pool; later calls raise NamingError."""
        if not self._closed.is_set():
            self._closed.set()
            self._client.close()
