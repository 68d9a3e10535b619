"""The iterator of a streamed result that a ``SharedProxy`` hands out (usable from any thread).
It needs only the proxy's ``_pyroInvoke``, ``_pyroConnection`` and ``_pyroUri``.  (Its remote
methods are the sync proxy's ``remote.RemoteMethod``, bound to its ``_pyroInvoke``.)"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from .errors import ConnectionClosedError, PyroError
from .protocol import FLAGS_ONEWAY
from .uri import DAEMON_NAME

if TYPE_CHECKING:
    from .shared import SharedProxy

__all__ = ["SharedStreamIterator"]


class SharedStreamIterator:
    """A remote iterator reached through a SharedProxy; ``close()`` (or dropping it) ends it early.

    Threads may share one: each item goes to one of them, and once the daemon's iterator is
    exhausted every thread gets StopIteration (one item is fetched at a time, so no request
    for an item can reach the daemon after the stream it asks for has ended there)."""

    def __init__(self, streamId: str, proxy: SharedProxy) -> None:
        self.streamId = streamId
        self.proxy: SharedProxy | None = proxy
        self._fetching = threading.Lock()

    def __iter__(self) -> SharedStreamIterator:
        return self

    def __next__(self) -> Any:
        with self._fetching:
            proxy = self.proxy
            if proxy is None:
                raise StopIteration
            if proxy._pyroConnection is None:  # as Proxy: the stream lived on that connection
                raise ConnectionClosedError(
                    f"cannot fetch the next streamed item: the proxy for {proxy._pyroUri} is closed"
                )
            try:
                return proxy._pyroInvoke("get_next_stream_item", [self.streamId], {}, objectId=DAEMON_NAME)
            except (StopIteration, GeneratorExit):
                self.proxy = None
                raise StopIteration from None

    def close(self) -> None:
        """Tell the daemon to discard the remote iterator (a oneway call; pipelined, so always safe)."""
        proxy = self.proxy
        self.proxy = None
        if proxy is not None and proxy._pyroConnection is not None:
            with contextlib.suppress(PyroError):
                proxy._pyroInvoke("close_stream", [self.streamId], {}, flags=FLAGS_ONEWAY, objectId=DAEMON_NAME)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
