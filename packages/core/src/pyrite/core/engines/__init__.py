"""Server engines: how a daemon accepts clients, reads their messages and runs their calls.

This is the one engine table, ``SERVERTYPES`` (``config.SERVERTYPE`` value ->
module and class):

* ``threadpool.ThreadPoolEngine`` (SERVERTYPE ``"thread"``, the default): a
  selector thread plus the daemon's bounded pool of worker threads.
* ``multiplex.MultiplexEngine`` (SERVERTYPE ``"multiplex"``): one thread,
  one call at a time.

``single.SingleConnectionEngine`` serves ``Daemon(connected_socket=...)``
and is no server type.  Every engine is built as ``Engine(host, listener)``
where ``host`` is an ``interfaces.DaemonHost``, and offers what
``interfaces.Engine`` lists.  Pick one by server type::

    engine = engine_class(config.SERVERTYPE)(daemon.host, listener)
"""

from __future__ import annotations

import importlib

from ..config import config
from ..errors import PyroError
from ..workers import WorkerPool

SERVERTYPES = {
    "thread": ("threadpool", "ThreadPoolEngine"),
    "multiplex": ("multiplex", "MultiplexEngine"),
}


def engine_class(servertype: str) -> type:
    """The engine class for a ``config.SERVERTYPE`` value; PyroError for an unknown one."""
    try:
        module, name = SERVERTYPES[servertype]
    except (KeyError, TypeError):
        raise PyroError(f"invalid server type '{servertype}' (choose from: {', '.join(SERVERTYPES)})") from None
    return getattr(importlib.import_module(f".{module}", __name__), name)  # type: ignore[no-any-return]


ONEWAY_QUEUE_PER_THREAD = 64  # oneway calls that may wait per oneway thread before the pool is "full"


def worker_pool(servertype: str) -> WorkerPool:
    """The worker pool a daemon with this engine needs.

    The thread engine serves connections on it (``THREADPOOL_SIZE`` threads,
    ``THREADPOOL_SIZE_MIN`` kept) and oneway calls share it, at most
    ``ONEWAY_THREADS`` of them at once so a oneway flood leaves workers for the
    connections; any other engine uses it for oneway calls only
    (``ONEWAY_THREADS`` threads, started on first need).
    """
    oneway_threads = max(1, int(config.ONEWAY_THREADS))
    backlog = oneway_threads * ONEWAY_QUEUE_PER_THREAD
    if servertype == "thread":
        size = int(config.THREADPOOL_SIZE)
        return WorkerPool(size, int(config.THREADPOOL_SIZE_MIN), backlog_limit=backlog, background_limit=oneway_threads)
    return WorkerPool(
        oneway_threads,
        1,
        name="pyrite-oneway",
        backlog_limit=backlog,
        background_limit=oneway_threads,
        prestart=False,
    )


__all__ = ["SERVERTYPES", "engine_class", "worker_pool"]
