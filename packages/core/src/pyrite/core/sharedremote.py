"""What a ``SharedProxy`` hands out: its remote methods and the iterators of streamed results
(each usable from any thread).  They need only the proxy's ``_pyroInvoke``, ``_pyroMaxRetries``,
``_pyroConnection`` and ``_pyroUri``."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from .errors import ConnectionClosedError, PyroError, TimeoutError
from .protocol import FLAGS_ONEWAY
from .uri import DAEMON_NAME

if TYPE_CHECKING:
    from .shared import SharedProxy

__all__ = ["SharedRemoteMethod", "SharedStreamIterator"]


class SharedRemoteMethod:
    """A remote method of a SharedProxy (retried on network failures like Proxy's)."""

    __slots__ = ("_proxy", "_name")

    def __init__(self, proxy: SharedProxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __getattr__(self, name: str) -> SharedRemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return SharedRemoteMethod(self._proxy, f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        proxy = self._proxy
        retries = proxy._pyroMaxRetries
        for attempt in range(retries + 1):
            try:
                return proxy._pyroInvoke(self._name, args, kwargs)
            except (ConnectionClosedError, TimeoutError):
                if attempt >= retries:
                    raise
        return None  # pragma: no cover

    def __repr__(self) -> str:
        return f"<shared remote method {self._name!r}>"


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
