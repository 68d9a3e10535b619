"""Remote generators and iterators as async iterators (``async for item in await proxy.numbers(10):``).

Each step asks the daemon for the next item over the proxy's connection.
Leaving the loop early (``break``) and dropping the iterator tells the daemon
to discard the remote generator: the oneway close is written at once, with no
round trip, so it also works from ``__del__``.  ``await it.aclose()`` or
``async with`` closes explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, Any

from ..callcontext import current_context
from ..uri import DAEMON_NAME

if TYPE_CHECKING:
    from .proxy import Proxy

__all__ = ["AsyncStreamIterator"]


class AsyncStreamIterator:
    """The result of a remote call that returned an iterator or generator (asyncio flavour)."""

    def __init__(self, streamId: str, proxy: Proxy) -> None:
        self.streamId = streamId
        self.proxy: Proxy | None = proxy

    def __aiter__(self) -> AsyncStreamIterator:
        return self

    async def __anext__(self) -> Any:
        proxy = self.proxy
        if proxy is None:
            raise StopAsyncIteration
        reply, serializer = await proxy._pyroRequest(
            "get_next_stream_item",
            [self.streamId],
            {},
            0,
            DAEMON_NAME,
            proxy._pyroAnnotations(),
            current_context.correlation_id,
            False,
        )
        assert reply is not None
        try:
            return proxy._pyroDecode(reply, serializer)
        except (StopIteration, StopAsyncIteration, GeneratorExit):
            # the daemon ended the stream by itself: nothing left to close
            self.proxy = None
            raise StopAsyncIteration from None

    async def __aenter__(self) -> AsyncStreamIterator:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Tell the daemon to discard the remote iterator."""
        self.close()

    def close(self) -> None:
        """Tell the daemon to discard the remote iterator (a oneway message, written now)."""
        proxy = self.proxy
        self.proxy = None
        if proxy is None:
            return
        channel = proxy._pyroConnection
        if channel is None:
            return  # the connection is gone, and the daemon drops its streams with it
        write = functools.partial(channel.close_stream, self.streamId, proxy._pyroSerializerObject())
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is channel.loop:
            write()
        elif not channel.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                channel.loop.call_soon_threadsafe(write)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
