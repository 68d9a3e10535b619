"""Server engines: how a daemon accepts clients, reads their messages and runs their calls.

* ``threadpool.ThreadPoolEngine`` (SERVERTYPE ``"thread"``, the default): a
  selector thread plus a bounded pool of worker threads.
* ``multiplex.MultiplexEngine`` (SERVERTYPE ``"multiplex"``): one thread,
  one call at a time.
* ``aio.AsyncioEngine`` (SERVERTYPE ``"asyncio"``): an asyncio event loop;
  ``async def`` methods run as tasks on it, plain ones on worker threads.

Both are built as ``Engine(daemon, listener)`` and offer ``loop``,
``events``, ``sockets``, ``combine_loop``, ``wakeup``, ``shutdown``,
``close`` and ``location``.  Pick one by server type::

    engine = engine_class(config.SERVERTYPE)(daemon, listener)
"""

from __future__ import annotations

import importlib

from ..errors import PyroError

SERVERTYPES = {
    "thread": ("threadpool", "ThreadPoolEngine"),
    "multiplex": ("multiplex", "MultiplexEngine"),
    "asyncio": ("aio", "AsyncioEngine"),
}


def engine_class(servertype: str) -> type:
    """The engine class for a ``config.SERVERTYPE`` value; PyroError for an unknown one."""
    try:
        module, name = SERVERTYPES[servertype]
    except (KeyError, TypeError):
        raise PyroError(f"invalid server type '{servertype}' (choose from: {', '.join(SERVERTYPES)})") from None
    return getattr(importlib.import_module(f".{module}", __name__), name)  # type: ignore[no-any-return]


__all__ = ["SERVERTYPES", "engine_class"]
