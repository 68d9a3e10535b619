"""``StreamRegistry``: iterator results that clients fetch item by item.

A call that returns an iterator or generator gets a stream id instead of a
value (``config.ITER_STREAMING``); the client then calls the daemon object's
``get_next_stream_item(id)`` until StopIteration, or ``close_stream(id)``.

Limits and lifetimes (config items):

* ``ITER_STREAM_MAX_PER_CONNECTION``: open streams one connection may hold;
  ``ITER_STREAM_MAX``: open streams in the whole daemon.  Beyond either,
  ``open`` raises a PyroError that names the item (0 = no limit).
* ``ITER_STREAM_LIFETIME``: seconds a stream may live at all (0 = forever).
* ``ITER_STREAM_LINGER``: when its connection closes, a stream is kept this
  many seconds for a reconnecting client to pick up (0 = freed at once).

``entries`` is the dict ``Daemon.streaming_responses`` shows: stream id ->
``[connection or None, created, disconnected at (0 while connected), iterator]``,
Pyro5's layout.

Example::

    streams = StreamRegistry()
    sid = streams.open(iter("ab"), conn)
    streams.next(sid, conn)     # "a"
    streams.close(sid)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .config import config
from .errors import PyroError

__all__ = ["StreamRegistry"]

_CONN, _CREATED, _LINGERING, _ITERATOR = range(4)


class StreamRegistry:
    """The open item streams of one daemon; thread safe."""

    def __init__(self) -> None:
        self.entries: dict[str, list[Any]] = {}
        self._by_conn: dict[Any, set[str]] = {}  # connection -> its stream ids
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def count_for(self, conn: Any) -> int:
        """How many streams ``conn`` holds open now."""
        return len(self._by_conn.get(conn, ()))

    def open(self, iterator: Iterator[Any], conn: Any) -> str:
        """Keep ``iterator`` for ``conn``; its new stream id.  PyroError beyond a limit."""
        per_conn = int(config.ITER_STREAM_MAX_PER_CONNECTION)
        overall = int(config.ITER_STREAM_MAX)
        stream_id = str(uuid.uuid4())
        with self._lock:
            if overall > 0 and len(self.entries) >= overall:
                raise PyroError(
                    f"too many open item streams in this daemon ({len(self.entries)}, ITER_STREAM_MAX={overall})"
                )
            owned = self._by_conn.get(conn) if conn is not None else None
            if per_conn > 0 and owned is not None and len(owned) >= per_conn:
                raise PyroError(
                    f"too many open item streams on this connection ({len(owned)}, "
                    f"ITER_STREAM_MAX_PER_CONNECTION={per_conn}); close or finish some first"
                )
            self.entries[stream_id] = [conn, time.time(), 0, iterator]
            if conn is not None:
                if owned is None:
                    owned = self._by_conn[conn] = set()
                owned.add(stream_id)
        return stream_id

    def next(self, stream_id: Any, conn: Any) -> Any:
        """The next item of a stream; a lingering stream passes to ``conn``.  StopIteration at
        its end (the stream is then gone, as after any error in it).

        An iterator with ``anext_here()`` (``engines._aio_calls.AsyncIteratorBridge``) has its
        items produced on an event loop: on that loop's thread, ``anext_here()`` gives an
        awaitable of the next item, and so does this (awaiting it ends the same way)."""
        try:
            entry = self.entries.get(stream_id)
        except TypeError:
            entry = None
        if entry is None:
            raise PyroError(f"no open item stream with id {stream_id!r:.100}")
        if entry[_CONN] is None and conn is not None:
            # a lingering stream is picked up by a reconnected client
            with self._lock:
                if entry[_CONN] is None:
                    entry[_CONN] = conn
                    entry[_LINGERING] = 0
                    self._by_conn.setdefault(conn, set()).add(stream_id)
        iterator = entry[_ITERATOR]
        anext_here = getattr(iterator, "anext_here", None)
        if anext_here is not None:
            awaitable = anext_here()  # None unless this is the thread of the loop producing the items
            if awaitable is not None:
                return self._awaited(stream_id, awaitable)
        try:
            return next(iterator)
        except BaseException:
            # the end of the stream (StopIteration) or an error in it: it is gone either way
            self.close(stream_id)
            raise

    async def _awaited(self, stream_id: str, awaitable: Any) -> Any:
        """The next item of a stream whose items an event loop produces, awaited on that loop."""
        try:
            return await awaitable
        except BaseException:
            self.close(stream_id)  # as in next(): its end or an error in it, even a cancellation
            raise

    def awaits_items(self, stream_id: Any) -> bool:
        """True if the items of this stream are awaited on an event loop (an async generator
        result of the asyncio engine): called there, ``next`` returns an awaitable of the item."""
        try:
            entry = self.entries.get(stream_id)
        except TypeError:
            return False
        return entry is not None and hasattr(entry[_ITERATOR], "anext_here")

    def close(self, stream_id: Any) -> None:
        """Forget a stream (unknown ids are ignored)."""
        with self._lock:
            try:
                entry = self.entries.pop(stream_id, None)
            except TypeError:
                return
            if entry is not None:
                self._forget_owner(entry[_CONN], stream_id)

    def _forget_owner(self, conn: Any, stream_id: str) -> None:
        # caller holds the lock
        if conn is None:
            return
        owned = self._by_conn.get(conn)
        if owned is not None:
            owned.discard(stream_id)
            if not owned:
                del self._by_conn[conn]

    def client_disconnected(self, conn: Any) -> None:
        """The streams of a closed connection linger (``ITER_STREAM_LINGER``) or go at once."""
        linger = config.ITER_STREAM_LINGER
        now = time.time()
        with self._lock:
            owned = self._by_conn.pop(conn, ())
            for stream_id in owned:
                entry = self.entries.get(stream_id)
                if entry is None or entry[_CONN] is not conn:
                    continue
                if linger > 0:
                    entry[_CONN] = None  # kept a while: the client may reconnect and go on
                    entry[_LINGERING] = now
                else:
                    del self.entries[stream_id]

    def expire(self, now: float | None = None) -> int:
        """Drop streams past ``ITER_STREAM_LIFETIME`` or lingering past ``ITER_STREAM_LINGER``;
        how many went."""
        if not self.entries:
            return 0
        now = time.time() if now is None else now
        lifetime = config.ITER_STREAM_LIFETIME
        linger = config.ITER_STREAM_LINGER
        gone = 0
        with self._lock:
            for stream_id, entry in list(self.entries.items()):
                too_old = 0 < lifetime < now - entry[_CREATED]
                lingered = linger > 0 and entry[_LINGERING] and now - entry[_LINGERING] > linger
                if too_old or lingered:
                    del self.entries[stream_id]
                    self._forget_owner(entry[_CONN], stream_id)
                    gone += 1
        return gone

    def clear(self) -> None:
        """Forget every stream (the daemon is shutting down)."""
        with self._lock:
            self.entries.clear()
            self._by_conn.clear()
