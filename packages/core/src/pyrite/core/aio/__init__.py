"""pyrite's asyncio API (stdlib asyncio only), also importable as ``pyrite.api.aio``.

::

    from pyrite.core import aio

    async def main():
        async with aio.Proxy("PYRONAME:example.thing") as thing:
            print(await thing.method(1))
            print(await asyncio.gather(*(thing.method(i) for i in range(100))))   # one connection

* ``Proxy``: await remote calls; any number of tasks share one connection (pipelined).
* ``BatchProxy``: several calls in one round trip.
* ``Daemon``: a daemon served by the running event loop.
* ``locate_ns``, ``resolve``: the name server, asynchronously.
* ``use_uvloop``, ``run``, ``new_event_loop``: pick the event loop (uvloop optional).

Names load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:  # what the lazy loader hands out, for type checkers
    from .batch import BatchProxy
    from .loops import new_event_loop, run, use_uvloop, using_uvloop, uvloop_available
    from .naming import locate_ns, resolve
    from .proxy import Proxy
    from .streams import AsyncStreamIterator

_EXPORTS = {
    "Proxy": "proxy",
    "BatchProxy": "batch",
    "AsyncStreamIterator": "streams",
    "Daemon": "daemon",
    "locate_ns": "naming",
    "resolve": "naming",
    "use_uvloop": "loops",
    "using_uvloop": "loops",
    "uvloop_available": "loops",
    "new_event_loop": "loops",
    "run": "loops",
}

__all__ = [
    "Proxy",
    "BatchProxy",
    "AsyncStreamIterator",
    "Daemon",
    "locate_ns",
    "resolve",
    "use_uvloop",
    "using_uvloop",
    "uvloop_available",
    "new_event_loop",
    "run",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
