"""What a proxy hands out: remote methods and the iterators of streamed results.

``RemoteMethod`` is what ``proxy.name`` returns for a remote method: calling it
makes the call, retrying after a network failure up to ``_pyroMaxRetries``
times.  ``StreamResultIterator`` is the result of a call that returned an
iterator or generator: it fetches the items one by one from the daemon.
``PROXY_LOCAL_NAMES`` are the attribute names that always stay on a proxy (or
batch proxy) and never go to the remote object.

Neither class imports the proxy: they work with any object that has its
``_pyroInvoke`` (and, for streams, ``_pyroConnection``, ``_pyroSeq``,
``_pyroUri``, ``__copy__``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from .constants import DAEMON_NAME
from .errors import CommunicationError, ConnectionClosedError, TimeoutError
from .protocol import FLAGS_ONEWAY

__all__ = ["RemoteMethod", "StreamResultIterator", "PROXY_LOCAL_NAMES", "PROXY_LOCAL_PREFIXES", "proxy_state"]

# Pickle and copy probe some of these with getattr(), so they must fail fast
# instead of connecting to fetch metadata.
PROXY_LOCAL_NAMES = frozenset(
    [
        "__getnewargs__",
        "__getnewargs_ex__",
        "__getinitargs__",
        "__getstate__",
        "__setstate__",
        "_pyroConnection",
        "_pyroUri",
        "_pyroOneway",
        "_pyroMethods",
        "_pyroAttrs",
        "_pyroTimeout",
        "_pyroSeq",
        "_pyroLocalSocket",
        "_pyroRawWireResponse",
        "_pyroHandshake",
        "_pyroMaxRetries",
        "_pyroSerializer",
        "_Proxy__pyroTimeout",
        "_Proxy__pyroOwnerThread",
        "_Proxy__objectId",
        "_Proxy__serializer",
        "_Proxy__serializerName",
    ]
)
"""Attribute names that live on the proxy itself, never on the remote object."""
PROXY_LOCAL_PREFIXES = ("_pyro", "_Proxy__")
"""Name prefixes that never go remote either."""


class RemoteMethod:
    """A remote method, bound to a proxy; calling it makes the remote call (with retries)."""

    __slots__ = ("_send", "_name", "_max_retries")

    def __init__(self, send: Callable[[str, Any, Any], Any], name: str, max_retries: int) -> None:
        self._send = send
        self._name = name
        self._max_retries = max_retries

    def __getattr__(self, name: str) -> RemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return RemoteMethod(self._send, f"{self._name}.{name}", self._max_retries)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        retries = self._max_retries
        if not retries:
            return self._send(self._name, args, kwargs)
        for attempt in range(retries + 1):
            try:
                return self._send(self._name, args, kwargs)
            except (ConnectionClosedError, TimeoutError):
                # only network failures are worth another try; the proxy reconnects by itself
                if attempt >= retries:
                    raise
        return None  # pragma: no cover (the loop always returns or raises)

    def __repr__(self) -> str:
        return f"<remote method {self._name!r}>"


class StreamResultIterator:
    """The result of a remote call that returned an iterator or generator.

    It fetches the items one by one from the daemon as you iterate.  ``close()``
    (or garbage collection) tells the daemon to drop the remote iterator early.
    """

    def __init__(self, streamId: str, proxy: Any) -> None:
        self.streamId = streamId
        self.proxy: Any = proxy
        self.pyroseq = proxy._pyroSeq

    def __iter__(self) -> StreamResultIterator:
        return self

    def __next__(self) -> Any:
        proxy = self.proxy
        if proxy is None:
            raise StopIteration
        if proxy._pyroConnection is None:
            raise ConnectionClosedError(
                f"cannot fetch the next streamed item: the proxy for {proxy._pyroUri} is closed"
            )
        self.pyroseq = (self.pyroseq + 1) & 0xFFFF
        try:
            return proxy._pyroInvoke("get_next_stream_item", [self.streamId], {}, objectId=DAEMON_NAME)
        except (StopIteration, GeneratorExit):
            # the daemon closed the stream by itself; nothing left to close here
            self.proxy = None
            raise

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Tell the daemon to discard the remote iterator (a oneway call)."""
        proxy = self.proxy
        self.proxy = None
        if proxy is None or proxy._pyroConnection is None:
            return
        if self.pyroseq == proxy._pyroSeq:
            proxy._pyroInvoke("close_stream", [self.streamId], {}, flags=FLAGS_ONEWAY, objectId=DAEMON_NAME)
        else:
            # Other calls went over the proxy since (the garbage collector may even run
            # this in the middle of one), so a separate connection does the closing.
            with contextlib.suppress(CommunicationError):
                with proxy.__copy__() as closer:
                    closer._pyroInvoke("close_stream", [self.streamId], {}, flags=FLAGS_ONEWAY, objectId=DAEMON_NAME)


def proxy_state(proxy: Any) -> tuple[Any, ...]:
    """Pyro5's 6-tuple of plain values for a proxy (uri, oneway, methods, attrs, handshake,
    serializer): what pickling keeps and what the serializers put on the wire, for every
    proxy class (sync, asyncio, shared)."""
    return (
        str(proxy._pyroUri),
        tuple(proxy._pyroOneway),
        tuple(proxy._pyroMethods),
        tuple(proxy._pyroAttrs),
        proxy._pyroHandshake,
        proxy._pyroSerializer,
    )
