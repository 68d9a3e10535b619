"""``aio.Daemon``: the daemon for asyncio programs.

It has the sync ``Daemon``'s registration API, name for name (``register``,
``unregister``, ``uriFor``, ``proxyFor``, ``resetMetadataCache``, instance
modes through ``@behavior``, ``@expose``/``@oneway``, the hooks
``validateHandshake``, ``clientDisconnect``, ``housekeeping``,
``annotations``, NAT through ``nathost``/``natport``, metadata): it *is* a
``Daemon`` whose server engine is the asyncio engine
(``pyrite.core.engines.aio``), so the object registry and the dispatcher are
the sync daemon's own.  What differs is how it runs::

    import asyncio
    from pyrite.core import aio
    from pyrite.core.exposure import expose

    @expose
    class Clock:
        async def tick(self, delay):
            await asyncio.sleep(delay)      # other calls go on meanwhile
            return "tock"

        def blocking(self):                 # plain methods run on worker threads
            return "fine"

    async def main():
        async with aio.Daemon(host="127.0.0.1", port=0) as daemon:
            print(daemon.register(Clock, "clock"))
            await daemon.serve_forever()    # until `await daemon.close()`

    asyncio.run(main())

``async with`` starts listening on the running loop (``start()`` does the
same without the context manager); ``serve_forever()`` returns once the
daemon is closed; ``await close()`` closes it (``shutdown()`` is the sync
equivalent, safe from any thread and from inside a call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any

from ..daemon import Daemon as SyncDaemon
from ..daemon import DaemonObject
from ..engines.aio import SHUTDOWN_WAIT, AsyncioEngine
from ..errors import PyroError

__all__ = ["Daemon"]


class Daemon(SyncDaemon):
    """A daemon served by the running asyncio event loop; see the module docstring.

    ``host``/``port`` (default ``config.HOST``, port 0 = any free port) or
    ``unixsocket`` choose where it listens; ``nathost``/``natport`` the address
    put in URIs behind NAT; ``interface`` the class of its ``Pyro.Daemon`` object.
    """

    _servertype = "asyncio"

    def __init__(
        self,
        host: Any = None,
        port: int = 0,
        unixsocket: str | None = None,
        nathost: Any = None,
        natport: int | None = None,
        interface: type = DaemonObject,
    ) -> None:
        super().__init__(host, port, unixsocket, nathost, natport, interface)

    def start(self) -> None:
        """Start listening on the running event loop (``async with`` calls this)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise PyroError(
                "aio.Daemon.start() needs a running event loop: call it, or `async with` the daemon, "
                "in a coroutine (sync code serves a daemon with requestLoop())"
            ) from None
        self._engine().attach(loop)

    async def serve_forever(self) -> None:
        """Serve until the daemon is closed (``await close()``, ``shutdown()``, or a
        call that shuts it down); starts listening first if ``start()`` was not called."""
        engine = self._engine()
        loop = asyncio.get_running_loop()
        if engine.event_loop is None:
            engine.attach(loop)
        elif engine.event_loop is not loop:
            raise PyroError(
                f"this daemon was started on another event loop ({engine.event_loop!r}): "
                "serve it there, or close it and make a new daemon on this loop"
            )
        await engine.serve_forever()
        await self.close()  # closed by shutdown() from a call: finish releasing it

    def close(self) -> Awaitable[None]:  # type: ignore[override]
        """Stop serving and release the listener, the connections and the workers.

        Await it on the loop (the blocking part runs on a thread meanwhile); from a
        thread without a running loop it closes at once (awaiting it is then optional).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            SyncDaemon.close(self)
            return _Done()
        engine = self.transportServer
        ours = isinstance(engine, AsyncioEngine) and engine.event_loop is loop
        if ours:
            engine.spare(asyncio.current_task())  # a call closing its daemon is not cancelled
        closing = loop.run_in_executor(None, SyncDaemon.close, self)
        return loop.create_task(_close_and_wait(closing, engine)) if ours else closing

    async def __aenter__(self) -> Daemon:
        if self.transportServer is None:
            raise PyroError("this daemon is closed; a closed daemon cannot be entered again")
        self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


async def _close_and_wait(closing: Awaitable[None], engine: AsyncioEngine) -> None:
    """Close, then wait (bounded) for the calls the close cancelled: their replies are out."""
    await closing
    await engine.calls_ended(SHUTDOWN_WAIT)


class _Done:
    """An awaitable that is already finished (what ``close()`` returns without a loop)."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield
