"""Pieces of ``aio.Proxy`` that do not need the class itself: remote methods, stream ids, closing
a channel from any thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from ..client import Proxy as SyncProxy
from ..errors import ConnectionClosedError, PyroError, TimeoutError
from .channel import PipelineChannel, stream_id

if TYPE_CHECKING:
    from .proxy import Proxy

__all__ = ["AsyncRemoteMethod", "aio_proxies", "close_soon", "check_loop_free", "stream_id"]


def close_soon(channel: PipelineChannel) -> None:
    """Close a channel from any thread (its loop may be another, or already closed); nothing for one
    that is closed already (or was given up in a forked child: its loop is the parent's)."""
    if channel.error is not None:
        return
    loop = channel.loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        channel.close()
    elif not loop.is_closed():
        try:
            loop.call_soon_threadsafe(channel.close)
        except RuntimeError:
            pass  # the loop closed meanwhile, and its transports with it


def aio_proxies(data: Any, convert: Callable[[Any], Any]) -> Any:
    """Autoproxied results (sync proxies made by the serializer) made aio proxies by ``convert``,
    also inside a list, tuple, set or dict at the top level of the result."""
    if isinstance(data, SyncProxy):
        return convert(data)
    kind = type(data)
    if kind is list or kind is tuple or kind is set:
        if any(isinstance(item, SyncProxy) for item in data):
            return kind(convert(v) if isinstance(v, SyncProxy) else v for v in data)
    elif kind is dict and any(isinstance(v, SyncProxy) for v in data.values()):
        return {k: convert(v) if isinstance(v, SyncProxy) else v for k, v in data.items()}
    return data


def check_loop_free(loop: asyncio.AbstractEventLoop, uri: Any) -> None:
    """PyroError if ``loop``, which a proxy's connection (or its connect) belongs to, is running: it
    runs in another thread, whose calls would fail if the connection were taken away from it."""
    if loop.is_running():
        raise PyroError(
            f"this aio.Proxy for {uri} is in use on the event loop of another thread; give each event loop "
            "its own proxy (copy.copy(proxy)), or _pyroRelease() it on that loop first"
        )


class AsyncRemoteMethod:
    """``proxy.name``: call it for a remote call (a coroutine), or await it for a remote attribute."""

    __slots__ = ("_proxy", "_name")

    def __init__(self, proxy: Proxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __getattr__(self, name: str) -> AsyncRemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return AsyncRemoteMethod(self._proxy, f"{self._name}.{name}")

    def __await__(self) -> Generator[Any, None, Any]:
        return self._proxy._pyroGetAttr(self._name).__await__()

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        proxy = self._proxy
        if not proxy._pyroMaxRetries and self._name in proxy._pyroMethods:
            return proxy._pyroInvoke(self._name, args, kwargs)  # the common case: one coroutine less
        return self._call(args, kwargs)

    async def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        proxy = self._proxy
        name = self._name
        if name not in proxy._pyroMethods:
            await proxy._pyroEnsure()
            if "." not in name and name not in proxy._pyroMethods:
                if name in proxy._pyroAttrs:
                    raise AttributeError(f"'{name}' of {proxy._pyroUri} is an attribute: use 'await proxy.{name}'")
                raise AttributeError(f"remote object '{proxy._pyroUri}' has no exposed attribute or method '{name}'")
        retries = proxy._pyroMaxRetries
        for attempt in range(retries + 1):
            try:
                return await proxy._pyroInvoke(name, args, kwargs)
            except (ConnectionClosedError, TimeoutError):
                if attempt >= retries:
                    raise
        return None  # pragma: no cover

    def __repr__(self) -> str:
        return f"<async remote method {self._name!r}>"
